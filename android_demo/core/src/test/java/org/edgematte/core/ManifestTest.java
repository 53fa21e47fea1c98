package org.edgematte.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;

import java.util.List;

import org.junit.Test;

public class ManifestTest {

    private static String artefact(String path, String format, String target, String precision, String layout,
                                   String inputShape, String dtype, String quant) {
        return "{\"path\": \"" + path + "\", \"format\": \"" + format + "\", \"target\": \"" + target
                + "\", \"precision\": \"" + precision + "\", \"size_bytes\": 10, \"sha256\": \"00\", \"runtime\": \"x\","
                + " \"layout\": \"" + layout + "\", \"profile\": \"android\", \"parity\": {},"
                + " \"inputs\": [{\"name\": \"img\", \"shape\": " + inputShape + ", \"dtype\": \"" + dtype
                + "\", \"quant\": " + quant + "}],"
                + " \"outputs\": [{\"name\": \"alpha\", \"shape\": [1, 1, 512, 512], \"dtype\": \"float32\", \"quant\": null}]}";
    }

    @Test
    public void readsTheStableFieldsAndPicksWhatAPhoneRuns() {
        String json = "{\"schema\": \"edgematte.manifest/1\", \"model\": {\"name\": \"ppmattingv2\"}, \"artefacts\": ["
                + artefact("lite/arm/model.nb", "nb", "arm", "fp32", "nchw", "[1, 3, 512, 512]", "float32", "null") + ","
                + artefact("lite/x86/model.nb", "nb", "x86", "fp32", "nchw", "[1, 3, 512, 512]", "float32", "null") + ","
                + artefact("onnx/model.onnx", "onnx", "any", "fp32", "nchw", "[1, 3, 512, 512]", "float32", "null") + ","
                + artefact("tflite/model_full_integer_quant.tflite", "tflite", "any", "int8", "nhwc", "[1, 512, 512, 3]",
                        "int8", "[0.0078125, -1]")
                + "]}";
        Manifest manifest = Manifest.parse(json);
        assertEquals("ppmattingv2", manifest.modelName);
        assertEquals(4, manifest.artefacts.size());
        List<Manifest.Artefact> phone = manifest.androidArtefacts();
        assertEquals(2, phone.size());
        assertEquals("lite/arm/model.nb", phone.get(0).path);
        Manifest.Artefact int8 = phone.get(1);
        assertEquals(Layout.NHWC, int8.input.imageLayout());
        assertEquals(new Size(512, 512), int8.input.imageSize());
        assertEquals(0.0078125, int8.input.quant.scale, 0);
        assertEquals(-1, int8.input.quant.zeroPoint);
        assertNull(int8.output.quant);
        assertEquals(int8, manifest.find("model_full_integer_quant.tflite"));
        assertTrue(int8.label(), int8.label().contains("int8"));
    }

    @Test
    public void anEntryWithoutTensorSpecsIsSkippedNotFatal() {
        // edgematte 0.1 wrote its Paddle Lite int8 .nb entries with empty inputs/outputs.
        String json = "{\"schema\": \"edgematte.manifest/1\", \"model\": {\"name\": \"m\"}, \"artefacts\": ["
                + artefact("model_arm.nb", "nb", "arm", "fp32", "nchw", "[1, 3, 512, 512]", "float32", "null") + ","
                + "{\"path\": \"model_arm_int8.nb\", \"format\": \"nb\", \"target\": \"arm\", \"precision\": \"int8\","
                + " \"parity\": {}, \"inputs\": [], \"outputs\": []}]}";
        Manifest manifest = Manifest.parse(json);
        assertEquals(1, manifest.androidArtefacts().size());
        assertEquals("no inputs in the manifest (convert again)", manifest.skipped.get("model_arm_int8.nb"));
        try {
            manifest.find("model_arm_int8.nb");
            throw new AssertionError("find() accepted a skipped artefact");
        } catch (IllegalArgumentException e) {
            assertEquals("artefact model_arm_int8.nb cannot be used: no inputs in the manifest (convert again)",
                    e.getMessage());
        }
    }

    @Test(expected = IllegalArgumentException.class)
    public void refusesAnotherSchema() {
        Manifest.parse("{\"schema\": \"something/2\", \"model\": {}, \"artefacts\": []}");
    }
}
