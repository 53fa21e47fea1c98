package org.edgematte.demo;

import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import android.Manifest.permission;
import android.app.Activity;
import android.content.ContentValues;
import android.content.Intent;
import android.content.pm.PackageManager;
import android.graphics.Bitmap;
import android.net.Uri;
import android.os.Build;
import android.os.Bundle;
import android.provider.MediaStore;
import android.view.View;
import android.widget.AdapterView;
import android.widget.ArrayAdapter;
import android.widget.Button;
import android.widget.CheckBox;
import android.widget.ImageView;
import android.widget.Spinner;
import android.widget.TextView;
import android.widget.Toast;

import org.edgematte.core.Background;
import org.edgematte.core.Manifest;
import org.edgematte.core.MattingPipeline;
import org.edgematte.core.Pixels;
import org.edgematte.core.Size;
import org.edgematte.demo.engine.Accelerator;
import org.edgematte.demo.engine.BitmapImages;
import org.edgematte.demo.engine.ModelRepository;

/**
 * The interactive screen: pick or take a photo, choose a model (from the converter's manifest), an
 * accelerator and a background, see the composite (or the matte) with per-stage timings, save or share it.
 * All model work runs on one worker thread; models are not thread-safe.
 */
public class MainActivity extends Activity {

    private static final int REQUEST_PHOTO = 1;
    private static final int REQUEST_CAMERA = 2;
    private static final int REQUEST_BACKGROUND_IMAGE = 3;
    private static final int REQUEST_WRITE_PERMISSION = 4;
    /** Interactive photos are shrunk to at most this many pixels (the pipeline holds ~25 bytes per pixel). */
    private static final int MAX_PIXELS = 4_000_000;
    private static final int THREADS = 4;

    /** Background menu entries, in spinner order. */
    private static final String[] BACKGROUNDS = {
        "Green (24, 160, 88)", "White", "Black", "Blurred photo", "Transparent (PNG cutout)", "Image from gallery…"};

    private final ExecutorService worker = Executors.newSingleThreadExecutor();

    private Spinner modelSpinner;
    private Spinner acceleratorSpinner;
    private Spinner backgroundSpinner;
    private CheckBox matteCheckbox;
    private ImageView resultImage;
    private TextView timingsText;

    private ModelRepository repository;
    private ModelRepository.Source source;
    private final List<Manifest.Artefact> artefacts = new ArrayList<>();
    // Touched only on the worker thread.
    private ModelRepository.Loaded loaded;
    private MattingPipeline pipeline;
    private String modelLabel = "";
    // Touched only on the UI thread.
    private BitmapImages.Decoded photo;
    private double photoDecodeMs;
    private Background backgroundImage;
    private Bitmap composite;
    private Bitmap matte;
    private Uri savedUri;

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        setContentView(R.layout.activity_main);
        modelSpinner = (Spinner) findViewById(R.id.model_spinner);
        acceleratorSpinner = (Spinner) findViewById(R.id.accelerator_spinner);
        backgroundSpinner = (Spinner) findViewById(R.id.background_spinner);
        matteCheckbox = (CheckBox) findViewById(R.id.matte_checkbox);
        resultImage = (ImageView) findViewById(R.id.result_image);
        timingsText = (TextView) findViewById(R.id.timings_text);
        repository = new ModelRepository(this);

        acceleratorSpinner.setAdapter(adapter(new String[] {"CPU (XNNPACK)", "GPU delegate (LiteRT)"}));
        backgroundSpinner.setAdapter(adapter(BACKGROUNDS));
        AdapterView.OnItemSelectedListener reload = new SelectionListener(this::loadSelectedModel);
        modelSpinner.setOnItemSelectedListener(reload);
        acceleratorSpinner.setOnItemSelectedListener(reload);
        backgroundSpinner.setOnItemSelectedListener(new SelectionListener(() -> {
            if (backgroundSpinner.getSelectedItemPosition() == BACKGROUNDS.length - 1 && backgroundImage == null) {
                pickImage(REQUEST_BACKGROUND_IMAGE);
            } else {
                process();
            }
        }));
        matteCheckbox.setOnCheckedChangeListener((button, checked) -> showResult());
        ((Button) findViewById(R.id.gallery_button)).setOnClickListener(v -> pickImage(REQUEST_PHOTO));
        ((Button) findViewById(R.id.camera_button)).setOnClickListener(
                v -> startActivityForResult(CameraCapture.intent(this), REQUEST_CAMERA));
        ((Button) findViewById(R.id.live_button)).setOnClickListener(v -> openLive());
        ((Button) findViewById(R.id.save_button)).setOnClickListener(v -> save(false));
        ((Button) findViewById(R.id.share_button)).setOnClickListener(v -> save(true));
        findModels();
    }

    @Override
    protected void onDestroy() {
        worker.execute(this::closeModel);
        worker.shutdown();
        super.onDestroy();
    }

    private ArrayAdapter<String> adapter(String[] items) {
        ArrayAdapter<String> adapter = new ArrayAdapter<>(this, android.R.layout.simple_spinner_item, items);
        adapter.setDropDownViewResource(android.R.layout.simple_spinner_dropdown_item);
        return adapter;
    }

    /** Calls {@code action} when the user picks an entry. */
    private static final class SelectionListener implements AdapterView.OnItemSelectedListener {
        private final Runnable action;

        SelectionListener(Runnable action) {
            this.action = action;
        }

        @Override
        public void onItemSelected(AdapterView<?> parent, View view, int position, long id) {
            action.run();
        }

        @Override
        public void onNothingSelected(AdapterView<?> parent) {
        }
    }

    private void toast(String text) {
        runOnUiThread(() -> Toast.makeText(this, text, Toast.LENGTH_LONG).show());
    }

    // ---------------------------------------------------------------------------------------------
    // Models

    private void findModels() {
        worker.execute(() -> {
            try {
                ModelRepository.Source found = repository.find();
                runOnUiThread(() -> showModels(found));
            } catch (IOException e) {
                toast(e.getMessage());
            }
        });
    }

    private void showModels(ModelRepository.Source found) {
        source = found;
        artefacts.clear();
        if (found == null) {
            timingsText.setText(getString(R.string.no_models, repository.pushedDir()));
            return;
        }
        artefacts.addAll(found.manifest.androidArtefacts());
        List<String> labels = new ArrayList<>();
        for (Manifest.Artefact artefact : artefacts) {
            labels.add(artefact.label());
        }
        modelSpinner.setAdapter(adapter(labels.toArray(new String[0])));
        timingsText.setText(found.manifest.modelName + ": " + artefacts.size() + " models from " + found.origin());
    }

    private void loadSelectedModel() {
        int index = modelSpinner.getSelectedItemPosition();
        if (source == null || index < 0 || index >= artefacts.size()) {
            return;
        }
        final Manifest.Artefact artefact = artefacts.get(index);
        final Accelerator accelerator = selectedAccelerator();
        final ModelRepository.Source from = source;
        timingsText.setText("loading " + artefact.label() + "…");
        worker.execute(() -> {
            closeModel();
            try {
                // Fed by the manifest's roles: a new model starts with its own (zero) states.
                loaded = repository.load(from, artefact, accelerator, THREADS);
                pipeline = loaded.pipeline;
                modelLabel = loaded.description;
                runOnUiThread(() -> {
                    timingsText.setText(modelLabel);
                    process();
                });
            } catch (Exception | UnsatisfiedLinkError e) {
                toast(artefact.path + ": " + e.getMessage());
            }
        });
    }

    private void closeModel() {
        if (loaded != null) {
            try {
                loaded.close();
            } catch (IOException ignored) {
                // Nothing to recover: the model is being replaced.
            }
            loaded = null;
            pipeline = null;
        }
    }

    /**
     * The live camera screen with the chosen model and accelerator. It loads its own copy: its pipeline carries
     * a clip's states on the camera's analysis thread, which must not share a model with this screen's worker.
     */
    private void openLive() {
        int index = modelSpinner.getSelectedItemPosition();
        if (source == null || index < 0 || index >= artefacts.size()) {
            toast(getString(R.string.choose_model_first));
            return;
        }
        startActivity(LiveMatting.intent(this, artefacts.get(index).path, selectedAccelerator()));
    }

    private Accelerator selectedAccelerator() {
        return acceleratorSpinner.getSelectedItemPosition() == 1 ? Accelerator.GPU : Accelerator.CPU;
    }

    // ---------------------------------------------------------------------------------------------
    // Photos and processing

    private void pickImage(int requestCode) {
        Intent intent = new Intent(Intent.ACTION_GET_CONTENT);
        intent.setType("image/*");
        startActivityForResult(Intent.createChooser(intent, getString(R.string.pick_photo)), requestCode);
    }

    @Override
    protected void onActivityResult(int requestCode, int resultCode, Intent data) {
        super.onActivityResult(requestCode, resultCode, data);
        if (resultCode != RESULT_OK || data == null) {
            if (requestCode == REQUEST_BACKGROUND_IMAGE && backgroundImage == null) {
                backgroundSpinner.setSelection(0);
            }
            return;
        }
        Uri uri = requestCode == REQUEST_CAMERA
                ? Uri.fromFile(new File(data.getStringExtra(CameraCapture.EXTRA_PATH))) : data.getData();
        if (uri == null) {
            return;
        }
        try {
            long start = System.nanoTime();
            BitmapImages.Decoded decoded = BitmapImages.decodeUri(getContentResolver(), uri, MAX_PIXELS);
            double decodeMs = (System.nanoTime() - start) / 1e6;
            if (requestCode == REQUEST_BACKGROUND_IMAGE) {
                backgroundImage = Background.image(Pixels.rgbFromArgb(decoded.argb), decoded.size);
            } else {
                photo = decoded;
                photoDecodeMs = decodeMs;
            }
            process();
        } catch (IOException | OutOfMemoryError e) {
            toast(uri + ": " + e.getMessage());
        }
    }

    /** The chosen background; null means a transparent cutout. */
    private Background selectedBackground() {
        switch (backgroundSpinner.getSelectedItemPosition()) {
            case 1:
                return Background.colour(255, 255, 255);
            case 2:
                return Background.colour(0, 0, 0);
            case 3:
                return Background.blur();
            case 4:
                return null;
            case 5:
                return backgroundImage != null ? backgroundImage : Background.colour(24, 160, 88);
            default:
                return Background.colour(24, 160, 88);
        }
    }

    private void process() {
        final BitmapImages.Decoded input = photo;
        if (input == null) {
            return;
        }
        final Background background = selectedBackground();
        final double decodeMs = photoDecodeMs;
        worker.execute(() -> {
            if (pipeline == null) {
                return;
            }
            try {
                pipeline.reset();  // each still is a clip of its own (a recurrent model's first frame)
                MattingPipeline.Result result = pipeline.process(input.argb, input.size, background);
                Size size = input.size;
                int[] shown = background == null ? Pixels.cutoutArgb(input.argb, result.alpha8)
                        : Pixels.argbFromRgb(result.composite, null);
                final Bitmap compositeBitmap = BitmapImages.bitmapOf(shown, size);
                final Bitmap matteBitmap = BitmapImages.bitmapOf(Pixels.grayArgb(result.alpha8), size);
                final String text = String.format(Locale.ROOT, "%s\nphoto %s\n%-12s %8.1f ms\n%s", modelLabel, size,
                        "decode", decodeMs, result.timer.summary());
                runOnUiThread(() -> {
                    composite = compositeBitmap;
                    matte = matteBitmap;
                    savedUri = null;
                    timingsText.setText(text);
                    showResult();
                });
            } catch (Exception | OutOfMemoryError e) {
                toast(e.getClass().getSimpleName() + ": " + e.getMessage());
            }
        });
    }

    private void showResult() {
        Bitmap shown = matteCheckbox.isChecked() ? matte : composite;
        if (shown != null) {
            resultImage.setImageBitmap(shown);
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Save and share

    private void save(boolean share) {
        final Bitmap shown = matteCheckbox.isChecked() ? matte : composite;
        if (shown == null) {
            toast(getString(R.string.pick_first));
            return;
        }
        if (Build.VERSION.SDK_INT < 29
                && checkSelfPermission(permission.WRITE_EXTERNAL_STORAGE) != PackageManager.PERMISSION_GRANTED) {
            requestPermissions(new String[] {permission.WRITE_EXTERNAL_STORAGE}, REQUEST_WRITE_PERMISSION);
            return;
        }
        if (savedUri != null) {
            if (share) {
                share(savedUri);
            }
            return;
        }
        worker.execute(() -> {
            try {
                Uri uri = writePng(shown);
                runOnUiThread(() -> {
                    savedUri = uri;
                    if (share) {
                        share(uri);
                    } else {
                        toast(getString(R.string.saved));
                    }
                });
            } catch (IOException e) {
                toast(e.getMessage());
            }
        });
    }

    @Override
    public void onRequestPermissionsResult(int requestCode, String[] permissions, int[] grantResults) {
        if (requestCode == REQUEST_WRITE_PERMISSION && grantResults.length > 0
                && grantResults[0] == PackageManager.PERMISSION_GRANTED) {
            save(false);
        }
    }

    /** A PNG in the shared Pictures collection (Pictures/edgematte from Android 10 on). */
    private Uri writePng(Bitmap bitmap) throws IOException {
        ContentValues values = new ContentValues();
        values.put(MediaStore.MediaColumns.DISPLAY_NAME, "edgematte_" + System.currentTimeMillis() + ".png");
        values.put(MediaStore.MediaColumns.MIME_TYPE, "image/png");
        if (Build.VERSION.SDK_INT >= 29) {
            // MediaStore.MediaColumns.RELATIVE_PATH and IS_PENDING (API 29), spelled out for older SDK stubs.
            values.put("relative_path", "Pictures/edgematte");
            values.put("is_pending", 1);
        }
        Uri uri = getContentResolver().insert(MediaStore.Images.Media.EXTERNAL_CONTENT_URI, values);
        if (uri == null) {
            throw new IOException("the media store refused a new image");
        }
        try (OutputStream out = getContentResolver().openOutputStream(uri)) {
            if (out == null || !bitmap.compress(Bitmap.CompressFormat.PNG, 100, out)) {
                throw new IOException("could not write the PNG");
            }
        }
        if (Build.VERSION.SDK_INT >= 29) {
            ContentValues done = new ContentValues();
            done.put("is_pending", 0);
            getContentResolver().update(uri, done, null, null);
        }
        return uri;
    }

    private void share(Uri uri) {
        Intent send = new Intent(Intent.ACTION_SEND);
        send.setType("image/png");
        send.putExtra(Intent.EXTRA_STREAM, uri);
        send.addFlags(Intent.FLAG_GRANT_READ_URI_PERMISSION);
        startActivity(Intent.createChooser(send, getString(R.string.share)));
    }
}
