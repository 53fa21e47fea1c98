package org.edgematte.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

import org.junit.AfterClass;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * The Java core against the Python runtime's golden vectors (edgematte/runtime/vectors.py): every
 * intermediate of every case, uint8 arrays exactly, float32 arrays within {@value #FLOAT_TOLERANCE}; the
 * normalized and padded tensors bit for bit. Cases of the normalization variants ({@code android@imagenet/...})
 * carry the deploy.yaml transforms their profile was built from; the Java profile is built from the same list.
 *
 * <p>The vectors folder comes from the system property {@code edgematte.vectors} (host-test.sh sets it
 * after running {@code python -m edgematte.runtime.vectors DIR}); without it every test fails.
 */
public class GoldenVectorParityTest {

    static final double FLOAT_TOLERANCE = 1e-6;

    private static GoldenVectors vectors;
    /** "profile array" -> {max abs diff, values compared, cases}, printed after the class. */
    private static final Map<String, double[]> REPORT = new TreeMap<>();

    @BeforeClass
    public static void openVectors() throws IOException {
        String dir = System.getProperty("edgematte.vectors");
        if (dir == null || dir.isEmpty()) {
            fail("no golden vectors: run android_demo/host-test.sh, or write them with "
                    + "'python -m edgematte.runtime.vectors DIR' and pass -Dedgematte.vectors=DIR");
        }
        vectors = GoldenVectors.open(new File(dir));
    }

    @AfterClass
    public static void printReport() {
        for (Map.Entry<String, double[]> row : REPORT.entrySet()) {
            double[] r = row.getValue();
            System.out.println(String.format(Locale.ROOT, "parity %-45s max |diff| %.3g over %d values in %d cases",
                    row.getKey(), r[0], (long) r[1], (long) r[2]));
        }
    }

    private static List<Map<String, Object>> javaCases() {
        List<Map<String, Object>> cases = new ArrayList<>();
        for (Map<String, Object> c : vectors.cases()) {
            if (Profiles.NAMES.contains(Json.string(c, "profile"))) {
                cases.add(c);
            }
        }
        assertFalse("the golden vectors hold no case of a profile the Java core implements " + Profiles.NAMES,
                cases.isEmpty());
        return cases;
    }

    /** The case's profile, built from the transforms the case records (none: the default normalization). */
    private static Profile profileOf(Map<String, Object> c) {
        List<Object> transforms = c.containsKey("transforms") ? Json.list(c, "transforms") : null;
        return Profiles.get(Json.string(c, "profile"), transforms);
    }

    /** "android@imagenet" for the case "android@imagenet/portrait": its key in index.json's "profiles". */
    private static String profileKey(Map<String, Object> c) {
        String id = Json.string(c, "id");
        return id.substring(0, id.lastIndexOf('/'));
    }

    /** Asserts equal shape and every float32 identical in its bits (so -0.0 differs from 0.0, NaN from a number). */
    static void assertBitForBit(Map<String, Object> c, String name, NdArray expected, NdArray actual) {
        String label = c.get("id") + " " + name;
        assertArrayEquals(label + ": shape", expected.shape, actual.shape);
        float[] e = expected.floats();
        float[] a = actual.floats();
        for (int i = 0; i < e.length; i++) {
            if (Float.floatToRawIntBits(e[i]) != Float.floatToRawIntBits(a[i])) {
                fail(String.format(Locale.ROOT, "%s: flat index %d differs in its bits (python %s, java %s)", label, i,
                        e[i], a[i]));
            }
        }
    }

    private static int[] argbOf(Map<String, Object> c) throws IOException {
        byte[] alpha = GoldenVectors.has(c, "input_alpha") ? vectors.array(c, "input_alpha").bytes() : null;
        return Pixels.argbFromRgb(vectors.array(c, "input_rgb").bytes(), alpha);
    }

    /** Asserts equal shape and dtype and values within {@code tolerance}; records the largest difference. */
    static void assertClose(Map<String, Object> c, String name, NdArray expected, NdArray actual, double tolerance) {
        String label = c.get("id") + " " + name;
        assertArrayEquals(label + ": shape", expected.shape, actual.shape);
        assertEquals(label + ": dtype", expected.dtype, actual.dtype);
        double worst = 0;
        int worstIndex = -1;
        for (int i = 0; i < expected.size(); i++) {
            double diff = Math.abs(expected.get(i) - actual.get(i));
            if (diff > worst || Double.isNaN(diff)) {
                worst = Double.isNaN(diff) ? Double.POSITIVE_INFINITY : diff;
                worstIndex = i;
            }
        }
        String key = c.get("profile") + " " + name;
        double[] row = REPORT.containsKey(key) ? REPORT.get(key) : new double[3];
        row[0] = Math.max(row[0], worst);
        row[1] += expected.size();
        row[2] += 1;
        REPORT.put(key, row);
        if (worst > tolerance) {
            fail(String.format(Locale.ROOT, "%s: max |diff| %.6g > %.1g at flat index %d (python %s, java %s)",
                    label, worst, tolerance, worstIndex, expected.get(worstIndex), actual.get(worstIndex)));
        }
    }

    private static double toleranceFor(NdArray expected) {
        return expected.dtype == NdArray.DType.FLOAT32 || expected.dtype == NdArray.DType.FLOAT64 ? FLOAT_TOLERANCE : 0;
    }

    private static QuantParams quantOf(String which) {
        Map<String, Object> entry = Json.object(Json.object(vectors.index, "quant"), which);
        return new QuantParams(Json.string(entry, "dtype"), Json.number(entry, "scale"),
                (int) Json.number(entry, "zero_point"));
    }

    @Test
    public void constantsMatchPython() {
        Map<String, Object> profiles = Json.object(vectors.index, "profiles");
        assertTrue("the golden vectors must describe the android profile", profiles.containsKey(AndroidProfile.NAME));
        Map<String, Object> python = Json.object(Json.object(profiles, AndroidProfile.NAME), "constants");
        Map<String, Object> java = AndroidConstants.DEFAULT.toMap();
        assertEquals("constant names (python vs java)", new TreeMap<>(python).keySet(), new TreeMap<>(java).keySet());
        for (String key : java.keySet()) {
            Object p = python.get(key);
            Object j = java.get(key);
            if (j instanceof List) {
                List<?> pl = (List<?>) p;
                List<?> jl = (List<?>) j;
                assertEquals("constant " + key + " length", jl.size(), pl.size());
                for (int i = 0; i < jl.size(); i++) {
                    assertEquals("constant " + key + "[" + i + "] (expected: python)", ((Number) pl.get(i)).doubleValue(),
                            ((Number) jl.get(i)).doubleValue(), 0.0);
                }
            } else {
                assertEquals("constant " + key + " (expected: python)", ((Number) p).doubleValue(),
                        ((Number) j).doubleValue(), 0.0);
            }
        }
    }

    @Test
    public void preprocessingMatchesEveryStep() throws IOException {
        for (Map<String, Object> c : javaCases()) {
            Profile profile = profileOf(c);
            Size original = GoldenVectors.size(c, "original_hw");
            Size model = GoldenVectors.size(c, "model_hw");
            int[] argb = argbOf(c);
            List<String> covered = new ArrayList<>();
            for (Layout layout : Layout.values()) {
                Steps steps = profile.preprocess(argb, original, model, layout);
                PreprocessState state = steps.state();
                assertEquals(c.get("id") + " resized size", GoldenVectors.size(c, "resized_hw"), state.resizedSize);
                assertEquals(c.get("id") + " crop size", GoldenVectors.size(c, "crop_hw"), state.cropSize);
                for (Map.Entry<String, NdArray> step : steps.all().entrySet()) {
                    String name = step.getKey().equals("tensor") ? "pre_tensor_" + layout.key : "pre_" + step.getKey();
                    NdArray expected = vectors.array(c, name);
                    assertClose(c, name, expected, step.getValue(), toleranceFor(expected));
                    covered.add(name);
                }
            }
            for (String name : Json.object(c, "arrays").keySet()) {
                assertTrue(c.get("id") + ": python step " + name + " has no java twin",
                        !name.startsWith("pre_") || covered.contains(name));
            }
        }
    }

    @Test
    public void normalizedTensorsAreBitForBit() throws IOException {
        int compared = 0;
        for (Map<String, Object> c : javaCases()) {
            Profile profile = profileOf(c);
            Size original = GoldenVectors.size(c, "original_hw");
            Size model = GoldenVectors.size(c, "model_hw");
            for (Layout layout : Layout.values()) {
                Steps steps = profile.preprocess(argbOf(c), original, model, layout);
                for (String step : new String[] {"normalized", "padded"}) {
                    if (GoldenVectors.has(c, "pre_" + step)) {
                        assertBitForBit(c, "pre_" + step, vectors.array(c, "pre_" + step), steps.get(step));
                    }
                }
                String tensor = "pre_tensor_" + layout.key;
                assertBitForBit(c, tensor, vectors.array(c, tensor), steps.get("tensor"));
                compared++;
            }
        }
        assertTrue("no tensors compared", compared > 0);
    }

    /** Python's describe() of each case's profile names the rule and mean/std the Java profile applies. */
    @Test
    public void normalizationMatchesPythonDescription() {
        Map<String, Object> profiles = Json.object(vectors.index, "profiles");
        for (Map<String, Object> c : javaCases()) {
            Profile profile = profileOf(c);
            Map<String, Object> python = Json.object(Json.object(profiles, profileKey(c)), "normalize");
            String label = c.get("id") + " normalize";
            assertEquals(label + " rule", Json.string(python, "rule"), profile.normalizationRule());
            Normalization.Spec spec = profile.normalization();
            if (spec.isRaw()) {
                assertEquals(label + " mean (raw)", null, python.get("mean"));
                assertEquals(label + " std (raw)", null, python.get("std"));
                continue;
            }
            for (String key : new String[] {"mean", "std"}) {
                List<Object> values = Json.list(python, key);
                double[] java = key.equals("mean") ? spec.mean() : spec.std();
                assertEquals(label + " " + key + " length", values.size(), java.length);
                for (int i = 0; i < java.length; i++) {
                    assertEquals(label + " " + key + "[" + i + "]", ((Number) values.get(i)).doubleValue(), java[i], 0.0);
                }
            }
        }
    }

    /**
     * The variants RVM's mean 0 / std 1, ImageNet's mean/std and no Normalize exist for both profiles, with the rule
     * each must use, and their normalized pixels are the stated expressions, written out here independently.
     */
    @Test
    public void vectorsCoverEveryNormalization() throws IOException {
        List<String> seen = new ArrayList<>();
        for (Map<String, Object> c : javaCases()) {
            String key = profileKey(c);
            String variant = c.containsKey("variant") ? Json.string(c, "variant") : "default";
            String rule = profileOf(c).normalizationRule();
            boolean android = AndroidProfile.NAME.equals(c.get("profile"));
            String expectedRule = variant.equals("raw") ? "none"
                    : android && (variant.equals("unit") || variant.equals("default")) ? "exact" : "paddleseg";
            assertEquals(c.get("id") + " rule", expectedRule, rule);
            byte[] resized = vectors.array(c, "pre_resized").bytes();
            float[] normalized = vectors.array(c, "pre_normalized").floats();
            for (int i = 0; i < resized.length; i++) {
                int v = resized[i] & 0xFF;
                float expected;
                if (variant.equals("raw")) {
                    expected = v;
                } else if (variant.equals("unit")) {
                    expected = (float) v / 255f;  // (v - 0f) / 255f and (v / 255f - 0) / 1: the same bits
                } else if (variant.equals("imagenet")) {
                    double[] mean = {0.485, 0.456, 0.406};
                    double[] std = {0.229, 0.224, 0.225};
                    float x = (float) ((double) ((float) v / 255f) - mean[i % 3]);
                    expected = (float) ((double) x / std[i % 3]);
                } else if (android) {
                    expected = ((float) v - 127.5f) / 127.5f;
                } else {
                    expected = (float) ((v / 255f - 0.5) / 0.5);  // the legacy demo's own line
                }
                assertEquals(c.get("id") + " normalized[" + i + "] of " + v, Float.floatToRawIntBits(expected),
                        Float.floatToRawIntBits(normalized[i]));
            }
            if (!seen.contains(key)) {
                seen.add(key);
            }
        }
        for (String profile : Profiles.NAMES) {
            for (String variant : new String[] {"unit", "imagenet", "raw"}) {
                assertTrue("the golden vectors hold no case " + profile + "@" + variant + " (have " + seen + ")",
                        seen.contains(profile + "@" + variant));
            }
        }
    }

    @Test
    public void postprocessingMatchesEveryStep() throws IOException {
        for (Map<String, Object> c : javaCases()) {
            Profile profile = profileOf(c);
            Size original = GoldenVectors.size(c, "original_hw");
            Size model = GoldenVectors.size(c, "model_hw");
            Layout layout = Layout.fromKey(Json.string(c, "layout"));
            NdArray output = vectors.array(c, "model_output");
            PreprocessState state = profile.plan(original, model, layout);
            Steps steps = profile.postprocess(output.floats(), output.shape, state);
            List<String> covered = new ArrayList<>();
            for (Map.Entry<String, NdArray> step : steps.all().entrySet()) {
                String name = "post_" + step.getKey();
                NdArray expected = vectors.array(c, name);
                assertClose(c, name, expected, step.getValue(), toleranceFor(expected));
                covered.add(name);
            }
            for (String name : Json.object(c, "arrays").keySet()) {
                assertTrue(c.get("id") + ": python step " + name + " has no java twin",
                        !name.startsWith("post_") || covered.contains(name));
            }
            // The same output in the other single-channel layout gives the same alpha.
            int[] other = output.shape[1] == 1 ? new int[] {1, model.height, model.width, 1}
                    : new int[] {1, 1, model.height, model.width};
            Steps again = profile.postprocess(output.floats(), other, state);
            assertClose(c, "post_alpha", vectors.array(c, "post_alpha"), again.get("alpha"), FLOAT_TOLERANCE);

            NdArray alpha8 = NdArray.uint8(profile.alphaToUint8(steps.floats("alpha")), original.height, original.width);
            assertClose(c, "alpha8", vectors.array(c, "alpha8"), alpha8, 0);
        }
    }

    @Test
    public void quantizationMatches() throws IOException {
        QuantParams input = quantOf("input");
        QuantParams output = quantOf("output");
        for (Map<String, Object> c : javaCases()) {
            NdArray tensor = vectors.array(c, "pre_tensor_" + Json.string(c, "layout"));
            NdArray quantInput = new NdArray(input.ndType(), Quantization.quantize(tensor.floats(), input), tensor.shape);
            assertClose(c, "quant_input", vectors.array(c, "quant_input"), quantInput, 0);

            NdArray modelOutput = vectors.array(c, "model_output");
            NdArray quantOutput = new NdArray(output.ndType(), Quantization.quantize(modelOutput.floats(), output),
                    modelOutput.shape);
            assertClose(c, "quant_output", vectors.array(c, "quant_output"), quantOutput, 0);

            NdArray stored = vectors.array(c, "quant_output");
            NdArray dequantized = NdArray.float32(Quantization.dequantize(stored.bytes(), output), stored.shape);
            assertClose(c, "quant_output_dequantized", vectors.array(c, "quant_output_dequantized"), dequantized, 0);
        }
    }

    @Test
    public void compositesMatch() throws IOException {
        List<Object> colour = Json.list(vectors.index, "background_colour");
        Background solid = Background.colour(((Number) colour.get(0)).intValue(), ((Number) colour.get(1)).intValue(),
                ((Number) colour.get(2)).intValue());
        NdArray image = vectors.load(Json.object(vectors.index, "background_image"));
        Background picture = Background.image(image.bytes(), new Size(image.shape[0], image.shape[1]));
        for (Map<String, Object> c : javaCases()) {
            Profile profile = profileOf(c);
            Size size = GoldenVectors.size(c, "original_hw");
            byte[] rgb = vectors.array(c, "input_rgb").bytes();
            float[] alpha = vectors.array(c, "post_alpha").floats();
            NdArray blur = NdArray.uint8(Compositing.blurredBackground(rgb, size, AndroidConstants.DEFAULT),
                    size.height, size.width, 3);
            assertClose(c, "background_blur", vectors.array(c, "background_blur"), blur, 0);
            Background[] backgrounds = {solid, Background.blur(), picture};
            String[] names = {"composite_colour", "composite_blur", "composite_image"};
            for (int i = 0; i < names.length; i++) {
                NdArray composite = NdArray.uint8(profile.composite(rgb, size, alpha, backgrounds[i]), size.height,
                        size.width, 3);
                assertClose(c, names[i], vectors.array(c, names[i]), composite, 0);
            }
        }
    }

    @Test
    public void vectorsCoverPortraitOddLandscapeTinyAndRgba() throws IOException {
        boolean portrait = false;
        boolean oddLandscape = false;
        boolean tiny = false;
        boolean rgba = false;
        for (Map<String, Object> c : javaCases()) {
            if (!AndroidProfile.NAME.equals(c.get("profile"))) {
                continue;
            }
            Size size = GoldenVectors.size(c, "original_hw");
            portrait |= c.get("image").equals("portrait") && size.height >= size.width;
            oddLandscape |= size.width > size.height && (size.width % 2 == 1 || size.height % 2 == 1);
            tiny |= size.height <= 8 && size.width <= 8;
            if (GoldenVectors.has(c, "input_alpha")) {
                boolean clear = false;
                boolean opaque = false;
                boolean partial = false;
                for (byte a : vectors.array(c, "input_alpha").bytes()) {
                    int v = a & 0xFF;
                    clear |= v == 0;
                    opaque |= v == 255;
                    partial |= v > 0 && v < 255;
                }
                rgba |= clear && opaque && partial;
            }
        }
        assertTrue("a portrait photo", portrait);
        assertTrue("an odd-sized landscape image", oddLandscape);
        assertTrue("a tiny image (at most 8x8)", tiny);
        assertTrue("an RGBA image whose alpha holds 0, 255 and values between", rgba);
    }
}
