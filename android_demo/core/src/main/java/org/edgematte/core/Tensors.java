package org.edgematte.core;

import java.util.Arrays;

/** Padding, layouts and the alpha plane of a model output (twins of pad_bottom_right, to_layout, alpha_plane). */
public final class Tensors {

    private Tensors() {
    }

    /** float32 model.h x model.w x C: {@code hwc} (size x C) at the top-left, {@code value} elsewhere. */
    public static float[] padBottomRight(float[] hwc, Size size, int channels, Size model, float value) {
        if (size.height > model.height || size.width > model.width) {
            throw new IllegalArgumentException("cannot pad " + size + " into the smaller " + model);
        }
        float[] out = new float[model.pixels() * channels];
        Arrays.fill(out, value);
        int rowLength = size.width * channels;
        for (int y = 0; y < size.height; y++) {
            System.arraycopy(hwc, y * rowLength, out, y * model.width * channels, rowLength);
        }
        return out;
    }

    /** float32 h x w x C (interleaved) as [1, C, h, w] (planar) or [1, h, w, C] (a copy). */
    public static float[] toLayout(float[] hwc, Size size, int channels, Layout layout) {
        if (layout == Layout.NHWC) {
            return hwc.clone();
        }
        int plane = size.pixels();
        float[] out = new float[hwc.length];
        for (int p = 0; p < plane; p++) {
            for (int ch = 0; ch < channels; ch++) {
                out[ch * plane + p] = hwc[p * channels + ch];
            }
        }
        return out;
    }

    /**
     * The h x w alpha of a model output shaped [1, 1, h, w], [1, h, w, 1], [1, h, w] or [h, w] (one channel,
     * so every accepted shape holds the same values in the same order).
     */
    public static float[] alphaPlane(float[] output, int[] shape, Size model) {
        int h = model.height;
        int w = model.width;
        boolean ok = Arrays.equals(shape, new int[] {1, 1, h, w}) || Arrays.equals(shape, new int[] {1, h, w, 1})
                || Arrays.equals(shape, new int[] {1, h, w}) || Arrays.equals(shape, new int[] {h, w});
        if (!ok || output.length != h * w) {
            throw new IllegalArgumentException("model output shape " + Arrays.toString(shape) + " does not hold one "
                    + h + "x" + w + " alpha ([1,1," + h + "," + w + "] or [1," + h + "," + w + ",1] expected)");
        }
        return output.clone();
    }

    /** The top-left {@code crop} region of an h x w plane. */
    public static float[] cropTopLeft(float[] plane, Size size, Size crop) {
        float[] out = new float[crop.pixels()];
        for (int y = 0; y < crop.height; y++) {
            System.arraycopy(plane, y * size.width, out, y * crop.width, crop.width);
        }
        return out;
    }
}
