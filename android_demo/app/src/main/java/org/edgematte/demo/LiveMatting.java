package org.edgematte.demo;

import android.content.Context;
import android.content.Intent;

import org.edgematte.demo.engine.Accelerator;

/**
 * How the screens reach {@link LiveMattingActivity}: by its manifest name, as {@link CameraCapture} reaches
 * CameraActivity, so that everything but the two CameraX activities compiles without androidx (host-test.sh).
 */
final class LiveMatting {

    /** The artefact's path as the manifest lists it ({@code Manifest.find} takes it back). */
    static final String EXTRA_ARTEFACT = "org.edgematte.demo.LIVE_ARTEFACT";
    /** {@link Accelerator#key}. */
    static final String EXTRA_ACCELERATOR = "org.edgematte.demo.LIVE_ACCELERATOR";

    private LiveMatting() {
    }

    static Intent intent(Context context, String artefactPath, Accelerator accelerator) {
        return new Intent().setClassName(context, "org.edgematte.demo.LiveMattingActivity")
                .putExtra(EXTRA_ARTEFACT, artefactPath)
                .putExtra(EXTRA_ACCELERATOR, accelerator.key);
    }
}
