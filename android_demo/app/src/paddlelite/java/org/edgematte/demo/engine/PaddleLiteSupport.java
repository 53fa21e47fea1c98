package org.edgematte.demo.engine;

import java.io.File;
import java.io.IOException;

import org.edgematte.core.InferenceModel;
import org.edgematte.core.TensorSpec;

/** This build bundles Paddle Lite's Java library (app/libs/PaddlePredictor.jar). */
final class PaddleLiteSupport {

    static final boolean AVAILABLE = true;

    private PaddleLiteSupport() {
    }

    static InferenceModel open(File file, TensorSpec input, TensorSpec output, int threads) throws IOException {
        try {
            return new PaddleLiteModel(file, input, output, threads);
        } catch (UnsatisfiedLinkError e) {
            throw new IOException("Paddle Lite's native library is missing: copy libpaddle_lite_jni.so into "
                    + "app/src/main/jniLibs/<abi>/ (README.md) (" + e.getMessage() + ")", e);
        }
    }
}
