package org.edgematte.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.junit.BeforeClass;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/**
 * A clip through the whole {@link MattingPipeline} against the Python runtime's sequence vectors
 * ({@code index["sequences"]}, golden_roles.py's write_sequences: RGB uint8 frames -> each fixed-step profile,
 * normalization variants included -> the recurrent stand-in as an NCHW and an onnx2tf-like NHWC artefact, reset
 * once, states fed back -> the profile's postprocess). Every feed and output bit for bit, the alpha within
 * {@value GoldenVectorParityTest#FLOAT_TOLERANCE}, the 8-bit alpha exactly; then {@link Verification}'s sequence
 * mode on the same frames, and its errors.
 */
public class SequenceParityTest {

    @Rule
    public TemporaryFolder temp = new TemporaryFolder();

    private static GoldenVectors vectors;
    private static Map<String, Object> sequences;

    @BeforeClass
    public static void openVectors() throws IOException {
        String dir = System.getProperty("edgematte.vectors");
        if (dir == null || dir.isEmpty()) {
            fail("no golden vectors: run android_demo/host-test.sh (it passes -Dedgematte.vectors=DIR)");
        }
        vectors = GoldenVectors.open(new File(dir));
        sequences = Json.object(vectors.index, "sequences");
    }

    @SuppressWarnings("unchecked")
    private static List<Map<String, Object>> javaCases() {
        List<Map<String, Object>> out = new ArrayList<>();
        for (Object item : Json.list(sequences, "cases")) {
            Map<String, Object> c = (Map<String, Object>) item;
            if (Profiles.NAMES.contains(Json.string(c, "profile"))) {
                out.add(c);
            }
        }
        assertFalse("the golden vectors hold no sequence case of a profile Java implements", out.isEmpty());
        return out;
    }

    private static Map<String, Object> caseById(String id) {
        for (Map<String, Object> c : javaCases()) {
            if (id.equals(c.get("id"))) {
                return c;
            }
        }
        throw new AssertionError("no sequence case " + id);
    }

    private static Profile profileOf(Map<String, Object> c) {
        return Profiles.get(Json.string(c, "profile"), c.containsKey("transforms") ? Json.list(c, "transforms") : null);
    }

    private static FeedPlan planOf(Map<String, Object> c) {
        return FeedPlan.of(TensorRole.parseList(sequences.get("inputs"), "inputs"),
                TensorRole.parseList(sequences.get("outputs"), "outputs"), FeedPlanParityTest.strings(c, "inputs"),
                FeedPlanParityTest.strings(c, "outputs"), Json.string(c, "layout"), Json.string(c, "id"),
                FeedPlanParityTest.strings(c, "input_layouts"), FeedPlanParityTest.strings(c, "output_layouts"));
    }

    private static int frames(Map<String, Object> c) {
        return (int) Json.number(c, "frames");
    }

    /** The stand-in twin (FeedPlanParityTest.standIn) as an artefact named and laid out as the case's; records calls. */
    static final class StandInModel implements InferenceModel {
        final FeedPlan plan;
        final List<TensorSpec> inputs = new ArrayList<>();
        final List<TensorSpec> outputs = new ArrayList<>();
        final List<List<NdArray>> fed = new ArrayList<>();
        final List<List<NdArray>> returned = new ArrayList<>();

        StandInModel(Map<String, Object> c) throws IOException {
            plan = planOf(c);
            List<String> in = FeedPlanParityTest.strings(c, "inputs");
            for (int i = 0; i < in.size(); i++) {
                inputs.add(new TensorSpec(in.get(i), vectors.array(c, "frame0_feed" + i).shape, "float32", null));
            }
            List<String> out = FeedPlanParityTest.strings(c, "outputs");
            for (int j = 0; j < out.size(); j++) {
                outputs.add(new TensorSpec(out.get(j), vectors.array(c, "frame0_output" + j).shape, "float32", null));
            }
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
            throw new AssertionError("the recurrent stand-in ran on the one-image path");
        }

        @Override
        public List<NdArray> runFeeds(List<NdArray> feeds) {
            List<NdArray> result = FeedPlanParityTest.run(plan, feeds);
            fed.add(feeds);
            returned.add(result);
            return result;
        }

        @Override
        public Map<String, Object> describe() {
            Map<String, Object> facts = new LinkedHashMap<>();
            facts.put("kind", "recurrent stand-in twin");
            return facts;
        }

        @Override
        public void close() {
        }
    }

    @Test
    public void clipThroughThePipelineMatchesPythonFrameByFrame() throws Exception {
        for (Map<String, Object> c : javaCases()) {
            StandInModel model = new StandInModel(c);
            MattingPipeline pipeline = new MattingPipeline(profileOf(c), model, model.plan);
            assertTrue(c.get("id") + " recurrent", pipeline.recurrent());
            Size size = GoldenVectors.size(c, "original_hw");
            pipeline.reset();
            for (int k = 0; k < frames(c); k++) {
                int[] argb = Pixels.argbFromRgb(vectors.array(c, "frame" + k + "_rgb").bytes(), null);
                MattingPipeline.Result result = pipeline.process(argb, size, null, null, 0, 1);
                List<NdArray> feeds = model.fed.get(k);
                for (int i = 0; i < feeds.size(); i++) {
                    String name = "frame" + k + "_feed" + i;
                    GoldenVectorParityTest.assertBitForBit(c, name, vectors.array(c, name), feeds.get(i));
                }
                for (int j = 0; j < result.modelOutputs.size(); j++) {
                    String name = "frame" + k + "_output" + j;
                    GoldenVectorParityTest.assertBitForBit(c, name, vectors.array(c, name), result.modelOutputs.get(j));
                }
                GoldenVectorParityTest.assertClose(c, "frame" + k + "_alpha", vectors.array(c, "frame" + k + "_alpha"),
                        NdArray.float32(result.alpha, size.height, size.width), GoldenVectorParityTest.FLOAT_TOLERANCE);
                GoldenVectorParityTest.assertClose(c, "frame" + k + "_alpha8", vectors.array(c, "frame" + k + "_alpha8"),
                        NdArray.uint8(result.alpha8, size.height, size.width), 0);
            }
            assertEquals(c.get("id") + " calls", frames(c), model.fed.size());
        }
    }

    /** Both Java profiles, both artefact layouts and RVM's mean 0 / std 1 ([0, 1] in) are among the cases. */
    @Test
    public void vectorsCoverBothProfilesBothLayoutsAndUnitNormalization() throws IOException {
        List<String> ids = new ArrayList<>();
        for (Map<String, Object> c : javaCases()) {
            ids.add(Json.string(c, "id"));
            assertEquals(c.get("id") + " frames", 3, frames(c));
        }
        for (String key : new String[] {"android", "paddleseg-android", "android@unit", "paddleseg-android@unit"}) {
            for (String layout : new String[] {"nchw", "nhwc"}) {
                assertTrue("no sequence case " + key + "/" + layout + " in " + ids,
                        ids.contains("sequence/" + key + "/" + layout));
            }
        }
        // android@unit feeds v / 255: every value of the image feed in [0, 1], and 1/255 steps (padding 0).
        Map<String, Object> unit = caseById("sequence/android@unit/nchw");
        for (float v : vectors.array(unit, "frame0_feed0").floats()) {
            assertTrue("unit feed " + v, v >= 0f && v <= 1f && Math.abs(v * 255f - Math.round(v * 255f)) < 1e-4);
        }
    }

    /** The case's frames as the host pushes them: NNN_frame.npy, uint8 H x W x 3. */
    private File writeFrames(Map<String, Object> c) throws IOException {
        File dir = temp.newFolder();
        for (int k = 0; k < frames(c); k++) {
            Npy.write(new File(dir, String.format("%03d_frame.npy", k)), vectors.array(c, "frame" + k + "_rgb"));
        }
        return dir;
    }

    private static GoldenVectors verify(Map<String, Object> c, File in, File out, boolean sequence) throws Exception {
        StandInModel model = new StandInModel(c);
        Verification.Options options = new Verification.Options();
        options.warmup = 1;
        options.repeats = 2;
        options.sequence = sequence;
        Map<String, Object> summary = Verification.run(new Verification.NpyImageSource(in),
                new MattingPipeline(profileOf(c), model, model.plan), out, options, new LinkedHashMap<String, Object>());
        assertEquals(sequence, summary.get("sequence"));
        // One warm-up and two timed runs a frame, all fed the same states.
        assertEquals(3 * frames(c), model.fed.size());
        return GoldenVectors.open(out);
    }

    @Test
    public void verificationRunsNumberedFramesAsOneClipAndPhotosFromZeroStates() throws Exception {
        for (String id : new String[] {"sequence/android/nhwc", "sequence/paddleseg-android@unit/nchw"}) {
            Map<String, Object> c = caseById(id);
            File in = writeFrames(c);
            GoldenVectors clip = verify(c, in, temp.newFolder(), true);
            GoldenVectors photos = verify(c, in, temp.newFolder(), false);
            assertEquals(frames(c), clip.cases().size());
            for (int k = 0; k < frames(c); k++) {
                Map<String, Object> written = clip.cases().get(k);
                assertEquals(String.format("%03d_frame", k), written.get("image"));
                NdArray expected = vectors.array(c, "frame" + k + "_alpha");
                GoldenVectorParityTest.assertClose(c, "verification frame" + k + " post_alpha", expected,
                        clip.array(written, "post_alpha"), GoldenVectorParityTest.FLOAT_TOLERANCE);
                GoldenVectorParityTest.assertClose(c, "verification frame" + k + " alpha8",
                        vectors.array(c, "frame" + k + "_alpha8"), clip.array(written, "alpha8"), 0);
                // Photos: the first frame is the clip's first; later ones lack the carried states.
                float[] photo = photos.array(photos.cases().get(k), "post_alpha").floats();
                double largest = 0;
                for (int i = 0; i < photo.length; i++) {
                    largest = Math.max(largest, Math.abs(photo[i] - expected.floats()[i]));
                }
                assertTrue(id + " frame " + k + " as a photo differs by " + largest,
                        k == 0 ? largest == 0 : largest > 1e-3);
            }
        }
    }

    @Test
    public void sequenceNamesMustBeNumberedFromZeroInNameOrder() throws IOException {
        Verification.checkSequenceNames(Arrays.asList("000_a", "001_b", "002_c"));
        Verification.checkSequenceNames(Arrays.asList("0", "1"));
        String[][] bad = {
            {"001_a", "002_b"},                  // does not start at 0
            {"000_a", "002_b"},                  // a gap
            {"000_a", "000_b"},                  // a duplicate
            {"0_a", "10_k", "1_b"},              // unpadded: "10_k" sorts before "1_b"
            {"000_a", "frame"},                  // no number
        };
        String[] culprit = {"001_a", "002_b", "000_b", "10_k", "frame"};
        int[] position = {0, 1, 1, 1, 1};
        for (int t = 0; t < bad.length; t++) {
            try {
                Verification.checkSequenceNames(Arrays.asList(bad[t]));
                fail("accepted " + Arrays.toString(bad[t]));
            } catch (IOException expected) {
                assertEquals(culprit[t] + ": frame " + position[t] + " of the sequence must be named by its index "
                        + "from 0, zero-padded (000_a, 001_b, ... as 'edgematte device verify --sequence' writes them)",
                        expected.getMessage());
            }
        }
    }

    @Test
    public void aFrameOfAnotherSizeFailsNamingBoth() throws Exception {
        Map<String, Object> c = caseById("sequence/android/nchw");
        File in = writeFrames(c);
        Npy.write(new File(in, "001_frame.npy"), NdArray.uint8(new byte[29 * 41 * 3], 29, 41, 3));
        File out = temp.newFolder();
        try {
            verify(c, in, out, true);
            fail("a frame of another size was run");
        } catch (IOException expected) {
            assertEquals("001_frame: frame is 41x29 (width x height), the first frame 000_frame is 41x30: a "
                    + "sequence's frames share one size", expected.getMessage());
        }
        assertTrue(TextFiles.read(new File(out, GoldenWriter.FAILED_MARKER)).contains("001_frame: frame is 41x29"));
        assertFalse(new File(out, GoldenWriter.DONE_MARKER).exists());
    }
}
