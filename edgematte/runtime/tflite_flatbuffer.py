"""Reading, cutting and editing ``.tflite`` flatbuffers with LiteRT's own tools (``ai_edge_litert.tools``).

LiteRT ships the flatbuffer schema and TensorFlow's ``flatbuffer_utils`` (object API: ``schema.ModelT``): no
TensorFlow import (70 ms against seconds). The one place edgematte parses, cuts (the one-op models of a profile, the
copy of a model without its tail) and edits (the TFLite repairs, the int8 rewrites) a ``.tflite``. A runtime-only
install without ``ai_edge_litert`` (``tflite_runtime`` on a board) has none of it: :func:`flatbuffer_tools` is
``None`` there.
"""

import copy
from typing import List, Optional, Sequence

import numpy as np


def flatbuffer_tools():
    """LiteRT's ``flatbuffer_utils``, or None where ``ai_edge_litert`` is not installed."""
    try:
        from ai_edge_litert.tools import flatbuffer_utils
    except ImportError:
        return None
    return flatbuffer_utils


def flatbuffer_schema():
    """LiteRT's generated schema module (``ModelT``, ``BuiltinOperator``, ``TensorType``...)."""
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def parse_model(model_bytes: bytes):
    """A ``.tflite`` model as a flatbuffer object (``schema.ModelT``)."""
    return flatbuffer_tools().convert_bytearray_to_object(bytearray(model_bytes))


def model_bytes(model) -> bytes:
    """The ``.tflite`` bytes of a flatbuffer object (``schema.ModelT``)."""
    return bytes(flatbuffer_tools().convert_object_to_bytearray(model))


def submodel(model, op_indices: Sequence[int], outputs: Sequence[int]) -> bytes:
    """A ``.tflite`` of part of ``model`` (:func:`parse_model`'s object, left as it is): its main graph runs the ops
    ``op_indices`` (in that order) and returns the tensors ``outputs``; its inputs are the non-constant tensors
    those ops read and none of them writes; buffers they do not read are left empty (each part holds only its own
    weights); no signatures (they would name the whole model's outputs)."""
    graph = model.subgraphs[0]
    operators = [graph.operators[i] for i in op_indices]
    read = [int(i) for op in operators for i in op.inputs if i >= 0]
    written = {int(o) for op in operators for o in op.outputs}
    buffers = {graph.tensors[i].buffer for i in read}
    constant = {i for i in read if model.buffers[graph.tensors[i].buffer].data is not None
                and len(model.buffers[graph.tensors[i].buffer].data) > 0}
    part, main = copy.copy(model), copy.copy(graph)
    main.operators = operators
    main.inputs = np.array(list(dict.fromkeys(i for i in read if i not in constant and i not in written)), np.int32)
    main.outputs = np.array(list(outputs), np.int32)
    empty = type(model.buffers[0])()
    part.buffers = [b if position in buffers or position == 0 else empty for position, b in enumerate(model.buffers)]
    part.subgraphs = [main] + list(model.subgraphs[1:])
    part.signatureDefs = []
    return model_bytes(part)


class TFLiteModelEdit:
    """A model being edited: ``model`` (``schema.ModelT``), its first subgraph ``graph`` and the ``schema``."""

    def __init__(self, data: bytes):
        self.schema = flatbuffer_schema()
        self.model = parse_model(data)
        self.graph = self.model.subgraphs[0]

    def opcode_indices(self, builtin: int, min_version: int = 1) -> List[int]:
        """The operator codes for ``builtin`` (a model can hold one per op version), those of at least
        ``min_version``."""
        return [index for index, code in enumerate(self.model.operatorCodes)
                if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin and code.version >= min_version]

    def opcode(self, builtin: int, version: int = 1) -> int:
        """An operator code for ``builtin`` of at least ``version``, added when the model has none."""
        existing = self.opcode_indices(builtin, version)
        if existing:
            return existing[0]
        code = self.schema.OperatorCodeT()
        code.builtinCode = builtin
        code.deprecatedBuiltinCode = min(builtin, 127)  # the old int8 field; 127: "see builtinCode"
        code.version = version
        self.model.operatorCodes.append(code)
        return len(self.model.operatorCodes) - 1

    def op_name(self, op) -> str:
        """The builtin operator name of ``op`` (``schema.OperatorT``), e.g. ``"CONV_2D"``."""
        code = self.model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        return next(name for name, value in vars(self.schema.BuiltinOperator).items() if value == builtin)

    def constant_values(self, tensor_index: int) -> Optional[np.ndarray]:
        """The values of a constant tensor (its dtype from the tensor's type, its shape), None for an activation."""
        tensor = self.graph.tensors[tensor_index]
        data = self.model.buffers[tensor.buffer].data
        if data is None or len(data) == 0:
            return None
        dtypes = {self.schema.TensorType.INT32: np.int32, self.schema.TensorType.INT64: np.int64,
                  self.schema.TensorType.FLOAT32: np.float32, self.schema.TensorType.INT8: np.int8}
        if tensor.type not in dtypes:
            return None
        values = np.frombuffer(bytes(bytearray(data)), dtypes[tensor.type])
        return values.reshape([int(d) for d in tensor.shape]) if tensor.shape is not None else values

    def consumers(self, tensor_index: int) -> list:
        """The operators that read ``tensor_index``."""
        return [op for op in self.graph.operators if tensor_index in [int(i) for i in op.inputs]]

    def add_tensor(self, tensor, data: Optional[bytes] = None) -> int:
        """Append ``tensor`` (``schema.TensorT``) with a buffer of its own (holding ``data`` for a constant)."""
        buffer = self.schema.BufferT()
        if data is not None:
            buffer.data = np.frombuffer(data, np.uint8)
        self.model.buffers.append(buffer)
        tensor.buffer = len(self.model.buffers) - 1
        self.graph.tensors.append(tensor)
        return len(self.graph.tensors) - 1

    def add_activation_like(self, like: int, name: str, shape: Sequence[int]) -> int:
        """A new activation tensor of ``like``'s type and quantization, named ``name``, of ``shape``."""
        source = self.graph.tensors[like]
        tensor = self.schema.TensorT()
        tensor.name, tensor.type = name.encode(), source.type
        tensor.shape = np.array(list(shape), np.int32)
        tensor.quantization = copy.deepcopy(source.quantization)
        return self.add_tensor(tensor)

    def per_channel_quantization(self, scales: Sequence[float], axis: int):
        """Symmetric int8 quantization parameters (``schema.QuantizationParametersT``): one scale per slice along
        ``axis``, zero points 0."""
        quantization = self.schema.QuantizationParametersT()
        quantization.scale = np.array(list(scales), np.float32)
        quantization.zeroPoint = np.zeros(len(quantization.scale), np.int64)
        quantization.quantizedDimension = axis
        return quantization

    def add_constant(self, name: str, values: np.ndarray, tensor_type: int, quantization=None) -> int:
        """A constant tensor of ``values`` (stored as they are: their dtype must match ``tensor_type``)."""
        tensor = self.schema.TensorT()
        tensor.shape, tensor.type, tensor.name = np.array(values.shape, np.int32), tensor_type, name.encode()
        tensor.quantization = quantization
        return self.add_tensor(tensor, np.ascontiguousarray(values).tobytes())

    def operator(self, builtin: int, inputs: Sequence[int], outputs: Sequence[int], options=None,
                 version: int = 1):
        """A new operator (``schema.OperatorT``, not yet in the graph) of ``builtin`` (at least ``version``) reading
        ``inputs`` and writing ``outputs``; ``options`` is its ``...OptionsT`` object (its type found by name)."""
        op = self.schema.OperatorT()
        op.opcodeIndex = self.opcode(builtin, version)
        if options is not None:
            op.builtinOptionsType = getattr(self.schema.BuiltinOptions, type(options).__name__[:-1])
            op.builtinOptions = options
        op.inputs, op.outputs = np.array(list(inputs), np.int32), np.array(list(outputs), np.int32)
        return op

    def reshape(self, source: int, target: int):
        """A RESHAPE of ``source`` into ``target``'s shape (the shape also given as a constant, as TensorFlow
        writes it)."""
        shape = np.array([int(d) for d in self.graph.tensors[target].shape], np.int32)
        options = self.schema.ReshapeOptionsT()
        options.newShape = shape
        name = self.graph.tensors[target].name.decode() + "/shape"
        return self.operator(self.schema.BuiltinOperator.RESHAPE,
                             [source, self.add_constant(name, shape, self.schema.TensorType.INT32)], [target], options)

    def to_bytes(self) -> bytes:
        return model_bytes(self.model)
