package org.edgematte.core;

/**
 * The resizes of the {@code android} profile, twins of Python's {@code letterbox_size},
 * {@code box_factor}, {@code bilinear_taps}, {@code resize_uint8_fixed} and {@code resize_float32_bilinear}
 * (edgematte/runtime/profiles/fixed_point_resize.py). Integer paths are exact in {@code long}; float paths round each
 * product and sum to float32, which Java does by itself (no fused multiply-add without Math.fma).
 *
 * <p>Images are interleaved {@code byte[]} of H x W x C uint8 values (read with {@code & 0xFF}); float
 * planes are {@code float[]} of H x W.
 */
public final class FixedPointResize {

    private FixedPointResize() {
    }

    /**
     * {@code src} scaled to fit inside {@code box} keeping aspect: the bound side equals the box, the
     * other is {@code round_half_up(side * scale)} = (2 * side * h + H) / (2 * H), at least 1.
     */
    public static Size letterboxSize(Size src, Size box) {
        long srcH = src.height;
        long srcW = src.width;
        long boxH = box.height;
        long boxW = box.width;
        if (boxH * srcW <= boxW * srcH) {
            long w = (2 * srcW * boxH + srcH) / (2 * srcH);
            return new Size(box.height, (int) Math.max(1, Math.min(boxW, w)));
        }
        long h = (2 * srcH * boxW + srcW) / (2 * srcW);
        return new Size((int) Math.max(1, Math.min(boxH, h)), box.width);
    }

    /** Box pre-reduction factor k = min(H / h, W / w) when at least {@code boxMinFactor}, else 1. */
    public static int boxFactor(Size src, Size dst, AndroidConstants c) {
        int k = Math.min(src.height / dst.height, src.width / dst.width);
        return k >= c.boxMinFactor ? k : 1;
    }

    /** Fixed-point sample positions along one axis: for output j, sources i0[j], i1[j] and weight frac[j] / one. */
    public static final class Taps {
        public final int[] i0;
        public final int[] i1;
        public final long[] frac;

        Taps(int n) {
            i0 = new int[n];
            i1 = new int[n];
            frac = new long[n];
        }
    }

    /**
     * Sample positions on the grid of {@code n = srcLen / box} box-reduced pixels, half-pixel centres:
     * {@code num = max(0, (2j + 1) * srcLen - box * dstLen)},
     * {@code pos = min((num * one + box * dstLen) / (2 * box * dstLen), (n - 1) * one)} (round half up),
     * {@code i0 = pos >> fractionBits}, {@code frac = pos & (one - 1)}, {@code i1 = min(i0 + 1, n - 1)}.
     */
    public static Taps taps(int srcLen, int dstLen, int box, AndroidConstants c) {
        long one = c.one();
        int n = srcLen / box;
        long span = (long) box * dstLen;
        Taps taps = new Taps(dstLen);
        for (int j = 0; j < dstLen; j++) {
            long num = Math.max(0L, (2L * j + 1) * srcLen - span);
            long pos = Math.min((num * one + span) / (2 * span), (long) (n - 1) * one);
            taps.i0[j] = (int) (pos >> c.fractionBits);
            taps.frac[j] = pos & (one - 1);
            taps.i1[j] = Math.min(taps.i0[j] + 1, n - 1);
        }
        return taps;
    }

    /**
     * Exact integer bilinear resize of a uint8 H x W x C image to {@code dst}. With {@code prefilter}, a
     * downscale by k >= boxMinFactor first sums k x k blocks (trailing partial blocks dropped, positions
     * still from the full size); horizontal then vertical in {@code long},
     * {@code out = (acc + d / 2) / d} with {@code d = k * k * one * one} (round half up).
     */
    public static byte[] resizeUint8(byte[] src, Size srcSize, int channels, Size dst, boolean prefilter,
                                     AndroidConstants c) {
        if (src.length != srcSize.pixels() * channels) {
            throw new IllegalArgumentException("image has " + src.length + " bytes, " + srcSize + "x" + channels
                    + " needs " + srcSize.pixels() * channels);
        }
        int box = prefilter ? boxFactor(srcSize, dst, c) : 1;
        Taps ty = taps(srcSize.height, dst.height, box, c);
        Taps tx = taps(srcSize.width, dst.width, box, c);
        long one = c.one();
        long denominator = (long) box * box * one * one;
        long half = denominator / 2;
        RowCache rows = new RowCache(src, srcSize, channels, box, tx, one, dst.width);
        int rowLength = dst.width * channels;
        byte[] out = new byte[dst.height * rowLength];
        for (int y = 0; y < dst.height; y++) {
            rows.release(ty.i0[y]);
            long[] top = rows.get(ty.i0[y]);
            long[] bottom = rows.get(ty.i1[y]);
            long wy1 = ty.frac[y];
            long wy0 = one - wy1;
            int base = y * rowLength;
            for (int k = 0; k < rowLength; k++) {
                long acc = top[k] * wy0 + bottom[k] * wy1;
                out[base + k] = (byte) ((acc + half) / denominator);
            }
        }
        return out;
    }

    /** Horizontally interpolated rows of box sums, computed once when first needed, freed when passed. */
    private static final class RowCache {
        private final byte[] src;
        private final int srcWidth;
        private final int channels;
        private final int box;
        private final Taps tx;
        private final long one;
        private final int dstWidth;
        private final long[][] rows;
        private int released;

        RowCache(byte[] src, Size srcSize, int channels, int box, Taps tx, long one, int dstWidth) {
            this.src = src;
            this.srcWidth = srcSize.width;
            this.channels = channels;
            this.box = box;
            this.tx = tx;
            this.one = one;
            this.dstWidth = dstWidth;
            this.rows = new long[srcSize.height / box][];
        }

        /** Output rows need non-decreasing source rows, so every row below {@code lowest} is done. */
        void release(int lowest) {
            for (; released < lowest; released++) {
                rows[released] = null;
            }
        }

        long[] get(int row) {
            if (rows[row] != null) {
                return rows[row];
            }
            int reducedWidth = srcWidth / box;
            long[] sums = new long[reducedWidth * channels];
            for (int dy = 0; dy < box; dy++) {
                int rowStart = (row * box + dy) * srcWidth * channels;
                for (int x = 0; x < reducedWidth; x++) {
                    for (int dx = 0; dx < box; dx++) {
                        int p = rowStart + (x * box + dx) * channels;
                        for (int ch = 0; ch < channels; ch++) {
                            sums[x * channels + ch] += src[p + ch] & 0xFF;
                        }
                    }
                }
            }
            long[] out = new long[dstWidth * channels];
            for (int j = 0; j < dstWidth; j++) {
                long w1 = tx.frac[j];
                long w0 = one - w1;
                int a = tx.i0[j] * channels;
                int b = tx.i1[j] * channels;
                for (int ch = 0; ch < channels; ch++) {
                    out[j * channels + ch] = sums[a + ch] * w0 + sums[b + ch] * w1;
                }
            }
            rows[row] = out;
            return out;
        }
    }

    /**
     * Bilinear resize of a float32 H x W plane with the positions of {@link #taps} (no box): weights
     * {@code w1 = frac * 2^-fractionBits}, {@code w0 = 1 - w1} (exact float32); horizontal
     * {@code a0 * w0 + a1 * w1}, then vertical the same way, every operation rounded to float32.
     */
    public static float[] resizeFloat32(float[] plane, Size srcSize, Size dst, AndroidConstants c) {
        if (plane.length != srcSize.pixels()) {
            throw new IllegalArgumentException("plane has " + plane.length + " values, " + srcSize + " needs "
                    + srcSize.pixels());
        }
        Taps ty = taps(srcSize.height, dst.height, 1, c);
        Taps tx = taps(srcSize.width, dst.width, 1, c);
        float unit = 1.0f / c.one();
        float[] wx1 = new float[dst.width];
        float[] wx0 = new float[dst.width];
        for (int j = 0; j < dst.width; j++) {
            wx1[j] = (float) tx.frac[j] * unit;
            wx0[j] = 1.0f - wx1[j];
        }
        float[] rows = new float[srcSize.height * dst.width];
        for (int r = 0; r < srcSize.height; r++) {
            int in = r * srcSize.width;
            int out = r * dst.width;
            for (int j = 0; j < dst.width; j++) {
                rows[out + j] = plane[in + tx.i0[j]] * wx0[j] + plane[in + tx.i1[j]] * wx1[j];
            }
        }
        float[] out = new float[dst.pixels()];
        for (int y = 0; y < dst.height; y++) {
            float wy1 = (float) ty.frac[y] * unit;
            float wy0 = 1.0f - wy1;
            int top = ty.i0[y] * dst.width;
            int bottom = ty.i1[y] * dst.width;
            int base = y * dst.width;
            for (int j = 0; j < dst.width; j++) {
                out[base + j] = rows[top + j] * wy0 + rows[bottom + j] * wy1;
            }
        }
        return out;
    }
}
