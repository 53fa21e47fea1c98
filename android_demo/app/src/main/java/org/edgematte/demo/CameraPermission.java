package org.edgematte.demo;

import android.Manifest.permission;
import android.app.Activity;
import android.content.pm.PackageManager;
import android.widget.Toast;

/**
 * The CAMERA runtime permission of the two camera activities (CameraActivity, LiveMattingActivity): the camera
 * starts at once when the permission is held; otherwise it is asked for, and the answer starts the camera or, when
 * refused, tells the user and closes the activity. Plain {@link Activity} calls (API 23), so unlike the
 * activities this class compiles on the host (host-test.sh).
 */
final class CameraPermission {

    /** The code of the request; each activity asks for itself, so one code serves both. */
    static final int REQUEST_CODE = 10;

    private CameraPermission() {
    }

    /**
     * Runs {@code startCamera} now when CAMERA is held; otherwise asks for it (the answer goes to {@link #onAnswer}).
     */
    static void startOrAsk(Activity activity, Runnable startCamera) {
        if (activity.checkSelfPermission(permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera.run();
        } else {
            activity.requestPermissions(new String[] {permission.CAMERA}, REQUEST_CODE);
        }
    }

    /**
     * For the activity's {@code onRequestPermissionsResult}: the answer to {@link #startOrAsk}'s request starts the
     * camera when granted; a refusal (or a cancelled request: no results) is shown and finishes the activity.
     * Answers to other requests are left alone.
     */
    static void onAnswer(Activity activity, int requestCode, int[] grantResults, Runnable startCamera) {
        if (requestCode != REQUEST_CODE) {
            return;
        }
        if (grantResults.length > 0 && grantResults[0] == PackageManager.PERMISSION_GRANTED) {
            startCamera.run();
        } else {
            Toast.makeText(activity, "camera permission denied", Toast.LENGTH_LONG).show();
            activity.finish();
        }
    }
}
