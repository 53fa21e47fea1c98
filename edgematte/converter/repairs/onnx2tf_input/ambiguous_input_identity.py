"""Graph inputs whose shape reads the same channels-first and channels-last, which onnx2tf transposes twice.

onnx2tf 1.29.24 (``ops/Input.py``) transposes every rank 3-5 graph input to channels-last, but does not flag
the tensor as transposed. The ops that decide an operand's layout by that flag and, failing it, by its shape
(Concat's "Shape Unmatched Special Avoidance Workaround", the binary ops' corrections) then take an input
such as RVM's recurrent state ``r1`` ``[1, 16, 16, 16]`` at 128x128, whose shape equals the ONNX shape, for
channels-first and transpose it a second time: the ConvGRU's ``Concat(split, r1)`` mixed the axes, and the
TFLite alpha was off by 1.0 against ONNX Runtime while onnx2tf exited 0 and its own per-op check (``-cotof``,
which tries every axis order) said "Matches". Inputs whose shape tells the two layouts apart
(``[1, 16, 32, 32]`` at 256x256) are never misread.

The repair reads such an input through an exact identity: a ``MaxPool`` of kernel 1 and stride 1 (the
maximum of one value is that value, NaN and -0.0 included), whose output onnx2tf writes and flags as
channels-last like any pooling. Every consumer of the input reads the pooled copy, so no op ever sees the
unflagged tensor. It is done in the private copy onnx2tf reads only; the ONNX artefact stays as it is. The
TFLite model gains one MAX_POOL_2D of kernel 1 per such input. The converter must also feed such an input
channels-last, as onnx2tf moved it (:func:`edgematte.converter.tflite.input_layout`). RVM 128x128, TFLite fp32
against the Paddle reference: 1.0 before, 1.1e-5 after (docs/toolchain.md, trap 17).
"""

from typing import List

from ..base import ONNX2TF_INPUT, Match, Repair, RepairContext
from ..onnx.graph import unique_name
from .full_rank_add import RANKS, channels_last


def ambiguous(shape: List) -> bool:
    """Whether a static graph-input shape of rank 3-5 reads the same channels-first and channels-last:
    ``[1, 16, 16, 16]`` and ``[1, 4, 4]`` do, ``[1, 16, 32, 32]`` does not. A shape whose non-batch dimensions
    are all 1 reads the same too, but has nothing to mix up and is left alone."""
    if len(shape) not in RANKS or any(not isinstance(d, int) or d < 1 for d in shape):
        return False
    return channels_last(list(shape)) == list(shape) and any(d > 1 for d in shape[1:])


def _static_shape(value_info) -> List:
    dims = value_info.type.tensor_type.shape.dim
    return [int(d.dim_value) if d.HasField("dim_value") else None for d in dims]


def read_through_identity(model, where: str = "model") -> List[dict]:
    """Insert, in place, one ``MaxPool`` (kernel 1, stride 1) after each float graph input whose shape is
    :func:`ambiguous`, and make every consumer read it. One record per such input:
    ``{"input", "shape", "consumers", "action": "rewritten" | "left", "reason"}`` ("left": nothing reads it)."""
    import onnx

    initializers = {t.name for t in model.graph.initializer}
    taken = {name for n in model.graph.node for name in (*n.input, *n.output, n.name)}
    taken |= initializers | {v.name for v in model.graph.input} | {v.name for v in model.graph.output}
    records, identities = [], []
    for value in model.graph.input:
        shape = _static_shape(value)
        if value.name in initializers or value.type.tensor_type.elem_type not in (1, 10, 11) \
                or not ambiguous(shape):
            continue
        consumers = [n for n in model.graph.node if value.name in n.input]
        record = {"input": value.name, "shape": shape, "consumers": [n.name or n.output[0] for n in consumers]}
        if not consumers:
            records.append({**record, "action": "left", "reason": "no node reads it"})
            continue
        pooled = unique_name(f"{value.name}/flagged_channels_last", taken)
        identities.append(onnx.helper.make_node(
            "MaxPool", [value.name], [pooled], name=unique_name(f"{value.name}/identity_pool", taken),
            kernel_shape=[1] * (len(shape) - 2), strides=[1] * (len(shape) - 2)))
        for node in consumers:
            for i, name in enumerate(node.input):
                if name == value.name:
                    node.input[i] = pooled
        records.append({**record, "action": "rewritten",
                        "reason": f"{shape} reads the same channels-first and channels-last, and onnx2tf does "
                                  "not flag a transposed graph input: Concat and the binary ops would "
                                  "transpose it again"})
    for node in reversed(identities):
        model.graph.node.insert(0, node)
    return records


def apply(model, context: RepairContext) -> List[Match]:
    """:func:`read_through_identity` as a repair: one match per ambiguous graph input, changed unless ``"left"``."""
    return [Match(r["action"] == "rewritten", r) for r in read_through_identity(model, context.where)]


REPAIR = Repair(
    name="ambiguous_input_identity",
    applies_to=ONNX2TF_INPUT,
    matches="float graph inputs of rank 3 to 5 whose static shape equals its channels-last arrangement "
            "(e.g. [1, 16, 16, 16]) and that some node reads",
    changes="every consumer reads the input through one MaxPool of kernel 1 and stride 1 (an exact identity "
            "whose output onnx2tf flags as channels-last), in the copy onnx2tf reads",
    why="onnx2tf 1.29.24 transposes graph inputs to channels-last without flagging them, so Concat's shape "
        "workaround and the binary ops transpose such an input a second time (RVM 128x128: state r1 "
        "[1, 16, 16, 16], TFLite alpha off by 1.0 while onnx2tf exits 0)",
    preserves_outputs=True,
    apply=apply,
)
