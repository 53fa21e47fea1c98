package com.baidu.paddle.lite;

/** Compile-only stub (see host-check/stubs/README.md). */
public class Tensor {
    public boolean resize(long[] dims) {
        throw new UnsupportedOperationException("stub");
    }

    public boolean setData(float[] buf) {
        throw new UnsupportedOperationException("stub");
    }

    public long[] shape() {
        throw new UnsupportedOperationException("stub");
    }

    public float[] getFloatData() {
        throw new UnsupportedOperationException("stub");
    }
}
