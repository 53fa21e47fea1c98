package org.edgematte.core;

import java.io.File;
import java.io.FileInputStream;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.regex.Pattern;

/**
 * sha256 of files, and the check that a file is the one the conversion wrote: the twin of
 * {@code edgematte/core/manifest.py}'s {@code _verified}, with the same one-line messages. java.io only
 * (java.nio.file is absent below Android API 26); files are streamed through a bounded buffer.
 */
public final class FileDigest {

    private static final Pattern SHA256 = Pattern.compile("^[0-9a-f]{64}$");
    private static final int BUFFER = 1 << 16;
    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private FileDigest() {
    }

    /** Whether {@code digest} is a sha256 as the manifest writes it: 64 lower-case hex digits. */
    public static boolean isSha256(String digest) {
        return digest != null && SHA256.matcher(digest).matches();
    }

    /** Lower-case hex sha256 of the bytes of {@code in} (read to its end, not closed). */
    public static String sha256(InputStream in) throws IOException {
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("this Java has no SHA-256", e);  // every Java and Android has it
        }
        byte[] buffer = new byte[BUFFER];
        for (int n; (n = in.read(buffer)) != -1; ) {
            digest.update(buffer, 0, n);
        }
        StringBuilder hex = new StringBuilder(64);
        for (byte b : digest.digest()) {
            hex.append(HEX[(b >> 4) & 0xf]).append(HEX[b & 0xf]);
        }
        return hex.toString();
    }

    /** Lower-case hex sha256 of a file's bytes. */
    public static String sha256(File file) throws IOException {
        try (InputStream in = new FileInputStream(file)) {
            return sha256(in);
        }
    }

    /**
     * {@code file} when it is a regular file whose sha256 is {@code expected}; otherwise an IOException with
     * one line naming it (no digest recorded, missing, not a regular file, or changed since conversion).
     * {@code what} names the file's role in the messages ("artefact").
     */
    public static File verify(File file, String expected, String what) throws IOException {
        if (!isSha256(expected)) {
            throw new IOException(file + ": the manifest records no sha256 for this " + what
                    + ", so it cannot be trusted");
        }
        if (!file.exists()) {
            throw new FileNotFoundException(file + ": " + what + " listed in the manifest is missing");
        }
        if (!file.isFile()) {
            throw new IOException(file + ": " + what + " listed in the manifest is not a regular file");
        }
        if (!sha256(file).equals(expected)) {
            throw new IOException(file + ": changed since conversion (its sha256 differs from the manifest's); "
                    + "restore it or convert again");
        }
        return file;
    }
}
