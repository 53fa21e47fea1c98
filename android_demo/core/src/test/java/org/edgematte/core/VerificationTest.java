package org.edgematte.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.io.IOException;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/** The verification mode on the host with a Java stand-in model: files, index, markers, timings. */
public class VerificationTest {

    @Rule
    public TemporaryFolder temp = new TemporaryFolder();

    /** alpha = sigmoid(4 * mean of the three channels), float or int8 input. */
    static final class MeanModel implements InferenceModel {
        private final TensorSpec input;
        private final TensorSpec output;
        int runs;
        boolean fail;

        MeanModel(QuantParams inputQuant) {
            input = new TensorSpec("img", new int[] {1, 3, 24, 32}, inputQuant == null ? "float32" : inputQuant.dtype,
                    inputQuant);
            output = new TensorSpec("alpha", new int[] {1, 1, 24, 32}, "float32", null);
        }

        @Override
        public TensorSpec input() {
            return input;
        }

        @Override
        public TensorSpec output() {
            return output;
        }

        @Override
        public NdArray run(NdArray x) throws IOException {
            runs++;
            if (fail) {
                throw new IOException("model exploded");
            }
            assertArrayEquals(input.shape, x.shape);
            float[] values = input.quant == null ? x.floats() : Quantization.dequantize(x.bytes(), input.quant);
            int plane = 24 * 32;
            float[] alpha = new float[plane];
            for (int p = 0; p < plane; p++) {
                float mean = (values[p] + values[plane + p] + values[2 * plane + p]) / 3f;
                alpha[p] = (float) (1.0 / (1.0 + Math.exp(-4.0 * mean)));
            }
            return NdArray.float32(alpha, output.shape);
        }

        @Override
        public Map<String, Object> describe() {
            Map<String, Object> facts = new LinkedHashMap<>();
            facts.put("kind", "java stand-in");
            return facts;
        }

        @Override
        public void close() {
        }
    }

    private File writeImages() throws IOException {
        File dir = temp.newFolder("in");
        byte[] rgb = new byte[30 * 50 * 3];
        for (int i = 0; i < rgb.length; i++) {
            rgb[i] = (byte) (i * 7 + i / 150);
        }
        Npy.write(new File(dir, "photo.npy"), NdArray.uint8(rgb, 30, 50, 3));
        byte[] rgba = new byte[9 * 7 * 4];
        for (int i = 0; i < rgba.length; i++) {
            rgba[i] = (byte) (i * 13);
        }
        Npy.write(new File(dir, "small_rgba.npy"), NdArray.uint8(rgba, 9, 7, 4));
        return dir;
    }

    @Test
    public void writesGoldenFormatThenDone() throws Exception {
        File in = writeImages();
        File out = new File(temp.getRoot(), "out");
        MeanModel model = new MeanModel(null);
        MattingPipeline pipeline = new MattingPipeline(new AndroidProfile(), model);
        Verification.Options options = new Verification.Options();
        options.warmup = 1;
        options.repeats = 2;
        Map<String, Object> facts = new LinkedHashMap<>();
        facts.put("device", "host");
        Map<String, Object> summary = Verification.run(new Verification.NpyImageSource(in), pipeline, out, options,
                facts);
        assertEquals(Arrays.asList("photo", "small_rgba"), summary.get("images"));
        assertEquals(2 * (1 + 2), model.runs);
        assertTrue(new File(out, GoldenWriter.DONE_MARKER).isFile());
        assertFalse(new File(out, GoldenWriter.FAILED_MARKER).exists());

        GoldenVectors written = GoldenVectors.open(out);
        assertEquals("host", written.index.get("device"));
        List<Map<String, Object>> cases = written.cases();
        assertEquals(2, cases.size());
        Map<String, Object> photo = cases.get(0);
        assertEquals("android/photo", photo.get("id"));
        assertEquals(new Size(30, 50), GoldenVectors.size(photo, "original_hw"));
        assertEquals(new Size(19, 32), GoldenVectors.size(photo, "resized_hw"));
        NdArray alpha = written.array(photo, "post_alpha");
        assertArrayEquals(new int[] {30, 50}, alpha.shape);
        assertArrayEquals(new int[] {30, 50}, written.array(photo, "alpha8").shape);
        assertArrayEquals(new int[] {30, 50, 3}, written.array(photo, "composite_colour").shape);
        assertArrayEquals(new int[] {1, 3, 24, 32}, written.array(photo, "pre_tensor_nchw").shape);

        // The written alpha is the profile's post-processing of the written model output.
        NdArray output = written.array(photo, "model_output");
        AndroidProfile profile = new AndroidProfile();
        PreprocessState state = profile.plan(new Size(30, 50), new Size(24, 32), Layout.NCHW);
        assertArrayEquals(profile.postprocess(output.floats(), output.shape, state).floats("alpha"), alpha.floats(), 0f);

        Map<String, Object> timings = Json.object(photo, "timings_ms");
        for (String stage : new String[] {"decode", "preprocess", "quantize", "inference", "dequantize", "postprocess",
                "alpha8", "composite"}) {
            assertTrue("timing " + stage, Json.number(timings, stage) >= 0);
        }
        assertEquals(2, Json.list(timings, "inference_runs").size());
    }

    @Test
    public void quantizedInputReachesTheModelAsInt8() throws Exception {
        File in = writeImages();
        File out = new File(temp.getRoot(), "out");
        MeanModel model = new MeanModel(new QuantParams("int8", 1.0 / 128.0, 0));
        Verification.run(new Verification.NpyImageSource(in), new MattingPipeline(new AndroidProfile(), model), out,
                new Verification.Options(), new LinkedHashMap<String, Object>());
        GoldenVectors written = GoldenVectors.open(out);
        NdArray tensor = written.array(written.cases().get(1), "pre_tensor_nchw");
        assertEquals(NdArray.DType.FLOAT32, tensor.dtype);
        assertTrue(new File(out, GoldenWriter.DONE_MARKER).isFile());
    }

    @Test
    public void failureWritesFailedMarkerAndRemovesStaleDone() throws Exception {
        File in = writeImages();
        File out = temp.newFolder("out");
        assertTrue(new File(out, GoldenWriter.DONE_MARKER).createNewFile());
        MeanModel model = new MeanModel(null);
        model.fail = true;
        try {
            Verification.run(new Verification.NpyImageSource(in), new MattingPipeline(new AndroidProfile(), model), out,
                    new Verification.Options(), new LinkedHashMap<String, Object>());
            fail("the model's exception was swallowed");
        } catch (IOException expected) {
            assertEquals("model exploded", expected.getMessage());
        }
        assertFalse(new File(out, GoldenWriter.DONE_MARKER).exists());
        assertTrue(TextFiles.read(new File(out, GoldenWriter.FAILED_MARKER)).contains("model exploded"));
    }

    /** Image, trimap and a state in; alpha = trimap / 255 + state, state out = state + 1. Records what it was fed. */
    static final class TrimapStateModel implements InferenceModel {
        final List<TensorSpec> inputs = Arrays.asList(
                new TensorSpec("img", new int[] {1, 3, 24, 32}, "float32", null),
                new TensorSpec("trimap", new int[] {1, 1, 24, 32}, "float32", null),
                new TensorSpec("s", new int[] {1, 1, 24, 32}, "float32", null));
        final List<TensorSpec> outputs = Arrays.asList(
                new TensorSpec("alpha", new int[] {1, 1, 24, 32}, "float32", null),
                new TensorSpec("s_out", new int[] {1, 1, 24, 32}, "float32", null));
        final List<List<NdArray>> fed = new java.util.ArrayList<>();

        static FeedPlan plan() {
            return FeedPlan.of(Arrays.asList(new TensorRole("img", "image", null, null, null, null),
                            new TensorRole("trimap", "trimap", null, null, null, null),
                            new TensorRole("s", "state", new int[] {1, 1, 24, 32}, "float32", "s_out", null)),
                    Arrays.asList(new TensorRole("alpha", "alpha", null, null, null, null),
                            new TensorRole("s_out", "state", null, null, "s", null)),
                    Arrays.asList("img", "trimap", "s"), Arrays.asList("alpha", "s_out"), "nchw", "fake", null, null);
        }

        @Override
        public TensorSpec input() {
            return inputs.get(0);
        }

        @Override
        public TensorSpec output() {
            return outputs.get(0);
        }

        @Override
        public List<TensorSpec> inputs() {
            return inputs;
        }

        @Override
        public List<TensorSpec> outputs() {
            return outputs;
        }

        @Override
        public NdArray run(NdArray x) {
            throw new AssertionError("a model with several inputs ran on the one-image path");
        }

        @Override
        public List<NdArray> runFeeds(List<NdArray> feeds) {
            fed.add(feeds);
            float[] trimap = feeds.get(1).floats();
            float[] state = feeds.get(2).floats();
            float[] alpha = new float[trimap.length];
            float[] next = new float[trimap.length];
            for (int i = 0; i < alpha.length; i++) {
                alpha[i] = trimap[i] / 255f + state[i];
                next[i] = state[i] + 1f;
            }
            return Arrays.asList(NdArray.float32(alpha, 1, 1, 24, 32), NdArray.float32(next, 1, 1, 24, 32));
        }

        @Override
        public Map<String, Object> describe() {
            return new LinkedHashMap<>();
        }

        @Override
        public void close() {
        }
    }

    @Test
    public void everyPhotoIsAFirstFrameWithTheSyntheticTrimapAsPythonVerifies() throws Exception {
        File in = writeImages();
        File out = new File(temp.getRoot(), "out");
        TrimapStateModel model = new TrimapStateModel();
        AndroidProfile profile = new AndroidProfile();
        Verification.Options options = new Verification.Options();
        options.warmup = 1;
        options.repeats = 2;
        Verification.run(new Verification.NpyImageSource(in), new MattingPipeline(profile, model,
                TrimapStateModel.plan()), out, options, new LinkedHashMap<String, Object>());
        assertEquals(2 * 3, model.fed.size());
        Size[] sizes = {new Size(30, 50), new Size(9, 7)};
        for (int run = 0; run < model.fed.size(); run++) {
            List<NdArray> feeds = model.fed.get(run);
            assertArrayEquals("run " + run + ": zero states", new float[24 * 32], feeds.get(2).floats(), 0f);
            Size size = sizes[run / 3];
            NdArray expected = Trimap.trimapTensor(profile, Trimap.syntheticTrimapUint8(size), size, new Size(24, 32));
            assertArrayEquals("run " + run + ": the synthetic trimap", expected.floats(), feeds.get(1).floats(), 0f);
        }
        assertTrue(new File(out, GoldenWriter.DONE_MARKER).isFile());
    }

    @Test
    public void emptyInputFolderFails() throws Exception {
        File out = new File(temp.getRoot(), "out");
        try {
            Verification.run(new Verification.NpyImageSource(temp.newFolder("empty")),
                    new MattingPipeline(new AndroidProfile(), new MeanModel(null)), out, new Verification.Options(),
                    new LinkedHashMap<String, Object>());
            fail("an empty folder verified nothing and passed");
        } catch (IOException expected) {
            assertTrue(expected.getMessage().contains("no images"));
        }
        assertTrue(new File(out, GoldenWriter.FAILED_MARKER).isFile());
    }
}
