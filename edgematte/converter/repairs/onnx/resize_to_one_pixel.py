"""Interpolations down to one pixel along an axis, which paddle2onnx writes to sample the wrong place.

Paddle's ``bilinear_interp_v2`` / ``nearest_interp_v2`` / ``linear_interp_v2`` compute their source coordinate
with a ratio that Paddle sets to 0 when the output has length 1 along an axis: that output reads input index 0
(bilinear: the coordinate ``-0.5`` is clamped to 0, weight 1). paddle2onnx writes them as ONNX ``Resize`` with
``coordinate_transformation_mode`` ``half_pixel``, whose one output sample sits at the centre of the input
instead: for a 2x2 input resized to 1x1, Paddle gives the top-left value and ONNX the mean of all four.
PP-MattingV2 at 64x64 resizes its 2x2 pyramid features to 1x1, and the alpha is off by 0.2 (Lite, which
implements Paddle's kernels, is exact there).

The repair takes index 0 with a ``Slice`` on each such axis before the Resize (which then has nothing left to do
on those axes, or nothing at all and is dropped). Bicubic is left alone: Paddle's bicubic does not read
index 0 there (its coordinate -0.5 is not clamped). Shapes come from the Paddle program the graph was converted
from (paddle2onnx keeps an interpolation's output name, while its sizes reach the Resize through a Shape -> Slice ->
Concat chain that ONNX shape inference cannot follow before the graph is simplified), else from shape inference.
"""

from typing import Dict, List, Optional

import numpy as np

from ..base import ONNX, Match, Repair, RepairContext
from .graph import attr, constant_value, drop_unread_constants, infer_shapes

# ONNX Resize modes this applies to, and the coordinate modes that already read index 0 for a length-1 output.
MODES = (b"linear", b"nearest")
ALREADY_INDEX_0 = (b"asymmetric", b"align_corners", b"pytorch_half_pixel")


def _static_shapes(model, where: str) -> Dict[str, List[int]]:
    """Every tensor's static shape that ONNX shape inference (:func:`.graph.infer_shapes`: refused on attributes
    that crash it, in the export's native child) or the graph itself knows."""
    inferred = infer_shapes(model, where)
    shapes = {}
    for info in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        dims = info.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[info.name] = [int(d.dim_value) for d in dims]
    for tensor in model.graph.initializer:
        shapes[tensor.name] = list(tensor.dims)
    return shapes


_INTERP_OPS = ("bilinear_interp_v2", "nearest_interp_v2", "linear_interp_v2", "bicubic_interp_v2",
               "bilinear_interp", "nearest_interp")


def _paddle_shapes(program) -> Dict[str, List[int]]:
    """Input and output shapes of the Paddle interpolations, under their Paddle names: each output's shape, and
    its input's shape under the key ``OUTPUT/input`` (the ONNX input of the Resize has an ONNX-made name)."""
    if program is None:
        return {}
    block = program.blocks[0]
    dims = {v.name: [int(d) for d in v.type.lod_tensor.tensor.dims] for v in block.vars}
    shapes = {}
    for op in block.ops:
        if op.type not in _INTERP_OPS:
            continue
        x = next((s.arguments[0] for s in op.inputs if s.parameter == "X" and s.arguments), None)
        out = next((s.arguments[0] for s in op.outputs if s.parameter == "Out" and s.arguments), None)
        if x in dims and out in dims and min(dims[x] + dims[out]) > 0:
            shapes[out], shapes[f"{out}/input"] = dims[out], dims[x]
    return shapes


def _one_pixel_axes(node, shapes) -> Optional[List[int]]:
    """The spatial axes the Resize brings from more than one pixel down to one (``None``: shapes unknown)."""
    source = shapes.get(node.input[0], shapes.get(f"{node.output[0]}/input"))
    target = shapes.get(node.output[0])
    if source is None or target is None or len(source) != len(target):
        return None
    return [axis for axis in range(2, len(source)) if target[axis] == 1 and source[axis] > 1]


def take_index_zero(model, paddle_program=None, where: str = "model") -> List[dict]:
    """Put a Slice of index 0 before every linear/nearest Resize that brings an axis to length 1 (see the module
    docstring), in place. Returns one record per such Resize: ``action`` ``"sliced"``, ``"replaced"`` (the
    Resize had nothing else to do and is gone) or ``"left"``, with the ``reason``. ``where`` names the model in
    errors."""
    import onnx

    shapes = {**_static_shapes(model, where), **_paddle_shapes(paddle_program)}
    records, stale = [], set()
    for resize_output in [n.output[0] for n in model.graph.node if n.op_type == "Resize"]:
        node = next(n for n in model.graph.node if n.op_type == "Resize" and n.output[0] == resize_output)
        axes = _one_pixel_axes(node, shapes)
        if axes == []:
            continue
        mode = attr(node, "mode", b"nearest")
        coordinates = attr(node, "coordinate_transformation_mode", b"half_pixel")
        record = {"onnx_node": node.name or resize_output, "mode": mode.decode(),
                  "coordinate_transformation_mode": coordinates.decode()}
        if axes is None:
            records.append({**record, "action": "left", "reason": "the input or output shape is not static"})
            continue
        source = shapes.get(node.input[0], shapes.get(f"{resize_output}/input"))
        record.update(axes=axes, input_shape=source, output_shape=shapes[resize_output])
        if mode not in MODES or coordinates in ALREADY_INDEX_0:
            why = "Paddle's bicubic does not read index 0 there" if mode not in MODES else "it reads index 0 already"
            records.append({**record, "action": "left", "reason": why})
            continue
        sliced = f"{resize_output}/index_0"
        operands = {f"{sliced}/{part}": np.asarray(value, dtype=np.int64) for part, value in
                    (("starts", [0] * len(axes)), ("ends", [1] * len(axes)), ("axes", axes))}
        model.graph.initializer.extend(onnx.numpy_helper.from_array(v, k) for k, v in operands.items())
        target = list(source)
        for axis in axes:
            target[axis] = 1
        whole = target == shapes[resize_output]
        slice_node = onnx.helper.make_node("Slice", [node.input[0], *operands], [resize_output if whole else sliced],
                                           name=f"{node.name or resize_output}/index_0")
        if not whole:
            _rewire_resize(model, node, sliced, axes, stale)
        else:
            stale.update(node.input[1:])
        kept = []
        for n in model.graph.node:
            if n.op_type == "Resize" and n.output[0] == resize_output:
                kept.append(slice_node)
                if not whole:
                    kept.append(n)
            else:
                kept.append(n)
        del model.graph.node[:]
        model.graph.node.extend(kept)
        records.append({**record, "action": "replaced" if whole else "sliced",
                        "reason": f"Paddle reads input index 0 along axes {axes} (its ratio is 0 for one output "
                                  f"pixel); Resize {coordinates.decode()} samples the centre"})
    drop_unread_constants(model, stale)
    return records


def _rewire_resize(model, node, sliced: str, axes: List[int], stale: set) -> None:
    """The Resize now reads the sliced tensor; when it is driven by scales, those axes' scales become 1."""
    import onnx

    node.input[0] = sliced
    scales_name = node.input[2] if len(node.input) > 2 else ""
    sizes_name = node.input[3] if len(node.input) > 3 else ""
    scales = constant_value(model, scales_name) if scales_name else None
    if sizes_name or scales is None or scales.size == 0:
        return  # sizes already say 1 on those axes
    scales = scales.astype(np.float32).copy()
    scales[axes] = 1.0
    name = f"{node.output[0]}/scales_after_index_0"
    model.graph.initializer.append(onnx.numpy_helper.from_array(scales, name))
    stale.add(scales_name)
    node.input[2] = name


def apply(model, context: RepairContext) -> List[Match]:
    """:func:`take_index_zero` as a repair: one match per Resize to one pixel, changed unless ``"left"``."""
    return [Match(r["action"] != "left", r) for r in take_index_zero(model, context.paddle_program, context.where)]


REPAIR = Repair(
    name="resize_to_one_pixel",
    applies_to=ONNX,
    matches="linear/nearest Resize nodes that bring a spatial axis from more than one pixel to one, with a "
            "coordinate mode that samples the centre (half_pixel, the ONNX default)",
    changes="inserts a Slice taking index 0 on those axes before the Resize; a Resize with nothing else to do is "
            "replaced by the Slice",
    why="Paddle's bilinear/nearest interpolation reads input index 0 along an axis resized to one pixel (its "
        "ratio is 0 there) while paddle2onnx's Resize (half_pixel) samples the centre: PP-MattingV2 at 64x64 "
        "resizes 2x2 features to 1x1 and its ONNX alpha was off by 0.2",
    preserves_outputs=False,
    apply=apply,
)
