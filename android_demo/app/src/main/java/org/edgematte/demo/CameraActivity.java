package org.edgematte.demo;

import java.io.File;
import java.util.concurrent.ExecutionException;

import android.content.Intent;
import android.os.Bundle;
import android.widget.Button;
import android.widget.Toast;

import androidx.activity.ComponentActivity;
import androidx.camera.core.CameraSelector;
import androidx.camera.core.ImageCapture;
import androidx.camera.core.ImageCaptureException;
import androidx.camera.core.Preview;
import androidx.camera.lifecycle.ProcessCameraProvider;
import androidx.camera.view.PreviewView;
import androidx.core.content.ContextCompat;

import com.google.common.util.concurrent.ListenableFuture;

/**
 * CameraX preview and capture: the photo is written as a JPEG (with its EXIF orientation) into the app's
 * cache and its path returned in {@link CameraCapture#EXTRA_PATH}. With LiveMattingActivity the only classes that
 * need androidx, so it is compiled in Android Studio only (README.md).
 */
public class CameraActivity extends ComponentActivity {

    private PreviewView previewView;
    private ImageCapture imageCapture;

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        setContentView(R.layout.activity_camera);
        previewView = findViewById(R.id.preview_view);
        Button capture = findViewById(R.id.capture_button);
        capture.setOnClickListener(v -> takePhoto());
        CameraPermission.startOrAsk(this, this::startCamera);
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
                Preview preview = new Preview.Builder().build();
                preview.setSurfaceProvider(previewView.getSurfaceProvider());
                imageCapture = new ImageCapture.Builder()
                        .setCaptureMode(ImageCapture.CAPTURE_MODE_MAXIMIZE_QUALITY)
                        .build();
                provider.unbindAll();
                provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, preview, imageCapture);
            } catch (ExecutionException | InterruptedException | IllegalArgumentException e) {
                Toast.makeText(this, "camera unavailable: " + e.getMessage(), Toast.LENGTH_LONG).show();
                finish();
            }
        }, ContextCompat.getMainExecutor(this));
    }

    private void takePhoto() {
        if (imageCapture == null) {
            return;
        }
        File file = new File(getCacheDir(), "capture_" + System.currentTimeMillis() + ".jpg");
        ImageCapture.OutputFileOptions options = new ImageCapture.OutputFileOptions.Builder(file).build();
        imageCapture.takePicture(options, ContextCompat.getMainExecutor(this), new ImageCapture.OnImageSavedCallback() {
            @Override
            public void onImageSaved(ImageCapture.OutputFileResults results) {
                setResult(RESULT_OK, new Intent().putExtra(CameraCapture.EXTRA_PATH, file.getAbsolutePath()));
                finish();
            }

            @Override
            public void onError(ImageCaptureException error) {
                Toast.makeText(CameraActivity.this, "capture failed: " + error.getMessage(), Toast.LENGTH_LONG).show();
            }
        });
    }
}
