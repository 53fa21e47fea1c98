"""Keeping layers of a dynamic-range model float: its int8 weights swapped back for the float ones.

TensorFlow's dynamic-range conversion stores each large enough weight (1024 elements or more) as int8 with
per-channel scales; the op then runs a hybrid kernel that also quantizes its float input on the fly, per
batch. The converter takes no list of layers to leave alone (``denylisted_nodes`` reaches only the
full-integer quantizer), so a layer is kept float here, after conversion: its weight input is pointed at a
new float32 tensor holding the original weights, and LiteRT then runs the plain float kernel for that op.

The original weights come from the *float twin*: the same SavedModel converted by the same converter
without optimizations. Both conversions run the same passes up to quantization, so their ops correspond
position by position. :func:`hybrid_weights` proves the pairing before anything is swapped: the same op
count, the same op type at every position, equal tensor shapes, and every int8 weight within half a
quantization step (plus float rounding) of its float twin. With every hybrid op kept float, the model
computes exactly what the float twin computes (checked in the tests and by the search before it starts).

Everything here reads and writes flatbuffers with LiteRT's own schema tools (``ai_edge_litert.tools``); no
TensorFlow in this process.
"""

from collections import Counter
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

from ...core.errors import EdgematteError

HALF_STEP_SLACK = 1e-3
"""How far past half a quantization step an int8 weight may sit from its float twin (float rounding of the
scale product), in steps."""
KEPT_FLOAT_SUFFIX = "/kept_float"
"""Appended to an int8 weight's name to name the float32 copy a kept-float op reads."""


@dataclass(frozen=True)
class HybridWeight:
    """One int8 weight input of a dynamic-range model and its float twin.

    ``node``: the consuming op's first output name (what ``keep_float`` names; see
    :func:`edgematte.quant.tflite_int8.model_ops`); ``op``: its builtin type (``"CONV_2D"``);
    ``op_index``: its position in the (first) subgraph; ``input_slot``: which input is the weight;
    ``tensor`` / ``twin_tensor``: the weight's tensor index in the dynamic model and in the float twin;
    ``shape``: the weight's shape; ``max_steps``: the largest distance, in quantization steps, between the
    dequantized int8 weight and the float one (at most 0.5 for TensorFlow's rounding).
    """

    node: str
    op: str
    op_index: int
    input_slot: int
    tensor: int
    twin_tensor: int
    shape: Tuple[int, ...]
    max_steps: float


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.tools import flatbuffer_utils
    except ImportError as e:  # the converter's install has it; a runtime-only install does not quantize
        raise EdgematteError(f"keeping dynamic-range layers float needs ai-edge-litert's flatbuffer tools ({e})")
    return schema, flatbuffer_utils


def _read(content: bytes, what: str):
    schema, flatbuffer_utils = _schema()
    try:
        model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    except Exception as e:  # a truncated or foreign file: say which
        raise EdgematteError(f"{what}: not a readable .tflite flatbuffer ({type(e).__name__})") from None
    if not model.subgraphs:
        raise EdgematteError(f"{what}: the model has no subgraph")
    return model


def _op_name(model, op) -> str:
    schema, _ = _schema()
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(builtin, f"builtin {builtin}")


def _tensor_name(tensor) -> str:
    name = tensor.name
    return name.decode("utf-8", "replace") if isinstance(name, (bytes, bytearray)) else str(name)


def _buffer_array(model, tensor, dtype) -> np.ndarray:
    data = model.buffers[tensor.buffer].data
    if data is None:
        raise EdgematteError(f"weight {_tensor_name(tensor)!r} has no constant data")
    values = np.frombuffer(bytes(bytearray(data)), dtype=dtype)
    shape = [int(d) for d in tensor.shape]
    if values.size != int(np.prod(shape)):
        raise EdgematteError(f"weight {_tensor_name(tensor)!r}: {values.size} values for shape {shape}")
    return values.reshape(shape)


def _dequantized(model, tensor) -> Tuple[np.ndarray, np.ndarray]:
    """``(int8 weight as float, per-element scale)`` broadcast to the weight's shape."""
    q = _buffer_array(model, tensor, np.int8).astype(np.float64)
    params = tensor.quantization
    scales = np.asarray(params.scale if params is not None and params.scale is not None else [], np.float64)
    zero_points = np.asarray(params.zeroPoint if params.zeroPoint is not None else [0] * len(scales), np.float64)
    if scales.size == 0:
        raise EdgematteError(f"int8 weight {_tensor_name(tensor)!r} has no quantization scale")
    if scales.size == 1:
        return (q - zero_points[0]) * scales[0], np.full(q.shape, scales[0])
    axis = int(params.quantizedDimension)
    shape = [1] * q.ndim
    shape[axis] = -1
    return (q - zero_points.reshape(shape)) * scales.reshape(shape), np.broadcast_to(scales.reshape(shape), q.shape)


def hybrid_weights(dynamic: bytes, float_twin: bytes) -> List[HybridWeight]:
    """Every constant int8 weight input of ``dynamic``'s ops (the ops that run hybrid kernels), paired with the
    float weight at the same place in ``float_twin``, in execution order.

    Raises :class:`EdgematteError` when the two models do not correspond op for op (see the module docstring).
    """
    return KeptFloatBuilder(dynamic, float_twin).pairs


def with_float_weights(dynamic: bytes, float_twin: bytes, nodes: Sequence[str]) -> bytes:
    """``dynamic`` with the ops named ``nodes`` reading float32 weights (see :meth:`KeptFloatBuilder.build`)."""
    return KeptFloatBuilder(dynamic, float_twin).build(nodes)


class KeptFloatBuilder:
    """A dynamic-range model and its float twin, parsed and paired once, to write many variants each keeping
    other ops float (the fallback search builds one per hybrid op)."""

    def __init__(self, dynamic: bytes, float_twin: bytes):
        self.schema, self._flatbuffer_utils = _schema()
        self.model, self.twin = _read(dynamic, "dynamic-range model"), _read(float_twin, "float twin")
        self.pairs = self._pair()

    def _pair(self) -> List[HybridWeight]:
        dyn, twin = self.model, self.twin
        graph, twin_graph = dyn.subgraphs[0], twin.subgraphs[0]
        if len(graph.operators) != len(twin_graph.operators):
            raise EdgematteError(f"the dynamic-range model has {len(graph.operators)} ops and its float twin "
                                 f"{len(twin_graph.operators)}: they do not correspond")
        pairs = []
        for index, (op, twin_op) in enumerate(zip(graph.operators, twin_graph.operators)):
            name, twin_name = _op_name(dyn, op), _op_name(twin, twin_op)
            if name != twin_name or len(op.inputs) != len(twin_op.inputs):
                raise EdgematteError(f"op {index}: {name} in the dynamic-range model, {twin_name} in its float twin")
            for slot, (t, twin_t) in enumerate(zip(op.inputs, twin_op.inputs)):
                if t < 0:
                    continue
                tensor = graph.tensors[t]
                if tensor.type != self.schema.TensorType.INT8 or not _has_data(dyn, tensor):
                    continue
                twin_tensor = twin_graph.tensors[twin_t]
                if twin_tensor.type != self.schema.TensorType.FLOAT32 or list(twin_tensor.shape) != list(tensor.shape):
                    raise EdgematteError(f"op {index} ({name}) input {slot}: int8 {list(tensor.shape)} in the "
                                         f"dynamic-range model, not a float32 tensor of that shape in its float twin")
                values, scale = _dequantized(dyn, tensor)
                steps = float(np.max(np.abs(values - _buffer_array(twin, twin_tensor, np.float32)) / scale))
                if steps > 0.5 + HALF_STEP_SLACK:
                    raise EdgematteError(f"op {index} ({name}) input {slot}: the int8 weight is {steps:.2f} steps "
                                         "from the float twin's (at most 0.5 when they are the same weight)")
                pairs.append(HybridWeight(node=_tensor_name(graph.tensors[op.outputs[0]]), op=name, op_index=index,
                                          input_slot=slot, tensor=int(t), twin_tensor=int(twin_t),
                                          shape=tuple(int(d) for d in tensor.shape), max_steps=steps))
        return pairs

    def build(self, nodes: Sequence[str]) -> bytes:
        """The dynamic-range model with the ops named ``nodes`` (their first output names) reading float32
        weights copied from the float twin. An int8 weight only kept ops read becomes that float weight (its
        int8 data is dropped, so the file holds each weight once); one that an op staying hybrid also reads is
        left as it is and each kept op reads its own float copy. A node that is not a hybrid op is an error.
        The parsed model is restored afterwards, ready for the next variant."""
        wanted = list(dict.fromkeys(nodes))
        known = {p.node for p in self.pairs}
        missing = [n for n in wanted if n not in known]
        if missing:
            raise EdgematteError(f"not a dynamic-range (int8 weight) op of the model: {missing[0]!r}"
                                 + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
        model, graph, twin_graph = self.model, self.model.subgraphs[0], self.twin.subgraphs[0]
        kept = [p for p in self.pairs if p.node in set(wanted)]
        readers = Counter(t for op in graph.operators for t in op.inputs if t >= 0)
        kept_readers = Counter(p.tensor for p in kept)
        buffer_users = Counter(t.buffer for g in model.subgraphs for t in g.tensors)
        n_buffers, n_tensors = len(model.buffers), len(graph.tensors)
        undo = []
        try:
            for pair in kept:
                if readers[pair.tensor] == -1:  # a weight every reader keeps float, turned float already
                    continue
                buffer = self.schema.BufferT()
                values = _buffer_array(self.twin, twin_graph.tensors[pair.twin_tensor], np.float32)
                buffer.data = np.frombuffer(np.ascontiguousarray(values, dtype="<f4").tobytes(), np.uint8).copy()
                model.buffers.append(buffer)
                int8_tensor = graph.tensors[pair.tensor]
                if readers[pair.tensor] == kept_readers[pair.tensor]:  # no hybrid reader left: turn it float
                    undo.append(("tensor", int8_tensor, (int8_tensor.type, int8_tensor.quantization,
                                                         int8_tensor.buffer)))
                    old_buffer = model.buffers[int8_tensor.buffer]
                    if buffer_users[int8_tensor.buffer] == 1 and old_buffer.data is not None:
                        undo.append(("buffer", old_buffer, old_buffer.data))
                        old_buffer.data = None
                    readers[pair.tensor] = -1
                    tensor = int8_tensor
                else:
                    tensor = self.schema.TensorT()
                    tensor.name = _tensor_name(int8_tensor) + KEPT_FLOAT_SUFFIX
                    tensor.shape = np.asarray(pair.shape, dtype=np.int32)
                    graph.tensors.append(tensor)
                    operator = graph.operators[pair.op_index]
                    undo.append(("input", operator, (pair.input_slot, operator.inputs[pair.input_slot])))
                    operator.inputs[pair.input_slot] = len(graph.tensors) - 1
                tensor.type = self.schema.TensorType.FLOAT32
                tensor.quantization = None
                tensor.buffer = len(model.buffers) - 1
            return bytes(self._flatbuffer_utils.convert_object_to_bytearray(model))
        finally:
            for kind, target, old in reversed(undo):
                if kind == "tensor":
                    target.type, target.quantization, target.buffer = old
                elif kind == "buffer":
                    target.data = old
                else:
                    target.inputs[old[0]] = old[1]
            del model.buffers[n_buffers:]
            del graph.tensors[n_tensors:]


def _has_data(model, tensor) -> bool:
    buffer = model.buffers[tensor.buffer] if 0 <= tensor.buffer < len(model.buffers) else None
    return buffer is not None and buffer.data is not None and len(buffer.data) > 0
