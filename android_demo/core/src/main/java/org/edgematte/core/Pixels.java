package org.edgematte.core;

/**
 * Conversions between Android's packed ARGB {@code int} pixels (what {@code Bitmap.getPixels} returns:
 * 0xAARRGGBB, not premultiplied) and the profiles' interleaved RGB bytes. The alpha channel of a photo is
 * dropped, as the Python runtime drops it when it reads an RGBA file.
 */
public final class Pixels {

    private Pixels() {
    }

    /** uint8 H x W x 3 (R, G, B) from ARGB pixels. */
    public static byte[] rgbFromArgb(int[] argb) {
        byte[] rgb = new byte[argb.length * 3];
        for (int i = 0; i < argb.length; i++) {
            int p = argb[i];
            rgb[3 * i] = (byte) (p >> 16);
            rgb[3 * i + 1] = (byte) (p >> 8);
            rgb[3 * i + 2] = (byte) p;
        }
        return rgb;
    }

    /** ARGB pixels from uint8 H x W x 3 and an optional uint8 H x W alpha (opaque when null). */
    public static int[] argbFromRgb(byte[] rgb, byte[] alpha) {
        int[] argb = new int[rgb.length / 3];
        for (int i = 0; i < argb.length; i++) {
            int a = alpha == null ? 0xFF : alpha[i] & 0xFF;
            argb[i] = (a << 24) | ((rgb[3 * i] & 0xFF) << 16) | ((rgb[3 * i + 1] & 0xFF) << 8) | (rgb[3 * i + 2] & 0xFF);
        }
        return argb;
    }

    /** ARGB pixels from an image array: uint8 H x W x 3 (opaque) or H x W x 4 (RGBA, alpha kept). */
    public static int[] argbFromArray(NdArray image) {
        if (image.dtype != NdArray.DType.UINT8 || image.shape.length != 3
                || (image.shape[2] != 3 && image.shape[2] != 4)) {
            throw new IllegalArgumentException("image must be uint8 HxWx3 or HxWx4, got " + image);
        }
        byte[] data = image.bytes();
        if (image.shape[2] == 3) {
            return argbFromRgb(data, null);
        }
        int[] argb = new int[data.length / 4];
        for (int i = 0; i < argb.length; i++) {
            argb[i] = ((data[4 * i + 3] & 0xFF) << 24) | ((data[4 * i] & 0xFF) << 16) | ((data[4 * i + 1] & 0xFF) << 8)
                    | (data[4 * i + 2] & 0xFF);
        }
        return argb;
    }

    /** uint8 H x W of 8-bit alphas as opaque gray ARGB pixels (for showing a matte). */
    public static int[] grayArgb(byte[] gray) {
        int[] argb = new int[gray.length];
        for (int i = 0; i < gray.length; i++) {
            int v = gray[i] & 0xFF;
            argb[i] = 0xFF000000 | (v << 16) | (v << 8) | v;
        }
        return argb;
    }

    /** The photo with {@code alpha8} as its alpha channel: a cutout for a transparent PNG. */
    public static int[] cutoutArgb(int[] argb, byte[] alpha8) {
        if (argb.length != alpha8.length) {
            throw new IllegalArgumentException(argb.length + " pixels but " + alpha8.length + " alpha values");
        }
        int[] out = new int[argb.length];
        for (int i = 0; i < argb.length; i++) {
            out[i] = ((alpha8[i] & 0xFF) << 24) | (argb[i] & 0x00FFFFFF);
        }
        return out;
    }
}
