package org.edgematte.core;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * numpy's .npy format, versions 1.0 to 3.0: little-endian, C order, the dtypes of {@link NdArray.DType}.
 *
 * <p>A file is the magic {@code \x93NUMPY}, a version (major, minor), the header length (2 bytes in
 * version 1, 4 bytes after), an ASCII/UTF-8 header holding a Python dict literal with
 * {@code 'descr'}, {@code 'fortran_order'} and {@code 'shape'}, padded with spaces and a newline so
 * the data starts on a 64-byte boundary, then the raw data. This writes version 1.0.
 */
public final class Npy {

    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    private static final Pattern DESCR = Pattern.compile("'descr'\\s*:\\s*'([^']*)'");
    private static final Pattern FORTRAN = Pattern.compile("'fortran_order'\\s*:\\s*(True|False)");
    private static final Pattern SHAPE = Pattern.compile("'shape'\\s*:\\s*\\(([^)]*)\\)");

    private Npy() {
    }

    public static NdArray read(File file) throws IOException {
        try (InputStream in = new BufferedInputStream(new FileInputStream(file))) {
            return read(in, file.getPath());
        }
    }

    /** Reads one array; {@code name} only labels error messages. */
    public static NdArray read(InputStream stream, String name) throws IOException {
        DataInputStream in = new DataInputStream(stream);
        byte[] magic = new byte[MAGIC.length];
        readFully(in, magic, name);
        for (int i = 0; i < MAGIC.length; i++) {
            if (magic[i] != MAGIC[i]) {
                throw new IOException(name + ": not a .npy file (bad magic)");
            }
        }
        int major = in.readUnsignedByte();
        in.readUnsignedByte();
        long headerLength;
        if (major == 1) {
            headerLength = in.readUnsignedByte() | (in.readUnsignedByte() << 8);
        } else if (major == 2 || major == 3) {
            byte[] four = new byte[4];
            readFully(in, four, name);
            headerLength = ByteBuffer.wrap(four).order(ByteOrder.LITTLE_ENDIAN).getInt() & 0xFFFFFFFFL;
        } else {
            throw new IOException(name + ": unsupported .npy version " + major);
        }
        if (headerLength > 1 << 20) {
            throw new IOException(name + ": .npy header of " + headerLength + " bytes is implausible");
        }
        byte[] headerBytes = new byte[(int) headerLength];
        readFully(in, headerBytes, name);
        String header = new String(headerBytes, StandardCharsets.UTF_8);
        NdArray.DType dtype = parseDescr(header, name);
        Matcher fortran = FORTRAN.matcher(header);
        if (!fortran.find()) {
            throw new IOException(name + ": .npy header without fortran_order: " + header.trim());
        }
        if (fortran.group(1).equals("True")) {
            throw new IOException(name + ": Fortran-ordered .npy arrays are not supported");
        }
        int[] shape = parseShape(header, name);
        int count = NdArray.size(shape);
        long rawLength = (long) count * dtype.itemSize;
        if (rawLength > Integer.MAX_VALUE) {
            throw new IOException(name + ": array of " + rawLength + " bytes is too large");
        }
        byte[] raw = new byte[(int) rawLength];
        readFully(in, raw, name);
        ByteBuffer buffer = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
        Object data;
        switch (dtype) {
            case UINT8:
            case INT8:
                data = raw;
                break;
            case INT32:
                int[] ints = new int[count];
                buffer.asIntBuffer().get(ints);
                data = ints;
                break;
            case INT64:
                long[] longs = new long[count];
                buffer.asLongBuffer().get(longs);
                data = longs;
                break;
            case FLOAT32:
                float[] floats = new float[count];
                buffer.asFloatBuffer().get(floats);
                data = floats;
                break;
            default:
                double[] doubles = new double[count];
                buffer.asDoubleBuffer().get(doubles);
                data = doubles;
        }
        return new NdArray(dtype, data, shape);
    }

    private static NdArray.DType parseDescr(String header, String name) throws IOException {
        Matcher m = DESCR.matcher(header);
        if (!m.find()) {
            throw new IOException(name + ": .npy header without descr: " + header.trim());
        }
        String descr = m.group(1);
        if (descr.length() >= 2) {
            char order = descr.charAt(0);
            String kind = descr.substring(1);
            boolean oneByte = kind.endsWith("1");
            // '|' (not applicable) is written for one-byte types; '<' and '=' mean little-endian here.
            if (order == '<' || order == '=' || (oneByte && (order == '|' || order == '>'))) {
                for (NdArray.DType type : NdArray.DType.values()) {
                    if (type.descr.substring(1).equals(kind)) {
                        return type;
                    }
                }
            }
        }
        throw new IOException(name + ": unsupported .npy dtype '" + descr + "' (supported: uint8, int8, int32, int64, "
                + "float32, float64, little-endian)");
    }

    private static int[] parseShape(String header, String name) throws IOException {
        Matcher m = SHAPE.matcher(header);
        if (!m.find()) {
            throw new IOException(name + ": .npy header without shape: " + header.trim());
        }
        List<Integer> dims = new ArrayList<>();
        for (String part : m.group(1).split(",")) {
            String trimmed = part.trim();
            if (!trimmed.isEmpty()) {
                dims.add(Integer.parseInt(trimmed.endsWith("L") ? trimmed.substring(0, trimmed.length() - 1) : trimmed));
            }
        }
        int[] shape = new int[dims.size()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = dims.get(i);
        }
        return shape;
    }

    private static void readFully(DataInputStream in, byte[] target, String name) throws IOException {
        try {
            in.readFully(target);
        } catch (EOFException e) {
            throw new IOException(name + ": truncated .npy file", e);
        }
    }

    /** Writes {@code array} to {@code file} (through a temporary sibling renamed into place). */
    public static void write(File file, NdArray array) throws IOException {
        File parent = file.getAbsoluteFile().getParentFile();
        if (parent != null && !parent.isDirectory() && !parent.mkdirs()) {
            throw new IOException(parent + ": cannot create folder");
        }
        File tmp = new File(parent, "." + file.getName() + ".tmp");
        try (OutputStream out = new BufferedOutputStream(new FileOutputStream(tmp))) {
            write(out, array);
        }
        if (!tmp.renameTo(file)) {
            // renameTo does not replace on every platform; retry after removing the old file.
            if (!(file.delete() && tmp.renameTo(file))) {
                throw new IOException(file + ": cannot move the written array into place");
            }
        }
    }

    public static void write(OutputStream out, NdArray array) throws IOException {
        StringBuilder shape = new StringBuilder("(");
        for (int i = 0; i < array.shape.length; i++) {
            shape.append(array.shape[i]).append(array.shape.length == 1 ? "," : (i + 1 < array.shape.length ? ", " : ""));
        }
        shape.append(")");
        String dict = "{'descr': '" + array.dtype.descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
        int unpadded = MAGIC.length + 2 + 2 + dict.length() + 1;
        int padding = (64 - unpadded % 64) % 64;
        StringBuilder header = new StringBuilder(dict);
        for (int i = 0; i < padding; i++) {
            header.append(' ');
        }
        header.append('\n');
        byte[] headerBytes = header.toString().getBytes(StandardCharsets.US_ASCII);
        out.write(MAGIC);
        out.write(1);
        out.write(0);
        out.write(headerBytes.length & 0xFF);
        out.write((headerBytes.length >> 8) & 0xFF);
        out.write(headerBytes);
        int count = array.size();
        if (array.dtype.itemSize == 1) {
            out.write(array.bytes());
            return;
        }
        ByteBuffer buffer = ByteBuffer.allocate(count * array.dtype.itemSize).order(ByteOrder.LITTLE_ENDIAN);
        switch (array.dtype) {
            case INT32:
                buffer.asIntBuffer().put((int[]) array.data);
                break;
            case INT64:
                buffer.asLongBuffer().put((long[]) array.data);
                break;
            case FLOAT32:
                buffer.asFloatBuffer().put((float[]) array.data);
                break;
            default:
                buffer.asDoubleBuffer().put((double[]) array.data);
        }
        out.write(buffer.array());
    }
}
