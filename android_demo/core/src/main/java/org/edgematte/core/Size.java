package org.edgematte.core;

/** A (height, width) pair in pixels, both at least 1. Written "HxW" like the Python side's (h, w) tuples. */
public final class Size {

    public final int height;
    public final int width;

    public Size(int height, int width) {
        if (height < 1 || width < 1) {
            throw new IllegalArgumentException("size must be at least 1x1, got " + height + "x" + width);
        }
        this.height = height;
        this.width = width;
    }

    /** Parses "HxW", e.g. "512x512". */
    public static Size parse(String text) {
        String[] parts = text.trim().toLowerCase().split("x");
        if (parts.length != 2) {
            throw new IllegalArgumentException("expected HxW, got '" + text + "'");
        }
        return new Size(Integer.parseInt(parts[0].trim()), Integer.parseInt(parts[1].trim()));
    }

    public int pixels() {
        return height * width;
    }

    public int[] toArray() {
        return new int[] {height, width};
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof Size && ((Size) other).height == height && ((Size) other).width == width;
    }

    @Override
    public int hashCode() {
        return height * 31 + width;
    }

    @Override
    public String toString() {
        return height + "x" + width;
    }
}
