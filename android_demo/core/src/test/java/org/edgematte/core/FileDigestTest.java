package org.edgematte.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.security.MessageDigest;
import java.util.Random;

import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

public class FileDigestTest {

    @Rule
    public TemporaryFolder temp = new TemporaryFolder();

    @Test
    public void knownDigests() throws IOException {
        // FIPS 180-2 test vectors
        assertEquals("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                FileDigest.sha256(new ByteArrayInputStream(new byte[0])));
        assertEquals("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                FileDigest.sha256(new ByteArrayInputStream("abc".getBytes("US-ASCII"))));
    }

    @Test
    public void aFileLargerThanTheBufferIsHashedWhole() throws Exception {
        byte[] bytes = new byte[(1 << 18) + 12345];
        new Random(7).nextBytes(bytes);
        File file = temp.newFile("big.bin");
        Files.write(file.toPath(), bytes);
        StringBuilder expected = new StringBuilder();
        for (byte b : MessageDigest.getInstance("SHA-256").digest(bytes)) {
            expected.append(String.format("%02x", b & 0xff));
        }
        assertEquals(expected.toString(), FileDigest.sha256(file));
        assertEquals(file, FileDigest.verify(file, expected.toString(), "artefact"));
        bytes[bytes.length - 1] ^= 1;  // the last byte, past the first buffers
        Files.write(file.toPath(), bytes);
        try {
            FileDigest.verify(file, expected.toString(), "artefact");
            throw new AssertionError("verify() accepted a file whose last byte changed");
        } catch (IOException e) {
            assertEquals(file + ": changed since conversion (its sha256 differs from the manifest's); "
                    + "restore it or convert again", e.getMessage());
        }
    }

    @Test
    public void onlyLowerCaseHexOf64DigitsIsADigest() {
        assertTrue(FileDigest.isSha256("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
        assertFalse(FileDigest.isSha256("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"));
        assertFalse(FileDigest.isSha256("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85"));
        assertFalse(FileDigest.isSha256("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"));
        assertFalse(FileDigest.isSha256(""));
        assertFalse(FileDigest.isSha256(null));
    }
}
