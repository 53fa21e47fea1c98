package org.edgematte.demo.engine;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.util.List;

import android.content.ContentResolver;
import android.database.Cursor;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.graphics.Matrix;
import android.media.ExifInterface;
import android.net.Uri;
import android.provider.MediaStore;

import org.edgematte.core.NdArray;
import org.edgematte.core.Npy;
import org.edgematte.core.Pixels;
import org.edgematte.core.Size;
import org.edgematte.core.Verification;

/**
 * Photos in and out of the core's ARGB {@code int[]}. Decoding follows the Python runtime's reader: JPEG
 * EXIF orientation applied, PNG/WebP alpha kept unpremultiplied (the profiles ignore it), other formats'
 * orientation ignored.
 */
public final class BitmapImages {

    private BitmapImages() {
    }

    /** A decoded photo: ARGB pixels (0xAARRGGBB, not premultiplied) and its size. */
    public static final class Decoded {
        public final int[] argb;
        public final Size size;

        Decoded(int[] argb, Size size) {
            this.argb = argb;
            this.size = size;
        }
    }

    public static Decoded pixelsOf(Bitmap bitmap) {
        int w = bitmap.getWidth();
        int h = bitmap.getHeight();
        int[] argb = new int[w * h];
        bitmap.getPixels(argb, 0, w, 0, 0, w, h);
        return new Decoded(argb, new Size(h, w));
    }

    public static Bitmap bitmapOf(int[] argb, Size size) {
        return Bitmap.createBitmap(argb, size.width, size.height, Bitmap.Config.ARGB_8888);
    }

    /** uint8 H x W x 3 RGB as an opaque bitmap. */
    public static Bitmap bitmapOfRgb(byte[] rgb, Size size) {
        return bitmapOf(Pixels.argbFromRgb(rgb, null), size);
    }

    private static Bitmap rotate(Bitmap bitmap, int degrees) {
        if (degrees == 0) {
            return bitmap;
        }
        Matrix matrix = new Matrix();
        matrix.postRotate(degrees);
        return Bitmap.createBitmap(bitmap, 0, 0, bitmap.getWidth(), bitmap.getHeight(), matrix, true);
    }

    private static int exifDegrees(int orientation) {
        switch (orientation) {
            case ExifInterface.ORIENTATION_ROTATE_90:
                return 90;
            case ExifInterface.ORIENTATION_ROTATE_180:
                return 180;
            case ExifInterface.ORIENTATION_ROTATE_270:
                return 270;
            default:
                return 0;
        }
    }

    private static BitmapFactory.Options options(int sampleSize) {
        BitmapFactory.Options options = new BitmapFactory.Options();
        options.inPreferredConfig = Bitmap.Config.ARGB_8888;
        // Keeps the exact RGB of semi-transparent pixels (premultiplied storage would round them).
        options.inPremultiplied = false;
        options.inSampleSize = sampleSize;
        return options;
    }

    /**
     * A file, full size, for the verification mode: JPEG orientation applied from its EXIF tag (JPEGs have
     * no alpha, so they decode premultiplied, which rotation needs).
     */
    public static Decoded decodeFile(File file) throws IOException {
        String name = file.getName().toLowerCase();
        boolean jpeg = name.endsWith(".jpg") || name.endsWith(".jpeg");
        BitmapFactory.Options options = options(1);
        options.inPremultiplied = jpeg;
        Bitmap bitmap = BitmapFactory.decodeFile(file.getPath(), options);
        if (bitmap == null) {
            throw new IOException(file + ": not a decodable image");
        }
        if (jpeg) {
            int orientation = new ExifInterface(file.getPath()).getAttributeInt(ExifInterface.TAG_ORIENTATION,
                    ExifInterface.ORIENTATION_NORMAL);
            bitmap = rotate(bitmap, exifDegrees(orientation));
        }
        return pixelsOf(bitmap);
    }

    /**
     * A gallery or camera photo for the interactive screen, shrunk by a power of two until it has at most
     * {@code maxPixels} pixels (the whole pipeline holds about 25 bytes per pixel).
     */
    public static Decoded decodeUri(ContentResolver resolver, Uri uri, int maxPixels) throws IOException {
        BitmapFactory.Options bounds = new BitmapFactory.Options();
        bounds.inJustDecodeBounds = true;
        try (InputStream in = resolver.openInputStream(uri)) {
            BitmapFactory.decodeStream(in, null, bounds);
        }
        if (bounds.outWidth <= 0 || bounds.outHeight <= 0) {
            throw new IOException(uri + ": not a decodable image");
        }
        int sample = 1;
        while ((long) (bounds.outWidth / sample) * (bounds.outHeight / sample) > maxPixels) {
            sample *= 2;
        }
        boolean jpeg = "image/jpeg".equals(bounds.outMimeType);
        BitmapFactory.Options options = options(sample);
        options.inPremultiplied = jpeg;
        Bitmap bitmap;
        try (InputStream in = resolver.openInputStream(uri)) {
            bitmap = BitmapFactory.decodeStream(in, null, options);
        }
        if (bitmap == null) {
            throw new IOException(uri + ": not a decodable image");
        }
        if (jpeg) {
            bitmap = rotate(bitmap, orientationOf(resolver, uri));
        }
        return pixelsOf(bitmap);
    }

    /** Degrees from MediaStore's orientation column (gallery), or from the EXIF tag of a file:// photo. */
    private static int orientationOf(ContentResolver resolver, Uri uri) throws IOException {
        if ("file".equals(uri.getScheme())) {
            return exifDegrees(new ExifInterface(uri.getPath()).getAttributeInt(ExifInterface.TAG_ORIENTATION,
                    ExifInterface.ORIENTATION_NORMAL));
        }
        String[] columns = {MediaStore.Images.ImageColumns.ORIENTATION};
        try (Cursor cursor = resolver.query(uri, columns, null, null, null)) {
            if (cursor != null && cursor.moveToFirst() && !cursor.isNull(0)) {
                return cursor.getInt(0);
            }
        } catch (IllegalArgumentException | SecurityException noSuchColumn) {
            // Providers other than MediaStore may not have the column: no rotation known.
        }
        return 0;
    }

    /** The verification mode's input folder: .npy (uint8 HxWx3/HxWx4, exact) or .png/.jpg/.jpeg/.webp files. */
    public static final class FolderSource implements Verification.ImageSource {
        private static final String[] EXTENSIONS = {"npy", "png", "jpg", "jpeg", "webp"};
        private final File dir;

        public FolderSource(File dir) {
            this.dir = dir;
        }

        @Override
        public List<String> names() throws IOException {
            return Verification.namesWithExtensions(dir, EXTENSIONS);
        }

        @Override
        public Verification.LoadedImage load(String name) throws IOException {
            long start = System.nanoTime();
            for (String extension : EXTENSIONS) {
                File file = new File(dir, name + "." + extension);
                if (!file.isFile()) {
                    continue;
                }
                Decoded decoded;
                if (extension.equals("npy")) {
                    NdArray array = Npy.read(file);
                    decoded = new Decoded(Pixels.argbFromArray(array), new Size(array.shape[0], array.shape[1]));
                } else {
                    decoded = decodeFile(file);
                }
                return new Verification.LoadedImage(decoded.argb, decoded.size, (System.nanoTime() - start) / 1e6);
            }
            throw new IOException(dir + ": no image named " + name);
        }
    }
}
