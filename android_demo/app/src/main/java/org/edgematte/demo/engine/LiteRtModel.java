package org.edgematte.demo.engine;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.LinkedHashMap;
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
 * are exchanged as bytes, the core quantizes and dequantizes them exactly as the Python runtime does.
 */
public final class LiteRtModel implements InferenceModel {

    private final File file;
    private final int threads;
    private final Accelerator accelerator;
    private final Interpreter interpreter;
    private final GpuDelegate gpuDelegate;
    private final TensorSpec input;
    private final TensorSpec output;

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
        input = spec(interpreter.getInputTensor(0));
        output = spec(interpreter.getOutputTensor(0));
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
    public NdArray run(NdArray x) {
        ByteBuffer in = ByteBuffer.allocateDirect(x.size() * x.dtype.itemSize).order(ByteOrder.nativeOrder());
        if (x.dtype == NdArray.DType.FLOAT32) {
            in.asFloatBuffer().put(x.floats());
        } else {
            in.put(x.bytes());
        }
        in.rewind();
        Tensor outTensor = interpreter.getOutputTensor(0);
        ByteBuffer out = ByteBuffer.allocateDirect(outTensor.numBytes()).order(ByteOrder.nativeOrder());
        interpreter.run(in, out);
        out.rewind();
        int[] shape = outTensor.shape();
        if (output.quant == null) {
            float[] values = new float[outTensor.numElements()];
            out.asFloatBuffer().get(values);
            return NdArray.float32(values, shape);
        }
        byte[] values = new byte[outTensor.numElements()];
        out.get(values);
        return new NdArray(output.quant.ndType(), values, shape);
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
