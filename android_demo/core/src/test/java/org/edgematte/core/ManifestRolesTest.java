package org.edgematte.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.List;

import org.junit.Test;

/** {@code model.inputs} / {@code model.outputs} (schema 1.2): core/manifest.py's _check_roles, its messages. */
public class ManifestRolesTest {

    private static String manifest(String modelExtra) {
        return "{\"schema\": \"edgematte.manifest/1\", \"schema_version\": \"1.2\", \"model\": {\"name\": \"rvm\","
                + " \"input_shape\": [1, 3, 16, 16]" + modelExtra + "}, \"artefacts\": []}";
    }

    private static final String RVM = ", \"inputs\": ["
            + "{\"name\": \"src\", \"role\": \"image\", \"shape\": [1, 3, 16, 16], \"dtype\": \"float32\"},"
            + "{\"name\": \"r1i\", \"role\": \"state\", \"shape\": [1, 16, 8, 8], \"dtype\": \"float32\", \"pair\": \"r1o\"},"
            + "{\"name\": \"downsample_ratio\", \"role\": \"constant\", \"shape\": [1], \"dtype\": \"float32\", \"value\": [0.25]}],"
            + " \"outputs\": [{\"name\": \"fgr\", \"role\": \"foreground\"}, {\"name\": \"pha\", \"role\": \"alpha\"},"
            + " {\"name\": \"r1o\", \"role\": \"state\", \"pair\": \"r1i\"}]";

    @Test
    public void readsTheRolesOfAModelWithSeveralInputs() {
        Manifest m = Manifest.parse(manifest(RVM));
        List<TensorRole> inputs = m.inputRoles();
        assertEquals(3, inputs.size());
        assertEquals("r1i", inputs.get(1).name);
        assertEquals("state", inputs.get(1).role);
        assertEquals("r1o", inputs.get(1).pair);
        assertArrayEquals(new int[] {1, 16, 8, 8}, inputs.get(1).shape);
        assertEquals("float32", inputs.get(1).dtype);
        assertEquals(0.25, ((Number) ((List<?>) inputs.get(2).value).get(0)).doubleValue(), 0);
        assertEquals("r1i", m.outputRoles().get(2).pair);
        assertEquals("foreground", m.outputRoles().get(0).role);
        assertTrue(m.recurrent());
        assertFalse(m.takesTrimap());
    }

    @Test
    public void aManifestWithoutRolesHasOneImageAndOneAlpha() {
        Manifest plain = Manifest.parse(manifest(""));
        assertNull(plain.declaredInputs);
        TensorRole image = plain.inputRoles().get(0);
        assertEquals(1, plain.inputRoles().size());
        assertEquals("x", image.name);
        assertEquals("image", image.role);
        assertArrayEquals(new int[] {1, 3, 16, 16}, image.shape);
        assertEquals("float32", image.dtype);
        assertEquals("alpha", plain.outputRoles().get(0).name);
        assertEquals("alpha", plain.outputRoles().get(0).role);
        assertFalse(plain.recurrent());
        Manifest named = Manifest.parse(manifest(", \"input_name\": \"img\", \"output_name\": \"tmp_75\""));
        assertEquals("img", named.inputRoles().get(0).name);
        assertEquals("tmp_75", named.outputRoles().get(0).name);
    }

    @Test
    public void aTrimapModelSaysSo() {
        Manifest m = Manifest.parse(manifest(", \"inputs\": [{\"name\": \"img\", \"role\": \"image\"},"
                + " {\"name\": \"trimap\", \"role\": \"trimap\", \"shape\": [1, 1, 16, 16]}]"));
        assertTrue(m.takesTrimap());
        assertNull(m.inputRoles().get(0).shape);
    }

    private static void refused(String modelExtra, String message) {
        try {
            Manifest.parse(manifest(modelExtra));
            fail("accepted: " + modelExtra);
        } catch (IllegalArgumentException e) {
            assertEquals(message, e.getMessage());
        }
    }

    @Test
    public void invalidRolesAreRefusedWithPythonsMessages() {
        refused(", \"inputs\": []", "model.inputs is not a non-empty list");
        refused(", \"outputs\": {\"name\": \"pha\"}", "model.outputs is not a non-empty list");
        refused(", \"inputs\": [\"src\"]", "model.inputs: an entry is not an object with a name ('src')");
        refused(", \"inputs\": [{\"role\": \"image\", \"shape\": [1, 2.0], \"ok\": true, \"v\": null}]",
                "model.inputs: an entry is not an object with a name ({'role': 'image', 'shape': [1, 2.0], "
                        + "'ok': True, 'v': None})");
        refused(", \"inputs\": [{\"name\": \"\", \"role\": \"image\"}]",
                "model.inputs: an entry is not an object with a name ({'name': '', 'role': 'image'})");
        refused(", \"inputs\": [{\"name\": \"src\", \"role\": \"alpha\"}]",
                "model.inputs 'src': role 'alpha' is not one of image, trimap, state, constant");
        refused(", \"outputs\": [{\"name\": \"pha\"}]",
                "model.outputs 'pha': role None is not one of alpha, foreground, state, output");
        refused(", \"outputs\": [{\"name\": \"r1o\", \"role\": \"state\"}]", "model.outputs 'r1o': a state without its pair");
        refused(", \"outputs\": [{\"name\": \"fg\", \"role\": \"foreground\"}]",
                "model.outputs: exactly one alpha is needed, found 0");
        refused(", \"inputs\": [{\"name\": \"a\", \"role\": \"image\"}, {\"name\": \"b\", \"role\": \"image\"}]",
                "model.inputs: exactly one image is needed, found 2");
        refused(", \"inputs\": [{\"name\": \"r1i\", \"role\": \"state\", \"pair\": 3}]",
                "model.inputs 'r1i': a state without its pair");
        refused(", \"inputs\": [{\"name\": \"src\", \"role\": \"image\", \"shape\": [1, 3, 0, 16]}]",
                "model.inputs 'src': shape [1, 3, 0, 16] is not a list of positive integers");
        refused(", \"inputs\": [{\"name\": \"src\", \"role\": \"image\", \"shape\": [1, true]}]",
                "model.inputs 'src': shape [1, True] is not a list of positive integers");
        refused(", \"inputs\": [{\"name\": \"src\", \"role\": \"image\", \"shape\": null}]",
                "model.inputs 'src': shape None is not a list of positive integers");
        refused(", \"inputs\": [{\"name\": \"src\", \"role\": \"image\", \"shape\": \"1x3\"}]",
                "model.inputs 'src': shape '1x3' is not a list of positive integers");
    }

    @Test
    public void artefactsKeepEveryTensorAndItsLayout() {
        String json = "{\"schema\": \"edgematte.manifest/1\", \"model\": {\"name\": \"rvm\"" + RVM + "}, \"artefacts\": ["
                + "{\"path\": \"rvm.tflite\", \"format\": \"tflite\", \"target\": \"any\", \"precision\": \"fp32\","
                + " \"sha256\": \"00\", \"layout\": \"nhwc\", \"parity\": {},"
                + " \"inputs\": [{\"name\": \"r1i:0\", \"shape\": [1, 8, 8, 16], \"dtype\": \"float32\"},"
                + " {\"name\": \"src:0\", \"shape\": [1, 16, 16, 3], \"dtype\": \"float32\", \"layout\": \"nhwc\"}],"
                + " \"outputs\": [{\"name\": \"r1o\", \"shape\": [1, 16, 8, 8], \"dtype\": \"float32\", \"layout\": \"nchw\"},"
                + " {\"name\": \"pha\", \"shape\": [1, 16, 16, 1], \"dtype\": \"float32\"},"
                + " {\"name\": \"fgr\", \"shape\": [1, 16, 16, 3], \"dtype\": \"float32\"}]}]}";
        Manifest m = Manifest.parse(json);
        Manifest.Artefact artefact = m.artefacts.get(0);
        assertEquals("nhwc", artefact.layout);
        assertEquals(2, artefact.inputs.size());
        assertNull(artefact.inputs.get(0).layout);
        assertEquals("nchw", artefact.outputs.get(0).layout);
    }
}
