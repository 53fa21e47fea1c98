package org.edgematte.demo;

import android.content.Context;
import android.content.Intent;

/**
 * How the screens reach {@link CameraActivity}: by its manifest name, so that everything but the CameraX
 * activities compiles without androidx (host-test.sh compile-checks the app against android.jar alone).
 */
final class CameraCapture {

    /** Result extra: absolute path of the captured JPEG in the app's cache. */
    static final String EXTRA_PATH = "org.edgematte.demo.PHOTO_PATH";

    private CameraCapture() {
    }

    static Intent intent(Context context) {
        return new Intent().setClassName(context, "org.edgematte.demo.CameraActivity");
    }
}
