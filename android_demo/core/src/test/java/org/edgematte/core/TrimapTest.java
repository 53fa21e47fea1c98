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
import java.util.Map;

import org.junit.BeforeClass;
import org.junit.Test;

/**
 * {@link Trimap} against the Python runtime's trimap vectors ({@code index["trimaps"]}, written by
 * edgematte/runtime/vectors.py from trimap.py), bit for bit, plus the snapping rule and Python's messages.
 */
public class TrimapTest {

    private static GoldenVectors vectors;

    @BeforeClass
    public static void openVectors() throws IOException {
        String dir = System.getProperty("edgematte.vectors");
        if (dir == null || dir.isEmpty()) {
            fail("no golden vectors: run android_demo/host-test.sh (it passes -Dedgematte.vectors=DIR)");
        }
        vectors = GoldenVectors.open(new File(dir));
    }

    @SuppressWarnings("unchecked")
    private static List<Map<String, Object>> entries(String key) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (Object item : Json.list(Json.object(vectors.index, "trimaps"), key)) {
            out.add((Map<String, Object>) item);
        }
        assertFalse("the golden vectors hold no trimap " + key, out.isEmpty());
        return out;
    }

    @Test
    public void userTrimapsThroughEachProfileMatchPythonBitForBit() throws IOException {
        int checked = 0;
        List<String> seen = new ArrayList<>();
        for (Map<String, Object> c : entries("cases")) {
            String name = Json.string(c, "profile");
            if (!Profiles.NAMES.contains(name)) {
                continue;
            }
            Profile profile = Profiles.get(name, c.containsKey("transforms") ? Json.list(c, "transforms") : null);
            Size image = GoldenVectors.size(c, "original_hw");
            Size model = GoldenVectors.size(c, "model_hw");
            NdArray input = vectors.array(c, "input_trimap");
            NdArray tensor = Trimap.trimapTensor(profile, input, image, model);
            GoldenVectorParityTest.assertBitForBit(c, "trimap_tensor", vectors.array(c, "trimap_tensor"), tensor);
            // The step before snapping, so a failure says whether the resize or the snapping differs.
            NdArray resized = vectors.array(c, "pre_resized");
            NdArray grey = input.shape.length == 3 ? firstChannel(input) : input;
            byte[] javaResized = firstChannel(profile.preprocess(greyArgb(grey.bytes()), image, model, Layout.NCHW)
                    .get("resized")).bytes();
            assertArrayEquals(c.get("id") + " pre_resized", resized.bytes(), javaResized);
            for (float v : tensor.floats()) {
                assertTrue(c.get("id") + ": value " + v, v == 0f || v == 128f || v == 255f);
            }
            seen.add(name + "/" + Json.string(c, "trimap"));
            checked++;
        }
        assertTrue("every Java profile's trimaps, with a 3-channel one: " + seen, seen.contains("android/columns")
                && seen.contains("paddleseg-android/banded") && seen.contains("android/channels"));
        assertEquals(8, checked);
    }

    @Test
    public void syntheticTrimapsMatchPythonBitForBit() throws IOException {
        for (Map<String, Object> c : entries("synthetic")) {
            Size size = GoldenVectors.size(c, "hw");
            GoldenVectorParityTest.assertBitForBit(c, "synthetic_trimap", vectors.array(c, "synthetic_trimap"),
                    Trimap.syntheticTrimap(size));
        }
    }

    @Test
    public void theSyntheticTrimapAsAPhotosTrimapHoldsTheSameLevels() {
        Size size = new Size(33, 20);
        float[] levels = Trimap.syntheticTrimap(size).floats();
        NdArray grey = Trimap.syntheticTrimapUint8(size);
        assertArrayEquals(new int[] {33, 20}, grey.shape);
        int unknown = 0;
        for (int i = 0; i < levels.length; i++) {
            assertEquals(levels[i], (float) (grey.bytes()[i] & 0xFF), 0f);
            unknown += grey.bytes()[i] == (byte) 128 ? 1 : 0;
        }
        assertTrue("an unknown band exists", unknown > 0);
    }

    @Test
    public void halvedAlternatingColumnsAreUnknownInsideAndBackgroundInThePadding() {
        // 0/255 columns halved average to 127.5: unknown everywhere the photo is; the letterbox padding of a
        // 20 x 64 photo in a 16 x 64 model (scaled to 16 x 51) is background.
        int h = 20;
        int w = 64;
        byte[] columns = new byte[h * w];
        for (int i = 0; i < columns.length; i++) {
            columns[i] = (byte) (i % 2 == 1 ? 255 : 0);
        }
        NdArray tensor = Trimap.trimapTensor(new AndroidProfile(), NdArray.uint8(columns, h, w), new Size(h, w),
                new Size(10, 64));
        assertArrayEquals(new int[] {1, 1, 10, 64}, tensor.shape);
        float[] values = tensor.floats();
        for (int y = 0; y < 10; y++) {
            for (int x = 0; x < 64; x++) {
                assertEquals("(" + y + ", " + x + ")", x < 32 ? 128f : 0f, values[y * 64 + x], 0f);
            }
        }
    }

    @Test
    public void snappingPicksTheNearestLevelAndTheLowerOnATie() {
        float[] in = {0f, 63.9f, 64f, 64.1f, 127f, 191f, 191.5f, 191.6f, 192f, 255f, -3f, 300f, Float.NaN};
        float[] expected = {0f, 0f, 0f, 128f, 128f, 128f, 128f, 255f, 255f, 255f, 0f, 255f, 0f};
        assertArrayEquals(expected, Trimap.snapToLevels(in), 0f);
    }

    @Test
    public void badTrimapsAreRefusedWithPythonsMessages() {
        Profile profile = new AndroidProfile();
        try {
            Trimap.trimapTensor(profile, NdArray.float32(new float[12], 3, 4), new Size(3, 4), new Size(8, 8));
            fail("a float trimap was accepted");
        } catch (IllegalArgumentException e) {
            assertEquals("a trimap must be a uint8 grey image, got float32 of shape (3, 4)", e.getMessage());
        }
        try {
            Trimap.trimapTensor(profile, NdArray.uint8(new byte[12], 12), new Size(3, 4), new Size(8, 8));
            fail("a 1-D trimap was accepted");
        } catch (IllegalArgumentException e) {
            assertEquals("a trimap must be a uint8 grey image, got uint8 of shape (12,)", e.getMessage());
        }
        try {
            Trimap.trimapTensor(profile, NdArray.uint8(new byte[12], 3, 4), new Size(4, 3), new Size(8, 8));
            fail("a trimap of another size was accepted");
        } catch (IllegalArgumentException e) {
            assertEquals("the trimap is 4x3, the photo 3x4: they must have the same size", e.getMessage());
        }
    }

    static int[] greyArgb(byte[] grey) {
        int[] argb = new int[grey.length];
        for (int i = 0; i < grey.length; i++) {
            int v = grey[i] & 0xFF;
            argb[i] = 0xFF000000 | (v << 16) | (v << 8) | v;
        }
        return argb;
    }

    static NdArray firstChannel(NdArray hwc) {
        int h = hwc.shape[0];
        int w = hwc.shape[1];
        int c = hwc.shape[2];
        byte[] out = new byte[h * w];
        for (int i = 0; i < out.length; i++) {
            out[i] = hwc.bytes()[i * c];
        }
        return NdArray.uint8(out, h, w);
    }
}
