package org.tensorflow.lite.gpu;

/** Compile-only stub (see host-check/stubs/README.md). */
public class GpuDelegateFactory {
    /** Compile-only stub. */
    public static class Options {
    }
}
