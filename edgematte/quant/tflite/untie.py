"""Untying shared CONCATENATION scales in a calibrated model (worker side: imports TensorFlow's schema).

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
"""

from typing import List, Optional, Tuple

import numpy as np

DEFAULT_UNTIE_RATIO = 4.0
UNTIE_SUFFIX = "/requantize"
"""Name suffix of the identity tensors put in front of untied concatenation inputs."""


def untie_concatenation_scales(calibrated: bytes, ratio: float) -> Tuple[bytes, List[dict]]:
    """Give narrow CONCATENATION inputs their own int8 scale (see the module docstring).

    In the calibrated (float) model, each concatenation input whose recorded range (max - min) is at
    least ``ratio`` times narrower than the concatenation output's is routed through ``MUL(x, 1.0)``,
    a new tensor named ``<input>/requantize`` with the input's recorded range. The float model
    computes exactly the same; MLIR quantizes the identity into a requantization. Constant inputs
    are left alone. Returns the new calibrated model and one record per routed input.
    """
    import copy

    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    graph = model.subgraphs[0]

    def opcode_indices(builtin: int) -> List[int]:
        # one entry per op version: a model can hold several for the same builtin
        return [index for index, code in enumerate(model.operatorCodes)
                if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin]

    def recorded_range(tensor_index: int):
        quantization = graph.tensors[tensor_index].quantization
        if quantization is None or quantization.min is None or len(quantization.min) != 1:
            return None
        return float(quantization.min[0]), float(quantization.max[0])

    def add_tensor(tensor, data: Optional[bytes] = None) -> int:
        buffer = schema.BufferT()
        if data is not None:
            buffer.data = np.frombuffer(data, np.uint8)
        model.buffers.append(buffer)
        tensor.buffer = len(model.buffers) - 1
        graph.tensors.append(tensor)
        return len(graph.tensors) - 1

    def mul_opcode() -> int:
        existing = opcode_indices(schema.BuiltinOperator.MUL)
        if existing:
            return existing[0]
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.MUL
        code.version = 1
        model.operatorCodes.append(code)
        return len(model.operatorCodes) - 1

    concatenations = set(opcode_indices(schema.BuiltinOperator.CONCATENATION))
    if not concatenations:
        return calibrated, []
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
                routed_index = add_tensor(routed)
                one = schema.TensorT()
                one.shape, one.type = np.array([], np.int32), schema.TensorType.FLOAT32
                one.name = (name + UNTIE_SUFFIX + "/one").encode()
                one_index = add_tensor(one, np.float32(1.0).tobytes())
                identity = schema.OperatorT()
                identity.opcodeIndex = mul_opcode()
                identity.inputs, identity.outputs = [tensor_index, one_index], [routed_index]
                identity.builtinOptionsType = schema.BuiltinOptions.MulOptions
                identity.builtinOptions = schema.MulOptionsT()
                operators.append(identity)
                inputs[position] = routed_index
                untied.append({"tensor": name, "concatenation": graph.tensors[op.outputs[0]].name.decode(),
                               "range": list(input_range), "concatenation_range": list(output_range)})
            op.inputs = inputs
        operators.append(op)
    graph.operators = operators
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), untied
