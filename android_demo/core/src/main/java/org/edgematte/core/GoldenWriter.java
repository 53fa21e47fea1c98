package org.edgematte.core;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes results in the golden-vector format (see {@link GoldenVectors}): arrays as
 * {@code <profile>/<image>/<name>.npy}, then {@code index.json}, then (for the device's verification mode)
 * a done marker. Python reads the result with {@code edgematte.runtime.vectors.read_golden_vectors}.
 */
public final class GoldenWriter {

    /** Written last, after index.json, when a run completed; the host polls for it. */
    public static final String DONE_MARKER = "DONE";
    /** Written instead of DONE when a run failed; holds the error. */
    public static final String FAILED_MARKER = "FAILED";

    private final File root;
    private final Map<String, Object> index = new LinkedHashMap<>();
    private final List<Object> cases = new ArrayList<>();

    /** {@code side}: "android" on a device, "java" on the host; {@code model}: facts about the model. */
    public GoldenWriter(File root, String side, Map<String, Object> model) throws IOException {
        this.root = root;
        if (!root.isDirectory() && !root.mkdirs()) {
            throw new IOException(root + ": cannot create the output folder");
        }
        Map<String, Object> generator = new LinkedHashMap<>();
        generator.put("side", side);
        generator.put("core", "org.edgematte.core");
        index.put("schema", GoldenVectors.SCHEMA);
        index.put("generator", generator);
        index.put("model", model);
        index.put("cases", cases);
    }

    /** Extra top-level entries (device facts, options); must be JSON-writable. */
    public void put(String key, Object value) {
        index.put(key, value);
    }

    /** Removes the markers and index of an earlier run so a poller never sees stale results. */
    public static void clearMarkers(File root) {
        for (String name : new String[] {DONE_MARKER, FAILED_MARKER, GoldenVectors.INDEX_NAME}) {
            File file = new File(root, name);
            if (file.exists() && !file.delete()) {
                throw new IllegalStateException(file + ": cannot remove the result of an earlier run");
            }
        }
    }

    public Case startCase(String profile, String image, PreprocessState state) {
        Case c = new Case(profile, image, state);
        cases.add(c.entry);
        return c;
    }

    /** One (profile, image) case: its arrays and timings. */
    public final class Case {
        private final String directory;
        private final Map<String, Object> entry = new LinkedHashMap<>();
        private final Map<String, Object> arrays = new LinkedHashMap<>();
        private final Map<String, Object> timings = new LinkedHashMap<>();

        private Case(String profile, String image, PreprocessState state) {
            directory = profile + "/" + image;
            entry.put("id", directory);
            entry.put("profile", profile);
            entry.put("image", image);
            entry.put("layout", state.layout.key);
            entry.put("original_hw", state.originalSize.toArray());
            entry.put("model_hw", state.modelSize.toArray());
            entry.put("resized_hw", state.resizedSize.toArray());
            entry.put("crop_hw", state.cropSize.toArray());
            entry.put("arrays", arrays);
            entry.put("timings_ms", timings);
        }

        public void add(String name, NdArray array) throws IOException {
            String relative = directory + "/" + name + ".npy";
            Npy.write(new File(root, relative), array);
            Map<String, Object> item = new LinkedHashMap<>();
            item.put("file", relative);
            item.put("shape", array.shape.clone());
            item.put("dtype", array.dtype.numpyName);
            arrays.put(name, item);
        }

        /** A stage time in milliseconds, or a list of repeated measurements. */
        public void timing(String stage, Object milliseconds) {
            timings.put(stage, milliseconds);
        }
    }

    /** Writes index.json (through a temporary file renamed into place). */
    public File finish() throws IOException {
        File file = new File(root, GoldenVectors.INDEX_NAME);
        writeAtomically(file, Json.write(index));
        return file;
    }

    /** Writes the DONE marker (a one-line JSON summary). Call after {@link #finish()}. */
    public void markDone(Map<String, Object> summary) throws IOException {
        writeAtomically(new File(root, DONE_MARKER), Json.write(summary));
    }

    /** Writes the FAILED marker with the error. */
    public static void markFailed(File root, String message) throws IOException {
        writeAtomically(new File(root, FAILED_MARKER), message + "\n");
    }

    private static void writeAtomically(File file, String text) throws IOException {
        File tmp = new File(file.getParentFile(), "." + file.getName() + ".tmp");
        try (OutputStream out = new FileOutputStream(tmp)) {
            out.write(text.getBytes(StandardCharsets.UTF_8));
        }
        if (!tmp.renameTo(file) && !(file.delete() && tmp.renameTo(file))) {
            throw new IOException(file + ": cannot move the written file into place");
        }
    }
}
