package org.edgematte.core;

/** 8-bit alpha, the "blur" background and compositing: twins of the Python runtime's functions. */
public final class Compositing {

    private Compositing() {
    }

    /** uint8 {@code (int)(clamp(alpha, 0, 1) * scale + 0.5f)} in float32 (alpha_to_uint8_round_half_up). */
    public static byte[] alphaToUint8RoundHalfUp(float[] alpha, float scale) {
        byte[] out = new byte[alpha.length];
        for (int i = 0; i < alpha.length; i++) {
            float a = Math.min(Math.max(alpha[i], 0.0f), 1.0f);
            out[i] = (byte) (int) Math.floor(a * scale + 0.5f);
        }
        return out;
    }

    /**
     * uint8 H x W x 3: the photo over {@code background} (both H x W x 3). Per channel, in float32 with each
     * product and sum rounded in this order: {@code (int) floor(f * a + b * (1 - a) + 0.5f)}, alpha
     * clamped to [0, 1] first (twin of Python's composite).
     */
    public static byte[] composite(byte[] rgb, float[] alpha, byte[] background) {
        if (rgb.length != alpha.length * 3 || background.length != rgb.length) {
            throw new IllegalArgumentException("photo (" + rgb.length + " bytes), alpha (" + alpha.length
                    + " values) and background (" + background.length + " bytes) do not match");
        }
        byte[] out = new byte[rgb.length];
        for (int p = 0; p < alpha.length; p++) {
            float a = Math.min(Math.max(alpha[p], 0.0f), 1.0f);
            float rest = 1.0f - a;
            for (int ch = 0; ch < 3; ch++) {
                int i = 3 * p + ch;
                float blend = (float) (rgb[i] & 0xFF) * a + (float) (background[i] & 0xFF) * rest;
                int v = (int) Math.floor(blend + 0.5f);
                out[i] = (byte) Math.min(Math.max(v, 0), 255);
            }
        }
        return out;
    }

    /**
     * A strong blur of {@code rgb}, exact in integers (twin of blurred_background): shrink to fit blurGrid x
     * blurGrid with the fixed-point resize (box pre-reduction on), convolve rows then columns with the
     * binomial kernel (edge pixels repeated), {@code (acc + total / 2) / total} with total = sum^2, then
     * enlarge back to {@code size} with the same resize.
     */
    public static byte[] blurredBackground(byte[] rgb, Size size, AndroidConstants c) {
        Size small = FixedPointResize.letterboxSize(size, new Size(c.blurGrid, c.blurGrid));
        byte[] shrunk = FixedPointResize.resizeUint8(rgb, size, 3, small, true, c);
        int[] kernel = c.blurKernel();
        int radius = kernel.length / 2;
        long sum = 0;
        for (int k : kernel) {
            sum += k;
        }
        long total = sum * sum;
        int h = small.height;
        int w = small.width;
        long[] across = new long[h * w * 3];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                for (int t = 0; t < kernel.length; t++) {
                    int sx = Math.min(Math.max(x + t - radius, 0), w - 1);
                    for (int ch = 0; ch < 3; ch++) {
                        across[(y * w + x) * 3 + ch] += kernel[t] * (long) (shrunk[(y * w + sx) * 3 + ch] & 0xFF);
                    }
                }
            }
        }
        byte[] smooth = new byte[h * w * 3];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                for (int ch = 0; ch < 3; ch++) {
                    long acc = 0;
                    for (int t = 0; t < kernel.length; t++) {
                        int sy = Math.min(Math.max(y + t - radius, 0), h - 1);
                        acc += kernel[t] * across[(sy * w + x) * 3 + ch];
                    }
                    smooth[(y * w + x) * 3 + ch] = (byte) ((acc + total / 2) / total);
                }
            }
        }
        return FixedPointResize.resizeUint8(smooth, small, 3, size, true, c);
    }
}
