package org.edgematte.core;

/**
 * A profile joined to a model (the Java side of Python's Matter): ARGB photo -> tensor -> model -> alpha ->
 * 8-bit alpha and composite, every stage timed. One instance per model; not thread-safe (models are not).
 */
public final class MattingPipeline {

    private final Profile profile;
    private final InferenceModel model;
    private final Size modelSize;
    private final Layout layout;

    public MattingPipeline(Profile profile, InferenceModel model) {
        this.profile = profile;
        this.model = model;
        this.modelSize = model.input().imageSize();
        this.layout = model.input().imageLayout();
    }

    public Profile profile() {
        return profile;
    }

    public InferenceModel model() {
        return model;
    }

    /** Everything one photo produced. */
    public static final class Result {
        public Steps pre;
        public NdArray modelInput;
        public NdArray modelOutput;
        public Steps post;
        public float[] alpha;
        public byte[] alpha8;
        /** uint8 H x W x 3, or null when no background was given. */
        public byte[] composite;
        public final StageTimer timer = new StageTimer();
        /** Inference times of the repeated runs, in milliseconds. */
        public double[] inferenceRuns;
    }

    public Result process(int[] argb, Size size, Background background) throws Exception {
        return process(argb, size, background, 0, 1);
    }

    /**
     * Processes one photo; the model runs {@code warmup} untimed times, then {@code repeats} timed times
     * (the "inference" stage is their median, every run is in {@link Result#inferenceRuns}).
     */
    public Result process(int[] argb, Size size, Background background, int warmup, int repeats) throws Exception {
        if (repeats < 1) {
            throw new IllegalArgumentException("repeats must be at least 1");
        }
        Result result = new Result();
        StageTimer timer = result.timer;
        timer.start("preprocess");
        result.pre = profile.preprocess(argb, size, modelSize, layout);
        timer.start("quantize");
        result.modelInput = Quantization.toModelInput(result.pre.floats("tensor"), model.input());
        timer.stop();
        for (int i = 0; i < warmup; i++) {
            model.run(result.modelInput);
        }
        result.inferenceRuns = new double[repeats];
        for (int i = 0; i < repeats; i++) {
            long start = System.nanoTime();
            result.modelOutput = model.run(result.modelInput);
            result.inferenceRuns[i] = (System.nanoTime() - start) / 1e6;
        }
        timer.add("inference", median(result.inferenceRuns));
        timer.start("dequantize");
        float[] output = Quantization.fromModelOutput(result.modelOutput, model.output());
        timer.start("postprocess");
        result.post = profile.postprocess(output, result.modelOutput.shape, result.pre.state());
        result.alpha = result.post.floats("alpha");
        timer.start("alpha8");
        result.alpha8 = profile.alphaToUint8(result.alpha);
        if (background != null) {
            timer.start("composite");
            result.composite = profile.composite(Pixels.rgbFromArgb(argb), size, result.alpha, background);
        }
        timer.stop();
        return result;
    }

    static double median(double[] values) {
        double[] sorted = values.clone();
        java.util.Arrays.sort(sorted);
        int n = sorted.length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }
}
