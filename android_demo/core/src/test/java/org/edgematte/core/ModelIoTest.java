package org.edgematte.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.junit.Test;

/** {@link ModelIo} and {@link FeedPlan} rules, with model_io.py's messages. */
public class ModelIoTest {

    @Test
    public void keysDropTheSuffixAndSeparatorsAsOnnx2tfDoes() {
        assertEquals("r1i", ModelIo.key("r1i:0"));
        assertEquals("serving_default_src_1", ModelIo.key("serving_default/src.1:0"));
        assertEquals("tmp_0", ModelIo.key("__TMP-0__"));
        assertEquals("", ModelIo.key(":0"));
    }

    @Test
    public void tensorsMatchByNameThenKeyThenPosition() {
        List<String> model = Arrays.asList("src", "r1i", "r2i");
        assertArrayEquals(new int[] {2, 0, 1}, ModelIo.matchTensors(model, Arrays.asList("r2i", "src", "r1i"), "x"));
        assertArrayEquals(new int[] {1, 2, 0}, ModelIo.matchTensors(model, Arrays.asList("R1I:0", "r2i.", "src"), "x"));
        assertArrayEquals(new int[] {0, 1, 2}, ModelIo.matchTensors(model, Arrays.asList("a", "b", "c"), "x"));
        // One tensor: whatever its name.
        assertArrayEquals(new int[] {0}, ModelIo.matchTensors(Collections.singletonList("img"),
                Collections.singletonList("serving_default_x:0"), "x"));
    }

    @Test
    public void partialAmbiguousOrMiscountedMatchesAreRefused() {
        List<String> model = Arrays.asList("src", "r1i");
        expect("m.tflite inputs: cannot match its tensors ['src', 'other'] to the model's ['src', 'r1i']",
                () -> ModelIo.matchTensors(model, Arrays.asList("src", "other"), "m.tflite inputs"));
        expect("m inputs: cannot match its tensors ['src', 'SRC'] to the model's ['src', 'r1i']",
                () -> ModelIo.matchTensors(model, Arrays.asList("src", "SRC"), "m inputs"));
        expect("m outputs: has 1 tensors ['src'], the model 2 ['src', 'r1i']",
                () -> ModelIo.matchTensors(model, Collections.singletonList("src"), "m outputs"));
    }

    private static void expect(String message, Runnable action) {
        try {
            action.run();
            fail("no error, expected: " + message);
        } catch (IllegalArgumentException e) {
            assertEquals(message, e.getMessage());
        }
    }

    private static NdArray ramp(int... shape) {
        float[] values = new float[NdArray.size(shape)];
        for (int i = 0; i < values.length; i++) {
            values[i] = i;
        }
        return NdArray.float32(values, shape);
    }

    @Test
    public void layoutsMoveTheChannelsLastAndBack() {
        assertArrayEquals(new int[] {0, 2, 3, 1}, ModelIo.channelsLastPerm(4));
        assertArrayEquals(new String[] {"ncw", "nwc"}, ModelIo.layoutNames(3));
        assertArrayEquals(new String[] {"ncdhw", "ndhwc"}, ModelIo.layoutNames(5));
        NdArray nchw = ramp(1, 2, 2, 3);
        NdArray nhwc = ModelIo.onnxToLayout(nchw, "nhwc");
        assertArrayEquals(new int[] {1, 2, 3, 2}, nhwc.shape);
        // [n, y, x, c] = nchw[n, c, y, x] = c * 6 + y * 3 + x
        assertArrayEquals(new float[] {0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11}, nhwc.floats(), 0f);
        assertArrayEquals(nchw.floats(), ModelIo.layoutToOnnx(nhwc, "nhwc").floats(), 0f);
        NdArray ncw = ramp(1, 3, 2);
        assertArrayEquals(new float[] {0, 2, 4, 1, 3, 5}, ModelIo.onnxToLayout(ncw, "nwc").floats(), 0f);
        NdArray ncdhw = ramp(1, 2, 2, 1, 3);
        NdArray ndhwc = ModelIo.onnxToLayout(ncdhw, "ndhwc");
        assertArrayEquals(new int[] {1, 2, 1, 3, 2}, ndhwc.shape);
        assertArrayEquals(ncdhw.floats(), ModelIo.layoutToOnnx(ndhwc, "ndhwc").floats(), 0f);
        // A layout name of another rank leaves the array as it is (Python: "nhwc" on a rank-3 tensor).
        assertSame(ncw, ModelIo.onnxToLayout(ncw, "nhwc"));
        assertSame(nchw, ModelIo.onnxToLayout(nchw, "as_onnx"));
    }

    private static List<TensorRole> rvmInputs() {
        return Arrays.asList(new TensorRole("src", "image", new int[] {1, 3, 4, 4}, "float32", null, null),
                new TensorRole("r1i", "state", new int[] {1, 2, 2, 2}, "float32", "r1o", null),
                new TensorRole("ratio", "constant", new int[] {1}, "float32", null, 0.25));
    }

    private static List<TensorRole> rvmOutputs() {
        return Arrays.asList(new TensorRole("pha", "alpha", null, null, null, null),
                new TensorRole("r1o", "state", null, null, "r1i", null));
    }

    @Test
    public void aPlanFeedsStatesInTheirLayoutsAndCarriesThemBackChannelsFirst() {
        FeedPlan plan = FeedPlan.of(rvmInputs(), rvmOutputs(), Arrays.asList("r1i:0", "src:0"),
                Arrays.asList("r1o:0", "pha:0"), "nhwc", "m", null, Arrays.asList("nchw", "nhwc"));
        assertEquals("r1i", plan.inputs.get(0).name);
        assertEquals(1, plan.imageIndex());
        assertEquals(1, plan.alphaIndex());
        assertTrue(plan.recurrent() && !plan.takesTrimap() && !plan.singleImage());
        Map<String, NdArray> states = plan.zeroStates();
        assertEquals(Collections.singleton("r1i"), states.keySet());
        assertArrayEquals(new float[8], states.get("r1i").floats(), 0f);
        NdArray image = ramp(1, 4, 4, 3);
        Map<String, NdArray> ready = new HashMap<>();
        ready.put("src", image);
        List<NdArray> feeds = plan.feeds(Collections.<String, NdArray>emptyMap(), states, ready);
        assertSame(image, feeds.get(1));
        assertArrayEquals(new int[] {1, 2, 2, 2}, feeds.get(0).shape);
        // r1o stays channels-first (its recorded layout): carried as is; the next feed moves it to nhwc.
        NdArray r1o = ramp(1, 2, 2, 2);
        Map<String, NdArray> next = plan.nextStates(Arrays.asList(r1o, ramp(1, 4, 4, 1)));
        assertSame(r1o, next.get("r1i"));
        NdArray fed = plan.feeds(Collections.<String, NdArray>emptyMap(), next, ready).get(0);
        assertArrayEquals(new float[] {0, 4, 1, 5, 2, 6, 3, 7}, fed.floats(), 0f);
        expect("no value for the model's image input 'src'",
                () -> plan.feeds(Collections.<String, NdArray>emptyMap(), next, null));
    }

    @Test
    public void aOneImageManifestGivesAOneImagePlan() {
        Manifest manifest = Manifest.parse("{\"schema\": \"edgematte.manifest/1\", \"model\": {\"name\": \"m\","
                + " \"input_shape\": [1, 3, 8, 8]}, \"artefacts\": []}");
        FeedPlan plan = FeedPlan.of(manifest.inputRoles(), manifest.outputRoles(), Collections.singletonList("img"),
                Collections.singletonList("out"), "nchw", "m", null, null);
        assertTrue(plan.singleImage());
        assertEquals("x", plan.inputs.get(0).name);
        assertArrayEquals(new int[] {1, 3, 8, 8}, plan.inputs.get(0).shape);
    }
}
