package org.tensorflow.lite.gpu;

import org.tensorflow.lite.Delegate;

/** Compile-only stub (see host-check/stubs/README.md). */
public class GpuDelegate implements Delegate, java.io.Closeable {

    /** Compile-only stub. */
    public static class Options extends GpuDelegateFactory.Options {
    }

    public GpuDelegate(GpuDelegateFactory.Options options) {
        throw new UnsupportedOperationException("stub");
    }

    public GpuDelegate() {
        throw new UnsupportedOperationException("stub");
    }

    @Override
    public void close() {
        throw new UnsupportedOperationException("stub");
    }
}
