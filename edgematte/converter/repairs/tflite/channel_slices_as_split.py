"""Slices that cut a tensor into equal pieces along one axis, as one SPLIT XNNPACK runs.

PP-MattingV2's fusion blocks weight each of their three inputs by one channel of a 3-channel attention map: onnx2tf
writes three STRIDED_SLICEs of that map, one channel each. XNNPACK runs each slice as a copy of one value per pixel:
0.20 ms per slice at 256x256 (AMD Zen 5, 2 threads, float and int8 alike), a full pass over the map for each of the
three. One SPLIT into the same pieces (XNNPACK takes 2 to 4 outputs, measured) reads the map once.

Matched: a tensor whose STRIDED_SLICE readers (stride 1, whole extent on every other axis, no shrink, new-axis or
ellipsis mask; begin and end masks resolved) cut one axis into 2 to 4 consecutive pieces of equal size covering it,
each of the source's type and quantization. They become one SPLIT, where the first slice was, writing the slices'
own output tensors (``<source>/split_axis`` is its axis constant). A slice only copies: the same bits.
PP-MattingV2 512x512: 5 sets of 3 slices (the fusion blocks at 32 to 256 pixels); with the fan-in in both files,
float 53.3 -> 52.0 ms, int8 23.5 -> 23.0 ms (60 interleaved rounds, AMD Zen 5, 2 threads).
"""

from typing import Dict, List, Optional, Tuple

import numpy as np

from ..base import TFLITE, Match, Repair, RepairContext

MAX_OUTPUTS = 4
"""The most outputs of a SPLIT LiteRT's XNNPACK delegate takes (measured: 5 are left to TFLite's kernel)."""
AXIS_NAME = "/split_axis"
"""The name suffix of each SPLIT's axis constant: ``<source>/split_axis``."""


def _piece(edit, op) -> Optional[Tuple[int, int, int]]:
    """``(axis, begin, end)`` of a STRIDED_SLICE that takes one range of one axis and all of the others, or None."""
    graph = edit.graph
    options = op.builtinOptions
    source = graph.tensors[int(op.inputs[0])]
    if len(op.inputs) != 4 or options.shrinkAxisMask or options.newAxisMask or options.ellipsisMask \
            or getattr(options, "offset", False) or source.shape is None:
        return None
    values = [edit.constant_values(int(i)) for i in op.inputs[1:4]]
    if any(v is None or v.ndim != 1 or len(v) != len(source.shape) for v in values):
        return None
    shape = [int(d) for d in source.shape]
    begin = [0 if options.beginMask >> k & 1 else int(b) for k, b in enumerate(values[0])]
    end = [shape[k] if options.endMask >> k & 1 else int(e) for k, e in enumerate(values[1])]
    if any(s != 1 for s in values[2]) or any(b < 0 or e < 0 or e > d for b, e, d in zip(begin, end, shape)):
        return None
    cut = [k for k in range(len(shape)) if (begin[k], end[k]) != (0, shape[k])]
    if len(cut) != 1:
        return None
    return cut[0], begin[cut[0]], end[cut[0]]


def same_quantization(a, b) -> bool:
    """Whether two tensors (``schema.TensorT``) have the same type and quantization parameters."""
    if a.type != b.type:
        return False
    qa, qb = a.quantization, b.quantization
    scales = [None if q is None or q.scale is None else list(q.scale) for q in (qa, qb)]
    zeros = [None if q is None or q.zeroPoint is None else list(q.zeroPoint) for q in (qa, qb)]
    return scales[0] == scales[1] and zeros[0] == zeros[1]


def slices_as_splits(edit) -> List[dict]:
    """Rewrite every matched set of slices of ``edit`` (a ``TFLiteModelEdit``) in place; one record ``{"source",
    "axis", "pieces"}`` per SPLIT written."""
    schema, graph = edit.schema, edit.graph
    by_source: Dict[int, List[tuple]] = {}
    for position, op in enumerate(graph.operators):
        if edit.op_name(op) == "STRIDED_SLICE":
            piece = _piece(edit, op)
            if piece is not None and same_quantization(graph.tensors[int(op.inputs[0])],
                                                         graph.tensors[int(op.outputs[0])]):
                by_source.setdefault(int(op.inputs[0]), []).append((piece, position, op))
    records, dropped = [], set()
    for source, slices in by_source.items():
        axes = {piece[0] for piece, _, _ in slices}
        if len(axes) != 1 or not 2 <= len(slices) <= MAX_OUTPUTS:
            continue
        axis = axes.pop()
        extent = int(graph.tensors[source].shape[axis])
        size = extent // len(slices)
        ranges = sorted(piece[1:] for piece, _, _ in slices)
        if size * len(slices) != extent or ranges != [(k * size, (k + 1) * size) for k in range(len(slices))]:
            continue
        slices.sort(key=lambda s: s[0][1])
        first = min(slices, key=lambda s: s[1])[2]
        name = graph.tensors[source].name.decode()
        axis_tensor = edit.add_constant(name + AXIS_NAME, np.array(axis, np.int32), schema.TensorType.INT32)
        options = schema.SplitOptionsT()
        options.numSplits = len(slices)
        split = edit.operator(schema.BuiltinOperator.SPLIT, [axis_tensor, source],
                              [int(op.outputs[0]) for _, _, op in slices], options,
                              1 if graph.tensors[source].type == schema.TensorType.FLOAT32 else 2)
        graph.operators[graph.operators.index(first)] = split
        dropped.update(id(op) for _, _, op in slices if op is not first)
        records.append({"source": name, "axis": axis, "pieces": len(slices)})
    graph.operators = [op for op in graph.operators if id(op) not in dropped]
    return records


def apply(edit, context: RepairContext) -> List[Match]:
    """:func:`slices_as_splits` as a repair: one match per SPLIT written, each changed."""
    return [Match(True, record) for record in slices_as_splits(edit)]


REPAIR = Repair(
    name="channel_slices_as_split",
    applies_to=TFLITE,
    matches=f"2 to {MAX_OUTPUTS} STRIDED_SLICEs of one tensor that cut one axis into equal consecutive pieces "
            "covering it (stride 1, the other axes whole)",
    changes="one SPLIT where the first slice was, writing the slices' own outputs: the same bits",
    why="XNNPACK copies one value per pixel for each one-channel slice, a full pass over the tensor per slice "
        "(PP-MattingV2's attention maps: 0.20 ms per slice at 256x256, AMD Zen 5); one SPLIT reads it once",
    preserves_outputs=True,
    apply=apply,
)
