package org.edgematte.core;

import java.io.Closeable;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * A loaded model; the app wraps Paddle Lite and LiteRT behind it, tests use plain Java functions. It knows
 * nothing of images: a {@link Profile} does, and of roles: a {@link FeedPlan} does.
 *
 * <p>A one-image model implements {@link #input()}, {@link #output()} and {@link #run}; a model with several
 * inputs or outputs (a recurrent one, one that takes a trimap) also overrides {@link #inputs()},
 * {@link #outputs()} and {@link #runFeeds}, whose defaults describe the one-image case.
 */
public interface InferenceModel extends Closeable {

    /** The first input (of a one-image model: the image). */
    TensorSpec input();

    /** The first output (of a one-image model: the alpha). */
    TensorSpec output();

    /**
     * Runs the model on {@code input} (the input's dtype and shape: float32, or int8/uint8 for a quantized
     * input) and returns its output (float32, or int8/uint8) in an array the caller owns.
     */
    NdArray run(NdArray input) throws Exception;

    /** Every input, in the model file's order (names as the file has them). */
    default List<TensorSpec> inputs() {
        return Collections.singletonList(input());
    }

    /** Every output, in the model file's order. */
    default List<TensorSpec> outputs() {
        return Collections.singletonList(output());
    }

    /**
     * Runs the model on one array per input ({@link #inputs()} order, each in its tensor's shape and dtype) and
     * returns every output ({@link #outputs()} order) in arrays the caller owns.
     */
    default List<NdArray> runFeeds(List<NdArray> feeds) throws Exception {
        if (feeds.size() != 1) {
            throw new IllegalArgumentException("this model takes one input, " + feeds.size() + " were given");
        }
        return Collections.singletonList(run(feeds.get(0)));
    }

    /** Facts for reports: runtime, file, accelerator, threads... (JSON-writable values). */
    Map<String, Object> describe();
}
