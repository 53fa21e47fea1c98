package org.edgematte.core;

/**
 * The legacy PaddleSeg Android matting demo ({@code paddleseg-android}), as Python's
 * {@code PaddleSegAndroidProfile} reproduces it: stretch to the model size ignoring aspect (fixed-point
 * bilinear without box pre-reduction, approximating {@code createScaledBitmap(filter=true)}),
 * {@code (v / 255 - mean) / std} (rule "paddleseg"; the model's Normalize, 0.5/0.5 without transforms, raw
 * 0..255 for transforms without Normalize; resizes in the transforms are ignored), no padding; post: min-max stretch of the output to 0..255 (truncated,
 * not clamped), scaled back bilinearly, alpha = a8 / 255f. Kept for side-by-side comparisons.
 */
public final class PaddleSegAndroidProfile implements Profile {

    public static final String NAME = "paddleseg-android";

    private final AndroidConstants constants = AndroidConstants.DEFAULT;
    private final Normalization.Spec normalization;
    private final String rule;
    private final float[] table;

    public PaddleSegAndroidProfile() {
        this(null);
    }

    /** {@code normalization}: the model's ({@link Normalization.Spec#fromTransforms}); null for the demo's 0.5/0.5. */
    public PaddleSegAndroidProfile(Normalization.Spec normalization) {
        this.normalization = normalization != null ? normalization : Normalization.Spec.DEFAULT;
        this.rule = this.normalization.rule(false);
        this.table = this.normalization.table(rule);
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
        return new PreprocessState(NAME, image, model, model, model, layout);
    }

    @Override
    public Steps preprocess(int[] argb, Size image, Size model, Layout layout) {
        if (argb.length != image.pixels()) {
            throw new IllegalArgumentException(argb.length + " pixels do not make a " + image + " image");
        }
        byte[] resized = FixedPointResize.resizeUint8(Pixels.rgbFromArgb(argb), image, 3, model, false, constants);
        float[] normalized = Normalization.normalize(resized, table);
        return new Steps()
                .put("resized", NdArray.uint8(resized, model.height, model.width, 3))
                .put("normalized", NdArray.float32(normalized, model.height, model.width, 3))
                .put("tensor", NdArray.float32(Tensors.toLayout(normalized, model, 3, layout), layout.tensorShape(model, 3)))
                .state(plan(image, model, layout));
    }

    /** The demo's {@code floatArrayToBitmap}: {@code (byte)(((v - min) / (max - min + 1e-11f)) * 255)}. */
    static byte[] stretchToUint8(float[] plane) {
        float low = Float.POSITIVE_INFINITY;
        float high = Float.NEGATIVE_INFINITY;
        for (float v : plane) {
            low = Math.min(low, v);
            high = Math.max(high, v);
        }
        // (float) 1e-11 is numpy's float32(1e-11): the double rounded once to float.
        float delta = (high - low) + (float) 1e-11;
        byte[] out = new byte[plane.length];
        for (int i = 0; i < plane.length; i++) {
            out[i] = (byte) (int) (((plane[i] - low) / delta) * 255.0f);
        }
        return out;
    }

    @Override
    public Steps postprocess(float[] output, int[] outputShape, PreprocessState state) {
        float[] plane = Tensors.alphaPlane(output, outputShape, state.modelSize);
        byte[] stretched = stretchToUint8(plane);
        Size original = state.originalSize;
        byte[] scaled = FixedPointResize.resizeUint8(stretched, state.modelSize, 1, original, false, constants);
        float[] alpha = new float[scaled.length];
        for (int i = 0; i < alpha.length; i++) {
            alpha[i] = (float) (scaled[i] & 0xFF) / 255.0f;
        }
        return new Steps()
                .put("output", NdArray.float32(plane, state.modelSize.height, state.modelSize.width))
                .put("stretched", NdArray.uint8(stretched, state.modelSize.height, state.modelSize.width))
                .put("scaled", NdArray.uint8(scaled, original.height, original.width))
                .put("alpha", NdArray.float32(alpha, original.height, original.width))
                .state(state);
    }

    @Override
    public byte[] alphaToUint8(float[] alpha) {
        return Compositing.alphaToUint8RoundHalfUp(alpha, constants.alphaScale);
    }

    @Override
    public byte[] resizeRgb(byte[] rgb, Size src, Size dst) {
        return FixedPointResize.resizeUint8(rgb, src, 3, dst, false, constants);
    }
}
