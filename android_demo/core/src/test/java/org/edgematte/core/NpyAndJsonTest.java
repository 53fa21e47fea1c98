package org.edgematte.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import org.junit.Test;

public class NpyAndJsonTest {

    private static NdArray roundTrip(NdArray array) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Npy.write(out, array);
        byte[] bytes = out.toByteArray();
        // Version 1.0 header: the data starts on a 64-byte boundary.
        int headerLength = (bytes[8] & 0xFF) | ((bytes[9] & 0xFF) << 8);
        assertEquals(0, (10 + headerLength) % 64);
        return Npy.read(new ByteArrayInputStream(bytes), "memory");
    }

    @Test
    public void npyRoundTripsEveryDtype() throws IOException {
        NdArray u8 = roundTrip(NdArray.uint8(new byte[] {0, (byte) 255, 7}, 3));
        assertArrayEquals(new byte[] {0, (byte) 255, 7}, u8.bytes());
        assertEquals(255.0, u8.get(1), 0);
        NdArray f32 = roundTrip(NdArray.float32(new float[] {1.5f, -0f, Float.MIN_VALUE, 3e38f, 0, 1}, 1, 2, 3));
        assertArrayEquals(new int[] {1, 2, 3}, f32.shape);
        assertArrayEquals(new float[] {1.5f, -0f, Float.MIN_VALUE, 3e38f, 0, 1}, f32.floats(), 0f);
        NdArray i64 = roundTrip(new NdArray(NdArray.DType.INT64, new long[] {Long.MIN_VALUE, 5}, 2));
        assertArrayEquals(new long[] {Long.MIN_VALUE, 5}, (long[]) i64.data);
        NdArray scalar = roundTrip(new NdArray(NdArray.DType.FLOAT64, new double[] {Math.PI}));
        assertEquals(0, scalar.shape.length);
        assertEquals(Math.PI, scalar.get(0), 0);
    }

    private static byte[] npyWithHeader(String dict, int dataBytes) {
        String header = dict + "\n";
        byte[] h = header.getBytes(StandardCharsets.US_ASCII);
        byte[] out = new byte[10 + h.length + dataBytes];
        byte[] magic = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (byte) h.length, 0};
        System.arraycopy(magic, 0, out, 0, 10);
        System.arraycopy(h, 0, out, 10, h.length);
        return out;
    }

    @Test
    public void npyRefusesFortranOrderBigEndianAndTruncation() {
        String[] bad = {
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
            "{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }",
            "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }",
        };
        for (String dict : bad) {
            try {
                Npy.read(new ByteArrayInputStream(npyWithHeader(dict, 16)), "bad.npy");
                fail("accepted " + dict);
            } catch (IOException expected) {
                assertTrue(expected.getMessage(), expected.getMessage().startsWith("bad.npy: "));
            }
        }
        byte[] shortData = npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 8);
        try {
            Npy.read(new ByteArrayInputStream(shortData), "short.npy");
            fail("accepted a truncated file");
        } catch (IOException expected) {
            assertTrue(expected.getMessage().contains("truncated"));
        }
    }

    @Test
    public void jsonParsesWhatPythonWrites() {
        Map<String, Object> doc = Json.parseObject(
                "{\"a\": [1, 2.5, -3e-2, true, null], \"s\": \"x\\\"\\u00e9\\n\", \"o\": {}, \"big\": 12345678901234}");
        List<Object> a = Json.list(doc, "a");
        assertEquals(1L, a.get(0));
        assertEquals(2.5, a.get(1));
        assertEquals(-0.03, (Double) a.get(2), 0);
        assertEquals(Boolean.TRUE, a.get(3));
        assertEquals(null, a.get(4));
        assertEquals("x\"\u00e9\n", doc.get("s"));
        assertEquals(12345678901234L, doc.get("big"));
        String written = Json.write(doc);
        assertEquals(doc.toString(), Json.parseObject(written).toString());
        assertArrayEquals(new int[] {1, 2}, Json.ints(Json.parseObject("{\"hw\": [1, 2]}"), "hw"));
    }

    @Test
    public void jsonErrorsNameTheProblem() {
        for (String bad : Arrays.asList("{\"a\": }", "[1, 2", "{\"a\": 1} x", "{'a': 1}")) {
            try {
                Json.parse(bad);
                fail("accepted " + bad);
            } catch (IllegalArgumentException expected) {
                assertTrue(expected.getMessage(), expected.getMessage().startsWith("JSON: "));
            }
        }
    }
}
