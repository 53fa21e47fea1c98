package org.edgematte.core;

import java.util.Arrays;
import java.util.List;

/**
 * The profiles the Java core implements; the others (paddleseg, fastdeploy) exist only in Python. Twin of
 * Python's {@code get_profile} / {@code profile_for_model} for the two fixed-step profiles: their geometry is
 * the app's, and only the Normalize step of a model's deploy.yaml transforms (a manifest's
 * {@code model.transforms}) changes them.
 */
public final class Profiles {

    public static final List<String> NAMES = Arrays.asList(AndroidProfile.NAME, PaddleSegAndroidProfile.NAME);

    private Profiles() {
    }

    /** The profile {@code name} with its default normalization (mean = std = 0.5): a model without transforms. */
    public static Profile get(String name) {
        return withNormalization(name, null);
    }

    /**
     * The profile {@code name} for a model whose deploy.yaml lists {@code transforms} (a manifest's
     * {@code model.transforms}; null or empty: nothing declared, the default), read by
     * {@link Normalization.Spec#fromTransforms(List)}.
     */
    public static Profile get(String name, List<?> transforms) {
        boolean declared = transforms != null && !transforms.isEmpty();
        return withNormalization(name, declared ? Normalization.Spec.fromTransforms(transforms) : null);
    }

    /** The profile {@code name} for the model of {@code manifest}: its {@code model.transforms}. */
    public static Profile forManifest(Manifest manifest, String name) {
        return get(name, manifest.transforms);
    }

    /** The profile {@code name} with {@code normalization} (null: the profile's default). */
    public static Profile withNormalization(String name, Normalization.Spec normalization) {
        if (AndroidProfile.NAME.equals(name)) {
            return new AndroidProfile(AndroidConstants.DEFAULT, normalization);
        }
        if (PaddleSegAndroidProfile.NAME.equals(name)) {
            return new PaddleSegAndroidProfile(normalization);
        }
        throw new IllegalArgumentException("profile '" + name + "' is not implemented in Java (have " + NAMES + ")");
    }
}
