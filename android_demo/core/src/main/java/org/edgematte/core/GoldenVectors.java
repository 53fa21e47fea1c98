package org.edgematte.core;

import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * A golden-vector folder (schema {@value #SCHEMA}): {@code index.json} plus one .npy per array, as Python's
 * {@code edgematte.runtime.vectors} writes it and {@link GoldenWriter} writes it on the device.
 */
public final class GoldenVectors {

    public static final String SCHEMA = "edgematte.golden/1";
    public static final String INDEX_NAME = "index.json";

    public final File root;
    public final Map<String, Object> index;

    private GoldenVectors(File root, Map<String, Object> index) {
        this.root = root;
        this.index = index;
    }

    public static GoldenVectors open(File dir) throws IOException {
        File indexFile = new File(dir, INDEX_NAME);
        if (!indexFile.isFile()) {
            throw new IOException(indexFile + ": no golden-vector index here");
        }
        Map<String, Object> index;
        try {
            index = Json.parseObject(TextFiles.read(indexFile));
        } catch (IllegalArgumentException e) {
            throw new IOException(indexFile + ": " + e.getMessage(), e);
        }
        if (!SCHEMA.equals(index.get("schema"))) {
            throw new IOException(indexFile + ": unknown schema " + index.get("schema") + " (expected " + SCHEMA + ")");
        }
        return new GoldenVectors(dir, index);
    }

    @SuppressWarnings("unchecked")
    public List<Map<String, Object>> cases() {
        List<Map<String, Object>> cases = new ArrayList<>();
        for (Object item : Json.list(index, "cases")) {
            cases.add((Map<String, Object>) item);
        }
        return cases;
    }

    public static boolean has(Map<String, Object> testCase, String name) {
        return Json.object(testCase, "arrays").containsKey(name);
    }

    /** Array {@code name} of {@code testCase}, checked against the shape and dtype index.json records. */
    public NdArray array(Map<String, Object> testCase, String name) throws IOException {
        Map<String, Object> arrays = Json.object(testCase, "arrays");
        if (!arrays.containsKey(name)) {
            throw new IOException(root + ": case " + testCase.get("id") + " has no array " + name);
        }
        return load(Json.object(arrays, name));
    }

    /** An array entry {"file", "shape", "dtype"} of the index (e.g. the top-level background_image). */
    public NdArray load(Map<String, Object> entry) throws IOException {
        File file = new File(root, Json.string(entry, "file"));
        NdArray array = Npy.read(file);
        int[] shape = Json.ints(entry, "shape");
        String dtype = Json.string(entry, "dtype");
        if (!Arrays.equals(array.shape, shape) || !array.dtype.numpyName.equals(dtype)) {
            throw new IOException(file + ": holds " + array + ", index.json says " + dtype + Arrays.toString(shape));
        }
        return array;
    }

    public static Size size(Map<String, Object> testCase, String key) {
        int[] hw = Json.ints(testCase, key);
        return new Size(hw[0], hw[1]);
    }
}
