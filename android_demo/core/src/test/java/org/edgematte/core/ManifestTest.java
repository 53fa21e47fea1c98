package org.edgematte.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.List;

import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

public class ManifestTest {

    @Rule
    public TemporaryFolder temp = new TemporaryFolder();

    /** sha256 of the bytes "model bytes" (as `printf 'model bytes' | sha256sum` prints it). */
    private static final String MODEL_SHA256 = "9cb7487000bc86ac36ce83c4acfabe8878552be99572a6770f65ab1d048a5c48";

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

    // -- artefact paths stay inside the manifest's folder; files are used only with the manifest's sha256 ----

    /** A manifest with one artefact entry: {@code path} is JSON text (quoted string, or any value). */
    private static String manifestWithPath(String pathJson, String sha256, boolean withTensors) {
        String tensors = withTensors
                ? "\"inputs\": [{\"name\": \"img\", \"shape\": [1, 3, 8, 8], \"dtype\": \"float32\"}],"
                  + " \"outputs\": [{\"name\": \"alpha\", \"shape\": [1, 1, 8, 8], \"dtype\": \"float32\"}]"
                : "\"inputs\": [], \"outputs\": []";
        String sha = sha256 == null ? "" : "\"sha256\": \"" + sha256 + "\", ";
        return "{\"schema\": \"edgematte.manifest/1\", \"model\": {\"name\": \"m\"}, \"artefacts\": [{"
                + (pathJson == null ? "" : "\"path\": " + pathJson + ", ")
                + "\"format\": \"tflite\", \"target\": \"any\", \"precision\": \"fp32\", " + sha
                + "\"parity\": {}, " + tensors + "}]}";
    }

    private static Manifest.Artefact only(String pathJson, String sha256) {
        return Manifest.parse(manifestWithPath(pathJson, sha256, true)).artefacts.get(0);
    }

    private static void assertRefused(String pathJson, String message) {
        for (boolean withTensors : new boolean[] {true, false}) {  // a skipped entry's path is checked too
            try {
                Manifest.parse(manifestWithPath(pathJson, MODEL_SHA256, withTensors));
                fail("parsing accepted the artefact path " + pathJson + (withTensors ? "" : " (skipped entry)"));
            } catch (IllegalArgumentException e) {
                assertEquals(message, e.getMessage());
            }
        }
    }

    @Test
    public void readsTheSha256() {
        assertEquals(MODEL_SHA256, only("\"m.tflite\"", MODEL_SHA256).sha256);
        assertEquals("", only("\"m.tflite\"", null).sha256);
    }

    @Test
    public void refusesAbsolutePaths() {
        String absolute = "' is absolute; manifest paths are relative to the manifest's folder";
        assertRefused("\"/etc/passwd\"", "artefact path '/etc/passwd" + absolute);
        assertRefused("\"//server/m.tflite\"", "artefact path '//server/m.tflite" + absolute);
        assertRefused("\"models\\\\m.tflite\"", "artefact path 'models\\m.tflite" + absolute);
        assertRefused("\"C:\\\\m.tflite\"", "artefact path 'C:\\m.tflite" + absolute);
        assertRefused("\"m.tflite\\u0000.png\"", "artefact path 'm.tflite\0.png" + absolute);
    }

    @Test
    public void refusesPathsThatLeaveTheFolder() {
        String leaves = "' leaves the conversion folder";
        assertRefused("\"..\"", "artefact path '.." + leaves);
        assertRefused("\"../m.tflite\"", "artefact path '../m.tflite" + leaves);
        assertRefused("\"lite/../../m.tflite\"", "artefact path 'lite/../../m.tflite" + leaves);
        assertRefused("\"lite/..\"", "artefact path 'lite/.." + leaves);
    }

    @Test
    public void refusesEmptyOrMissingPaths() {
        assertRefused("\"\"", "artefact path is not a path ('')");
        assertRefused("\"  \"", "artefact path is not a path ('  ')");
        assertRefused("null", "artefact path is not a path (null)");
        assertRefused("7", "artefact path is not a path (7)");
        assertRefused(null, "an artefact entry has no 'path'");
        try {
            Manifest.parse("{\"schema\": \"edgematte.manifest/1\", \"model\": {}, \"artefacts\": [\"m.tflite\"]}");
            fail("parsing accepted an artefact entry that is a string");
        } catch (IllegalArgumentException e) {
            assertEquals("an artefact entry is a string, not an object", e.getMessage());
        }
    }

    @Test
    public void acceptsPlainRelativePathsWithDotsInNames() {
        assertEquals("lite/arm/model.nb", only("\"lite/arm/model.nb\"", MODEL_SHA256).path);
        assertEquals("a..b/..c/d..", only("\"a..b/..c/d..\"", MODEL_SHA256).path);
        assertEquals("./m.tflite", only("\"./m.tflite\"", MODEL_SHA256).path);
    }

    @Test
    public void readNamesTheManifestFileInTheError() throws IOException {
        File file = temp.newFile("manifest.json");
        Files.write(file.toPath(), manifestWithPath("\"../x.tflite\"", MODEL_SHA256, true)
                .getBytes(StandardCharsets.UTF_8));
        try {
            Manifest.read(file);
            fail("read() accepted an artefact path that leaves the folder");
        } catch (IOException e) {
            assertEquals(file + ": artefact path '../x.tflite' leaves the conversion folder", e.getMessage());
        }
    }

    private File conversionFolder() throws IOException {
        File folder = temp.newFolder("out");
        Files.write(new File(folder, "m.tflite").toPath(), "model bytes".getBytes(StandardCharsets.US_ASCII));
        return folder;
    }

    @Test
    public void theFileInsideTheFolderIsCheckedAndReturned() throws IOException {
        File folder = conversionFolder();
        Manifest.Artefact artefact = only("\"m.tflite\"", MODEL_SHA256);
        assertEquals(new File(folder, "m.tflite"), artefact.fileIn(folder));
        assertEquals(new File(folder, "m.tflite"), artefact.checkedFileIn(folder));
        // A symbolic link that stays inside the folder is fine.
        Files.createDirectory(new File(folder, "lite").toPath());
        Files.createSymbolicLink(new File(folder, "lite/m.tflite").toPath(), new File("../m.tflite").toPath());
        assertEquals(new File(folder, "lite/m.tflite"), only("\"lite/m.tflite\"", MODEL_SHA256).checkedFileIn(folder));
    }

    @Test
    public void aSymbolicLinkOutOfTheFolderIsRefused() throws IOException {
        File folder = conversionFolder();
        File outside = temp.newFile("secret.tflite");
        Files.write(outside.toPath(), "model bytes".getBytes(StandardCharsets.US_ASCII));  // even with the right hash
        Files.createSymbolicLink(new File(folder, "link.tflite").toPath(), outside.toPath());
        Manifest.Artefact artefact = only("\"link.tflite\"", MODEL_SHA256);
        String message = new File(folder, "link.tflite") + ": artefact path leads out of the conversion folder "
                + folder + " (a symbolic link)";
        try {
            artefact.fileIn(folder);
            fail("fileIn() followed a symbolic link out of the folder");
        } catch (IOException e) {
            assertEquals(message, e.getMessage());
        }
        try {
            artefact.checkedFileIn(folder);
            fail("checkedFileIn() followed a symbolic link out of the folder");
        } catch (IOException e) {
            assertEquals(message, e.getMessage());
        }
        // A linked folder on the way out counts too.
        File elsewhere = temp.newFolder("elsewhere");
        Files.write(new File(elsewhere, "m.tflite").toPath(), "model bytes".getBytes(StandardCharsets.US_ASCII));
        Files.createSymbolicLink(new File(folder, "lite").toPath(), elsewhere.toPath());
        try {
            only("\"lite/m.tflite\"", MODEL_SHA256).fileIn(folder);
            fail("fileIn() followed a linked folder out of the conversion folder");
        } catch (IOException e) {
            assertTrue(e.getMessage(), e.getMessage().endsWith(
                    ": artefact path leads out of the conversion folder " + folder + " (a symbolic link)"));
        }
    }

    @Test
    public void aChangedFileIsRefused() throws IOException {
        File folder = conversionFolder();
        Manifest.Artefact artefact = only("\"m.tflite\"", MODEL_SHA256);
        File file = artefact.checkedFileIn(folder);
        Files.write(file.toPath(), "model byteS".getBytes(StandardCharsets.US_ASCII));
        try {
            artefact.checkedFileIn(folder);
            fail("checkedFileIn() accepted a changed file");
        } catch (IOException e) {
            assertEquals(file + ": changed since conversion (its sha256 differs from the manifest's); "
                    + "restore it or convert again", e.getMessage());
        }
        try {
            artefact.verify(file);
            fail("verify() accepted a changed file");
        } catch (IOException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("changed since conversion"));
        }
    }

    @Test
    public void anArtefactWithoutSha256IsNotTrusted() throws IOException {
        File folder = conversionFolder();
        for (String sha : new String[] {null, "", "00", MODEL_SHA256.toUpperCase()}) {
            try {
                only("\"m.tflite\"", sha).checkedFileIn(folder);
                fail("checkedFileIn() trusted an artefact whose sha256 is " + sha);
            } catch (IOException e) {
                assertEquals(new File(folder, "m.tflite")
                        + ": the manifest records no sha256 for this artefact, so it cannot be trusted", e.getMessage());
            }
        }
    }

    @Test
    public void aMissingFileOrAFolderIsNamed() throws IOException {
        File folder = conversionFolder();
        try {
            only("\"gone.tflite\"", MODEL_SHA256).checkedFileIn(folder);
            fail("checkedFileIn() accepted a missing file");
        } catch (IOException e) {
            assertEquals(new File(folder, "gone.tflite") + ": artefact listed in the manifest is missing", e.getMessage());
        }
        Files.createDirectory(new File(folder, "dir.tflite").toPath());
        try {
            only("\"dir.tflite\"", MODEL_SHA256).checkedFileIn(folder);
            fail("checkedFileIn() accepted a folder");
        } catch (IOException e) {
            assertEquals(new File(folder, "dir.tflite") + ": artefact listed in the manifest is not a regular file",
                    e.getMessage());
        }
        Manifest.Artefact artefact = only("\"m.tflite\"", MODEL_SHA256);
        File file = new File(folder, "m.tflite");
        assertSame(file, artefact.verify(file));
    }
}
