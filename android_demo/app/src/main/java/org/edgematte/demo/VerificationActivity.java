package org.edgematte.demo;

import java.io.File;
import java.io.IOException;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import android.app.Activity;
import android.content.Intent;
import android.os.Build;
import android.os.Bundle;
import android.util.Log;
import android.widget.TextView;

import org.edgematte.core.GoldenWriter;
import org.edgematte.core.InferenceModel;
import org.edgematte.core.Json;
import org.edgematte.core.Manifest;
import org.edgematte.core.MattingPipeline;
import org.edgematte.core.Profile;
import org.edgematte.core.Profiles;
import org.edgematte.core.Verification;
import org.edgematte.demo.engine.Accelerator;
import org.edgematte.demo.engine.BitmapImages;
import org.edgematte.demo.engine.ModelRepository;

/**
 * Verification mode, started from the host (README.md has the exact commands):
 *
 * <pre>
 * adb shell am start -n org.edgematte.demo/.VerificationActivity \
 *     --es input  /sdcard/Android/data/org.edgematte.demo/files/verify/in \
 *     --es output /sdcard/Android/data/org.edgematte.demo/files/verify/out \
 *     [--es models DIR] [--es model ARTEFACT] [--es accelerator cpu|gpu] [--ei threads 4] \
 *     [--es profile android] [--ei warmup 1] [--ei repeats 5] [--ez sequence true]
 * </pre>
 *
 * Every image of {@code input} (.npy uint8 HxWx3/HxWx4, or .png/.jpg/.webp) goes through the pipeline: each a
 * recurrent model's first frame, or with {@code sequence} true the frames of one clip in name order (named
 * {@code NNN_...} from 000, as {@code edgematte device verify --sequence} pushes them), the model's states carried
 * from frame to frame ({@link Verification});
 * {@code output} receives the golden-vector format (index.json, per image pre_tensor, model_output,
 * post_alpha, alpha8, composite_colour, timings_ms) and then {@code DONE}, or {@code FAILED} with the error.
 */
public class VerificationActivity extends Activity {

    private static final String TAG = "edgematte-verify";

    private TextView status;

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        setContentView(R.layout.activity_verification);
        status = (TextView) findViewById(R.id.verification_status);
        final Intent intent = getIntent();
        new Thread(() -> runVerification(intent), "edgematte-verify").start();
    }

    private void show(final String text) {
        Log.i(TAG, text);
        runOnUiThread(() -> status.setText(text));
    }

    /** Under the app's own storage: the only place scoped storage lets both adb and the app read and write. */
    private File ownFolder(Intent intent, String extra) throws IOException {
        String path = intent.getStringExtra(extra);
        if (path == null) {
            throw new IOException("missing extra: --es " + extra + " <folder>");
        }
        File folder = new File(path).getCanonicalFile();
        File external = getExternalFilesDir(null);
        List<File> roots = Arrays.asList(getFilesDir().getCanonicalFile(),
                external == null ? getFilesDir().getCanonicalFile() : external.getCanonicalFile());
        for (File root : roots) {
            if (folder.getPath().startsWith(root.getPath())) {
                return folder;
            }
        }
        throw new IOException(extra + " " + path + " is outside the app's storage; use a folder under " + roots.get(1));
    }

    private void runVerification(Intent intent) {
        File out = null;
        try {
            out = ownFolder(intent, "output");
            if (!out.isDirectory() && !out.mkdirs()) {
                throw new IOException(out + ": cannot create the output folder");
            }
            // Before anything slow, so the host never mistakes an earlier run's DONE for this one's.
            GoldenWriter.clearMarkers(out);
            File in = ownFolder(intent, "input");
            ModelRepository repository = new ModelRepository(this);
            String modelsExtra = intent.getStringExtra("models");
            ModelRepository.Source source = modelsExtra != null
                    ? ModelRepository.fromFolder(ownFolder(intent, "models")) : repository.find();
            if (source == null) {
                throw new IOException("no models: push a converter output folder to " + repository.pushedDir()
                        + " or bundle one (README.md)");
            }
            String modelExtra = intent.getStringExtra("model");
            Manifest.Artefact artefact;
            if (modelExtra != null) {
                artefact = source.manifest.find(modelExtra);
            } else {
                List<Manifest.Artefact> usable = source.manifest.androidArtefacts();
                if (usable.isEmpty()) {
                    throw new IOException(source.origin() + ": the manifest lists no .tflite or ARM .nb artefact");
                }
                artefact = usable.get(0);
            }
            String acceleratorExtra = intent.getStringExtra("accelerator");
            Accelerator accelerator = Accelerator.fromKey(acceleratorExtra == null ? "cpu" : acceleratorExtra);
            int threads = intent.getIntExtra("threads", 4);
            String profileExtra = intent.getStringExtra("profile");
            Profile profile = Profiles.forManifest(source.manifest, profileExtra != null ? profileExtra : artefact.profile);
            Verification.Options options = new Verification.Options();
            options.warmup = intent.getIntExtra("warmup", options.warmup);
            options.repeats = intent.getIntExtra("repeats", options.repeats);
            options.sequence = intent.getBooleanExtra("sequence", options.sequence);

            show("loading " + artefact.label() + " from " + source.origin());
            Map<String, Object> facts = new LinkedHashMap<>();
            facts.put("device", deviceFacts());
            facts.put("artefact", artefact.path);
            facts.put("models", source.origin());
            try (InferenceModel model = repository.open(source, artefact, accelerator, threads)) {
                show("running " + artefact.label() + " on " + in + (options.sequence ? " (one clip)" : ""));
                Map<String, Object> summary = Verification.run(new BitmapImages.FolderSource(in),
                        MattingPipeline.forArtefact(profile, model, source.manifest, artefact), out, options, facts);
                show("DONE\n" + Json.write(summary) + "\n" + out);
            }
        } catch (Exception | OutOfMemoryError e) {
            String message = e.getClass().getSimpleName() + ": " + e.getMessage();
            Log.e(TAG, message, e);
            show("FAILED\n" + message);
            if (out != null && !new File(out, GoldenWriter.FAILED_MARKER).exists()) {
                try {
                    if (out.isDirectory() || out.mkdirs()) {
                        GoldenWriter.clearMarkers(out);
                        GoldenWriter.markFailed(out, message);
                    }
                } catch (IOException | RuntimeException markerError) {
                    Log.e(TAG, "cannot write the FAILED marker", markerError);
                }
            }
        }
    }

    private static Map<String, Object> deviceFacts() {
        Map<String, Object> device = new LinkedHashMap<>();
        device.put("manufacturer", Build.MANUFACTURER);
        device.put("model", Build.MODEL);
        device.put("sdk_int", Build.VERSION.SDK_INT);
        device.put("abis", Arrays.asList((Object[]) Build.SUPPORTED_ABIS));
        device.put("cores", Runtime.getRuntime().availableProcessors());
        device.put("paddle_lite_bundled", ModelRepository.paddleLiteBundled());
        return device;
    }
}
