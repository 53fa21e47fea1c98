package org.edgematte.core;

import java.io.Closeable;
import java.util.Map;

/**
 * A loaded model with one image input and one alpha output; the app wraps Paddle Lite and LiteRT behind
 * it, tests use plain Java functions. It knows nothing of images: a {@link Profile} does.
 */
public interface InferenceModel extends Closeable {

    TensorSpec input();

    TensorSpec output();

    /**
     * Runs the model on {@code input} (the input's dtype and shape: float32, or int8/uint8 for a quantized
     * input) and returns its output (float32, or int8/uint8) in an array the caller owns.
     */
    NdArray run(NdArray input) throws Exception;

    /** Facts for reports: runtime, file, accelerator, threads... (JSON-writable values). */
    Map<String, Object> describe();
}
