package org.edgematte.core;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * One model input or output as the manifest records it ({@code inputs}/{@code outputs} entries:
 * name, shape with -1 for dynamic dimensions, dtype, quant [scale, zero_point] or null).
 */
public final class TensorSpec {

    public final String name;
    public final int[] shape;
    public final String dtype;
    /** Null for float tensors. */
    public final QuantParams quant;
    /**
     * The tensor's layout as the converter recorded it per tensor ("nchw", "nhwc", "nwc"...: onnx2tf may keep
     * one output channels-first while its paired state input is channels-last), or null when not recorded.
     */
    public final String layout;

    public TensorSpec(String name, int[] shape, String dtype, QuantParams quant) {
        this(name, shape, dtype, quant, null);
    }

    public TensorSpec(String name, int[] shape, String dtype, QuantParams quant, String layout) {
        this.name = name;
        this.shape = shape.clone();
        this.dtype = dtype;
        this.quant = quant;
        this.layout = layout;
    }

    /** From a manifest entry: {"name", "shape", "dtype", "quant": [scale, zero_point] | null[, "layout"]}. */
    public static TensorSpec fromManifest(Map<String, Object> entry) {
        String dtype = Json.string(entry, "dtype");
        Object quant = entry.get("quant");
        QuantParams params = null;
        if (quant instanceof List && !dtype.startsWith("float")) {
            List<?> pair = (List<?>) quant;
            params = new QuantParams(dtype, ((Number) pair.get(0)).doubleValue(), ((Number) pair.get(1)).intValue());
        }
        Object layout = entry.get("layout");
        return new TensorSpec(Json.string(entry, "name"), Json.ints(entry, "shape"), dtype, params,
                layout instanceof String && !((String) layout).isEmpty() ? (String) layout : null);
    }

    /** NCHW when the shape is [1, 3, h, w], NHWC when it is [1, h, w, 3]. */
    public Layout imageLayout() {
        if (shape.length == 4 && shape[1] == 3) {
            return Layout.NCHW;
        }
        if (shape.length == 4 && shape[3] == 3) {
            return Layout.NHWC;
        }
        throw new IllegalArgumentException("input " + name + " shape " + Arrays.toString(shape)
                + " is neither [1,3,h,w] nor [1,h,w,3]");
    }

    /** The fixed spatial size of an image tensor (the profiles need a fixed-size model). */
    public Size imageSize() {
        Layout layout = imageLayout();
        int h = layout == Layout.NCHW ? shape[2] : shape[1];
        int w = layout == Layout.NCHW ? shape[3] : shape[2];
        if (h <= 0 || w <= 0) {
            throw new IllegalArgumentException("input " + name + " has a dynamic size " + Arrays.toString(shape)
                    + "; convert the model with a fixed input shape");
        }
        return new Size(h, w);
    }

    @Override
    public String toString() {
        return name + Arrays.toString(shape) + " " + dtype + (quant == null ? "" : " " + quant);
    }
}
