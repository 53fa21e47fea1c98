package org.tensorflow.lite.gpu;

/** Compile-only stub (see host-check/stubs/README.md). */
public class CompatibilityList {
    public boolean isDelegateSupportedOnThisDevice() {
        throw new UnsupportedOperationException("stub");
    }

    public GpuDelegate.Options getBestOptionsForThisDevice() {
        throw new UnsupportedOperationException("stub");
    }

    public void close() {
        throw new UnsupportedOperationException("stub");
    }
}
