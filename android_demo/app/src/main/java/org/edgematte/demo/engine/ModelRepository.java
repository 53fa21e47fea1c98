package org.edgematte.demo.engine;

import java.io.Closeable;
import java.io.File;
import java.io.FileNotFoundException;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.util.Locale;

import android.content.Context;

import org.edgematte.core.InferenceModel;
import org.edgematte.core.Manifest;
import org.edgematte.core.MattingPipeline;
import org.edgematte.core.Profiles;
import org.edgematte.core.TextFiles;

/**
 * Where the converter's output lives on the device, in this order:
 * <ol>
 *   <li>a folder pushed with adb: {@code <external files>/models/manifest.json} + its artefacts
 *       ({@code /sdcard/Android/data/org.edgematte.demo/files/models/});</li>
 *   <li>the APK's {@code assets/models/} (bundled by the Gradle task {@code importModels}); artefacts are
 *       copied once into the app's private files, since Paddle Lite loads from a path.</li>
 * </ol>
 * Nothing is ever downloaded.
 */
public final class ModelRepository {

    public static final String FOLDER = "models";

    private final Context context;

    public ModelRepository(Context context) {
        this.context = context.getApplicationContext();
    }

    /** A manifest and the folder its artefact paths are relative to (null: the APK's assets). */
    public static final class Source {
        public final Manifest manifest;
        public final File dir;

        Source(Manifest manifest, File dir) {
            this.manifest = manifest;
            this.dir = dir;
        }

        public String origin() {
            return dir == null ? "assets/" + FOLDER : dir.getPath();
        }
    }

    /** The folder adb pushes models into. */
    public File pushedDir() {
        File external = context.getExternalFilesDir(null);
        return new File(external != null ? external : context.getFilesDir(), FOLDER);
    }

    /** The pushed folder if it holds a manifest, else the bundled assets, else null. */
    public Source find() throws IOException {
        File pushed = new File(pushedDir(), Manifest.FILE_NAME);
        if (pushed.isFile()) {
            return new Source(Manifest.read(pushed), pushedDir());
        }
        try (InputStream in = context.getAssets().open(FOLDER + "/" + Manifest.FILE_NAME)) {
            try {
                return new Source(Manifest.parse(TextFiles.read(in)), null);
            } catch (IllegalArgumentException e) {
                throw new IOException("assets/" + FOLDER + "/" + Manifest.FILE_NAME + ": " + e.getMessage(), e);
            }
        } catch (FileNotFoundException e) {
            return null;
        }
    }

    /** A converter output folder given explicitly (verification mode). */
    public static Source fromFolder(File dir) throws IOException {
        return new Source(Manifest.read(new File(dir, Manifest.FILE_NAME)), dir);
    }

    /**
     * The artefact as a local file (copied out of the APK when bundled), inside its folder (no symbolic link
     * out of it) and with the manifest's sha256: an IOException naming the file otherwise.
     */
    public File fileFor(Source source, Manifest.Artefact artefact) throws IOException {
        if (source.dir != null) {
            File file = artefact.fileIn(source.dir);
            if (!file.isFile()) {
                throw new FileNotFoundException(file + ": listed in the manifest but not pushed");
            }
            return artefact.verify(file);
        }
        File target = artefact.fileIn(new File(context.getFilesDir(), FOLDER));
        if (target.isFile()) {
            try {
                return artefact.verify(target);
            } catch (IOException stale) {
                // a copy from an earlier APK (or a damaged one): copy the bundled asset again
            }
        }
        File parent = target.getParentFile();
        if (!parent.isDirectory() && !parent.mkdirs()) {
            throw new IOException(parent + ": cannot create folder");
        }
        File partial = new File(parent, target.getName() + ".partial");
        try (InputStream in = context.getAssets().open(FOLDER + "/" + artefact.path);
             OutputStream out = new FileOutputStream(partial)) {
            byte[] buffer = new byte[1 << 16];
            for (int n; (n = in.read(buffer)) > 0; ) {
                out.write(buffer, 0, n);
            }
        }
        if (!partial.renameTo(target)) {
            throw new IOException(target + ": cannot move the copied model into place");
        }
        return artefact.verify(target);
    }

    /** Loads {@code artefact}: .tflite with LiteRT on {@code accelerator}, .nb with Paddle Lite. */
    public InferenceModel open(Source source, Manifest.Artefact artefact, Accelerator accelerator, int threads)
            throws IOException {
        File file = fileFor(source, artefact);
        if (artefact.format.equals("tflite")) {
            return new LiteRtModel(file, threads, accelerator);
        }
        if (artefact.format.equals("nb")) {
            return PaddleLiteSupport.open(file, artefact.input, artefact.output, threads);
        }
        throw new IOException(artefact.path + ": format " + artefact.format + " does not run on Android");
    }

    /**
     * An artefact loaded for the interactive screens: the model and the one pipeline that feeds it by the
     * manifest's roles (a recurrent model's states live in it). Confined to the thread that loaded it, as the
     * model is not thread-safe; closing it closes the model.
     */
    public static final class Loaded implements Closeable {
        public final Manifest.Artefact artefact;
        public final InferenceModel model;
        public final MattingPipeline pipeline;
        /** The artefact's label, then "profile android, cpu, 4 threads, loaded in 120 ms". */
        public final String description;

        Loaded(Manifest.Artefact artefact, InferenceModel model, MattingPipeline pipeline, String description) {
            this.artefact = artefact;
            this.model = model;
            this.pipeline = pipeline;
            this.description = description;
        }

        @Override
        public void close() throws IOException {
            model.close();
        }
    }

    /**
     * {@link #open} plus the pipeline, as the photo screen and the live camera screen both need them: the
     * artefact's own profile when the app knows it, else "android". A new pipeline starts from zero states.
     */
    public Loaded load(Source source, Manifest.Artefact artefact, Accelerator accelerator, int threads)
            throws IOException {
        long start = System.nanoTime();
        InferenceModel model = open(source, artefact, accelerator, threads);
        try {
            String profile = Profiles.NAMES.contains(artefact.profile) ? artefact.profile : "android";
            MattingPipeline pipeline = MattingPipeline.forArtefact(Profiles.forManifest(source.manifest, profile),
                    model, source.manifest, artefact);
            String description = String.format(Locale.ROOT, "%s\nprofile %s, %s, %d threads, loaded in %.0f ms",
                    artefact.label(), profile, accelerator.key, threads, (System.nanoTime() - start) / 1e6);
            return new Loaded(artefact, model, pipeline, description);
        } catch (RuntimeException e) {
            // A manifest the pipeline refuses (roles, integer I/O of a multi-input model): free the model.
            model.close();
            throw e;
        }
    }

    public static boolean paddleLiteBundled() {
        return PaddleLiteSupport.AVAILABLE;
    }
}
