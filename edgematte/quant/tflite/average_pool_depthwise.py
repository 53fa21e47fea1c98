"""Integer average pools as depthwise convolutions, so that XNNPACK runs them (worker side: imports TF's schema).

LiteRT's XNNPACK delegate takes AVERAGE_POOL_2D in float only: in a full-integer model every int8 pool runs on
TFLite's own single-threaded kernel and cuts the delegated graph in two around it. PP-MattingV2 has 13 (its image
pyramid pools the 512x512 photo itself, STDC's downsampling, the pyramid pooling module): its int8 TFLite ran in
14 XNNPACK partitions and the pools cost about 5 of its 27 ms (AMD Zen 5, 2 threads).

A VALID-padded k_h x k_w pool is a depthwise convolution with every weight ``1 / (k_h * k_w)``, same window and
stride. In int8: each weight is 127 with the per-channel scale ``1 / (k_h * k_w * 127)`` (so the stored weight is
the mean's factor exactly), the bias 0, and the output keeps the pool's own scale and zero point. The pool and the
convolution then compute the same window mean and differ only in how the last bit is rounded (fixed-point
multiplier against the pool's integer division): at most 2 steps of the output's scale, measured on PP-MattingV2;
the model's alpha error is measured against the budget like any int8 model's. SAME-padded pools (whose window
count shrinks at the border) and pools with a fused activation are left as they are.
"""

from typing import List, Tuple

import numpy as np

from .flatbuffer_edit import TFLiteModelEdit

WEIGHT_SUFFIX = "/average_pool_weights"
"""Name suffix of the weight tensors of pools rewritten as convolutions (how a model shows it was rewritten)."""
INT8_DEPTHWISE_VERSION = 3  # DEPTHWISE_CONV_2D with int8 per-channel weights


def average_pools_as_depthwise(quantized: bytes) -> Tuple[bytes, List[str]]:
    """``quantized`` (a full-integer model) with its int8 VALID average pools as depthwise convolutions (see the
    module docstring); returns the model and the output tensor names of the pools rewritten."""
    edit = TFLiteModelEdit(quantized)
    schema, graph = edit.schema, edit.graph
    rewritten = []
    for op in graph.operators:
        if edit.op_name(op) != "AVERAGE_POOL_2D":
            continue
        pool = op.builtinOptions
        source, output = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        if source.type != schema.TensorType.INT8 or output.type != schema.TensorType.INT8 \
                or pool.padding != schema.Padding.VALID \
                or pool.fusedActivationFunction != schema.ActivationFunctionType.NONE:
            continue
        channels, window = int(source.shape[3]), int(pool.filterHeight * pool.filterWidth)
        name = output.name.decode()
        weight_scale = 1.0 / (window * 127)
        weights = edit.add_constant(name + WEIGHT_SUFFIX, np.full((1, pool.filterHeight, pool.filterWidth, channels),
                                                                  127, np.int8),
                                    schema.TensorType.INT8, _per_channel(schema, [weight_scale] * channels, 3))
        input_scale = float(source.quantization.scale[0])
        bias = edit.add_constant(name + WEIGHT_SUFFIX + "/bias", np.zeros(channels, np.int32), schema.TensorType.INT32,
                                 _per_channel(schema, [input_scale * weight_scale] * channels, 0))
        options = schema.DepthwiseConv2DOptionsT()
        options.padding, options.strideH, options.strideW = pool.padding, pool.strideH, pool.strideW
        options.depthMultiplier, options.dilationHFactor, options.dilationWFactor = 1, 1, 1
        options.fusedActivationFunction = schema.ActivationFunctionType.NONE
        op.opcodeIndex = edit.opcode(schema.BuiltinOperator.DEPTHWISE_CONV_2D, INT8_DEPTHWISE_VERSION)
        op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.DepthwiseConv2DOptions, options
        op.inputs = np.array([op.inputs[0], weights, bias], np.int32)
        rewritten.append(name)
    return (edit.to_bytes() if rewritten else quantized), rewritten


def _per_channel(schema, scales: List[float], axis: int):
    quantization = schema.QuantizationParametersT()
    quantization.scale = np.array(scales, np.float32)
    quantization.zeroPoint = np.zeros(len(scales), np.int64)
    quantization.quantizedDimension = axis
    return quantization
