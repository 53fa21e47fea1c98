package org.edgematte.demo.engine;

import java.io.File;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;

import com.baidu.paddle.lite.MobileConfig;
import com.baidu.paddle.lite.PaddlePredictor;
import com.baidu.paddle.lite.PowerMode;
import com.baidu.paddle.lite.Tensor;

import org.edgematte.core.InferenceModel;
import org.edgematte.core.NdArray;
import org.edgematte.core.TensorSpec;

/**
 * A Paddle Lite .nb model through its Java API (MobileConfig + PaddlePredictor). .nb models take and return
 * float32 even when int8 inside (Lite inserts its own calib ops), so no quantization happens here. Tensor
 * specs come from the manifest (the Java API reports no names or dtypes).
 */
public final class PaddleLiteModel implements InferenceModel {

    private final File file;
    private final int threads;
    private final TensorSpec input;
    private final TensorSpec output;
    private PaddlePredictor predictor;

    public PaddleLiteModel(File file, TensorSpec input, TensorSpec output, int threads) throws IOException {
        if (input.quant != null) {
            throw new IOException(file + ": the manifest gives this .nb an integer input; Paddle Lite .nb inputs are float32");
        }
        this.file = file;
        this.threads = threads;
        this.input = input;
        this.output = output;
        MobileConfig config = new MobileConfig();
        config.setModelFromFile(file.getAbsolutePath());
        config.setThreads(threads);
        config.setPowerMode(PowerMode.LITE_POWER_HIGH);
        predictor = PaddlePredictor.createPaddlePredictor(config);
        if (predictor == null) {
            throw new IOException(file + ": Paddle Lite could not create a predictor (wrong target, or a .nb from "
                    + "another Paddle Lite version than the bundled library)");
        }
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
    public NdArray run(NdArray x) throws IOException {
        Tensor in = predictor.getInput(0);
        long[] dims = new long[x.shape.length];
        for (int i = 0; i < dims.length; i++) {
            dims[i] = x.shape[i];
        }
        if (!in.resize(dims) || !in.setData(x.floats())) {
            throw new IOException(file + ": Paddle Lite refused the input tensor " + x);
        }
        if (!predictor.run()) {
            throw new IOException(file + ": Paddle Lite run failed");
        }
        Tensor out = predictor.getOutput(0);
        long[] outDims = out.shape();
        int[] shape = new int[outDims.length];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = (int) outDims[i];
        }
        // getFloatData copies out of the predictor's buffer, so the next run cannot overwrite it.
        return NdArray.float32(out.getFloatData(), shape);
    }

    @Override
    public Map<String, Object> describe() {
        Map<String, Object> facts = new LinkedHashMap<>();
        facts.put("kind", "artefact");
        facts.put("runtime", "paddle_lite");
        facts.put("file", file.getName());
        facts.put("threads", threads);
        facts.put("power_mode", "LITE_POWER_HIGH");
        facts.put("input", input.toString());
        facts.put("output", output.toString());
        return facts;
    }

    @Override
    public void close() {
        // The predictor frees its native memory when collected; drop the reference now.
        predictor = null;
    }
}
