package org.edgematte.demo.engine;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.edgematte.core.InferenceModel;
import org.edgematte.core.NdArray;
import org.edgematte.core.QuantParams;
import org.edgematte.core.TensorSpec;
import org.tensorflow.lite.DataType;
import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.Tensor;
import org.tensorflow.lite.gpu.CompatibilityList;
import org.tensorflow.lite.gpu.GpuDelegate;

/**
 * A .tflite model on LiteRT's Interpreter API: CPU through XNNPACK, or the GPU delegate. Tensor specs
 * (shape, dtype, per-tensor quantization) come from the interpreter itself; int8/uint8 inputs and outputs
 * are exchanged as bytes, the core quantizes and dequantizes them exactly as the Python runtime does. A model
 * with several inputs or outputs (recurrent states, a trimap) runs through {@link #runFeeds}, every tensor in
 * the file's order; the core's FeedPlan decides what each one is fed.
 */
public final class LiteRtModel implements InferenceModel {

    private final File file;
    private final int threads;
    private final Accelerator accelerator;
    private final Interpreter interpreter;
    private final GpuDelegate gpuDelegate;
    private final TensorSpec input;
    private final TensorSpec output;
    private final List<TensorSpec> inputs;
    private final List<TensorSpec> outputs;

    public LiteRtModel(File file, int threads, Accelerator accelerator) throws IOException {
        this.file = file;
        this.threads = threads;
        this.accelerator = accelerator;
        Interpreter.Options options = new Interpreter.Options();
        options.setNumThreads(threads);
        options.setUseXNNPACK(true);
        GpuDelegate delegate = null;
        if (accelerator == Accelerator.GPU) {
            CompatibilityList compatibility = new CompatibilityList();
            try {
                if (!compatibility.isDelegateSupportedOnThisDevice()) {
                    throw new IOException("LiteRT's GPU delegate is not supported on this device; choose cpu");
                }
                delegate = new GpuDelegate(compatibility.getBestOptionsForThisDevice());
            } finally {
                compatibility.close();
            }
            options.addDelegate(delegate);
        }
        gpuDelegate = delegate;
        try {
            interpreter = new Interpreter(file, options);
        } catch (IllegalArgumentException | IllegalStateException e) {
            if (delegate != null) {
                delegate.close();
            }
            throw new IOException(file + ": LiteRT cannot load this model (" + e.getMessage() + ")", e);
        }
        List<TensorSpec> ins = new ArrayList<>();
        for (int i = 0; i < interpreter.getInputTensorCount(); i++) {
            ins.add(spec(interpreter.getInputTensor(i)));
        }
        List<TensorSpec> outs = new ArrayList<>();
        for (int j = 0; j < interpreter.getOutputTensorCount(); j++) {
            outs.add(spec(interpreter.getOutputTensor(j)));
        }
        inputs = Collections.unmodifiableList(ins);
        outputs = Collections.unmodifiableList(outs);
        input = inputs.get(0);
        output = outputs.get(0);
    }

    private static TensorSpec spec(Tensor tensor) {
        DataType type = tensor.dataType();
        String dtype;
        QuantParams quant = null;
        if (type == DataType.FLOAT32) {
            dtype = "float32";
        } else if (type == DataType.INT8 || type == DataType.UINT8) {
            dtype = type == DataType.INT8 ? "int8" : "uint8";
            Tensor.QuantizationParams params = tensor.quantizationParams();
            quant = new QuantParams(dtype, params.getScale(), params.getZeroPoint());
        } else {
            throw new IllegalArgumentException("tensor " + tensor.name() + " has unsupported type " + type);
        }
        return new TensorSpec(tensor.name(), tensor.shape(), dtype, quant);
    }

    @Override
    public TensorSpec input() {
        return input;
    }

    @Override
    public TensorSpec output() {
        return output;
    }

    @Override
    public List<TensorSpec> inputs() {
        return inputs;
    }

    @Override
    public List<TensorSpec> outputs() {
        return outputs;
    }

    @Override
    public NdArray run(NdArray x) {
        ByteBuffer out = outputBuffer(0);
        interpreter.run(inputBuffer(x), out);
        return read(0, out);
    }

    @Override
    public List<NdArray> runFeeds(List<NdArray> feeds) {
        if (feeds.size() != inputs.size()) {
            throw new IllegalArgumentException(file.getName() + " takes " + inputs.size() + " inputs, "
                    + feeds.size() + " were given");
        }
        Object[] in = new Object[feeds.size()];
        for (int i = 0; i < in.length; i++) {
            in[i] = inputBuffer(feeds.get(i));
        }
        Map<Integer, Object> out = new HashMap<>();
        for (int j = 0; j < outputs.size(); j++) {
            out.put(j, outputBuffer(j));
        }
        interpreter.runForMultipleInputsOutputs(in, out);
        List<NdArray> results = new ArrayList<>();
        for (int j = 0; j < outputs.size(); j++) {
            results.add(read(j, (ByteBuffer) out.get(j)));
        }
        return results;
    }

    private static ByteBuffer inputBuffer(NdArray x) {
        ByteBuffer in = ByteBuffer.allocateDirect(x.size() * x.dtype.itemSize).order(ByteOrder.nativeOrder());
        if (x.dtype == NdArray.DType.FLOAT32) {
            in.asFloatBuffer().put(x.floats());
        } else {
            in.put(x.bytes());
        }
        in.rewind();
        return in;
    }

    private ByteBuffer outputBuffer(int index) {
        return ByteBuffer.allocateDirect(interpreter.getOutputTensor(index).numBytes()).order(ByteOrder.nativeOrder());
    }

    /** Output {@code index} out of the buffer the interpreter filled: float32, or its integer values as bytes. */
    private NdArray read(int index, ByteBuffer out) {
        Tensor tensor = interpreter.getOutputTensor(index);
        QuantParams quant = outputs.get(index).quant;
        out.rewind();
        int[] shape = tensor.shape();
        if (quant == null) {
            float[] values = new float[tensor.numElements()];
            out.asFloatBuffer().get(values);
            return NdArray.float32(values, shape);
        }
        byte[] values = new byte[tensor.numElements()];
        out.get(values);
        return new NdArray(quant.ndType(), values, shape);
    }

    @Override
    public Map<String, Object> describe() {
        Map<String, Object> facts = new LinkedHashMap<>();
        facts.put("kind", "artefact");
        facts.put("runtime", "litert");
        facts.put("file", file.getName());
        facts.put("accelerator", accelerator == Accelerator.GPU ? "gpu delegate" : "cpu (xnnpack)");
        facts.put("threads", threads);
        facts.put("input", input.toString());
        facts.put("output", output.toString());
        return facts;
    }

    @Override
    public void close() {
        interpreter.close();
        if (gpuDelegate != null) {
            gpuDelegate.close();
        }
    }
}
