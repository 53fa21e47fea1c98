"""Untying shared CONCATENATION scales in a calibrated model (worker side, before TensorFlow quantizes it).

Shared scales are the largest int8 error on PP-MattingV2. TFLite's int8 CONCATENATION (and
REDUCE_MAX, PAD, AVERAGE_POOL_2D, RESIZE_BILINEAR, RESHAPE...) must have one scale for all inputs and
the output, and MLIR propagates it upstream through every such op. PP-MattingV2 concatenates
channel max/mean maps of features in [0, 5.4] with those of features in [0, 204]: the narrow
features feeding the detail branch were quantized at the wide scale (about 7 levels), which alone
cost 0.0148 of the 0.0179 MAD of plain full int8. :func:`untie_concatenation_scales` puts an
identity (MUL by 1.0) in front of each concatenation input whose calibrated range is much narrower
than the concatenation's; MLIR folds it into a requantizing QUANTIZE (or into a MUL just before
it), so everything upstream keeps its own scale. Measured: MAD 0.0179 -> 0.0086; the few
requantizations it adds are elementwise (latency unchanged within this machine's noise).

Where the untied input comes out of an op that itself must keep one scale (a pooled image level that is pooled
again and concatenated at several resolutions: RVM at 720x1280), MLIR folds the MUL into that op, the op then needs
both the concatenation's scale and its own input's, and TensorFlow refuses the model ("quantization parameters
violate the same scale constraint"). ``conv_identity_after`` makes the identity there a 1x1 DEPTHWISE_CONV_2D of
weight 1 and bias 0 (the same float value), which MLIR keeps as a real requantization; the worker retries with it
after such a refusal (:mod:`edgematte.quant.tflite.worker`).
"""

from typing import List, Sequence, Tuple

import numpy as np

from ...runtime.tflite_flatbuffer import TFLiteModelEdit

DEFAULT_UNTIE_RATIO = 4.0
SAME_SCALE_OPS = ("AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE",
                  "SLICE", "STRIDED_SLICE", "GATHER", "PAD", "PADV2", "MIRROR_PAD", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH",
                  "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "SPLIT", "SPLIT_V", "PACK", "UNPACK", "TILE",
                  "BROADCAST_TO", "MAXIMUM", "MINIMUM", "REDUCE_MAX", "REDUCE_MIN")
"""Ops whose int8 inputs and outputs TensorFlow's quantizer gives one scale, propagated along chains of them."""
SAME_SCALE_REFUSAL = "violate the same scale constraint"
UNTIE_SUFFIX = "/requantize"
"""Name suffix of the identity tensors put in front of untied concatenation inputs."""


def untie_concatenation_scales(calibrated: bytes, ratio: float,
                               conv_identity_after: Sequence[str] = ()) -> Tuple[bytes, List[dict]]:
    """Give narrow CONCATENATION inputs their own int8 scale (see the module docstring).

    In the calibrated (float) model, each concatenation input whose recorded range (max - min) is at
    least ``ratio`` times narrower than the concatenation output's is routed through ``MUL(x, 1.0)``,
    a new tensor named ``<input>/requantize`` with the input's recorded range. The float model
    computes exactly the same; MLIR quantizes the identity into a requantization. Constant inputs
    are left alone. After an op of a type in ``conv_identity_after`` (builtin names) the identity is a 1x1
    DEPTHWISE_CONV_2D of weight 1 instead: MLIR folds a MUL by 1.0 into such an op, which then has to take the
    concatenation's scale, and where it must also keep its own input's (an AVERAGE_POOL_2D of a pooled image, RVM at
    720x1280) it refuses the model; a convolution it keeps. Returns the new calibrated model and one record per routed
    input.
    """
    import copy

    edit = TFLiteModelEdit(calibrated)
    schema, graph = edit.schema, edit.graph

    def recorded_range(tensor_index: int):
        quantization = graph.tensors[tensor_index].quantization
        if quantization is None or quantization.min is None or len(quantization.min) != 1:
            return None
        return float(quantization.min[0]), float(quantization.max[0])

    concatenations = set(edit.opcode_indices(schema.BuiltinOperator.CONCATENATION))
    if not concatenations:
        return calibrated, []
    conv_after = {index for name in conv_identity_after
                  for index in edit.opcode_indices(getattr(schema.BuiltinOperator, name))}
    conv_inputs = {t for op in graph.operators if op.opcodeIndex in conv_after for t in op.outputs}

    def constant(name: str, values: np.ndarray) -> int:
        return edit.add_constant(name, values.astype(np.float32), schema.TensorType.FLOAT32)

    def identity(tensor_index: int, routed_index: int, name: str):
        if tensor_index in conv_inputs:  # NHWC: one weight of 1 per channel, no bias
            channels = int(graph.tensors[tensor_index].shape[-1])
            weight = constant(name + UNTIE_SUFFIX + "/one", np.ones((1, 1, 1, channels), np.float32))
            bias = constant(name + UNTIE_SUFFIX + "/zero", np.zeros((channels,), np.float32))
            options = schema.DepthwiseConv2DOptionsT()
            options.padding, options.strideW, options.strideH = schema.Padding.VALID, 1, 1
            options.depthMultiplier, options.dilationWFactor, options.dilationHFactor = 1, 1, 1
            return edit.operator(schema.BuiltinOperator.DEPTHWISE_CONV_2D, [tensor_index, weight, bias],
                                 [routed_index], options)
        one = constant(name + UNTIE_SUFFIX + "/one", np.array(1.0, np.float32))
        return edit.operator(schema.BuiltinOperator.MUL, [tensor_index, one], [routed_index], schema.MulOptionsT())

    untied, operators = [], []
    for op in graph.operators:
        output_range = recorded_range(op.outputs[0]) if op.opcodeIndex in concatenations else None
        if output_range is not None and output_range[1] > output_range[0]:
            inputs = list(op.inputs)
            for position, tensor_index in enumerate(inputs):
                input_range = recorded_range(tensor_index)
                if input_range is None or \
                        (input_range[1] - input_range[0]) * ratio > output_range[1] - output_range[0]:
                    continue
                name = graph.tensors[tensor_index].name.decode()
                routed = copy.deepcopy(graph.tensors[tensor_index])  # same shape, type and recorded range
                routed.name = (name + UNTIE_SUFFIX).encode()
                routed_index = edit.add_tensor(routed)
                operators.append(identity(tensor_index, routed_index, name))
                inputs[position] = routed_index
                untied.append({"tensor": name, "concatenation": graph.tensors[op.outputs[0]].name.decode(),
                               "range": list(input_range), "concatenation_range": list(output_range),
                               "identity": "DEPTHWISE_CONV_2D" if tensor_index in conv_inputs else "MUL"})
            op.inputs = inputs
        operators.append(op)
    graph.operators = operators
    return edit.to_bytes(), untied
