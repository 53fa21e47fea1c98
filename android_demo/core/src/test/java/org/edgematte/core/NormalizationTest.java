package org.edgematte.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.List;

import org.junit.Test;

/**
 * A model's normalization read from deploy.yaml transforms (the twin of Python's {@code model_normalization}),
 * the rule each profile picks, and the tables against values written out here. The bit-for-bit parity with
 * Python is {@link GoldenVectorParityTest}'s (cases {@code android@unit}, {@code @imagenet}, {@code @raw}).
 */
public class NormalizationTest {

    private static final String RVM = "[{\"type\": \"LoadImages\", \"to_rgb\": true},"
            + " {\"type\": \"Normalize\", \"mean\": [0, 0, 0], \"std\": [1, 1, 1]}]";
    private static final String IMAGENET = "[{\"type\": \"LimitShort\", \"max_short\": 512},"
            + " {\"type\": \"Normalize\", \"mean\": [0.485, 0.456, 0.406], \"std\": [0.229, 0.224, 0.225]}]";

    @SuppressWarnings("unchecked")
    private static List<Object> transforms(String json) {
        return (List<Object>) Json.parse(json);
    }

    private static Normalization.Spec spec(String json) {
        return Normalization.Spec.fromTransforms(transforms(json));
    }

    private static void assertRefused(String json, String message) {
        try {
            spec(json);
            fail("accepted " + json);
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains(message));
        }
    }

    @Test
    public void readsOnlyTheNormalizeStep() {
        assertEquals(Normalization.Spec.DEFAULT, Normalization.Spec.fromTransforms(null));
        assertEquals(Normalization.Spec.DEFAULT, spec("[]"));
        Normalization.Spec rvm = spec(RVM);
        assertArrayEquals(new double[] {0, 0, 0}, rvm.mean(), 0);
        assertArrayEquals(new double[] {1, 1, 1}, rvm.std(), 0);
        assertArrayEquals(new double[] {0.485, 0.456, 0.406}, spec(IMAGENET).mean(), 0);
        // Normalize without numbers is PaddleSeg's 0.5/0.5; resizes and unknown steps are ignored.
        assertEquals(Normalization.Spec.DEFAULT, spec("[{\"type\": \"Padding\"}, {\"type\": \"Normalize\"}]"));
        assertTrue(spec("[{\"type\": \"ResizeByShort\", \"short_size\": 512}]").isRaw());
        assertNull(spec("[{\"type\": \"LoadImages\"}]").mean());
    }

    @Test
    public void refusesWhatPythonRefuses() {
        assertRefused("[{\"type\": \"Normalize\", \"std\": [1, 0, 1]}]", "3 non-zero stds");
        assertRefused("[{\"type\": \"Normalize\", \"mean\": [0, 0]}]", "need 3 means");
        assertRefused("[{\"type\": \"Normalize\", \"mean\": [\"a\", 0, 0]}]", "need 3 means");
        assertRefused("[{\"type\": \"Normalize\"}, {\"type\": \"Normalize\"}]", "more than one Normalize");
        assertRefused("[{\"mean\": [0, 0, 0]}]", "a mapping with a 'type'");
        assertRefused("[\"Normalize\"]", "a mapping with a 'type'");
    }

    @Test
    public void rulesFollowFloat32Exactness() {
        assertTrue(Normalization.Spec.DEFAULT.exactInFloat32());
        assertTrue(spec(RVM).exactInFloat32());
        assertFalse(spec(IMAGENET).exactInFloat32());  // 255 * 0.485 = 123.675 is no float32
        assertEquals("exact", spec(RVM).rule(true));
        assertEquals("paddleseg", spec(RVM).rule(false));
        assertEquals("paddleseg", spec(IMAGENET).rule(true));
        assertEquals("none", Normalization.Spec.RAW.rule(true));
    }

    @Test
    public void tablesHoldTheStatedValues() {
        float[] unit = spec(RVM).table("exact");
        for (int v = 0; v < 256; v++) {
            for (int c = 0; c < 3; c++) {
                assertEquals(Float.floatToRawIntBits(v / 255f), Float.floatToRawIntBits(unit[3 * v + c]));
            }
        }
        float[] raw = Normalization.Spec.RAW.table("none");
        assertEquals(200f, raw[3 * 200 + 1], 0);
        float[] imagenet = spec(IMAGENET).table("paddleseg");
        double[][] meanStd = {{0.485, 0.229}, {0.456, 0.224}, {0.406, 0.225}};
        // Three float32 roundings: v / 255 and x - mean (each <= 3e-8, grown by 1 / std <= 4.5) and the result
        // (<= 1.2e-7 below 2.7): within 4e-7 of the true value, not within an ulp of the result.
        for (int v : new int[] {0, 1, 128, 255}) {
            for (int c = 0; c < 3; c++) {
                double truth = (v / 255.0 - meanStd[c][0]) / meanStd[c][1];
                assertEquals("imagenet v=" + v + " c=" + c, truth, imagenet[3 * v + c], 4e-7);
            }
        }
        // 255 in channel 0: (1 - 0.485) / 0.229 = 2.24890829...
        assertEquals(2.2489083f, imagenet[3 * 255], 1e-6f);
    }

    @Test
    public void profilesTakeTheManifestsNormalizationAndPadWithZero() {
        String manifest = "{\"schema\": \"edgematte.manifest/1\", \"model\": {\"name\": \"rvm\", \"transforms\": " + RVM
                + "}, \"artefacts\": []}";
        Profile android = Profiles.forManifest(Manifest.parse(manifest), AndroidProfile.NAME);
        assertEquals("exact", android.normalizationRule());
        int[] argb = {0xFF000000 | (51 << 16) | (255 << 8), 0xFF000000 | (1 << 16) | 102};
        Steps steps = android.preprocess(argb, new Size(1, 2), new Size(2, 2), Layout.NHWC);
        float[] padded = steps.floats("padded");
        float[] expected = {51 / 255f, 1f, 0f, 1 / 255f, 0f, 102 / 255f, 0f, 0f, 0f, 0f, 0f, 0f};
        assertArrayEquals(expected, padded, 0f);

        Profile legacy = Profiles.forManifest(Manifest.parse(manifest), PaddleSegAndroidProfile.NAME);
        assertEquals("paddleseg", legacy.normalizationRule());
        String none = "{\"schema\": \"edgematte.manifest/1\", \"model\": {\"name\": \"x\"}, \"artefacts\": []}";
        Manifest plain = Manifest.parse(none);
        assertNull(plain.transforms);
        assertEquals(Normalization.Spec.DEFAULT, Profiles.forManifest(plain, AndroidProfile.NAME).normalization());
        assertEquals(Normalization.Spec.DEFAULT, Profiles.get(PaddleSegAndroidProfile.NAME).normalization());
        try {
            Manifest.parse("{\"schema\": \"edgematte.manifest/1\", \"model\": {\"transforms\": \"x\"}, \"artefacts\": []}");
            fail("accepted model.transforms \"x\"");
        } catch (IllegalArgumentException e) {
            assertEquals("model.transforms is not a list", e.getMessage());
        }
    }
}
