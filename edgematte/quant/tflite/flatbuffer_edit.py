"""Editing a ``.tflite`` model in TensorFlow's flatbuffer object API (worker side: imports TensorFlow's schema).

The one place the rewrites of :mod:`edgematte.quant.tflite` (untying concatenation scales, average pools as
depthwise convolutions) look up and add operator codes, tensors and buffers.
"""

from typing import List, Optional

import numpy as np


class TFLiteModelEdit:
    """A model being edited: ``model`` (``schema.ModelT``) and its first subgraph ``graph``."""

    def __init__(self, data: bytes):
        from tensorflow.lite.python import schema_py_generated as schema
        from tensorflow.lite.tools import flatbuffer_utils

        self.schema = schema
        self._flatbuffer_utils = flatbuffer_utils
        self.model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
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

    def add_tensor(self, tensor, data: Optional[bytes] = None) -> int:
        """Append ``tensor`` (``schema.TensorT``) with a buffer of its own (holding ``data`` for a constant)."""
        buffer = self.schema.BufferT()
        if data is not None:
            buffer.data = np.frombuffer(data, np.uint8)
        self.model.buffers.append(buffer)
        tensor.buffer = len(self.model.buffers) - 1
        self.graph.tensors.append(tensor)
        return len(self.graph.tensors) - 1

    def add_constant(self, name: str, values: np.ndarray, tensor_type: int, quantization=None) -> int:
        """A constant tensor of ``values`` (stored as they are: their dtype must match ``tensor_type``)."""
        tensor = self.schema.TensorT()
        tensor.shape, tensor.type, tensor.name = np.array(values.shape, np.int32), tensor_type, name.encode()
        tensor.quantization = quantization
        return self.add_tensor(tensor, np.ascontiguousarray(values).tobytes())

    def to_bytes(self) -> bytes:
        return bytes(self._flatbuffer_utils.convert_object_to_bytearray(self.model))
