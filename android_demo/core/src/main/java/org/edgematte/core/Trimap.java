package org.edgematte.core;

import java.util.Arrays;

/**
 * Trimaps for models that take one (DIM), twin of Python's {@code edgematte/runtime/trimap.py}: the user's,
 * brought to the model input, and a synthetic one.
 *
 * <p>A trimap marks each pixel background (0), unknown (128) or foreground (255); PaddleSeg feeds these values
 * as float32, unnormalized, in a one-channel tensor the image's size. {@link #trimapTensor} gives it the
 * image's geometry under any profile: the trimap goes through the profile's own resize as a grey image (the
 * uint8 "resized" step every profile's pre-processing has), each value then snaps to the nearest of the three
 * levels (a resized edge between background and foreground becomes unknown, never a new level), and the
 * padding the image gets (bottom/right, to the model's size) is background.
 */
public final class Trimap {

    /** Background, unknown, foreground. */
    public static final float BACKGROUND = 0.0f;
    public static final float UNKNOWN = 128.0f;
    public static final float FOREGROUND = 255.0f;
    private static final float[] LEVELS = {BACKGROUND, UNKNOWN, FOREGROUND};

    private Trimap() {
    }

    /** The nearest level to {@code value}: numpy's argmin of float32 distances, the lower level on a tie. */
    public static float snap(float value) {
        int best = 0;
        float bestDistance = Math.abs(value - LEVELS[0]);
        for (int i = 1; i < LEVELS.length; i++) {
            float distance = Math.abs(value - LEVELS[i]);
            if (distance < bestDistance) {
                best = i;
                bestDistance = distance;
            }
        }
        return LEVELS[best];
    }

    /** float32 values of the same length: each replaced by the nearest of 0, 128, 255. */
    public static float[] snapToLevels(float[] values) {
        float[] out = new float[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = snap(values[i]);
        }
        return out;
    }

    /**
     * float32 [1, 1, h, w] (the model input's size {@code model}, values 0/128/255) from a uint8 trimap of the
     * photo's size {@code image}, shaped [H, W] (or [H, W, C]: its first channel), placed as {@code profile}
     * places the photo. A wrong dtype, rank or size is an IllegalArgumentException with Python's message.
     */
    public static NdArray trimapTensor(Profile profile, NdArray trimap, Size image, Size model) {
        boolean channels = trimap.shape.length == 3;
        int[] shown = channels ? new int[] {trimap.shape[0], trimap.shape[1]} : trimap.shape;
        if (trimap.dtype != NdArray.DType.UINT8 || shown.length != 2 || (channels && trimap.shape[2] < 1)) {
            throw new IllegalArgumentException("a trimap must be a uint8 grey image, got " + trimap.dtype.numpyName
                    + " of shape " + pythonTuple(shown));
        }
        NdArray grey = channels ? firstChannel(trimap) : trimap;
        int h = grey.shape[0];
        int w = grey.shape[1];
        if (h != image.height || w != image.width) {
            throw new IllegalArgumentException("the trimap is " + w + "x" + h + ", the photo " + image.width + "x"
                    + image.height + ": they must have the same size");
        }
        byte[] values = grey.bytes();
        int[] argb = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            int v = values[i] & 0xFF;
            argb[i] = 0xFF000000 | (v << 16) | (v << 8) | v;
        }
        // The profile's own pre-processing of the grey image: its "resized" step is the photo's geometry.
        Steps steps = profile.preprocess(argb, image, model, Layout.NCHW);
        NdArray resized = steps.get("resized");
        Size modelSize = steps.state().modelSize;
        int rh = resized.shape[0];
        int rw = resized.shape[1];
        int depth = resized.shape[2];
        byte[] rgb = resized.bytes();
        float[] placed = new float[modelSize.pixels()];
        Arrays.fill(placed, BACKGROUND);
        for (int y = 0; y < rh; y++) {
            for (int x = 0; x < rw; x++) {
                placed[y * modelSize.width + x] = snap((float) (rgb[(y * rw + x) * depth] & 0xFF));
            }
        }
        return NdArray.float32(placed, 1, 1, modelSize.height, modelSize.width);
    }

    private static NdArray firstChannel(NdArray hwc) {
        int h = hwc.shape[0];
        int w = hwc.shape[1];
        int c = hwc.shape[2];
        byte[] in = hwc.bytes();
        byte[] out = new byte[h * w];
        for (int i = 0; i < out.length; i++) {
            out[i] = in[i * c];
        }
        return NdArray.uint8(out, h, w);
    }

    /** numpy's shape repr: (5,), (3, 4). */
    private static String pythonTuple(int[] shape) {
        StringBuilder out = new StringBuilder("(");
        for (int i = 0; i < shape.length; i++) {
            out.append(i > 0 ? ", " : "").append(shape[i]);
        }
        return out.append(shape.length == 1 ? ",)" : ")").toString();
    }

    /**
     * float32 [1, 1, h, w], values 0/128/255: foreground inside the centred ellipse of semi-axes (0.3 h,
     * 0.22 w), unknown out to (0.42 h, 0.34 w), background beyond (float64 arithmetic as numpy's). Parity and
     * verification need the same trimap for every artefact, not a true one.
     */
    public static NdArray syntheticTrimap(Size size) {
        int h = size.height;
        int w = size.width;
        double cy = (h - 1) / 2.0;
        double cx = (w - 1) / 2.0;
        float[] out = new float[h * w];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                float level = BACKGROUND;
                if (inside(y, x, cy, cx, 0.42 * h, 0.34 * w)) {
                    level = UNKNOWN;
                }
                if (inside(y, x, cy, cx, 0.30 * h, 0.22 * w)) {
                    level = FOREGROUND;
                }
                out[y * w + x] = level;
            }
        }
        return NdArray.float32(out, 1, 1, h, w);
    }

    /**
     * uint8 [h, w]: {@link #syntheticTrimap} as a photo's trimap (Python: {@code synthetic_trimap(hw)[0, 0]
     * .astype(np.uint8)}), what verification feeds a model that takes one.
     */
    public static NdArray syntheticTrimapUint8(Size size) {
        float[] levels = syntheticTrimap(size).floats();
        byte[] out = new byte[levels.length];
        for (int i = 0; i < levels.length; i++) {
            out[i] = (byte) (int) levels[i];
        }
        return NdArray.uint8(out, size.height, size.width);
    }

    private static boolean inside(int y, int x, double cy, double cx, double ry, double rx) {
        double dy = (y - cy) / Math.max(ry, 1.0);
        double dx = (x - cx) / Math.max(rx, 1.0);
        return dy * dy + dx * dx <= 1.0;
    }
}
