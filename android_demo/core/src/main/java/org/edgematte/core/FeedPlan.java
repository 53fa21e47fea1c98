package org.edgematte.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * How one artefact is fed (twin of Python's {@code model_io.FeedPlan}): {@link #inputs}.get(i) /
 * {@link #outputs}.get(j) are the roles of the artefact's i-th input / j-th output (constants are frozen into
 * the artefact, so never fed); {@link #layout} is that of its tensors unless {@link #inputLayouts} /
 * {@link #outputLayouts} say per tensor. States travel between calls channels-first (NCHW): an output is
 * brought back from its own layout and put into its paired input's, which may differ (onnx2tf).
 *
 * <p>Arrays are float32 {@link NdArray}s: a step and the states are channels-first, what {@link #feeds}
 * returns and {@link #nextStates} takes are in the artefact's order and layouts.
 */
public final class FeedPlan {

    public final List<TensorRole> inputs;
    public final List<TensorRole> outputs;
    public final String layout;
    /** Per-tensor layouts (artefact order), or null: every tensor in {@link #layout}. */
    public final List<String> inputLayouts;
    public final List<String> outputLayouts;

    public FeedPlan(List<TensorRole> inputs, List<TensorRole> outputs, String layout, List<String> inputLayouts,
                    List<String> outputLayouts) {
        this.inputs = Collections.unmodifiableList(new ArrayList<>(inputs));
        this.outputs = Collections.unmodifiableList(new ArrayList<>(outputs));
        this.layout = layout;
        this.inputLayouts = inputLayouts == null ? null : Collections.unmodifiableList(new ArrayList<>(inputLayouts));
        this.outputLayouts = outputLayouts == null ? null : Collections.unmodifiableList(new ArrayList<>(outputLayouts));
    }

    /**
     * The plan for an artefact whose tensors are named {@code artefactInputs} / {@code artefactOutputs} (its
     * order), matched to the roles by {@link ModelIo#matchTensors}; {@code what} names it in errors.
     */
    public static FeedPlan of(List<TensorRole> inputRoles, List<TensorRole> outputRoles, List<String> artefactInputs,
                              List<String> artefactOutputs, String layout, String what, List<String> inputLayouts,
                              List<String> outputLayouts) {
        List<TensorRole> fed = new ArrayList<>();
        for (TensorRole role : inputRoles) {
            if (!role.is("constant")) {
                fed.add(role);
            }
        }
        int[] ins = ModelIo.matchTensors(roleNames(fed), artefactInputs, what + " inputs");
        int[] outs = ModelIo.matchTensors(roleNames(outputRoles), artefactOutputs, what + " outputs");
        List<TensorRole> inputs = new ArrayList<>();
        for (int i : ins) {
            inputs.add(fed.get(i));
        }
        List<TensorRole> outputs = new ArrayList<>();
        for (int j : outs) {
            outputs.add(outputRoles.get(j));
        }
        return new FeedPlan(inputs, outputs, layout, inputLayouts, outputLayouts);
    }

    /**
     * The plan for {@code model} (its tensor names, in its order) running {@code artefact} of {@code manifest}
     * (the roles); the artefact's entry gives the per-tensor layouts the converter recorded (a tensor without
     * one: the artefact's layout, default nchw), as Python's {@code FeedPlan.for_artefact}.
     */
    public static FeedPlan forArtefact(Manifest manifest, Manifest.Artefact artefact, InferenceModel model) {
        String layout = artefact.layout != null ? artefact.layout : "nchw";
        return of(manifest.inputRoles(), manifest.outputRoles(), ModelIo.names(model.inputs()),
                ModelIo.names(model.outputs()), layout, artefact.path, layouts(artefact.inputs, layout),
                layouts(artefact.outputs, layout));
    }

    private static List<String> layouts(List<TensorSpec> specs, String layout) {
        if (specs.isEmpty()) {
            return null;
        }
        List<String> out = new ArrayList<>();
        for (TensorSpec spec : specs) {
            out.add(spec.layout != null ? spec.layout : layout);
        }
        return out;
    }

    private static List<String> roleNames(List<TensorRole> roles) {
        List<String> out = new ArrayList<>();
        for (TensorRole role : roles) {
            out.add(role.name);
        }
        return out;
    }

    /** One image in, one output: fed as a plain tensor ({@link InferenceModel#run}), no roles needed. */
    public boolean singleImage() {
        return inputs.size() == 1 && outputs.size() == 1;
    }

    public boolean takesTrimap() {
        return indexOf(inputs, "trimap") >= 0;
    }

    public boolean recurrent() {
        return indexOf(inputs, "state") >= 0;
    }

    public String inputLayout(int index) {
        return inputLayouts != null ? inputLayouts.get(index) : layout;
    }

    public String outputLayout(int index) {
        return outputLayouts != null ? outputLayouts.get(index) : layout;
    }

    /** The artefact index of the image input (the first). */
    public int imageIndex() {
        return require(inputs, "image");
    }

    /** The artefact index of the alpha output (the first). */
    public int alphaIndex() {
        return require(outputs, "alpha");
    }

    private static int indexOf(List<TensorRole> roles, String role) {
        for (int i = 0; i < roles.size(); i++) {
            if (roles.get(i).is(role)) {
                return i;
            }
        }
        return -1;
    }

    private static int require(List<TensorRole> roles, String role) {
        int index = indexOf(roles, role);
        if (index < 0) {
            throw new IllegalArgumentException("the model has no " + role + " tensor (roles: " + roles + ")");
        }
        return index;
    }

    /** Each state input's zeros (a clip's first frame), channels-first, by input name. */
    public Map<String, NdArray> zeroStates() {
        Map<String, NdArray> states = new LinkedHashMap<>();
        for (TensorRole role : inputs) {
            if (role.is("state")) {
                int[] shape = role.shape != null ? role.shape : new int[0];
                states.put(role.name, NdArray.float32(new float[NdArray.size(shape)], shape));
            }
        }
        return states;
    }

    /**
     * The artefact's input arrays, in its order and layouts, from {@code step} (non-state inputs by name) and
     * {@code states} (both channels-first); {@code ready} (may be null) holds inputs already in the artefact's
     * layout, fed as they are (the profile's image tensor). A missing value is an IllegalArgumentException.
     */
    public List<NdArray> feeds(Map<String, NdArray> step, Map<String, NdArray> states, Map<String, NdArray> ready) {
        List<NdArray> arrays = new ArrayList<>();
        for (int i = 0; i < inputs.size(); i++) {
            TensorRole role = inputs.get(i);
            if (ready != null && ready.containsKey(role.name)) {
                arrays.add(ready.get(role.name));
                continue;
            }
            NdArray value = role.is("state") ? states.get(role.name) : step.get(role.name);
            if (value == null) {
                throw new IllegalArgumentException("no value for the model's " + role.role + " input '" + role.name + "'");
            }
            arrays.add(ModelIo.onnxToLayout(asFloat32(value), inputLayout(i)));
        }
        return arrays;
    }

    /** The states to feed next (channels-first, by input name) from this call's outputs (artefact order). */
    public Map<String, NdArray> nextStates(List<NdArray> outputArrays) {
        Map<String, NdArray> states = new LinkedHashMap<>();
        for (int j = 0; j < outputs.size() && j < outputArrays.size(); j++) {
            TensorRole role = outputs.get(j);
            if (role.is("state")) {
                states.put(role.pair, ModelIo.layoutToOnnx(asFloat32(outputArrays.get(j)), outputLayout(j)));
            }
        }
        return states;
    }

    /** numpy's {@code np.asarray(value, np.float32)} for the dtypes a step may hold. */
    static NdArray asFloat32(NdArray value) {
        if (value.dtype == NdArray.DType.FLOAT32) {
            return value;
        }
        float[] out = new float[value.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) value.get(i);
        }
        return NdArray.float32(out, value.shape);
    }

    @Override
    public String toString() {
        return "FeedPlan(inputs " + inputs + ", outputs " + outputs + ", layout " + layout + ")";
    }
}
