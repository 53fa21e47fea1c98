package org.edgematte.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;

import org.junit.Test;

/**
 * {@link MattingPipeline} with models of several inputs (fakes with the recurrent stand-in of the golden vectors
 * and a trimap echo): states carried from call to call and reset, trimaps fed, the one-image path unchanged.
 */
public class MattingPipelineTest {

    private static final Size PHOTO = new Size(16, 24);
    private static final String ROLES = "\"inputs\": ["
            + "{\"name\": \"src\", \"role\": \"image\", \"shape\": [1, 3, 8, 12], \"dtype\": \"float32\"},"
            + "{\"name\": \"r1i\", \"role\": \"state\", \"shape\": [1, 4, 4, 6], \"dtype\": \"float32\", \"pair\": \"r1o\"},"
            + "{\"name\": \"r2i\", \"role\": \"state\", \"shape\": [1, 2, 2, 3], \"dtype\": \"float32\", \"pair\": \"r2o\"},"
            + "{\"name\": \"downsample_ratio\", \"role\": \"constant\", \"shape\": [1], \"value\": [0.25]}],"
            + " \"outputs\": [{\"name\": \"fgr\", \"role\": \"foreground\"}, {\"name\": \"pha\", \"role\": \"alpha\"},"
            + " {\"name\": \"r1o\", \"role\": \"state\", \"pair\": \"r1i\"}, {\"name\": \"r2o\", \"role\": \"state\", \"pair\": \"r2i\"}]";

    private static String spec(String name, String shape, String layout) {
        return "{\"name\": \"" + name + "\", \"shape\": " + shape + ", \"dtype\": \"float32\""
                + (layout != null ? ", \"layout\": \"" + layout + "\"" : "") + "}";
    }

    /** An RVM-like manifest whose tflite names, orders and lays out the tensors as onnx2tf does. */
    private static Manifest recurrentManifest() {
        return Manifest.parse("{\"schema\": \"edgematte.manifest/1\", \"model\": {\"name\": \"rvm\", \"input_shape\":"
                + " [1, 3, 8, 12], " + ROLES + "}, \"artefacts\": [{\"path\": \"rvm.tflite\", \"format\": \"tflite\","
                + " \"target\": \"any\", \"precision\": \"fp32\", \"sha256\": \"00\", \"layout\": \"nhwc\", \"parity\": {},"
                + " \"inputs\": [" + spec("r2i:0", "[1, 2, 3, 2]", null) + ", " + spec("src", "[1, 8, 12, 3]", null) + ", "
                + spec("R1I", "[1, 4, 6, 4]", null) + "], \"outputs\": [" + spec("r1o:0", "[1, 4, 4, 6]", "nchw") + ", "
                + spec("pha", "[1, 8, 12, 1]", null) + ", " + spec("r2o", "[1, 2, 3, 2]", null) + ", "
                + spec("fgr", "[1, 8, 12, 3]", null) + "]}]}");
    }

    /** A model file behind {@link InferenceModel}: its tensors as the manifest lists them, run by {@code body}. */
    private static final class FakeModel implements InferenceModel {
        final List<TensorSpec> inputs;
        final List<TensorSpec> outputs;
        final java.util.function.Function<List<NdArray>, List<NdArray>> body;
        final List<List<NdArray>> fed = new ArrayList<>();
        int plainRuns;

        FakeModel(Manifest.Artefact artefact, java.util.function.Function<List<NdArray>, List<NdArray>> body) {
            this.inputs = artefact.inputs;
            this.outputs = artefact.outputs;
            this.body = body;
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
        public NdArray run(NdArray input) {
            plainRuns++;
            return body.apply(Collections.singletonList(input)).get(0);
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
        public List<NdArray> runFeeds(List<NdArray> feeds) {
            fed.add(feeds);
            return body.apply(feeds);
        }

        @Override
        public Map<String, Object> describe() {
            return Collections.emptyMap();
        }

        @Override
        public void close() {
        }
    }

    private static int[] photo(int seed) {
        int[] argb = new int[PHOTO.pixels()];
        for (int i = 0; i < argb.length; i++) {
            int r = (i * 7 + seed * 31) & 0xFF;
            int g = (i * 13 + seed * 17) & 0xFF;
            int b = (i * 5 + seed * 3) & 0xFF;
            argb[i] = 0xFF000000 | (r << 16) | (g << 8) | b;
        }
        return argb;
    }

    private static MattingPipeline recurrentPipeline(FakeModel[] holder) {
        Manifest manifest = recurrentManifest();
        Manifest.Artefact artefact = manifest.artefacts.get(0);
        // The fake runs the stand-in as the artefact would: its own plan says what its tensors are.
        FakeModel[] self = new FakeModel[1];
        self[0] = new FakeModel(artefact, feeds -> FeedPlanParityTest.run(FeedPlan.forArtefact(manifest, artefact,
                self[0]), feeds));
        holder[0] = self[0];
        return MattingPipeline.forArtefact(new AndroidProfile(), self[0], manifest, artefact);
    }

    private static void assertZero(String label, NdArray array) {
        for (float v : array.floats()) {
            assertEquals(label, 0f, v, 0f);
        }
    }

    @Test
    public void aRecurrentModelCarriesItsStatesAndStartsAgainFromZerosAfterReset() throws Exception {
        FakeModel[] model = new FakeModel[1];
        MattingPipeline pipeline = recurrentPipeline(model);
        assertTrue(pipeline.recurrent());
        assertFalse(pipeline.takesTrimap());
        assertEquals(Arrays.asList("r2i", "src", "r1i"), Arrays.asList(pipeline.plan().inputs.get(0).name,
                pipeline.plan().inputs.get(1).name, pipeline.plan().inputs.get(2).name));

        MattingPipeline.Result first = pipeline.process(photo(1), PHOTO, null);
        assertZero("first call: r2i", model[0].fed.get(0).get(0));
        assertZero("first call: r1i", model[0].fed.get(0).get(2));
        assertArrayEquals(new int[] {1, 8, 12, 3}, model[0].fed.get(0).get(1).shape);
        assertEquals(4, first.modelOutputs.size());
        assertArrayEquals(new int[] {1, 8, 12, 1}, first.modelOutput.shape);

        MattingPipeline.Result second = pipeline.process(photo(2), PHOTO, null);
        // r1o came back channels-first (its recorded layout); R1I is fed channels-last.
        NdArray r1o = first.modelOutputs.get(0);
        assertArrayEquals(ModelIo.onnxToLayout(r1o, "nhwc").floats(), model[0].fed.get(1).get(2).floats(), 0f);
        assertArrayEquals(first.modelOutputs.get(2).floats(), model[0].fed.get(1).get(0).floats(), 0f);
        assertArrayEquals("the states the second call returned", second.modelOutputs.get(0).floats(),
                pipeline.states().get("r1i").floats(), 0f);
        assertFalse("the states change the alpha", Arrays.equals(first.alpha, pipeline.process(photo(1), PHOTO,
                null).alpha));
        assertNotNull(second.alpha);

        pipeline.reset();
        assertZero("after reset", pipeline.states().get("r1i"));
        MattingPipeline.Result again = pipeline.process(photo(1), PHOTO, null);
        assertArrayEquals("a reset clip's first frame is the first frame", first.alpha, again.alpha, 0f);
    }

    @Test
    public void repeatedRunsOfOneCallAdvanceTheStatesOnce() throws Exception {
        FakeModel[] once = new FakeModel[1];
        FakeModel[] repeated = new FakeModel[1];
        MattingPipeline single = recurrentPipeline(once);
        MattingPipeline timed = recurrentPipeline(repeated);
        single.process(photo(3), PHOTO, null, null, 0, 1);
        timed.process(photo(3), PHOTO, null, null, 2, 3);
        assertEquals(5, repeated[0].fed.size());
        for (String state : Arrays.asList("r1i", "r2i")) {
            assertArrayEquals(state, single.states().get(state).floats(), timed.states().get(state).floats(), 0f);
        }
    }

    private static Manifest trimapManifest() {
        return Manifest.parse("{\"schema\": \"edgematte.manifest/1\", \"model\": {\"name\": \"dim\", \"input_shape\":"
                + " [1, 3, 8, 12], \"inputs\": [{\"name\": \"img\", \"role\": \"image\", \"shape\": [1, 3, 8, 12]},"
                + " {\"name\": \"trimap\", \"role\": \"trimap\", \"shape\": [1, 1, 8, 12]}], \"outputs\": [{\"name\":"
                + " \"alpha\", \"role\": \"alpha\"}]}, \"artefacts\": [{\"path\": \"dim.nb\", \"format\": \"nb\","
                + " \"target\": \"arm\", \"precision\": \"fp32\", \"sha256\": \"00\", \"parity\": {}, \"inputs\": ["
                + spec("img", "[1, 3, 8, 12]", null) + ", " + spec("trimap", "[1, 1, 8, 12]", null) + "], \"outputs\": ["
                + spec("alpha", "[1, 1, 8, 12]", null) + "]}]}");
    }

    @Test
    public void aTrimapModelGetsThePhotosTrimapThroughTheProfile() throws Exception {
        Manifest manifest = trimapManifest();
        Manifest.Artefact artefact = manifest.artefacts.get(0);
        // alpha = trimap / 255: what the model saw comes back as its output.
        FakeModel model = new FakeModel(artefact, feeds -> {
            float[] t = feeds.get(1).floats();
            float[] alpha = new float[t.length];
            for (int i = 0; i < t.length; i++) {
                alpha[i] = t[i] / 255f;
            }
            return Collections.singletonList(NdArray.float32(alpha, 1, 1, 8, 12));
        });
        Profile profile = new AndroidProfile();
        MattingPipeline pipeline = MattingPipeline.forArtefact(profile, model, manifest, artefact);
        assertTrue(pipeline.takesTrimap());
        assertFalse(pipeline.recurrent());
        try {
            pipeline.process(photo(1), PHOTO, null);
            fail("a trimap model ran without its trimap");
        } catch (IllegalArgumentException e) {
            assertEquals("this model takes a trimap with the image; give one per photo", e.getMessage());
        }
        byte[] trimap = new byte[PHOTO.pixels()];
        for (int i = 0; i < trimap.length; i++) {
            trimap[i] = (byte) (i % 24 < 8 ? 0 : i % 24 < 15 ? 255 : 128 + (i % 3));
        }
        NdArray grey = NdArray.uint8(trimap, PHOTO.height, PHOTO.width);
        MattingPipeline.Result result = pipeline.process(photo(1), PHOTO, grey, null, 0, 1);
        NdArray expected = Trimap.trimapTensor(profile, grey, PHOTO, new Size(8, 12));
        assertArrayEquals(expected.floats(), result.trimapInput.floats(), 0f);
        assertArrayEquals(expected.floats(), model.fed.get(0).get(1).floats(), 0f);
        float[] output = result.modelOutput.floats();
        for (int i = 0; i < output.length; i++) {
            assertEquals(expected.floats()[i] / 255f, output[i], 0f);
        }
        assertTrue(result.timer.stages().containsKey("trimap"));
    }

    @Test
    public void aOneImageModelKeepsThePlainPath() throws Exception {
        Manifest manifest = Manifest.parse("{\"schema\": \"edgematte.manifest/1\", \"model\": {\"name\": \"m\","
                + " \"input_shape\": [1, 3, 8, 12]}, \"artefacts\": [{\"path\": \"m.nb\", \"format\": \"nb\", \"target\":"
                + " \"arm\", \"precision\": \"fp32\", \"sha256\": \"00\", \"parity\": {}, \"inputs\": ["
                + spec("img", "[1, 3, 8, 12]", null) + "], \"outputs\": [" + spec("out", "[1, 1, 8, 12]", null) + "]}]}");
        Manifest.Artefact artefact = manifest.artefacts.get(0);
        FakeModel model = new FakeModel(artefact, feeds -> Collections.singletonList(
                NdArray.float32(new float[96], 1, 1, 8, 12)));
        MattingPipeline pipeline = MattingPipeline.forArtefact(new AndroidProfile(), model, manifest, artefact);
        assertNull(pipeline.plan());
        MattingPipeline.Result result = pipeline.process(photo(1), PHOTO, null, null, 1, 2);
        assertEquals(3, model.plainRuns);
        assertTrue(model.fed.isEmpty());
        assertNull(result.trimapInput);
        assertEquals(1, result.modelOutputs.size());
        assertTrue(pipeline.states().isEmpty());
    }

    @Test
    public void integerInputsOfAModelWithSeveralInputsAreRefused() {
        Manifest manifest = trimapManifest();
        Manifest.Artefact artefact = manifest.artefacts.get(0);
        FakeModel model = new FakeModel(artefact, feeds -> feeds);
        List<TensorSpec> quantized = new ArrayList<>(artefact.inputs);
        quantized.set(0, new TensorSpec("img", new int[] {1, 3, 8, 12}, "int8", new QuantParams("int8", 0.0078125, 0)));
        try {
            new MattingPipeline(new AndroidProfile(), new QuantizedView(model, quantized),
                    FeedPlan.forArtefact(manifest, artefact, model));
            fail("an int8 image input with a trimap was accepted");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().startsWith("integer I/O for a model with several inputs"));
        }
    }

    /** {@code model} with other input specs. */
    private static final class QuantizedView implements InferenceModel {
        final InferenceModel model;
        final List<TensorSpec> inputs;

        QuantizedView(InferenceModel model, List<TensorSpec> inputs) {
            this.model = model;
            this.inputs = inputs;
        }

        @Override
        public TensorSpec input() {
            return inputs.get(0);
        }

        @Override
        public TensorSpec output() {
            return model.output();
        }

        @Override
        public NdArray run(NdArray input) throws Exception {
            return model.run(input);
        }

        @Override
        public List<TensorSpec> inputs() {
            return inputs;
        }

        @Override
        public List<TensorSpec> outputs() {
            return model.outputs();
        }

        @Override
        public Map<String, Object> describe() {
            return model.describe();
        }

        @Override
        public void close() {
        }
    }
}
