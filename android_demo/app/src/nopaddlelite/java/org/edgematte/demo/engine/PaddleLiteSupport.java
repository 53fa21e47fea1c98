package org.edgematte.demo.engine;

import java.io.File;
import java.io.IOException;

import org.edgematte.core.InferenceModel;
import org.edgematte.core.TensorSpec;

/** This build has no Paddle Lite library: .nb models are listed but cannot run (README.md says how to add it). */
final class PaddleLiteSupport {

    static final boolean AVAILABLE = false;

    private PaddleLiteSupport() {
    }

    static InferenceModel open(File file, TensorSpec input, TensorSpec output, int threads) throws IOException {
        throw new IOException(file.getName() + ": this build has no Paddle Lite library; copy PaddlePredictor.jar "
                + "into app/libs/ and libpaddle_lite_jni.so into app/src/main/jniLibs/arm64-v8a/, then rebuild");
    }
}
