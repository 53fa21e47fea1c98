package org.edgematte.core;

import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The converter's {@code manifest.json} (schema {@value #SCHEMA}): the artefacts the app can offer. Only the
 * stable fields are read: per artefact {@code path} (relative to the manifest), {@code format}
 * (nb | onnx | tflite), {@code target} (arm | x86 | opencl | any), {@code precision}, {@code sha256},
 * {@code layout}, {@code inputs}/{@code outputs} (name, shape, dtype, quant) and {@code profile}; of the model,
 * {@code name} and {@code transforms} (deploy.yaml's list, whose Normalize step the profiles take:
 * {@link Profiles#forManifest}), and from schema 1.2 {@code inputs} / {@code outputs}: every input and output
 * with its role ({@link TensorRole}; {@link #inputRoles()} / {@link #outputRoles()} default, as Python's
 * {@code ModelInfo.input_roles()} / {@code output_roles()}, to one image input and one alpha output).
 *
 * <p>The rules of {@code edgematte/core/manifest.py}, with its messages: an artefact path is relative to the
 * manifest's folder and never leaves it (parsing refuses an empty or absolute path, a {@code ..} segment, a
 * backslash or NUL; {@link Artefact#fileIn} refuses one that symbolic links take out of the folder), and a
 * file is used only when its sha256 is the manifest's ({@link Artefact#verify}, {@link Artefact#checkedFileIn}).
 */
public final class Manifest {

    public static final String SCHEMA = "edgematte.manifest/1";
    public static final String FILE_NAME = "manifest.json";

    public final String modelName;
    /**
     * {@code model.transforms}: the model's deploy.yaml transforms as the converter read them (mappings with a
     * "type"), or null when the manifest has none; checked only when a profile reads them.
     */
    public final List<Object> transforms;
    public final List<Artefact> artefacts;
    /** Artefacts the app cannot describe (path -> why), left out of {@link #artefacts}. */
    public final Map<String, String> skipped;
    /** {@code model.inputs} / {@code model.outputs} as recorded (validated), or null in a one-image manifest. */
    public final List<TensorRole> declaredInputs;
    public final List<TensorRole> declaredOutputs;
    private final String inputName;
    private final String outputName;
    /** {@code model.input_shape} [N, C, H, W], or null when the manifest has no valid one. */
    private final int[] inputShape;

    private Manifest(String modelName, List<Object> transforms, List<Artefact> artefacts, Map<String, String> skipped,
                     Map<String, Object> model, List<TensorRole> inputs, List<TensorRole> outputs) {
        this.modelName = modelName;
        this.transforms = transforms == null ? null : Collections.unmodifiableList(transforms);
        this.artefacts = Collections.unmodifiableList(artefacts);
        this.skipped = Collections.unmodifiableMap(skipped);
        this.declaredInputs = inputs;
        this.declaredOutputs = outputs;
        this.inputName = nonEmptyString(model.get("input_name"));
        this.outputName = nonEmptyString(model.get("output_name"));
        Object shape = model.get("input_shape");
        int[] dims = null;
        if (shape instanceof List && ((List<?>) shape).size() == 4) {
            dims = new int[4];
            for (int i = 0; i < 4 && dims != null; i++) {
                Object d = ((List<?>) shape).get(i);
                if (d instanceof Long && (Long) d > 0 && (Long) d <= Integer.MAX_VALUE) {
                    dims[i] = ((Long) d).intValue();
                } else {
                    dims = null;
                }
            }
        }
        this.inputShape = dims;
    }

    private static String nonEmptyString(Object value) {
        return value instanceof String && !((String) value).isEmpty() ? (String) value : null;
    }

    /**
     * Every input of the converted model in feed order: {@code model.inputs}, or for a manifest without roles
     * (before 1.2) one image input named {@code model.input_name} (default "x") of {@code model.input_shape},
     * float32 (Python's {@code ModelInfo.input_roles()}).
     */
    public List<TensorRole> inputRoles() {
        if (declaredInputs != null) {
            return declaredInputs;
        }
        return Collections.singletonList(new TensorRole(inputName != null ? inputName : "x", "image", inputShape,
                "float32", null, null));
    }

    /** Every output in fetch order: {@code model.outputs}, else one alpha named {@code model.output_name} ("alpha"). */
    public List<TensorRole> outputRoles() {
        if (declaredOutputs != null) {
            return declaredOutputs;
        }
        return Collections.singletonList(new TensorRole(outputName != null ? outputName : "alpha", "alpha", null,
                null, null, null));
    }

    /** Whether the model carries states from call to call (an input with role state: RVM). */
    public boolean recurrent() {
        for (TensorRole role : inputRoles()) {
            if (role.is("state")) {
                return true;
            }
        }
        return false;
    }

    /** Whether the model takes a trimap with the image (DIM). */
    public boolean takesTrimap() {
        for (TensorRole role : inputRoles()) {
            if (role.is("trimap")) {
                return true;
            }
        }
        return false;
    }

    /** One converted model file. */
    public static final class Artefact {
        /** Relative to the manifest's folder, checked by {@link #relativePath}. */
        public final String path;
        public final String format;
        public final String target;
        public final String precision;
        /** The file's sha256 as the conversion recorded it ("" when the manifest has none). */
        public final String sha256;
        public final String profile;
        /** The first input and output (for a one-image model: the image and the alpha). */
        public final TensorSpec input;
        public final TensorSpec output;
        /** Every input and output in the artefact's order (names as the file has them; {@link FeedPlan}). */
        public final List<TensorSpec> inputs;
        public final List<TensorSpec> outputs;
        /** The artefact's {@code layout} (nchw | nhwc), or null when the manifest gives none. */
        public final String layout;

        Artefact(Map<String, Object> entry) {
            path = artefactPath(entry);
            format = Json.string(entry, "format");
            target = Json.string(entry, "target");
            precision = entry.containsKey("precision") ? String.valueOf(entry.get("precision")) : "?";
            sha256 = entry.get("sha256") instanceof String ? (String) entry.get("sha256") : "";
            profile = entry.get("profile") instanceof String ? (String) entry.get("profile") : AndroidProfile.NAME;
            input = TensorSpec.fromManifest(firstOf(entry, "inputs"));
            output = TensorSpec.fromManifest(firstOf(entry, "outputs"));
            inputs = specs(entry, "inputs");
            outputs = specs(entry, "outputs");
            layout = nonEmptyString(entry.get("layout"));
        }

        @SuppressWarnings("unchecked")
        private static List<TensorSpec> specs(Map<String, Object> entry, String key) {
            List<TensorSpec> out = new ArrayList<>();
            for (Object item : Json.list(entry, key)) {
                out.add(TensorSpec.fromManifest((Map<String, Object>) item));
            }
            return Collections.unmodifiableList(out);
        }

        @SuppressWarnings("unchecked")
        private static Map<String, Object> firstOf(Map<String, Object> entry, String key) {
            List<Object> list = Json.list(entry, key);
            if (list.isEmpty()) {
                throw new IllegalArgumentException("artefact " + entry.get("path") + " has no " + key);
            }
            return (Map<String, Object>) list.get(0);
        }

        /**
         * This artefact's file inside {@code folder} (the manifest's folder), without reading it. Refused (one
         * line) when symbolic links take it out of the folder.
         */
        public File fileIn(File folder) throws IOException {
            File file = new File(folder, relativePath(path, "artefact path"));
            File root = folder.getCanonicalFile();
            File real = file.getCanonicalFile();
            String prefix = root.getPath().endsWith(File.separator) ? root.getPath() : root.getPath() + File.separator;
            if (!real.equals(root) && !real.getPath().startsWith(prefix)) {
                throw new IOException(file + ": artefact path leads out of the conversion folder " + folder
                        + " (a symbolic link)");
            }
            return file;
        }

        /**
         * {@code file} (this artefact's file, or a copy of it) when its sha256 is the manifest's; otherwise an
         * IOException naming it (see {@link FileDigest#verify}).
         */
        public File verify(File file) throws IOException {
            return FileDigest.verify(file, sha256, "artefact");
        }

        /** {@link #fileIn} and {@link #verify}: the file the conversion wrote, or an IOException naming it. */
        public File checkedFileIn(File folder) throws IOException {
            return verify(fileIn(folder));
        }

        /** Paddle Lite .nb built for ARM (CPU or OpenCL), or any .tflite: what a phone can run. */
        public boolean runsOnAndroid() {
            return (format.equals("nb") && (target.equals("arm") || target.equals("opencl"))) || format.equals("tflite");
        }

        /** "ppmattingv2 tflite int8 (nhwc 512x512)" for menus. */
        public String label() {
            String size;
            try {
                size = input.imageLayout().key + " " + input.imageSize();
            } catch (IllegalArgumentException e) {
                size = "dynamic";
            }
            return new File(path).getName() + " [" + format + " " + target + " " + precision + ", " + size + "]";
        }
    }

    public static Manifest parse(String json) {
        Map<String, Object> root = Json.parseObject(json);
        if (!SCHEMA.equals(root.get("schema"))) {
            throw new IllegalArgumentException("manifest schema is " + root.get("schema") + ", expected " + SCHEMA);
        }
        Map<String, Object> model = Json.object(root, "model");
        Object transforms = isFalsy(model.get("transforms")) ? null : model.get("transforms");
        if (transforms != null && !(transforms instanceof List)) {
            // core/manifest.py's check (`model.get("transforms") or []` must be a list), with its message.
            throw new IllegalArgumentException("model.transforms is not a list");
        }
        // core/manifest.py's _check_roles, in its order (before any artefact is looked at).
        List<TensorRole> inputs = TensorRole.parseList(model.get("inputs"), "inputs");
        List<TensorRole> outputs = TensorRole.parseList(model.get("outputs"), "outputs");
        List<Artefact> artefacts = new ArrayList<>();
        Map<String, String> skipped = new LinkedHashMap<>();
        for (Object item : Json.list(root, "artefacts")) {
            if (!(item instanceof Map)) {
                throw new IllegalArgumentException("an artefact entry is " + jsonType(item) + ", not an object");
            }
            @SuppressWarnings("unchecked")
            Map<String, Object> entry = (Map<String, Object>) item;
            String path = artefactPath(entry);
            String missing = missingTensors(entry);
            if (missing != null) {
                // edgematte 0.1 wrote Paddle Lite int8 entries without tensor specs: one such entry must not
                // hide the others from the app.
                skipped.put(path, "no " + missing + " in the manifest (convert again)");
                continue;
            }
            artefacts.add(new Artefact(entry));
        }
        @SuppressWarnings("unchecked")
        List<Object> transformList = (List<Object>) transforms;
        return new Manifest(String.valueOf(model.get("name")), transformList, artefacts, skipped, model, inputs,
                outputs);
    }

    /** Python's falsiness for JSON values that are not containers: null, false, "", 0 (containers: empty). */
    private static boolean isFalsy(Object value) {
        if (value == null || Boolean.FALSE.equals(value) || "".equals(value)) {
            return true;
        }
        return value instanceof Number && ((Number) value).doubleValue() == 0;
    }

    private static String artefactPath(Map<String, Object> entry) {
        if (!entry.containsKey("path")) {
            throw new IllegalArgumentException("an artefact entry has no 'path'");
        }
        return relativePath(entry.get("path"), "artefact path");
    }

    /**
     * {@code value} when it is a plain relative path that cannot leave the manifest's folder by its text: not
     * empty, not absolute, no backslash or NUL, no {@code ..} segment (symbolic links: {@link Artefact#fileIn}).
     * IllegalArgumentException with one line naming it otherwise; {@code what} names it ("artefact path").
     */
    public static String relativePath(Object value, String what) {
        if (!(value instanceof String) || isBlank((String) value)) {
            String shown = value instanceof String ? "'" + value + "'" : String.valueOf(value);
            throw new IllegalArgumentException(what + " is not a path (" + shown + ")");
        }
        String path = (String) value;
        if (path.startsWith("/") || path.indexOf('\\') >= 0 || path.indexOf('\0') >= 0) {
            throw new IllegalArgumentException(what + " '" + path
                    + "' is absolute; manifest paths are relative to the manifest's folder");
        }
        for (String segment : path.split("/", -1)) {
            if (segment.equals("..")) {
                throw new IllegalArgumentException(what + " '" + path + "' leaves the conversion folder");
            }
        }
        return path;
    }

    private static String jsonType(Object value) {
        if (value == null) {
            return "null";
        }
        if (value instanceof List) {
            return "a list";
        }
        if (value instanceof String) {
            return "a string";
        }
        return value instanceof Boolean ? "a boolean" : "a number";
    }

    private static boolean isBlank(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (!Character.isWhitespace(c) && !Character.isSpaceChar(c)) {
                return false;
            }
        }
        return true;
    }

    private static String missingTensors(Map<String, Object> entry) {
        for (String key : new String[] {"inputs", "outputs"}) {
            Object value = entry.get(key);
            if (!(value instanceof List) || ((List<?>) value).isEmpty()) {
                return key;
            }
        }
        return null;
    }

    public static Manifest read(File file) throws IOException {
        try {
            return parse(TextFiles.read(file));
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": " + e.getMessage(), e);
        }
    }

    public List<Artefact> androidArtefacts() {
        List<Artefact> out = new ArrayList<>();
        for (Artefact artefact : artefacts) {
            if (artefact.runsOnAndroid()) {
                out.add(artefact);
            }
        }
        return out;
    }

    /** The artefact whose path (or file name) is {@code path}. */
    public Artefact find(String path) {
        for (Artefact artefact : artefacts) {
            if (artefact.path.equals(path) || new File(artefact.path).getName().equals(path)) {
                return artefact;
            }
        }
        for (Map.Entry<String, String> entry : skipped.entrySet()) {
            if (entry.getKey().equals(path) || new File(entry.getKey()).getName().equals(path)) {
                throw new IllegalArgumentException("artefact " + path + " cannot be used: " + entry.getValue());
            }
        }
        throw new IllegalArgumentException("the manifest lists no artefact " + path);
    }
}
