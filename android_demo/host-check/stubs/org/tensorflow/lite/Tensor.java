package org.tensorflow.lite;

/** Compile-only stub (see host-check/stubs/README.md). */
public interface Tensor {
    DataType dataType();

    int numDimensions();

    int numBytes();

    int numElements();

    int[] shape();

    String name();

    QuantizationParams quantizationParams();

    /** Compile-only stub. */
    class QuantizationParams {
        public float getScale() {
            throw new UnsupportedOperationException("stub");
        }

        public int getZeroPoint() {
            throw new UnsupportedOperationException("stub");
        }
    }
}
