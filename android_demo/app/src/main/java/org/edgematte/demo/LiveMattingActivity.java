package org.edgematte.demo;

import java.io.IOException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import android.content.Intent;
import android.graphics.Bitmap;
import android.os.Bundle;
import android.util.Log;
import android.widget.CheckBox;
import android.widget.ImageView;
import android.widget.TextView;
import android.widget.Toast;

import androidx.activity.ComponentActivity;
import androidx.camera.core.CameraSelector;
import androidx.camera.core.ImageAnalysis;
import androidx.camera.core.ImageProxy;
import androidx.camera.lifecycle.ProcessCameraProvider;
import androidx.core.content.ContextCompat;

import com.google.common.util.concurrent.ListenableFuture;

import org.edgematte.core.Background;
import org.edgematte.core.LiveStats;
import org.edgematte.core.MattingPipeline;
import org.edgematte.core.Pixels;
import org.edgematte.core.Size;
import org.edgematte.demo.engine.Accelerator;
import org.edgematte.demo.engine.BitmapImages;
import org.edgematte.demo.engine.ModelRepository;

/**
 * Live matting of the camera: CameraX {@link ImageAnalysis} frames go through one {@link MattingPipeline} on
 * the analysis thread, a recurrent model (RVM) carrying its states from frame to frame, and the composite over
 * green (or the alpha matte) is drawn with {@link LiveStats}' line: frames/s and the median stage times.
 * A frame sequence is one clip until the camera (re)starts, the model changes or the frame size changes; then
 * the states go back to zero ({@link MattingPipeline#reset()}) and the figures start over.
 * Needs androidx (CameraX), so it is compiled in Android Studio only, like CameraActivity (README.md).
 */
public class LiveMattingActivity extends ComponentActivity {

    private static final String TAG = "edgematte-live";
    private static final int THREADS = 4;
    private static final Background GREEN = Background.colour(24, 160, 88);

    /**
     * Loads the model and analyses every frame. One thread for both: the model is not thread-safe, the
     * pipeline's states belong to one clip, and LiteRT's GPU delegate must run on the thread that created it.
     */
    private final ExecutorService analysis = Executors.newSingleThreadExecutor();

    private ImageView frameView;
    private TextView statsText;
    private ImageAnalysis imageAnalysis;
    /** Read on the analysis thread: with the matte shown the composite is not computed at all. */
    private volatile boolean showMatte;
    /** Counts camera starts (UI thread); the analysis thread starts a new clip when it sees a new count. */
    private volatile int cameraStarts;

    // Touched only on the analysis thread.
    private ModelRepository.Loaded loaded;
    private String label = "";
    private final LiveStats stats = new LiveStats();
    private Size frameSize;
    private int clipOfCameraStart = -1;
    /** Frames of the current clip: how many the states have been carried through. */
    private long clipFrames;
    private boolean failed;

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        setContentView(R.layout.activity_live);
        frameView = findViewById(R.id.live_frame);
        statsText = findViewById(R.id.live_stats);
        CheckBox matteCheckbox = findViewById(R.id.live_matte_checkbox);
        matteCheckbox.setOnCheckedChangeListener((button, checked) -> showMatte = checked);
        Intent intent = getIntent();
        String artefactPath = intent.getStringExtra(LiveMatting.EXTRA_ARTEFACT);
        String acceleratorKey = intent.getStringExtra(LiveMatting.EXTRA_ACCELERATOR);
        statsText.setText("loading " + artefactPath + "…");
        // Queued before the first frame can be: analyze() finds the model loaded or its loading failed.
        analysis.execute(() -> loadModel(artefactPath, acceleratorKey == null ? "cpu" : acceleratorKey));
        CameraPermission.startOrAsk(this, this::startCamera);
    }

    @Override
    protected void onStart() {
        super.onStart();
        // CameraX stops the camera in onStop and starts it again here (bindToLifecycle): frames after a gap
        // are not the same clip, so the states must not carry over it.
        cameraStarts++;
    }

    @Override
    protected void onDestroy() {
        if (imageAnalysis != null) {
            imageAnalysis.clearAnalyzer();  // no frame is queued behind the close below
        }
        analysis.execute(this::closeModel);
        analysis.shutdown();
        super.onDestroy();
    }

    @Override
    public void onRequestPermissionsResult(int requestCode, String[] permissions, int[] grantResults) {
        super.onRequestPermissionsResult(requestCode, permissions, grantResults);
        CameraPermission.onAnswer(this, requestCode, grantResults, this::startCamera);
    }

    private void startCamera() {
        ListenableFuture<ProcessCameraProvider> future = ProcessCameraProvider.getInstance(this);
        future.addListener(() -> {
            try {
                ProcessCameraProvider provider = future.get();
                // KEEP_ONLY_LATEST: the model is slower than the camera; a stale frame would only add latency.
                // RGBA_8888 rotated upright by CameraX: toBitmap() then needs no YUV conversion or rotation.
                // No resolution set: ImageAnalysis defaults to 640x480, plenty for a model input of 512 or less.
                imageAnalysis = new ImageAnalysis.Builder()
                        .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                        .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                        .setOutputImageRotationEnabled(true)
                        .build();
                imageAnalysis.setAnalyzer(analysis, this::analyze);
                provider.unbindAll();
                provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, imageAnalysis);
            } catch (ExecutionException | InterruptedException | IllegalArgumentException e) {
                Toast.makeText(this, "camera unavailable: " + e.getMessage(), Toast.LENGTH_LONG).show();
                finish();
            }
        }, ContextCompat.getMainExecutor(this));
    }

    // ---------------------------------------------------------------------------------------------
    // Analysis thread

    private void loadModel(String artefactPath, String acceleratorKey) {
        try {
            ModelRepository repository = new ModelRepository(this);
            ModelRepository.Source source = repository.find();
            if (source == null) {
                throw new IOException(getString(R.string.no_models, repository.pushedDir()));
            }
            loaded = repository.load(source, source.manifest.find(artefactPath), Accelerator.fromKey(acceleratorKey),
                    THREADS);
            label = source.manifest.modelName;
            newClip();  // a new model: nothing of the previous clip's states or figures applies
            final String description = loaded.description;
            runOnUiThread(() -> statsText.setText(description + "\n" + getString(R.string.live_waiting)));
        } catch (Exception | UnsatisfiedLinkError e) {
            fail(artefactPath + ": " + e.getMessage(), e);
        }
    }

    private void closeModel() {
        if (loaded != null) {
            try {
                loaded.close();
            } catch (IOException ignored) {
                // Nothing to recover: the screen is going away.
            }
            loaded = null;
        }
    }

    /** A new clip: zero states for a recurrent model, an empty window of figures. */
    private void newClip() {
        if (loaded != null) {
            loaded.pipeline.reset();
        }
        stats.reset();
        clipFrames = 0;
    }

    private void analyze(ImageProxy image) {
        try {
            if (loaded == null || failed) {
                return;  // still loading, or stopped on an error already shown
            }
            long start = System.nanoTime();
            // The photo path's conversion: a bitmap's ARGB int[] is what the pipeline takes (toBitmap() honours
            // the RGBA plane's row stride).
            BitmapImages.Decoded frame = BitmapImages.pixelsOf(image.toBitmap());
            double convertMs = (System.nanoTime() - start) / 1e6;
            int starts = cameraStarts;
            if (starts != clipOfCameraStart || !frame.size.equals(frameSize)) {
                // Camera (re)started, or the frame size changed (rotation, another resolution): the states hold
                // the previous scene at the previous geometry, which would smear into the new one.
                newClip();
                clipOfCameraStart = starts;
                frameSize = frame.size;
            }
            boolean matte = showMatte;
            MattingPipeline.Result result = loaded.pipeline.process(frame.argb, frame.size, matte ? null : GREEN);
            long drawStart = System.nanoTime();
            int[] shown = matte ? Pixels.grayArgb(result.alpha8) : Pixels.argbFromRgb(result.composite, null);
            final Bitmap bitmap = BitmapImages.bitmapOf(shown, frame.size);
            long done = System.nanoTime();
            stats.add(done, result.timer, convertMs, (done - drawStart) / 1e6);
            clipFrames++;
            final String text = loaded.description + "\ncamera " + frame.size + ", clip frame " + clipFrames
                    + (loaded.pipeline.recurrent() ? " (states carried)" : "") + "\n" + stats.line(label);
            runOnUiThread(() -> {
                frameView.setImageBitmap(bitmap);
                statsText.setText(text);
            });
        } catch (Exception | OutOfMemoryError e) {
            fail(e.getClass().getSimpleName() + ": " + e.getMessage(), e);
        } finally {
            image.close();  // CameraX delivers no further frame until this one is closed
        }
    }

    /** Shows the error and stops analysing: at camera rate a failing frame would fail again 30 times a second. */
    private void fail(String message, Throwable error) {
        failed = true;
        Log.e(TAG, message, error);
        runOnUiThread(() -> {
            statsText.setText(message);
            Toast.makeText(this, message, Toast.LENGTH_LONG).show();
        });
    }
}
