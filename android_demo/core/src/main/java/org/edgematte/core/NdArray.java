package org.edgematte.core;

import java.util.Arrays;

/**
 * A C-ordered n-dimensional array: the exchange type of the core (steps, .npy files, model tensors).
 *
 * <p>{@code data} is a {@code byte[]} for UINT8 and INT8 (UINT8 values are read with {@code & 0xFF}),
 * {@code int[]} for INT32, {@code long[]} for INT64, {@code float[]} for FLOAT32 and {@code double[]}
 * for FLOAT64; its length is the product of {@code shape}.
 */
public final class NdArray {

    /** Element types, named as numpy names them ({@code dtype.name}). */
    public enum DType {
        UINT8("uint8", "|u1", 1),
        INT8("int8", "|i1", 1),
        INT32("int32", "<i4", 4),
        INT64("int64", "<i8", 8),
        FLOAT32("float32", "<f4", 4),
        FLOAT64("float64", "<f8", 8);

        public final String numpyName;
        /** The .npy {@code descr} (little-endian). */
        public final String descr;
        public final int itemSize;

        DType(String numpyName, String descr, int itemSize) {
            this.numpyName = numpyName;
            this.descr = descr;
            this.itemSize = itemSize;
        }

        public static DType fromNumpyName(String name) {
            for (DType type : values()) {
                if (type.numpyName.equals(name)) {
                    return type;
                }
            }
            throw new IllegalArgumentException("unsupported dtype " + name);
        }
    }

    public final DType dtype;
    public final int[] shape;
    public final Object data;

    public NdArray(DType dtype, Object data, int... shape) {
        this.dtype = dtype;
        this.shape = shape.clone();
        this.data = data;
        int length = java.lang.reflect.Array.getLength(data);
        if (length != size(shape)) {
            throw new IllegalArgumentException("data has " + length + " elements, shape " + Arrays.toString(shape)
                    + " needs " + size(shape));
        }
        boolean matches;
        switch (dtype) {
            case UINT8:
            case INT8:
                matches = data instanceof byte[];
                break;
            case INT32:
                matches = data instanceof int[];
                break;
            case INT64:
                matches = data instanceof long[];
                break;
            case FLOAT32:
                matches = data instanceof float[];
                break;
            default:
                matches = data instanceof double[];
        }
        if (!matches) {
            throw new IllegalArgumentException(dtype + " needs a different Java array than " + data.getClass());
        }
    }

    public static NdArray uint8(byte[] data, int... shape) {
        return new NdArray(DType.UINT8, data, shape);
    }

    public static NdArray int8(byte[] data, int... shape) {
        return new NdArray(DType.INT8, data, shape);
    }

    public static NdArray float32(float[] data, int... shape) {
        return new NdArray(DType.FLOAT32, data, shape);
    }

    public static int size(int[] shape) {
        long n = 1;
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
            }
            n *= d;
        }
        if (n > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("array too large: " + Arrays.toString(shape));
        }
        return (int) n;
    }

    public int size() {
        return size(shape);
    }

    public byte[] bytes() {
        return (byte[]) data;
    }

    public float[] floats() {
        return (float[]) data;
    }

    /** Element {@code i} of the flattened array as a double (UINT8 unsigned). */
    public double get(int i) {
        switch (dtype) {
            case UINT8:
                return ((byte[]) data)[i] & 0xFF;
            case INT8:
                return ((byte[]) data)[i];
            case INT32:
                return ((int[]) data)[i];
            case INT64:
                return ((long[]) data)[i];
            case FLOAT32:
                return ((float[]) data)[i];
            default:
                return ((double[]) data)[i];
        }
    }

    /** The same data under another shape with the same number of elements. */
    public NdArray reshape(int... newShape) {
        return new NdArray(dtype, data, newShape);
    }

    @Override
    public String toString() {
        return dtype.numpyName + Arrays.toString(shape);
    }
}
