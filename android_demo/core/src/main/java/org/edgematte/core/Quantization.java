package org.edgematte.core;

/**
 * Float <-> int8/uint8 conversion as LiteRT does it, twins of Python's {@code quantize} / {@code dequantize}
 * in edgematte/runtime/backends/litert.py (bit-exact with LiteRT's QUANTIZE op on XNNPACK and the
 * optimized kernels; its reference kernel rounds ties away from zero instead).
 */
public final class Quantization {

    private Quantization() {
    }

    /**
     * {@code q = clip(rint(x * float32(1 / scale)) + zeroPoint, min, max)} in float32, ties to even;
     * the result holds int8 (two's complement) or uint8 values in a {@code byte[]}.
     */
    public static byte[] quantize(float[] x, QuantParams params) {
        float inverseScale = 1.0f / (float) params.scale;
        float zeroPoint = (float) params.zeroPoint;
        float lo = params.min();
        float hi = params.max();
        byte[] out = new byte[x.length];
        for (int i = 0; i < x.length; i++) {
            float q = (float) Math.rint(x[i] * inverseScale) + zeroPoint;
            out[i] = (byte) (int) Math.min(Math.max(q, lo), hi);
        }
        return out;
    }

    /** {@code float32(scale * (q - zeroPoint))} computed in double, q read as int8 or uint8. */
    public static float[] dequantize(byte[] q, QuantParams params) {
        float[] out = new float[q.length];
        boolean signed = params.signed();
        for (int i = 0; i < q.length; i++) {
            int value = signed ? q[i] : q[i] & 0xFF;
            out[i] = (float) (params.scale * (double) (value - params.zeroPoint));
        }
        return out;
    }

    /** A model tensor from the float tensor: quantized when {@code spec} is an integer tensor. */
    public static NdArray toModelInput(float[] tensor, TensorSpec spec) {
        if (spec.quant == null) {
            return NdArray.float32(tensor, spec.shape);
        }
        return new NdArray(spec.quant.ndType(), quantize(tensor, spec.quant), spec.shape);
    }

    /** Float values of a model output: dequantized when it is an integer tensor. */
    public static float[] fromModelOutput(NdArray output, TensorSpec spec) {
        if (output.dtype == NdArray.DType.FLOAT32) {
            return output.floats();
        }
        if (spec.quant == null) {
            throw new IllegalArgumentException("model output " + spec.name + " is " + output.dtype.numpyName
                    + " but has no quantization parameters");
        }
        return dequantize(output.bytes(), spec.quant);
    }
}
