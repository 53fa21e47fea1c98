package org.edgematte.core;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Every number the {@code android} profile depends on: the twin of Python's
 * {@code edgematte.runtime.profiles.AndroidConstants}. Change one only together with the Python side;
 * the golden-vector tests compare {@link #toMap()} with the constants recorded in index.json.
 *
 * <ul>
 *   <li>Sample positions and bilinear weights are fixed point with {@code fractionBits} fractional
 *       bits ({@code one() = 2^fractionBits} = 2048 is weight 1.0); accumulation is exact in {@code long}.</li>
 *   <li>A downscale by {@code boxMinFactor} or more first sums k x k blocks, k = min(H / h, W / w).</li>
 *   <li>normalize: {@code (v - normalizeOffset) / normalizeDivisor} in float32: the default, for a model
 *       without transforms; a model's deploy.yaml Normalize replaces it ({@link Profiles#get(String, java.util.List)}).</li>
 *   <li>Padding (bottom/right) holds {@code padValue} after normalization, whatever the normalization.</li>
 *   <li>alpha8 = {@code (int)(alpha * alphaScale + 0.5f)}.</li>
 *   <li>"blur" background: fit inside blurGrid x blurGrid, binomial {@code blurKernel} (sum 256 per
 *       axis, edges clamped), scaled back up.</li>
 * </ul>
 */
public final class AndroidConstants {

    public static final AndroidConstants DEFAULT = new AndroidConstants(
            11, 2, 127.5f, 127.5f, 0.0f, 255.0f, 32, new int[] {1, 8, 28, 56, 70, 56, 28, 8, 1});

    public final int fractionBits;
    public final int boxMinFactor;
    public final float normalizeOffset;
    public final float normalizeDivisor;
    public final float padValue;
    public final float alphaScale;
    public final int blurGrid;
    private final int[] blurKernel;

    public AndroidConstants(int fractionBits, int boxMinFactor, float normalizeOffset, float normalizeDivisor,
                            float padValue, float alphaScale, int blurGrid, int[] blurKernel) {
        this.fractionBits = fractionBits;
        this.boxMinFactor = boxMinFactor;
        this.normalizeOffset = normalizeOffset;
        this.normalizeDivisor = normalizeDivisor;
        this.padValue = padValue;
        this.alphaScale = alphaScale;
        this.blurGrid = blurGrid;
        this.blurKernel = blurKernel.clone();
    }

    /** Weight 1.0 in fixed point. */
    public long one() {
        return 1L << fractionBits;
    }

    public int[] blurKernel() {
        return blurKernel.clone();
    }

    /** The constants under Python's field names (snake_case), values as JSON would hold them. */
    public Map<String, Object> toMap() {
        Map<String, Object> map = new LinkedHashMap<>();
        map.put("fraction_bits", (long) fractionBits);
        map.put("box_min_factor", (long) boxMinFactor);
        map.put("normalize_offset", (double) normalizeOffset);
        map.put("normalize_divisor", (double) normalizeDivisor);
        map.put("pad_value", (double) padValue);
        map.put("alpha_scale", (double) alphaScale);
        map.put("blur_grid", (long) blurGrid);
        List<Object> kernel = new ArrayList<>();
        for (int k : blurKernel) {
            kernel.add((long) k);
        }
        map.put("blur_kernel", kernel);
        return map;
    }
}
