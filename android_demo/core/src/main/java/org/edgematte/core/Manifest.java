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
 * (nb | onnx | tflite), {@code target} (arm | x86 | opencl | any), {@code precision}, {@code layout},
 * {@code inputs}/{@code outputs} (name, shape, dtype, quant) and {@code profile}.
 */
public final class Manifest {

    public static final String SCHEMA = "edgematte.manifest/1";
    public static final String FILE_NAME = "manifest.json";

    public final String modelName;
    public final List<Artefact> artefacts;
    /** Artefacts the app cannot describe (path -> why), left out of {@link #artefacts}. */
    public final Map<String, String> skipped;

    private Manifest(String modelName, List<Artefact> artefacts, Map<String, String> skipped) {
        this.modelName = modelName;
        this.artefacts = Collections.unmodifiableList(artefacts);
        this.skipped = Collections.unmodifiableMap(skipped);
    }

    /** One converted model file. */
    public static final class Artefact {
        public final String path;
        public final String format;
        public final String target;
        public final String precision;
        public final String profile;
        public final TensorSpec input;
        public final TensorSpec output;

        Artefact(Map<String, Object> entry) {
            path = Json.string(entry, "path");
            format = Json.string(entry, "format");
            target = Json.string(entry, "target");
            precision = entry.containsKey("precision") ? String.valueOf(entry.get("precision")) : "?";
            profile = entry.get("profile") instanceof String ? (String) entry.get("profile") : AndroidProfile.NAME;
            input = TensorSpec.fromManifest(firstOf(entry, "inputs"));
            output = TensorSpec.fromManifest(firstOf(entry, "outputs"));
        }

        @SuppressWarnings("unchecked")
        private static Map<String, Object> firstOf(Map<String, Object> entry, String key) {
            List<Object> list = Json.list(entry, key);
            if (list.isEmpty()) {
                throw new IllegalArgumentException("artefact " + entry.get("path") + " has no " + key);
            }
            return (Map<String, Object>) list.get(0);
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
        List<Artefact> artefacts = new ArrayList<>();
        Map<String, String> skipped = new LinkedHashMap<>();
        for (Object item : Json.list(root, "artefacts")) {
            @SuppressWarnings("unchecked")
            Map<String, Object> entry = (Map<String, Object>) item;
            String missing = missingTensors(entry);
            if (missing != null) {
                // edgematte 0.1 wrote Paddle Lite int8 entries without tensor specs: one such entry must not
                // hide the others from the app.
                skipped.put(Json.string(entry, "path"), "no " + missing + " in the manifest (convert again)");
                continue;
            }
            artefacts.add(new Artefact(entry));
        }
        return new Manifest(String.valueOf(model.get("name")), artefacts, skipped);
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
