package org.edgematte.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Matching an artefact's tensors to the model's roles and moving tensors between layouts: the functions of
 * Python's {@code edgematte/runtime/model_io.py} ({@link FeedPlan} is its {@code FeedPlan}).
 *
 * <p>An artefact may name or order its tensors differently from the Paddle program (onnx2tf drops {@code :0},
 * turns separators into {@code _}, reorders), so they are matched by exact name, then by normalized name
 * ({@link #key}), then, when nothing matched at all, by position. Layouts: a converted model's tensors are
 * channels-first as in the Paddle program / ONNX, or channels-last where onnx2tf moved the channels; the
 * converter records which per tensor. Tensors here are float32 {@link NdArray}s.
 */
public final class ModelIo {

    private ModelIo() {
    }

    /** A tensor name as tools keep it: text before {@code :}, runs of non-alphanumerics as {@code _}, lower case. */
    public static String key(String name) {
        int colon = name.indexOf(':');
        String head = colon >= 0 ? name.substring(0, colon) : name;
        String joined = head.replaceAll("[^0-9a-zA-Z]+", "_");
        int start = 0;
        int end = joined.length();
        while (start < end && joined.charAt(start) == '_') {
            start++;
        }
        while (end > start && joined.charAt(end - 1) == '_') {
            end--;
        }
        return joined.substring(start, end).toLowerCase(Locale.ROOT);
    }

    /**
     * For each artefact tensor (in the artefact's order), the index of the model tensor it is: by exact name,
     * then by {@link #key}, then, when nothing matched, by position. A count mismatch, or a partial or ambiguous
     * match, is an IllegalArgumentException naming {@code what} (Python's messages).
     */
    public static int[] matchTensors(List<String> modelNames, List<String> artefactNames, String what) {
        int n = modelNames.size();
        if (n != artefactNames.size()) {
            throw new IllegalArgumentException(what + ": has " + artefactNames.size() + " tensors "
                    + TensorRole.pythonList(artefactNames) + ", the model " + n + " " + TensorRole.pythonList(modelNames));
        }
        // Later names win, as in Python's dict comprehensions.
        Map<String, Integer> exact = new HashMap<>();
        Map<String, Integer> keyed = new HashMap<>();
        for (int i = 0; i < n; i++) {
            exact.put(modelNames.get(i), i);
            keyed.put(key(modelNames.get(i)), i);
        }
        Integer[] order = new Integer[n];
        boolean none = true;
        boolean missing = false;
        for (int i = 0; i < n; i++) {
            String name = artefactNames.get(i);
            order[i] = exact.containsKey(name) ? exact.get(name) : keyed.get(key(name));
            none &= order[i] == null;
            missing |= order[i] == null;
        }
        int[] out = new int[n];
        if (none || n == 1) {
            for (int i = 0; i < n; i++) {
                out[i] = i;
            }
            return out;
        }
        boolean[] seen = new boolean[n];
        for (int i = 0; i < n && !missing; i++) {
            out[i] = order[i];
            missing = seen[out[i]];
            seen[out[i]] = true;
        }
        if (missing) {
            throw new IllegalArgumentException(what + ": cannot match its tensors " + TensorRole.pythonList(artefactNames)
                    + " to the model's " + TensorRole.pythonList(modelNames));
        }
        return out;
    }

    /** The axes that move a channels-first tensor of {@code rank} to channels-last: (0, 2, ..., rank - 1, 1). */
    public static int[] channelsLastPerm(int rank) {
        int[] perm = new int[rank];
        for (int i = 1; i < rank - 1; i++) {
            perm[i] = i + 1;
        }
        if (rank > 1) {
            perm[rank - 1] = 1;
        }
        return perm;
    }

    /** {channels-first name, channels-last name} for a rank: nchw/nhwc, ncw/nwc, ncdhw/ndhwc; else as_onnx twice. */
    public static String[] layoutNames(int rank) {
        String spatial = rank == 3 ? "w" : rank == 4 ? "hw" : rank == 5 ? "dhw" : null;
        if (spatial == null) {
            return new String[] {"as_onnx", "as_onnx"};
        }
        return new String[] {"nc" + spatial, "n" + spatial + "c"};
    }

    /** A channels-first float32 array rearranged to {@code layout} (its rank's channels-last name, else as is). */
    public static NdArray onnxToLayout(NdArray x, String layout) {
        String[] names = layoutNames(x.shape.length);
        if (layout.equals(names[1]) && !names[1].equals(names[0])) {
            return transpose(x, channelsLastPerm(x.shape.length));
        }
        return x;
    }

    /** Inverse of {@link #onnxToLayout}: a {@code layout} array back to channels-first axes. */
    public static NdArray layoutToOnnx(NdArray x, String layout) {
        String[] names = layoutNames(x.shape.length);
        if (layout.equals(names[1]) && !names[1].equals(names[0])) {
            int[] perm = channelsLastPerm(x.shape.length);
            int[] inverse = new int[perm.length];
            for (int i = 0; i < perm.length; i++) {
                inverse[perm[i]] = i;
            }
            return transpose(x, inverse);
        }
        return x;
    }

    /** numpy's {@code ascontiguousarray(x.transpose(perm))} for a float32 array: out axis i is x's axis perm[i]. */
    public static NdArray transpose(NdArray x, int[] perm) {
        int rank = x.shape.length;
        if (perm.length != rank) {
            throw new IllegalArgumentException("axes " + Arrays.toString(perm) + " do not fit " + x);
        }
        int[] shape = new int[rank];
        int[] strides = new int[rank];
        int[] inStrides = new int[rank];
        for (int i = rank - 1, s = 1; i >= 0; i--) {
            inStrides[i] = s;
            s *= x.shape[i];
        }
        for (int i = 0; i < rank; i++) {
            shape[i] = x.shape[perm[i]];
            strides[i] = inStrides[perm[i]];
        }
        float[] in = x.floats();
        float[] out = new float[in.length];
        int[] index = new int[rank];
        for (int o = 0, from = 0; o < out.length; o++) {
            out[o] = in[from];
            // Odometer over the output's axes, carrying the input offset along.
            for (int axis = rank - 1; axis >= 0; axis--) {
                index[axis]++;
                from += strides[axis];
                if (index[axis] < shape[axis]) {
                    break;
                }
                from -= strides[axis] * shape[axis];
                index[axis] = 0;
            }
        }
        return NdArray.float32(out, shape);
    }

    /** The names of {@code specs}, in order. */
    public static List<String> names(List<TensorSpec> specs) {
        List<String> out = new ArrayList<>();
        for (TensorSpec spec : specs) {
            out.add(spec.name);
        }
        return out;
    }
}
