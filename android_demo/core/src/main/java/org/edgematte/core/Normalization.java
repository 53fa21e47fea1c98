package org.edgematte.core;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * Per-value normalization tables: {@code table[3 * v + c]} is the float32 a uint8 value {@code v} of channel
 * {@code c} becomes, so every deployment's exact float expression is kept (twin of Python's
 * {@code normalization_table}, whose [256, 3] table has the same layout). {@link Spec} is a model's Normalize
 * step as the two profiles here read it from deploy.yaml transforms (Python's {@code model_normalization}).
 */
public final class Normalization {

    /** Rule names as Python's {@code normalization_table} spells them. */
    public static final String EXACT = "exact";
    public static final String PADDLESEG = "paddleseg";
    public static final String NONE = "none";

    private Normalization() {
    }

    /**
     * A model's Normalize step: {@code mean}/{@code std} (3 doubles each, deploy.yaml's numbers), or both null
     * for a model whose transforms have no Normalize (fed raw {@code (float) v} in 0..255).
     */
    public static final class Spec {
        /** mean = std = 0.5: the profiles' default when a model declares no transforms. */
        public static final Spec DEFAULT = new Spec(new double[] {0.5, 0.5, 0.5}, new double[] {0.5, 0.5, 0.5});
        /** No Normalize: raw 0..255. */
        public static final Spec RAW = new Spec(null, null);

        private final double[] mean;
        private final double[] std;

        private Spec(double[] mean, double[] std) {
            this.mean = mean;
            this.std = std;
        }

        /** mean/std of three channels each; a zero std is refused as Python refuses it. */
        public static Spec of(double[] mean, double[] std) {
            if (mean == null || std == null || mean.length != 3 || std.length != 3
                    || std[0] == 0 || std[1] == 0 || std[2] == 0) {
                throw new IllegalArgumentException("deploy.yaml transform Normalize: need 3 means and 3 non-zero "
                        + "stds, got mean=" + Arrays.toString(mean) + " std=" + Arrays.toString(std));
            }
            return new Spec(mean.clone(), std.clone());
        }

        /**
         * The Normalize step of a deploy.yaml transforms list (a manifest's {@code model.transforms}), read as
         * Python's {@code model_normalization} reads it: null or empty -> {@code fallback} (nothing declared);
         * no Normalize -> {@link #RAW}; otherwise its mean/std (default 0.5 each). Every other entry is ignored
         * but must be a mapping with a "type"; two Normalize steps are refused. IllegalArgumentException with
         * one line otherwise.
         */
        public static Spec fromTransforms(List<?> transforms, Spec fallback) {
            if (transforms == null || transforms.isEmpty()) {
                return fallback;
            }
            Spec found = null;
            for (Object item : transforms) {
                if (!(item instanceof Map) || !((Map<?, ?>) item).containsKey("type")) {
                    throw new IllegalArgumentException("deploy.yaml transform must be a mapping with a 'type', got "
                            + Json.write(item));
                }
                Map<?, ?> transform = (Map<?, ?>) item;
                if (!"Normalize".equals(transform.get("type"))) {
                    continue;
                }
                if (found != null) {
                    throw new IllegalArgumentException("deploy.yaml transforms hold more than one Normalize step; "
                            + "one is supported");
                }
                found = of(triple(transform, "mean"), triple(transform, "std"));
            }
            return found != null ? found : RAW;
        }

        /** {@link #fromTransforms(List, Spec)} with {@link #DEFAULT} for a model that declares nothing. */
        public static Spec fromTransforms(List<?> transforms) {
            return fromTransforms(transforms, DEFAULT);
        }

        /**
         * {@code transform[key]} as doubles (0.5, 0.5, 0.5 when missing); null when it is not a list of JSON
         * numbers (Python's {@code float()} would also take numeric strings; deploy.yaml files hold numbers).
         */
        private static double[] triple(Map<?, ?> transform, String key) {
            Object value = transform.get(key);
            if (value == null) {
                return new double[] {0.5, 0.5, 0.5};
            }
            if (!(value instanceof List)) {
                return null;
            }
            List<?> list = (List<?>) value;
            double[] out = new double[list.size()];
            for (int i = 0; i < out.length; i++) {
                if (!(list.get(i) instanceof Number)) {
                    return null;
                }
                out[i] = ((Number) list.get(i)).doubleValue();
            }
            return out;
        }

        public boolean isRaw() {
            return mean == null;
        }

        /** A copy of the means, null when raw. */
        public double[] mean() {
            return mean == null ? null : mean.clone();
        }

        /** A copy of the stds, null when raw. */
        public double[] std() {
            return std == null ? null : std.clone();
        }

        /**
         * Whether every {@code 255 * mean[c]} and {@code 255 * std[c]} (double products) is exactly a float32,
         * as Python's {@code exact_in_float32} decides it: true for 0.5/0.5 and 0/1, false for ImageNet's.
         */
        public boolean exactInFloat32() {
            if (isRaw()) {
                return false;
            }
            for (int c = 0; c < 3; c++) {
                double offset = 255.0 * mean[c];
                double divisor = 255.0 * std[c];
                if ((double) (float) offset != offset || (double) (float) divisor != divisor) {
                    return false;
                }
            }
            return true;
        }

        /**
         * The rule a fixed-step profile uses (Python's {@code fixed_step_rule}): {@link #NONE} when raw,
         * {@link #EXACT} when {@code preferExact} and {@link #exactInFloat32()}, otherwise {@link #PADDLESEG}.
         */
        public String rule(boolean preferExact) {
            if (isRaw()) {
                return NONE;
            }
            return preferExact && exactInFloat32() ? EXACT : PADDLESEG;
        }

        /** The float[768] table of {@code rule} for these numbers (see {@link Normalization}). */
        public float[] table(String rule) {
            if (isRaw() || NONE.equals(rule)) {
                return rawTable();
            }
            if (EXACT.equals(rule)) {
                return exactTable(mean, std);
            }
            if (PADDLESEG.equals(rule)) {
                return paddleSegTable(mean, std);
            }
            throw new IllegalArgumentException("unknown normalization rule " + rule);
        }

        @Override
        public boolean equals(Object other) {
            return other instanceof Spec && Arrays.equals(mean, ((Spec) other).mean)
                    && Arrays.equals(std, ((Spec) other).std);
        }

        @Override
        public int hashCode() {
            return 31 * Arrays.hashCode(mean) + Arrays.hashCode(std);
        }

        @Override
        public String toString() {
            return isRaw() ? "raw" : "mean=" + Arrays.toString(mean) + " std=" + Arrays.toString(std);
        }
    }

    /**
     * Rule "exact" (the {@code android} profile): {@code (v - offset[c]) / divisor[c]} in float32 with
     * {@code offset = (float)(255 * mean[c])}, {@code divisor = (float)(255 * std[c])}. With both exact in
     * float32 (127.5 is; see {@link Spec#exactInFloat32()}) the result is the float32 nearest the true value.
     */
    public static float[] exactTable(double[] mean, double[] std) {
        float[] table = new float[768];
        for (int c = 0; c < 3; c++) {
            float offset = (float) (255.0 * mean[c]);
            float divisor = (float) (255.0 * std[c]);
            for (int v = 0; v < 256; v++) {
                table[3 * v + c] = ((float) v - offset) / divisor;
            }
        }
        return table;
    }

    /**
     * Rule "paddleseg" (PaddleSeg's numpy and the legacy Android demo's Java): {@code x = v / 255f} in
     * float32, then {@code x - mean[c]} and {@code / std[c]} in double, stored to float32 after each step.
     */
    public static float[] paddleSegTable(double[] mean, double[] std) {
        float[] table = new float[768];
        for (int c = 0; c < 3; c++) {
            for (int v = 0; v < 256; v++) {
                float x = (float) v / 255.0f;
                x = (float) ((double) x - mean[c]);
                table[3 * v + c] = (float) ((double) x / std[c]);
            }
        }
        return table;
    }

    /** Rule "none" (no Normalize): {@code (float) v}, raw 0..255, every channel. */
    public static float[] rawTable() {
        float[] table = new float[768];
        for (int v = 0; v < 256; v++) {
            table[3 * v] = v;
            table[3 * v + 1] = v;
            table[3 * v + 2] = v;
        }
        return table;
    }

    /** float32 H x W x 3 from uint8 H x W x 3 through a float[768] {@code table} (one column per channel). */
    public static float[] normalize(byte[] rgb, float[] table) {
        if (table.length != 768) {
            throw new IllegalArgumentException("a normalization table holds 256 x 3 values, not " + table.length);
        }
        float[] out = new float[rgb.length];
        for (int i = 0; i < rgb.length; i++) {
            out[i] = table[3 * (rgb[i] & 0xFF) + i % 3];
        }
        return out;
    }
}
