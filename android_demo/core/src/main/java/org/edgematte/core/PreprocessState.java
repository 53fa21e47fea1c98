package org.edgematte.core;

/**
 * What post-processing needs to bring the model's alpha back to the photo (twin of Python's
 * {@code PreprocessState}): {@code modelSize} is the tensor's spatial size, {@code resizedSize} the image
 * inside it (top-left, the rest is padding), {@code cropSize} the output region mapped back.
 */
public final class PreprocessState {

    public final String profile;
    public final Size originalSize;
    public final Size modelSize;
    public final Size resizedSize;
    public final Size cropSize;
    public final Layout layout;

    public PreprocessState(String profile, Size originalSize, Size modelSize, Size resizedSize, Size cropSize,
                           Layout layout) {
        this.profile = profile;
        this.originalSize = originalSize;
        this.modelSize = modelSize;
        this.resizedSize = resizedSize;
        this.cropSize = cropSize;
        this.layout = layout;
    }

    @Override
    public String toString() {
        return profile + ": " + originalSize + " -> " + resizedSize + " in " + modelSize + " (" + layout.key + ")";
    }
}
