package com.baidu.paddle.lite;

/** Compile-only stub (see host-check/stubs/README.md). */
public class ConfigBase {
    public void setModelFromFile(String modelFile) {
        throw new UnsupportedOperationException("stub");
    }

    public void setThreads(int threads) {
        throw new UnsupportedOperationException("stub");
    }

    public void setPowerMode(PowerMode powerMode) {
        throw new UnsupportedOperationException("stub");
    }
}
