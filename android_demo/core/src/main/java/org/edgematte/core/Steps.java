package org.edgematte.core;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The named intermediates of one pre- or post-processing run, in order, named as the Python profile names
 * them ({@code preprocess_steps}: resized, normalized, padded, tensor; {@code postprocess_steps}: output,
 * cropped, resized, alpha...), plus the state pre-processing hands to post-processing.
 */
public final class Steps {

    private final Map<String, NdArray> arrays = new LinkedHashMap<>();
    private PreprocessState state;

    public Steps put(String name, NdArray array) {
        arrays.put(name, array);
        return this;
    }

    public NdArray get(String name) {
        NdArray array = arrays.get(name);
        if (array == null) {
            throw new IllegalArgumentException("no step named " + name + " (have " + arrays.keySet() + ")");
        }
        return array;
    }

    public float[] floats(String name) {
        return get(name).floats();
    }

    public byte[] bytes(String name) {
        return get(name).bytes();
    }

    public Map<String, NdArray> all() {
        return Collections.unmodifiableMap(arrays);
    }

    public PreprocessState state() {
        return state;
    }

    Steps state(PreprocessState value) {
        state = value;
        return this;
    }
}
