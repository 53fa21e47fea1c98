package org.edgematte.demo.engine;

/** Where a model runs. Paddle Lite follows the artefact's target (arm = CPU, opencl = GPU) instead. */
public enum Accelerator {
    /** LiteRT's CPU path: XNNPACK. */
    CPU("cpu"),
    /** LiteRT's GPU delegate (OpenCL/OpenGL), when the device supports it. */
    GPU("gpu");

    public final String key;

    Accelerator(String key) {
        this.key = key;
    }

    public static Accelerator fromKey(String key) {
        for (Accelerator a : values()) {
            if (a.key.equalsIgnoreCase(key)) {
                return a;
            }
        }
        throw new IllegalArgumentException("accelerator must be cpu or gpu, got '" + key + "'");
    }
}
