package org.edgematte.core;

/**
 * Affine quantization of an integer tensor: real value = scale * (q - zeroPoint), q in [min, max] of the
 * dtype ("int8" or "uint8"). {@code scale} is kept as the double the runtime reports (TFLite stores a
 * float32; Python's TensorSpec holds the same value as a float).
 */
public final class QuantParams {

    public final String dtype;
    public final double scale;
    public final int zeroPoint;

    public QuantParams(String dtype, double scale, int zeroPoint) {
        if (!dtype.equals("int8") && !dtype.equals("uint8")) {
            throw new IllegalArgumentException("quantized tensors must be int8 or uint8, got " + dtype);
        }
        if (!(scale > 0) || Double.isInfinite(scale)) {
            throw new IllegalArgumentException("quantization scale must be positive and finite, got " + scale);
        }
        this.dtype = dtype;
        this.scale = scale;
        this.zeroPoint = zeroPoint;
    }

    public boolean signed() {
        return dtype.equals("int8");
    }

    public int min() {
        return signed() ? -128 : 0;
    }

    public int max() {
        return signed() ? 127 : 255;
    }

    public NdArray.DType ndType() {
        return signed() ? NdArray.DType.INT8 : NdArray.DType.UINT8;
    }

    @Override
    public String toString() {
        return dtype + "(scale=" + scale + ", zero_point=" + zeroPoint + ")";
    }
}
