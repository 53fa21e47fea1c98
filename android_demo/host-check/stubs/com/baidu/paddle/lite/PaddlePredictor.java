package com.baidu.paddle.lite;

/** Compile-only stub (see host-check/stubs/README.md). */
public class PaddlePredictor {
    public static PaddlePredictor createPaddlePredictor(ConfigBase config) {
        throw new UnsupportedOperationException("stub");
    }

    public Tensor getInput(int offset) {
        throw new UnsupportedOperationException("stub");
    }

    public Tensor getOutput(int offset) {
        throw new UnsupportedOperationException("stub");
    }

    public boolean run() {
        throw new UnsupportedOperationException("stub");
    }
}
