package org.edgematte.core;

import java.util.Arrays;
import java.util.List;

/** The profiles the Java core implements; the others (paddleseg, fastdeploy) exist only in Python. */
public final class Profiles {

    public static final List<String> NAMES = Arrays.asList(AndroidProfile.NAME, PaddleSegAndroidProfile.NAME);

    private Profiles() {
    }

    public static Profile get(String name) {
        if (AndroidProfile.NAME.equals(name)) {
            return new AndroidProfile();
        }
        if (PaddleSegAndroidProfile.NAME.equals(name)) {
            return new PaddleSegAndroidProfile();
        }
        throw new IllegalArgumentException("profile '" + name + "' is not implemented in Java (have " + NAMES + ")");
    }
}
