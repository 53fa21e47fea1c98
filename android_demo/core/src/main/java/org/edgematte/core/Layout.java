package org.edgematte.core;

/** Tensor layouts: [1, 3, h, w] planar ("nchw", Paddle Lite) or [1, h, w, 3] interleaved ("nhwc", onnx2tf's TFLite). */
public enum Layout {
    NCHW("nchw"),
    NHWC("nhwc");

    /** The Python side's name. */
    public final String key;

    Layout(String key) {
        this.key = key;
    }

    public static Layout fromKey(String key) {
        for (Layout layout : values()) {
            if (layout.key.equalsIgnoreCase(key)) {
                return layout;
            }
        }
        throw new IllegalArgumentException("layout must be nchw or nhwc, got '" + key + "'");
    }

    /** The shape of a 3-channel tensor of {@code size} in this layout. */
    public int[] tensorShape(Size size, int channels) {
        return this == NCHW ? new int[] {1, channels, size.height, size.width}
                : new int[] {1, size.height, size.width, channels};
    }
}
