package org.edgematte.core;

/**
 * A pre/post-processing profile, the twin of a Python {@code edgematte.runtime.profiles.Profile}: an ARGB
 * photo in, the model's input tensor out, and the model's output back to an alpha at the photo's size.
 * It knows nothing of runtimes.
 */
public interface Profile {

    /** The Python profile's name ("android", "paddleseg-android"). */
    String name();

    /** The model's normalization this profile applies (mean/std, or raw). */
    Normalization.Spec normalization();

    /** The rule of Python's {@code normalization_table} it uses: "exact", "paddleseg" or "none". */
    String normalizationRule();

    /** The sizes pre-processing will use for a photo of {@code image} and a model input of {@code model}. */
    PreprocessState plan(Size image, Size model, Layout layout);

    /**
     * Steps from ARGB pixels (alpha ignored): at least "resized" (uint8 h x w x 3), "normalized" (float32
     * h x w x 3) and "tensor" (float32 in {@code layout}), plus {@link Steps#state()}.
     */
    Steps preprocess(int[] argb, Size image, Size model, Layout layout);

    /** Steps from the model output (float32, a shape {@link Tensors#alphaPlane} accepts), ending with "alpha". */
    Steps postprocess(float[] output, int[] outputShape, PreprocessState state);

    /** The 8-bit alpha this deployment saves. */
    byte[] alphaToUint8(float[] alpha);

    /** How this deployment resizes an RGB background image to the photo's size. */
    byte[] resizeRgb(byte[] rgb, Size src, Size dst);

    /** uint8 H x W x 3: the photo over {@code background} (twin of Python's Profile.composite). */
    default byte[] composite(byte[] rgb, Size size, float[] alpha, Background background) {
        return Compositing.composite(rgb, alpha, background.render(rgb, size, this));
    }
}
