package org.edgematte.core;

import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The verification mode: every image of a folder through one {@link MattingPipeline}, results written in the
 * golden-vector format by {@link GoldenWriter}, then the DONE marker (FAILED with the error otherwise).
 *
 * <p>Per image, under {@code <profile>/<image>/}: {@code pre_tensor_<layout>} (float32 model input before
 * quantization), {@code model_output} (as the model returned it: float32 or int8/uint8),
 * {@code post_alpha} (float32 H x W), {@code alpha8} (uint8 H x W) and {@code composite_colour} (uint8
 * H x W x 3 over {@link Options#background}); {@code timings_ms} holds decode, preprocess, quantize,
 * inference (median), inference_runs (every timed run), dequantize, postprocess, alpha8, composite.
 *
 * <p>Photos ({@link Options#sequence} false, the default) are each a recurrent model's first frame: the pipeline is
 * reset before every one. A sequence is the frames of one clip, in name order (names start with the frame's index
 * from 0, zero-padded: {@code 000_a}, {@code 001_b}, ... as {@code edgematte device verify --sequence} writes them):
 * the pipeline is reset once, before the first, so a recurrent model's states pass from frame to frame as in
 * Python's {@code Matter}; every frame must have the first one's size.
 */
public final class Verification {

    private Verification() {
    }

    /** One decoded photo. */
    public static final class LoadedImage {
        public final int[] argb;
        public final Size size;
        public final double decodeMs;

        public LoadedImage(int[] argb, Size size, double decodeMs) {
            this.argb = argb;
            this.size = size;
            this.decodeMs = decodeMs;
        }
    }

    /** The photos to process, by name (file name without extension). */
    public interface ImageSource {
        List<String> names() throws IOException;

        LoadedImage load(String name) throws IOException;
    }

    /** A folder of .npy images: uint8 H x W x 3 (RGB) or H x W x 4 (RGBA), e.g. the golden vectors' input_rgb. */
    public static final class NpyImageSource implements ImageSource {
        private final File dir;

        public NpyImageSource(File dir) {
            this.dir = dir;
        }

        @Override
        public List<String> names() throws IOException {
            return namesWithExtensions(dir, "npy");
        }

        @Override
        public LoadedImage load(String name) throws IOException {
            long start = System.nanoTime();
            NdArray image = Npy.read(new File(dir, name + ".npy"));
            int[] argb;
            try {
                argb = Pixels.argbFromArray(image);
            } catch (IllegalArgumentException e) {
                throw new IOException(new File(dir, name + ".npy") + ": " + e.getMessage(), e);
            }
            return new LoadedImage(argb, new Size(image.shape[0], image.shape[1]), (System.nanoTime() - start) / 1e6);
        }
    }

    /** Repetitions, the background of the written composite, and whether the images are one clip's frames. */
    public static final class Options {
        public int warmup = 1;
        public int repeats = 3;
        public Background background = Background.colour(24, 160, 88);
        /** The images are the frames of one clip, in name order: states carried, reset once (see the class doc). */
        public boolean sequence = false;
    }

    /**
     * Runs every image and writes {@code out}; returns the DONE summary. On failure writes FAILED (with the
     * message) and rethrows.
     */
    public static Map<String, Object> run(ImageSource images, MattingPipeline pipeline, File out, Options options,
                                         Map<String, Object> facts) throws Exception {
        if (!out.isDirectory() && !out.mkdirs()) {
            throw new IOException(out + ": cannot create the output folder");
        }
        GoldenWriter.clearMarkers(out);
        try {
            GoldenWriter writer = new GoldenWriter(out, "android", pipeline.model().describe());
            for (Map.Entry<String, Object> fact : facts.entrySet()) {
                writer.put(fact.getKey(), fact.getValue());
            }
            Map<String, Object> settings = new LinkedHashMap<>();
            settings.put("profile", pipeline.profile().name());
            settings.put("warmup", options.warmup);
            settings.put("repeats", options.repeats);
            settings.put("background", options.background.toString());
            settings.put("sequence", options.sequence);
            writer.put("verification", settings);
            List<String> names = images.names();
            if (names.isEmpty()) {
                throw new IOException("no images (.npy, .png, .jpg) in the input folder");
            }
            if (options.sequence) {
                checkSequenceNames(names);
            }
            pipeline.reset();
            Size first = null;
            for (String name : names) {
                LoadedImage image = images.load(name);
                if (options.sequence && first != null && !first.equals(image.size)) {
                    throw new IOException(name + ": frame is " + image.size.width + "x" + image.size.height
                            + " (width x height), the first frame " + names.get(0) + " is " + first.width + "x"
                            + first.height + ": a sequence's frames share one size");
                }
                first = first == null ? image.size : first;
                // As Python's verify.matte_one for photos: each a recurrent model's first frame (zero states); a
                // sequence's frames as Python's verify.matte_sequence: reset once above, states carried. The
                // synthetic trimap at the photo's size for a model that takes one.
                if (!options.sequence) {
                    pipeline.reset();
                }
                NdArray trimap = pipeline.takesTrimap() ? Trimap.syntheticTrimapUint8(image.size) : null;
                MattingPipeline.Result result = pipeline.process(image.argb, image.size, trimap, options.background,
                        options.warmup, options.repeats);
                PreprocessState state = result.pre.state();
                GoldenWriter.Case c = writer.startCase(pipeline.profile().name(), name, state);
                c.add("pre_tensor_" + state.layout.key, result.pre.get("tensor"));
                c.add("model_output", result.modelOutput);
                c.add("post_alpha", result.post.get("alpha"));
                c.add("alpha8", NdArray.uint8(result.alpha8, image.size.height, image.size.width));
                c.add("composite_colour", NdArray.uint8(result.composite, image.size.height, image.size.width, 3));
                c.timing("decode", image.decodeMs);
                for (Map.Entry<String, Double> stage : result.timer.stages().entrySet()) {
                    c.timing(stage.getKey(), stage.getValue());
                }
                c.timing("inference_runs", result.inferenceRuns.clone());
            }
            writer.finish();
            Map<String, Object> summary = new LinkedHashMap<>();
            summary.put("cases", names.size());
            summary.put("images", names);
            summary.put("sequence", options.sequence);
            writer.markDone(summary);
            return summary;
        } catch (Exception | OutOfMemoryError e) {
            GoldenWriter.markFailed(out, e.getClass().getSimpleName() + ": " + e.getMessage());
            throw e;
        }
    }

    /**
     * A sequence's frame names, sorted, must each start with their position from 0 (zero-padded to one width, or
     * "10_" would sort before "2_"); otherwise an IOException naming the first frame out of place, so a clip is
     * never run in another order than its numbering.
     */
    static void checkSequenceNames(List<String> names) throws IOException {
        for (int i = 0; i < names.size(); i++) {
            String name = names.get(i);
            int digits = 0;
            while (digits < name.length() && name.charAt(digits) >= '0' && name.charAt(digits) <= '9') {
                digits++;
            }
            long number = digits == 0 || digits > 9 ? -1 : Long.parseLong(name.substring(0, digits));
            if (number != i) {
                throw new IOException(name + ": frame " + i + " of the sequence must be named by its index from 0, "
                        + "zero-padded (000_a, 001_b, ... as 'edgematte device verify --sequence' writes them)");
            }
        }
    }

    /** The image file names {@code dir} holds with one of {@code extensions}, without extension, sorted. */
    public static List<String> namesWithExtensions(File dir, String... extensions) throws IOException {
        String[] files = dir.list();
        if (files == null) {
            throw new IOException(dir + ": not a readable folder");
        }
        List<String> names = new ArrayList<>();
        for (String file : files) {
            int dot = file.lastIndexOf('.');
            if (dot > 0 && Arrays.asList(extensions).contains(file.substring(dot + 1).toLowerCase())) {
                String base = file.substring(0, dot);
                if (!names.contains(base)) {
                    names.add(base);
                }
            }
        }
        Collections.sort(names);
        return names;
    }
}
