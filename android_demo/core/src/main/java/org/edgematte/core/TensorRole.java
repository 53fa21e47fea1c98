package org.edgematte.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * One input or output of a converted model with its role, as a manifest of schema 1.2 records it in
 * {@code model.inputs} / {@code model.outputs} (twin of the dicts of Python's {@code ModelInfo.input_roles()} /
 * {@code output_roles()}). Inputs: image, trimap, state (its {@link #pair} is the output that feeds it next
 * call), constant (its {@link #value} is frozen into the artefacts, so it is never fed); outputs: alpha,
 * foreground, state (its pair is the input it feeds), output. {@link #shape} is the model's (channels-first,
 * NCHW for images and states), null when the manifest gives none.
 */
public final class TensorRole {

    public static final List<String> INPUT_ROLES = Collections.unmodifiableList(
            Arrays.asList("image", "trimap", "state", "constant"));
    public static final List<String> OUTPUT_ROLES = Collections.unmodifiableList(
            Arrays.asList("alpha", "foreground", "state", "output"));

    public final String name;
    public final String role;
    /** The model's shape (positive ints), or null when the entry has none. */
    public final int[] shape;
    /** numpy dtype name, or null when the entry has none. */
    public final String dtype;
    /** A state's partner tensor name (input: its output; output: its input); null otherwise. */
    public final String pair;
    /** A constant's frozen value as JSON read it (number, list...), or null. */
    public final Object value;

    public TensorRole(String name, String role, int[] shape, String dtype, String pair, Object value) {
        this.name = name;
        this.role = role;
        this.shape = shape == null ? null : shape.clone();
        this.dtype = dtype;
        this.pair = pair;
        this.value = value;
    }

    public boolean is(String which) {
        return role.equals(which);
    }

    /**
     * The entries of {@code model.<what>} ({@code what}: "inputs" or "outputs"), validated as Python's
     * {@code _check_roles} validates them, with its messages (IllegalArgumentException); null when absent.
     */
    public static List<TensorRole> parseList(Object entries, String what) {
        if (entries == null) {
            return null;
        }
        List<String> roles = what.equals("inputs") ? INPUT_ROLES : OUTPUT_ROLES;
        if (!(entries instanceof List) || ((List<?>) entries).isEmpty()) {
            throw new IllegalArgumentException("model." + what + " is not a non-empty list");
        }
        List<TensorRole> out = new ArrayList<>();
        for (Object item : (List<?>) entries) {
            Object name = item instanceof Map ? ((Map<?, ?>) item).get("name") : null;
            if (!(name instanceof String) || ((String) name).isEmpty()) {
                throw new IllegalArgumentException("model." + what + ": an entry is not an object with a name ("
                        + pythonRepr(item) + ")");
            }
            Map<?, ?> entry = (Map<?, ?>) item;
            String prefix = "model." + what + " '" + name + "': ";
            Object role = entry.get("role");
            if (!roles.contains(role)) {
                throw new IllegalArgumentException(prefix + "role " + pythonRepr(role) + " is not one of "
                        + joined(roles));
            }
            Object pair = entry.get("pair");
            if (role.equals("state") && !(pair instanceof String)) {
                throw new IllegalArgumentException(prefix + "a state without its pair");
            }
            // Python: entry.get("shape", []) -- an absent shape passes, an explicit null does not.
            Object shape = entry.containsKey("shape") ? entry.get("shape") : Collections.emptyList();
            int[] dims = positiveInts(shape);
            if (dims == null) {
                throw new IllegalArgumentException(prefix + "shape " + pythonRepr(shape)
                        + " is not a list of positive integers");
            }
            Object dtype = entry.get("dtype");
            out.add(new TensorRole((String) name, (String) role, entry.containsKey("shape") ? dims : null,
                    dtype instanceof String ? (String) dtype : null, pair instanceof String ? (String) pair : null,
                    entry.get("value")));
        }
        // Every model has exactly one image in and one alpha out; the runtime feeds and reads them by role.
        String sole = what.equals("inputs") ? "image" : "alpha";
        int count = 0;
        for (TensorRole r : out) {
            if (r.role.equals(sole)) {
                count++;
            }
        }
        if (count != 1) {
            throw new IllegalArgumentException("model." + what + ": exactly one " + sole + " is needed, found " + count);
        }
        return Collections.unmodifiableList(out);
    }

    /** {@code ", ".join(items)} (String.join needs API 26). */
    private static String joined(List<String> items) {
        StringBuilder out = new StringBuilder();
        for (String item : items) {
            out.append(out.length() > 0 ? ", " : "").append(item);
        }
        return out.toString();
    }

    /** The ints of a JSON list of positive integers (JSON integers only: no 2.0, no booleans), else null. */
    private static int[] positiveInts(Object value) {
        if (!(value instanceof List)) {
            return null;
        }
        List<?> list = (List<?>) value;
        int[] out = new int[list.size()];
        for (int i = 0; i < out.length; i++) {
            Object d = list.get(i);
            if (!(d instanceof Long) || (Long) d <= 0 || (Long) d > Integer.MAX_VALUE) {
                return null;
            }
            out[i] = ((Long) d).intValue();
        }
        return out;
    }

    /**
     * A parsed JSON value as Python's {@code repr} shows it (so messages read as core/manifest.py's):
     * {@code {'name': 'x'}}, {@code ['a', 'b']}, {@code None}, {@code True}, {@code 2.0}.
     */
    static String pythonRepr(Object value) {
        if (value == null) {
            return "None";
        }
        if (value instanceof Boolean) {
            return (Boolean) value ? "True" : "False";
        }
        if (value instanceof String) {
            String s = (String) value;
            // Python quotes with ' unless the text holds a ' and no ".
            char quote = s.indexOf('\'') >= 0 && s.indexOf('"') < 0 ? '"' : '\'';
            StringBuilder out = new StringBuilder().append(quote);
            for (char c : s.toCharArray()) {
                if (c == '\\' || c == quote) {
                    out.append('\\').append(c);
                } else if (c == '\n') {
                    out.append("\\n");
                } else if (c == '\t') {
                    out.append("\\t");
                } else if (c == '\r') {
                    out.append("\\r");
                } else if (c < 0x20 || c == 0x7f) {
                    out.append(String.format(Locale.ROOT, "\\x%02x", (int) c));
                } else {
                    out.append(c);
                }
            }
            return out.append(quote).toString();
        }
        if (value instanceof Double) {
            double d = (Double) value;
            if (Double.isNaN(d)) {
                return "nan";
            }
            if (Double.isInfinite(d)) {
                return d > 0 ? "inf" : "-inf";
            }
            if (d == Math.rint(d) && Math.abs(d) < 1e16) {
                return (long) d + ".0";
            }
            return Double.toString(d);
        }
        if (value instanceof List) {
            StringBuilder out = new StringBuilder("[");
            for (Object item : (List<?>) value) {
                out.append(out.length() > 1 ? ", " : "").append(pythonRepr(item));
            }
            return out.append(']').toString();
        }
        if (value instanceof Map) {
            StringBuilder out = new StringBuilder("{");
            for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
                out.append(out.length() > 1 ? ", " : "").append(pythonRepr(e.getKey())).append(": ")
                        .append(pythonRepr(e.getValue()));
            }
            return out.append('}').toString();
        }
        return String.valueOf(value);
    }

    /** Python's repr of a list of names: {@code ['a', 'b']}. */
    static String pythonList(List<String> names) {
        return pythonRepr(new ArrayList<Object>(names));
    }

    @Override
    public String toString() {
        return name + " (" + role + (pair != null ? " <-> " + pair : "")
                + (shape != null ? " " + Arrays.toString(shape) : "") + ")";
    }
}
