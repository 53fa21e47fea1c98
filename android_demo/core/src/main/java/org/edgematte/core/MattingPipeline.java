package org.edgematte.core;

import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A profile joined to a model (the Java side of Python's Matter): ARGB photo -> tensor -> model -> alpha ->
 * 8-bit alpha and composite, every stage timed. One instance per model; not thread-safe (models are not).
 *
 * <p>A one-image model (no {@link FeedPlan}, or a plan of one image in and one output) takes the plain path:
 * the tensor (quantized for an integer input) through {@link InferenceModel#run}. A model with more inputs is
 * fed by its plan ({@link InferenceModel#runFeeds}): a recurrent one (RVM) carries its states from call to call
 * (zeros after {@link #reset()}, so the first call after it is a clip's first frame), one that takes a trimap
 * (DIM) gets it per call ({@link Trimap#trimapTensor}).
 */
public final class MattingPipeline {

    private final Profile profile;
    private final InferenceModel model;
    /** Null for a one-image model. */
    private final FeedPlan plan;
    private final TensorSpec imageSpec;
    private final TensorSpec alphaSpec;
    private final Size modelSize;
    private final Layout layout;
    /** The states the next call feeds (channels-first, by input name); empty for a model without states. */
    private Map<String, NdArray> states = Collections.emptyMap();

    public MattingPipeline(Profile profile, InferenceModel model) {
        this(profile, model, null);
    }

    /** {@code plan}: how {@code model} is fed (null or a one-image plan: the plain path). */
    public MattingPipeline(Profile profile, InferenceModel model, FeedPlan plan) {
        this.profile = profile;
        this.model = model;
        this.plan = plan == null || plan.singleImage() ? null : plan;
        this.imageSpec = this.plan == null ? model.input() : model.inputs().get(this.plan.imageIndex());
        this.alphaSpec = this.plan == null ? model.output() : model.outputs().get(this.plan.alphaIndex());
        if (this.plan != null && (imageSpec.quant != null || alphaSpec.quant != null)) {
            // As Python's Matter: quantized states and trimaps have no agreed (scale, zero point) handling yet.
            throw new IllegalArgumentException("integer I/O for a model with several inputs is not supported ("
                    + imageSpec + ", " + alphaSpec + ")");
        }
        this.modelSize = imageSpec.imageSize();
        this.layout = imageSpec.imageLayout();
        reset();
    }

    /** The pipeline for {@code artefact} of {@code manifest} loaded as {@code model}: fed by the manifest's roles. */
    public static MattingPipeline forArtefact(Profile profile, InferenceModel model, Manifest manifest,
                                              Manifest.Artefact artefact) {
        return new MattingPipeline(profile, model, FeedPlan.forArtefact(manifest, artefact, model));
    }

    public Profile profile() {
        return profile;
    }

    public InferenceModel model() {
        return model;
    }

    /** How the model is fed, or null for a one-image model. */
    public FeedPlan plan() {
        return plan;
    }

    public boolean takesTrimap() {
        return plan != null && plan.takesTrimap();
    }

    public boolean recurrent() {
        return plan != null && plan.recurrent();
    }

    /** Start a new clip: a recurrent model's next call starts from zero states. */
    public void reset() {
        states = plan != null ? plan.zeroStates() : Collections.<String, NdArray>emptyMap();
    }

    /** The states the next call feeds (channels-first float32, by input name); read-only. */
    public Map<String, NdArray> states() {
        return Collections.unmodifiableMap(states);
    }

    /** Everything one photo produced. */
    public static final class Result {
        public Steps pre;
        public NdArray modelInput;
        /** float32 [1, 1, h, w] trimap fed with the image (values 0/128/255), or null. */
        public NdArray trimapInput;
        /** The alpha output. */
        public NdArray modelOutput;
        /** Every output of the model, in its order (a one-image model: the alpha alone). */
        public List<NdArray> modelOutputs;
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
        return process(argb, size, null, background, 0, 1);
    }

    public Result process(int[] argb, Size size, Background background, int warmup, int repeats) throws Exception {
        return process(argb, size, null, background, warmup, repeats);
    }

    /**
     * Processes one photo; the model runs {@code warmup} untimed times, then {@code repeats} timed times
     * (the "inference" stage is their median, every run is in {@link Result#inferenceRuns}). Every run of one
     * call feeds the same states; the states the last run returned are those of the next call.
     * {@code trimap}: uint8 [H, W] (or [H, W, C], first channel) of the photo's size, needed by a model that
     * takes one, ignored otherwise.
     */
    public Result process(int[] argb, Size size, NdArray trimap, Background background, int warmup, int repeats)
            throws Exception {
        if (repeats < 1) {
            throw new IllegalArgumentException("repeats must be at least 1");
        }
        if (takesTrimap() && trimap == null) {
            throw new IllegalArgumentException("this model takes a trimap with the image; give one per photo");
        }
        Result result = new Result();
        StageTimer timer = result.timer;
        timer.start("preprocess");
        result.pre = profile.preprocess(argb, size, modelSize, layout);
        timer.start("quantize");
        result.modelInput = Quantization.toModelInput(result.pre.floats("tensor"), imageSpec);
        timer.stop();
        if (plan == null) {
            runOne(result, warmup, repeats);
        } else {
            runFeeds(result, argb, size, trimap, warmup, repeats);
        }
        timer.add("inference", median(result.inferenceRuns));
        timer.start("dequantize");
        float[] output = Quantization.fromModelOutput(result.modelOutput, alphaSpec);
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

    /** The one-image path, as it always was: no maps, no lists in the timed loop. */
    private void runOne(Result result, int warmup, int repeats) throws Exception {
        for (int i = 0; i < warmup; i++) {
            model.run(result.modelInput);
        }
        result.inferenceRuns = new double[repeats];
        for (int i = 0; i < repeats; i++) {
            long start = System.nanoTime();
            result.modelOutput = model.run(result.modelInput);
            result.inferenceRuns[i] = (System.nanoTime() - start) / 1e6;
        }
        result.modelOutputs = Collections.singletonList(result.modelOutput);
    }

    private void runFeeds(Result result, int[] argb, Size size, NdArray trimap, int warmup, int repeats)
            throws Exception {
        Map<String, NdArray> step = new HashMap<>();
        Map<String, NdArray> ready = new HashMap<>();
        if (plan.takesTrimap()) {
            result.timer.start("trimap");
            result.trimapInput = Trimap.trimapTensor(profile, trimap, size, modelSize);
            result.timer.stop();
        }
        for (TensorRole role : plan.inputs) {
            if (role.is("trimap")) {
                step.put(role.name, result.trimapInput);
            } else if (role.is("image")) {
                ready.put(role.name, result.modelInput);  // already in the model's layout
            }
        }
        List<NdArray> feeds = plan.feeds(step, states, ready);
        for (int i = 0; i < warmup; i++) {
            model.runFeeds(feeds);
        }
        result.inferenceRuns = new double[repeats];
        for (int i = 0; i < repeats; i++) {
            long start = System.nanoTime();
            result.modelOutputs = model.runFeeds(feeds);
            result.inferenceRuns[i] = (System.nanoTime() - start) / 1e6;
        }
        result.modelOutput = result.modelOutputs.get(plan.alphaIndex());
        if (plan.recurrent()) {
            Map<String, NdArray> next = new LinkedHashMap<>(states);
            next.putAll(plan.nextStates(result.modelOutputs));
            states = next;
        }
    }

    static double median(double[] values) {
        double[] sorted = values.clone();
        java.util.Arrays.sort(sorted);
        int n = sorted.length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }
}
