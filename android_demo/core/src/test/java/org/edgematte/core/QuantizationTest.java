package org.edgematte.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

import org.junit.Test;

public class QuantizationTest {

    @Test
    public void int8RoundsTiesToEvenAndClips() {
        QuantParams unit = new QuantParams("int8", 1.0, 0);
        float[] x = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 0.49f, 200f, -200f, 127.5f, -128.5f};
        byte[] expected = {0, 2, 2, 0, -2, -2, 0, 127, -128, 127, -128};
        assertArrayEquals(expected, Quantization.quantize(x, unit));
    }

    @Test
    public void zeroPointShiftsAndUint8UsesTheFullByte() {
        QuantParams shifted = new QuantParams("int8", 0.5, -10);
        // 1.0 / 0.5 = 2 -> 2 - 10 = -8; -100 -> -200 - 10 -> clipped -128.
        assertArrayEquals(new byte[] {-8, -128}, Quantization.quantize(new float[] {1f, -100f}, shifted));
        QuantParams unsigned = new QuantParams("uint8", 1.0 / 255.0, 0);
        byte[] q = Quantization.quantize(new float[] {0f, 1f, 2f, 0.5f}, unsigned);
        // float32(1 / float32(1/255)) is 254.99998, not 255: 0.5 maps to 127.49999 -> 127 (as LiteRT and
        // Python's quantize compute it); 1 -> 255; 2 -> 510 -> 255.
        assertEquals(255, q[1] & 0xFF);
        assertEquals(255, q[2] & 0xFF);
        assertEquals(127, q[3] & 0xFF);
        assertArrayEquals(new float[] {0f, 1f, 1f, (float) (127.0 / 255.0)}, Quantization.dequantize(q, unsigned), 0f);
    }

    @Test
    public void dequantizeIsScaleTimesOffset() {
        QuantParams p = new QuantParams("int8", 1.0 / 256.0, -128);
        assertArrayEquals(new float[] {0f, 0.5f, 255f / 256f},
                Quantization.dequantize(new byte[] {-128, 0, 127}, p), 0f);
    }

    @Test
    public void modelTensorsFollowTheSpec() {
        Map<String, Object> entry = new LinkedHashMap<>();
        entry.put("name", "img");
        entry.put("shape", Arrays.asList((Object) 1L, 2L, 1L, 3L));
        entry.put("dtype", "int8");
        entry.put("quant", Arrays.asList((Object) 0.5, -1L));
        TensorSpec spec = TensorSpec.fromManifest(entry);
        assertEquals(Layout.NHWC, spec.imageLayout());
        assertEquals(new Size(2, 1), spec.imageSize());
        NdArray input = Quantization.toModelInput(new float[] {0f, 1f, -1f, 0.25f, 0.75f, 100f}, spec);
        assertEquals(NdArray.DType.INT8, input.dtype);
        // 0.25 / 0.5 = 0.5 -> 0 (even) - 1 = -1; 0.75 / 0.5 = 1.5 -> 2 - 1 = 1.
        assertArrayEquals(new byte[] {-1, 1, -3, -1, 1, 127}, input.bytes());
        float[] back = Quantization.fromModelOutput(input, spec);
        assertArrayEquals(new float[] {0f, 1f, -1f, 0f, 1f, 64f}, back, 0f);
    }
}
