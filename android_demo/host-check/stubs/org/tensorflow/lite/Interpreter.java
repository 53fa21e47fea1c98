package org.tensorflow.lite;

import java.io.File;

/** Compile-only stub (see host-check/stubs/README.md). */
public final class Interpreter implements AutoCloseable {

    /** Compile-only stub. */
    public static class Options {
        public Options setNumThreads(int numThreads) {
            throw new UnsupportedOperationException("stub");
        }

        public Options setUseXNNPACK(boolean useXNNPACK) {
            throw new UnsupportedOperationException("stub");
        }

        public Options addDelegate(Delegate delegate) {
            throw new UnsupportedOperationException("stub");
        }
    }

    public Interpreter(File modelFile, Options options) {
        throw new UnsupportedOperationException("stub");
    }

    public void run(Object input, Object output) {
        throw new UnsupportedOperationException("stub");
    }

    public void runForMultipleInputsOutputs(Object[] inputs, java.util.Map<Integer, Object> outputs) {
        throw new UnsupportedOperationException("stub");
    }

    public int getInputTensorCount() {
        throw new UnsupportedOperationException("stub");
    }

    public int getOutputTensorCount() {
        throw new UnsupportedOperationException("stub");
    }

    public Tensor getInputTensor(int inputIndex) {
        throw new UnsupportedOperationException("stub");
    }

    public Tensor getOutputTensor(int outputIndex) {
        throw new UnsupportedOperationException("stub");
    }

    @Override
    public void close() {
        throw new UnsupportedOperationException("stub");
    }
}
