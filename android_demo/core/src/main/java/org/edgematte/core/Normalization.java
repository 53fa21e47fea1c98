package org.edgematte.core;

/**
 * Per-value normalization tables: {@code table[v]} is the float32 a uint8 value {@code v} becomes, so every
 * deployment's exact float expression is kept (twin of Python's {@code normalization_table}).
 */
public final class Normalization {

    private Normalization() {
    }

    /**
     * Rule "exact" (the {@code android} profile): {@code (v - offset) / divisor} in float32. With both
     * constants exact in float32 (127.5 is) the subtraction is exact and the result is the float32
     * nearest to the true value.
     */
    public static float[] exactTable(float offset, float divisor) {
        float[] table = new float[256];
        for (int v = 0; v < 256; v++) {
            table[v] = ((float) v - offset) / divisor;
        }
        return table;
    }

    /**
     * Rule "paddleseg" (PaddleSeg's numpy and the legacy Android demo's Java): {@code x = v / 255f} in
     * float32, then {@code x - mean} and {@code / std} in double, stored to float32 after each step.
     */
    public static float[] paddleSegTable(double mean, double std) {
        float[] table = new float[256];
        for (int v = 0; v < 256; v++) {
            float x = (float) v / 255.0f;
            x = (float) ((double) x - mean);
            table[v] = (float) ((double) x / std);
        }
        return table;
    }

    /** float32 H x W x 3 from uint8 H x W x 3 through {@code table} (the same table for every channel). */
    public static float[] normalize(byte[] rgb, float[] table) {
        float[] out = new float[rgb.length];
        for (int i = 0; i < rgb.length; i++) {
            out[i] = table[rgb[i] & 0xFF];
        }
        return out;
    }
}
