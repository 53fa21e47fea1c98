package org.edgematte.core;

/** What replaces the photo's background: a colour, the photo itself blurred, or an image (resized by the profile). */
public final class Background {

    public enum Kind { COLOUR, BLUR, IMAGE }

    public final Kind kind;
    private final int red;
    private final int green;
    private final int blue;
    private final byte[] imageRgb;
    private final Size imageSize;

    private Background(Kind kind, int red, int green, int blue, byte[] imageRgb, Size imageSize) {
        this.kind = kind;
        this.red = red;
        this.green = green;
        this.blue = blue;
        this.imageRgb = imageRgb;
        this.imageSize = imageSize;
    }

    public static Background colour(int red, int green, int blue) {
        for (int v : new int[] {red, green, blue}) {
            if (v < 0 || v > 255) {
                throw new IllegalArgumentException("colour components must be in 0..255, got " + red + "," + green
                        + "," + blue);
            }
        }
        return new Background(Kind.COLOUR, red, green, blue, null, null);
    }

    public static Background blur() {
        return new Background(Kind.BLUR, 0, 0, 0, null, null);
    }

    /** An RGB uint8 image of any size; the profile resizes it to the photo ({@link Profile#resizeRgb}). */
    public static Background image(byte[] rgb, Size size) {
        if (rgb.length != size.pixels() * 3) {
            throw new IllegalArgumentException("background image has " + rgb.length + " bytes, " + size + "x3 needs "
                    + size.pixels() * 3);
        }
        return new Background(Kind.IMAGE, 0, 0, 0, rgb, size);
    }

    /** uint8 H x W x 3 background for a photo of {@code size} (twin of Python's background_image). */
    public byte[] render(byte[] photoRgb, Size size, Profile profile) {
        switch (kind) {
            case BLUR:
                return Compositing.blurredBackground(photoRgb, size, AndroidConstants.DEFAULT);
            case IMAGE:
                return imageSize.equals(size) ? imageRgb : profile.resizeRgb(imageRgb, imageSize, size);
            default:
                byte[] out = new byte[size.pixels() * 3];
                for (int i = 0; i < out.length; i += 3) {
                    out[i] = (byte) red;
                    out[i + 1] = (byte) green;
                    out[i + 2] = (byte) blue;
                }
                return out;
        }
    }

    @Override
    public String toString() {
        switch (kind) {
            case BLUR:
                return "blur";
            case IMAGE:
                return "image " + imageSize;
            default:
                return "colour(" + red + "," + green + "," + blue + ")";
        }
    }
}
