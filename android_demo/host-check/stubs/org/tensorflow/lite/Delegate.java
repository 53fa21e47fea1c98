package org.tensorflow.lite;

/** Compile-only stub (see host-check/stubs/README.md). */
public interface Delegate {
}
