package org.edgematte.core;

/**
 * The {@code android} profile, step for step as Python's {@code AndroidProfile}:
 * <ol>
 *   <li>resized: letterbox size inside the model input, {@link FixedPointResize#resizeUint8} with box
 *       pre-reduction;</li>
 *   <li>normalized: the model's normalization ({@link Normalization.Spec}, from the Normalize step of its
 *       deploy.yaml transforms; without transforms {@code (v - 127.5f) / 127.5f}), rule "exact"
 *       {@code (v - 255 mean) / (255 std)} in float32 when both constants are float32 numbers, else
 *       "paddleseg", "none" (raw 0..255) without Normalize;</li>
 *   <li>padded: bottom/right with {@code padValue} (0.0 after normalization, whatever the normalization) to
 *       the model size;</li>
 *   <li>tensor: NCHW or NHWC;</li>
 *   <li>post: output plane, cropped to the resized region, float32 bilinear to the photo size ("resized"),
 *       clamped to [0, 1] ("alpha"); alpha8 rounds half up.</li>
 * </ol>
 * The geometry is the app's: resizes in a model's transforms are ignored.
 */
public final class AndroidProfile implements Profile {

    public static final String NAME = "android";

    private final AndroidConstants constants;
    private final Normalization.Spec normalization;
    private final String rule;
    private final float[] table;

    public AndroidProfile() {
        this(AndroidConstants.DEFAULT, null);
    }

    public AndroidProfile(AndroidConstants constants) {
        this(constants, null);
    }

    /**
     * {@code normalization}: the model's ({@link Normalization.Spec#fromTransforms}); null for the default,
     * {@code constants.normalizeOffset / 255} and {@code normalizeDivisor / 255} (0.5, 0.5).
     */
    public AndroidProfile(AndroidConstants constants, Normalization.Spec normalization) {
        this.constants = constants;
        this.normalization = normalization != null ? normalization : defaultNormalization(constants);
        this.rule = this.normalization.rule(true);
        this.table = this.normalization.table(rule);
    }

    /** The normalization without model transforms, from the constants (Python: the same division). */
    static Normalization.Spec defaultNormalization(AndroidConstants constants) {
        double mean = constants.normalizeOffset / 255.0;
        double std = constants.normalizeDivisor / 255.0;
        return Normalization.Spec.of(new double[] {mean, mean, mean}, new double[] {std, std, std});
    }

    public AndroidConstants constants() {
        return constants;
    }

    @Override
    public Normalization.Spec normalization() {
        return normalization;
    }

    @Override
    public String normalizationRule() {
        return rule;
    }

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public PreprocessState plan(Size image, Size model, Layout layout) {
        Size resized = FixedPointResize.letterboxSize(image, model);
        return new PreprocessState(NAME, image, model, resized, resized, layout);
    }

    @Override
    public Steps preprocess(int[] argb, Size image, Size model, Layout layout) {
        if (argb.length != image.pixels()) {
            throw new IllegalArgumentException(argb.length + " pixels do not make a " + image + " image");
        }
        PreprocessState state = plan(image, model, layout);
        Size resizedSize = state.resizedSize;
        byte[] resized = FixedPointResize.resizeUint8(Pixels.rgbFromArgb(argb), image, 3, resizedSize, true, constants);
        float[] normalized = Normalization.normalize(resized, table);
        float[] padded = Tensors.padBottomRight(normalized, resizedSize, 3, model, constants.padValue);
        float[] tensor = Tensors.toLayout(padded, model, 3, layout);
        return new Steps()
                .put("resized", NdArray.uint8(resized, resizedSize.height, resizedSize.width, 3))
                .put("normalized", NdArray.float32(normalized, resizedSize.height, resizedSize.width, 3))
                .put("padded", NdArray.float32(padded, model.height, model.width, 3))
                .put("tensor", NdArray.float32(tensor, layout.tensorShape(model, 3)))
                .state(state);
    }

    @Override
    public Steps postprocess(float[] output, int[] outputShape, PreprocessState state) {
        float[] plane = Tensors.alphaPlane(output, outputShape, state.modelSize);
        float[] cropped = Tensors.cropTopLeft(plane, state.modelSize, state.cropSize);
        float[] resized = FixedPointResize.resizeFloat32(cropped, state.cropSize, state.originalSize, constants);
        float[] alpha = new float[resized.length];
        for (int i = 0; i < alpha.length; i++) {
            alpha[i] = Math.min(Math.max(resized[i], 0.0f), 1.0f);
        }
        Size original = state.originalSize;
        return new Steps()
                .put("output", NdArray.float32(plane, state.modelSize.height, state.modelSize.width))
                .put("cropped", NdArray.float32(cropped, state.cropSize.height, state.cropSize.width))
                .put("resized", NdArray.float32(resized, original.height, original.width))
                .put("alpha", NdArray.float32(alpha, original.height, original.width))
                .state(state);
    }

    @Override
    public byte[] alphaToUint8(float[] alpha) {
        return Compositing.alphaToUint8RoundHalfUp(alpha, constants.alphaScale);
    }

    @Override
    public byte[] resizeRgb(byte[] rgb, Size src, Size dst) {
        return FixedPointResize.resizeUint8(rgb, src, 3, dst, true, constants);
    }
}
