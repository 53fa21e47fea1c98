"""Integer channel means as 1x1 convolutions, which XNNPACK runs faster (worker side, after quantizing).

PP-MattingV2's fusion blocks take the mean over the channels of each input (``MEAN`` on the last axis, kept as one
channel), 14 of them from 3 to 512 channels and up to 256x256. XNNPACK's int8 MEAN over the channel axis took 0.69 ms
of the int8 model alone against 0.35 ms for the float MEANs (AMD Zen 5, 2 threads, each op timed alone); as a 1x1
CONV_2D of one output channel the whole int8 model ran 19.1 -> 18.6 ms (60 interleaved rounds).

A channel mean of ``C`` channels is a 1x1 convolution with every weight ``1 / C``: in int8 each weight is 127 at the
scale ``1 / (127 C)`` (the stored weight is the factor exactly), the bias 0, the output keeps the MEAN's scale and
zero point. The two compute the same mean of the integer inputs and differ only in how the last bit is rounded
(fixed-point multiplier of the convolution against the MEAN's own requantization); the model's alpha error is
measured against the budget like any int8 model's. Means over other axes, or without ``keep_dims``, stay.
"""

from typing import List, Sequence, Tuple

import numpy as np

from ...runtime.tflite_flatbuffer import TFLiteModelEdit

WEIGHT_SUFFIX = "/channel_mean_weights"
"""Name suffix of the weight tensors of channel means rewritten as convolutions."""
INT8_CONV_VERSION = 3  # CONV_2D with int8 per-channel weights


def channel_means_as_convolutions(quantized: bytes) -> Tuple[bytes, List[str]]:
    """``quantized`` (a full-integer model) with its int8 channel means as 1x1 convolutions (see the module
    docstring); returns the model and the output tensor names of the means rewritten."""
    edit = TFLiteModelEdit(quantized)
    schema, graph = edit.schema, edit.graph
    rewritten = []
    for op in graph.operators:
        if edit.op_name(op) != "MEAN" or not op.builtinOptions.keepDims:
            continue
        source, output = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        axes = edit.constant_values(int(op.inputs[1]))
        if source.type != schema.TensorType.INT8 or output.type != schema.TensorType.INT8 or source.shape is None \
                or len(source.shape) != 4 or axes is None or sorted({int(a) % 4 for a in axes.ravel()}) != [3]:
            continue
        channels, name = int(source.shape[3]), output.name.decode()
        weight_scale = 1.0 / (127 * channels)
        weights = edit.add_constant(name + WEIGHT_SUFFIX, np.full((1, 1, 1, channels), 127, np.int8),
                                    schema.TensorType.INT8, edit.per_channel_quantization([weight_scale], 0))
        input_scale = float(source.quantization.scale[0])
        bias = edit.add_constant(name + WEIGHT_SUFFIX + "/bias", np.zeros(1, np.int32), schema.TensorType.INT32,
                                 edit.per_channel_quantization([input_scale * weight_scale], 0))
        options = schema.Conv2DOptionsT()
        options.padding, options.strideH, options.strideW = schema.Padding.VALID, 1, 1
        options.dilationHFactor, options.dilationWFactor = 1, 1
        options.fusedActivationFunction = schema.ActivationFunctionType.NONE
        op.opcodeIndex = edit.opcode(schema.BuiltinOperator.CONV_2D, INT8_CONV_VERSION)
        op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.Conv2DOptions, options
        op.inputs = np.array([op.inputs[0], weights, bias], np.int32)
        rewritten.append(name)
    return (edit.to_bytes() if rewritten else quantized), rewritten


def means_rewritten(ops: Sequence[dict]) -> List[str]:
    """The output names of the channel means a model's ops (``tflite_ops``' dicts) show rewritten."""
    return [op["outputs"][0]["name"] for op in ops
            if op["op"] == "CONV_2D" and any(t["name"].endswith(WEIGHT_SUFFIX) for t in op["inputs"])]
