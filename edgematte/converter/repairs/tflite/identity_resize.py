"""Resizes to the size they already have, taken out.

PP-MattingV2's fusion blocks resize each of their inputs to the block's size, the one already at that size too
(``F.interpolate(x, size=shape)``): onnx2tf writes a RESIZE_BILINEAR whose output has its input's shape, 7 of them
(up to 256x256x32). Bilinear resampling at scale 1 reads each pixel at its own position with weight 1 (with or
without aligned corners or half-pixel centres), so the op is a copy; XNNPACK's int8 resize still interpolates: 0.25
ms at 256x256x32 (AMD Zen 5, 2 threads, timed alone). Taken: RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR ops whose
output shape equals their input's, of the same type and quantization, whose output is not a model output; every
reader of the output reads the input instead. The same bits (finite inputs). PP-MattingV2 512x512: int8 18.3 -> 17.4
ms, float unchanged (47.2 and 47.5 ms; 60 interleaved rounds).
"""

from typing import List

import numpy as np

from ..base import TFLITE, Match, Repair, RepairContext
from .channel_slices_as_split import same_quantization

RESIZES = ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR")


def drop_identity_resizes(edit) -> List[dict]:
    """Take every matched resize out of ``edit`` (a ``TFLiteModelEdit``) in place; one record ``{"output", "input",
    "op", "shape"}`` each."""
    graph = edit.graph
    outputs = {int(o) for o in graph.outputs}
    replaced, operators, records = {}, [], []
    for op in graph.operators:
        op.inputs = np.array([replaced.get(int(i), int(i)) for i in op.inputs], np.int32)
        if edit.op_name(op) in RESIZES:
            source, target = int(op.inputs[0]), int(op.outputs[0])
            a, b = graph.tensors[source], graph.tensors[target]
            if a.shape is not None and b.shape is not None and list(a.shape) == list(b.shape) \
                    and target not in outputs and same_quantization(a, b):
                replaced[target] = source
                records.append({"output": b.name.decode(), "input": a.name.decode(), "op": edit.op_name(op),
                                "shape": [int(d) for d in b.shape]})
                continue
        operators.append(op)
    graph.operators = operators
    return records


def apply(edit, context: RepairContext) -> List[Match]:
    """:func:`drop_identity_resizes` as a repair: one match per resize taken out."""
    return [Match(True, record) for record in drop_identity_resizes(edit)]


REPAIR = Repair(
    name="identity_resize",
    applies_to=TFLITE,
    matches="RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR ops whose output shape equals their input's (not a model "
            "output)",
    changes="takes each out: its readers read its input (a resize at scale 1 is a copy): the same bits",
    why="PP-MattingV2's fusion blocks resize the input already at the block's size too; XNNPACK's int8 resize "
        "interpolates anyway (0.25 ms at 256x256x32, AMD Zen 5): int8 model 18.3 -> 17.4 ms",
    preserves_outputs=True,
    apply=apply,
)
