package org.edgematte.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.fail;

import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.junit.BeforeClass;
import org.junit.Test;

/**
 * {@link FeedPlan} against the Python runtime's recurrent vectors ({@code index["recurrent"]}: model_io's
 * FeedPlan and run_case driving golden_roles.py's recurrent_stand_in for three steps, for artefacts that name,
 * order and lay out the tensors differently). Every fed array, states included, bit for bit.
 */
public class FeedPlanParityTest {

    private static GoldenVectors vectors;
    private static Map<String, Object> recurrent;

    @BeforeClass
    public static void openVectors() throws IOException {
        String dir = System.getProperty("edgematte.vectors");
        if (dir == null || dir.isEmpty()) {
            fail("no golden vectors: run android_demo/host-test.sh (it passes -Dedgematte.vectors=DIR)");
        }
        vectors = GoldenVectors.open(new File(dir));
        recurrent = Json.object(vectors.index, "recurrent");
    }

    static List<TensorRole> roles(String which) {
        return TensorRole.parseList(recurrent.get(which), which);
    }

    @SuppressWarnings("unchecked")
    static List<String> strings(Map<String, Object> map, String key) {
        Object value = map.get(key);
        return value == null ? null : (List<String>) (List<?>) value;
    }

    static FeedPlan planOf(Map<String, Object> c) {
        return FeedPlan.of(roles("inputs"), roles("outputs"), strings(c, "inputs"), strings(c, "outputs"),
                Json.string(c, "layout"), Json.string(c, "id"), strings(c, "input_layouts"), strings(c, "output_layouts"));
    }

    @SuppressWarnings("unchecked")
    private static List<Map<String, Object>> cases() {
        List<Map<String, Object>> out = new ArrayList<>();
        for (Object item : Json.list(recurrent, "cases")) {
            out.add((Map<String, Object>) item);
        }
        assertFalse("the golden vectors hold no recurrent case", out.isEmpty());
        return out;
    }

    private static List<String> names(List<TensorRole> roles) {
        List<String> out = new ArrayList<>();
        for (TensorRole role : roles) {
            out.add(role.name);
        }
        return out;
    }

    @Test
    public void tensorsAreMatchedToTheRolesAsPythonMatchedThem() {
        List<String> ids = new ArrayList<>();
        for (Map<String, Object> c : cases()) {
            FeedPlan plan = planOf(c);
            assertEquals(c.get("id") + " fed", strings(c, "fed"), names(plan.inputs));
            assertEquals(c.get("id") + " fetched", strings(c, "fetched"), names(plan.outputs));
            ids.add(Json.string(c, "id"));
        }
        assertEquals(java.util.Arrays.asList("recurrent/nchw", "recurrent/nhwc", "recurrent/positional"), ids);
    }

    @Test
    public void everyStepFeedsWhatPythonFedStatesIncluded() throws IOException {
        for (Map<String, Object> c : cases()) {
            FeedPlan plan = planOf(c);
            int steps = (int) Json.number(c, "steps");
            assertEquals(3, steps);
            Map<String, NdArray> states = plan.zeroStates();
            for (int k = 0; k < steps; k++) {
                Map<String, NdArray> step = Collections.singletonMap("src", vectors.array(c, "step" + k + "_src"));
                List<NdArray> feeds = plan.feeds(step, states, null);
                assertEquals(3, feeds.size());
                for (int i = 0; i < feeds.size(); i++) {
                    GoldenVectorParityTest.assertBitForBit(c, "step" + k + "_feed" + i,
                            vectors.array(c, "step" + k + "_feed" + i), feeds.get(i));
                }
                // The states come from Python's outputs: the carrying is checked apart from the stand-in's twin.
                List<NdArray> outputs = new ArrayList<>();
                for (int j = 0; j < plan.outputs.size(); j++) {
                    outputs.add(vectors.array(c, "step" + k + "_output" + j));
                }
                Map<String, NdArray> next = new LinkedHashMap<>(states);
                next.putAll(plan.nextStates(outputs));
                states = next;
            }
        }
    }

    @Test
    public void theStandInTwinRunsTheCaseAsPythonDid() throws IOException {
        for (Map<String, Object> c : cases()) {
            FeedPlan plan = planOf(c);
            Map<String, NdArray> states = plan.zeroStates();
            for (int k = 0; k < 3; k++) {
                Map<String, NdArray> step = Collections.singletonMap("src", vectors.array(c, "step" + k + "_src"));
                List<NdArray> outputs = run(plan, plan.feeds(step, states, null));
                for (int j = 0; j < outputs.size(); j++) {
                    GoldenVectorParityTest.assertBitForBit(c, "step" + k + "_output" + j,
                            vectors.array(c, "step" + k + "_output" + j), outputs.get(j));
                }
                states.putAll(plan.nextStates(outputs));
            }
            assertArrayEquals(new int[] {1, 4, 4, 6}, states.get("r1i").shape);
        }
    }

    /** vectors.py's _recurrent_runner: the stand-in as an artefact laid out as {@code plan} says. */
    static List<NdArray> run(FeedPlan plan, List<NdArray> feeds) {
        Map<String, NdArray> byName = new HashMap<>();
        for (int i = 0; i < feeds.size(); i++) {
            byName.put(plan.inputs.get(i).name, ModelIo.layoutToOnnx(feeds.get(i), plan.inputLayout(i)));
        }
        NdArray[] out = standIn(byName.get("src"), byName.get("r1i"), byName.get("r2i"));
        Map<String, NdArray> byOutput = new HashMap<>();
        byOutput.put("fgr", out[0]);
        byOutput.put("pha", out[1]);
        byOutput.put("r1o", out[2]);
        byOutput.put("r2o", out[3]);
        List<NdArray> outputs = new ArrayList<>();
        for (int j = 0; j < plan.outputs.size(); j++) {
            outputs.add(ModelIo.onnxToLayout(byOutput.get(plan.outputs.get(j).name), plan.outputLayout(j)));
        }
        return outputs;
    }

    /**
     * golden_roles.py's recurrent_stand_in, one float32 rounding per operation in numpy's order: src [1,3,8,12],
     * r1 [1,4,4,6], r2 [1,2,2,3] (NCHW) -> {fgr, pha [1,1,8,12], r1o, r2o}.
     */
    static NdArray[] standIn(NdArray srcArray, NdArray r1Array, NdArray r2Array) {
        float[] src = srcArray.floats();
        float[] r1 = r1Array.floats();
        float[] r2 = r2Array.floats();
        float[] fgr = new float[src.length];
        for (int i = 0; i < src.length; i++) {
            fgr[i] = src[i] * 0.75f + 0.125f;
        }
        float[] pha = new float[8 * 12];
        for (int y = 0; y < 8; y++) {
            for (int x = 0; x < 12; x++) {
                pha[y * 12 + x] = src[y * 12 + x] * 0.25f + src[96 + y * 12 + x] * 0.5f
                        + r1[(y / 2) * 6 + x / 2] * 0.125f + r2[6 + (y / 4) * 3 + x / 4] * 0.0625f;
            }
        }
        int[] channel = {0, 1, 2, 0};
        float[] r1o = new float[r1.length];
        for (int c = 0; c < 4; c++) {
            float bias = (float) (c + 1) * 0.125f;
            for (int y = 0; y < 4; y++) {
                for (int x = 0; x < 6; x++) {
                    int i = c * 24 + y * 6 + x;
                    r1o[i] = r1[i] * (float) 0.3 + src[channel[c] * 96 + 2 * y * 12 + 2 * x] * 0.25f + bias;
                }
            }
        }
        float[] r2o = new float[r2.length];
        for (int c = 0; c < 2; c++) {
            for (int y = 0; y < 2; y++) {
                for (int x = 0; x < 3; x++) {
                    int i = c * 6 + y * 3 + x;
                    r2o[i] = r2[i] * 0.75f - r1[c * 24 + 2 * y * 6 + 2 * x] * 0.5f + 0.0625f;
                }
            }
        }
        return new NdArray[] {NdArray.float32(fgr, 1, 3, 8, 12), NdArray.float32(pha, 1, 1, 8, 12),
            NdArray.float32(r1o, 1, 4, 4, 6), NdArray.float32(r2o, 1, 2, 2, 3)};
    }
}
