"""A reduction over the channels of an NCHW tensor, as a reduction over each pixel's channels laid out last.

ONNX Runtime's CPU reductions are fast over the innermost axis and slow over an outer one (onnxruntime 1.23). In
PP-MattingV2's fp32 graph the mean and the maximum over the channels of 14 attention maps (``paddle.mean(x,
axis=1)``, ``paddle.max(x, axis=1)``) take 10.5 ms, 17 % of its time at 512x512 (AMD Zen 5, 2 threads), 0.8 to 1 ms
each at ``[1, 32, 256, 256]``; the int8 QDQ file, which ONNX Runtime lays out NHWC, spends 0.9 ms on all 28.

The rewrite: ``Transpose(x, [0, 2, 3, 1])`` (one per tensor, shared by every reduction of it), ``Reshape`` to
``[N, H*W, C]``, the reduction over axis 2, ``Reshape`` to the original output's shape. The reshapes are there for
ONNX Runtime's transpose optimizer: a transpose feeding a reduction directly is pushed through it and cancelled,
which gives back the original graph; through a Reshape it stays. It is applied where the transpose costs nothing:
``x`` comes out of ONNX Runtime's blocked (NCHWc) convolution kernels, whose reorder back to a plain layout then
writes NHWC instead of NCHW (``ReorderOutput`` with ``channels_last``). Measured on such maps (a convolution and the
mean and maximum of its output, interleaved): 1.4x to 3.1x on 12 to 96 channels; 0.95x to 1.14x on 3 and 8
channels, so it needs at least :data:`BLOCK` channels. Where the transpose would be a real copy (an input not
written by the blocked kernels, and every ARM64 build of ONNX Runtime, which has no NCHWc kernels) it gained 1.2x to
4x on 32 to 96 channels but lost up to 2.3x on 16, so it is not applied there. PP-MattingV2 512x512: 12 of its 14 maps
(the two with 3 channels left), 64.9 -> 55.9 ms for the whole model (60 interleaved rounds).

Maximum and minimum are exact; a mean or sum adds in another order (rounding only: 7.5e-7 at most on PP-MattingV2).

Matched: a float ``ReduceMean``, ``ReduceMax``, ``ReduceMin`` or ``ReduceSum`` over axis 1 (or -3) alone of a 4-D
tensor with static channels, height and width (the batch may be dynamic), ``axes`` an attribute or a constant;
rewritten when it has at least :data:`BLOCK` channels and is written by a convolution the blocked kernels take
(:func:`~.conv_per_concatenated_part.blocked` input channels, one group or depthwise, constant weights), directly or
through an activation ONNX Runtime runs in the blocked layout (:data:`BLOCKED_ACTIVATIONS`).
"""

from typing import Dict, List, Optional

from ..base import ONNX_ARTEFACT, Match, Repair, RepairContext
from ..onnx.graph import attr, axes_operand, int64_constant, opset_version, tensor_facts, unique_name
from .conv_per_concatenated_part import BLOCK, FLOAT, blocked

REDUCTIONS = ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum")
BLOCKED_ACTIVATIONS = ("Relu", "Clip", "Sigmoid", "HardSigmoid", "LeakyRelu", "Tanh")
"""Activations after a blocked convolution that stay in its layout (each checked on onnxruntime 1.23: the transpose
of their output becomes a ``ReorderOutput`` with ``channels_last``)."""


def reduce_per_pixel(model, where: str = "model") -> List[dict]:
    """Rewrite, in place, each matched channel reduction (module docstring) as a reduction over the last axis of
    the tensor's per-pixel layout. One record per float reduction over the channels of a 4-D tensor:
    ``{"onnx_node", "op", "shape", "action": "rewritten" | "left", "reason"}``."""
    shapes, types = tensor_facts(model, where)
    opset = opset_version(model)
    producers = {output: node for node in model.graph.node for output in node.output}
    constants = {t.name for t in model.graph.initializer}
    taken = {name for n in model.graph.node for name in (*n.input, *n.output, n.name)}
    taken |= {t.name for t in model.graph.initializer} | {v.name for v in model.graph.input}
    records, nodes, per_pixel = [], [], {}
    for node in model.graph.node:
        if node.op_type not in REDUCTIONS or node.domain not in ("", "ai.onnx") \
                or axes_operand(model, node) not in ([1], [-3]):
            nodes.append(node)
            continue
        shape = shapes.get(node.input[0])
        record = {"onnx_node": node.name or node.output[0], "op": node.op_type, "shape": shape}
        reason = _why_left(shape, types.get(node.input[0])) \
            or _unless_blocked(producers.get(node.input[0]), producers, shapes, constants)
        if reason is not None:
            records.append({**record, "action": "left", "reason": reason})
            nodes.append(node)
            continue
        if node.input[0] not in per_pixel:
            per_pixel[node.input[0]], layout = _pixels_by_channel(model, node.input[0], shape, taken)
            nodes.extend(layout)
        nodes.extend(_reduce_last(model, node, per_pixel[node.input[0]], shape, opset, taken))
        records.append({**record, "action": "rewritten", "reason": "reduced over the last axis of [N, H*W, C]"})
    if per_pixel:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return records


def _why_left(shape: Optional[List[Optional[int]]], element_type: Optional[int]) -> Optional[str]:
    """Why a channel reduction of a tensor of ``shape`` is not rewritten (``None``: it is)."""
    if element_type != FLOAT:
        return "its input is not float32"
    if shape is None or len(shape) != 4:
        return "its input is not 4-D"
    if None in shape[1:]:
        return "its input's channels, height or width are not static"
    if shape[1] < BLOCK:
        return f"{shape[1]} channels, fewer than a block ({BLOCK}): nothing to gain"
    return None


def _unless_blocked(node, producers, shapes, constants) -> Optional[str]:
    """``None`` when ``node`` writes its output in ONNX Runtime's blocked layout (module docstring), else why not."""
    if node is not None and node.op_type in BLOCKED_ACTIVATIONS and node.domain in ("", "ai.onnx"):
        node = producers.get(node.input[0])
    if node is None or node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or len(node.input) < 2 \
            or node.input[1] not in constants or len(shapes.get(node.input[1]) or []) != 4:
        return "its input is not written by a convolution with constant weights: the transpose would be a copy"
    group = attr(node, "group", 1)
    channels = shapes[node.input[1]][1] * group
    if group not in (1, channels) or not blocked(channels):
        return f"its input's convolution ({channels} input channels, {group} groups) does not run in ONNX " \
               f"Runtime's blocked kernels: the transpose would be a copy"
    return None


def _pixels_by_channel(model, tensor: str, shape: List[int], taken: set):
    """``tensor`` ``[N, C, H, W]`` as ``[N, H*W, C]``: its name and the Transpose and Reshape writing it."""
    import onnx

    _, channels, height, width = shape
    nhwc = unique_name(f"{tensor}/nhwc", taken)
    flat = unique_name(f"{tensor}/pixels_by_channel", taken)
    target = int64_constant(model, f"{flat}/shape", [0, height * width, channels], taken)  # 0: the batch as it is
    return flat, [onnx.helper.make_node("Transpose", [tensor], [nhwc], name=nhwc, perm=[0, 2, 3, 1]),
                  onnx.helper.make_node("Reshape", [nhwc, target], [flat], name=flat)]


def _reduce_last(model, node, flat: str, shape: List[int], opset: int, taken: set) -> list:
    """``node``'s reduction over the last axis of ``flat`` and the Reshape writing ``node``'s output."""
    import onnx

    name = node.name or node.output[0]
    reduced = unique_name(f"{node.output[0]}/per_pixel", taken)
    inputs = [flat]
    axes_as_input = opset >= (13 if node.op_type == "ReduceSum" else 18)
    if axes_as_input:
        inputs.append(int64_constant(model, f"{reduced}/axes", [2], taken))
    extra: Dict[str, object] = {} if axes_as_input else {"axes": [2]}
    reduce = onnx.helper.make_node(node.op_type, inputs, [reduced], name=reduced, keepdims=0, **extra)
    _, _, height, width = shape
    shape_out = [0, 1, height, width] if attr(node, "keepdims", 1) else [0, height, width]
    target = int64_constant(model, f"{node.output[0]}/shape", shape_out, taken)
    return [reduce, onnx.helper.make_node("Reshape", [reduced, target], [node.output[0]], name=name)]


def apply(model, context: RepairContext) -> List[Match]:
    """:func:`reduce_per_pixel` as a repair: one match per float channel reduction, changed when rewritten."""
    return [Match(r["action"] == "rewritten", r) for r in reduce_per_pixel(model, context.where)]


REPAIR = Repair(
    name="channel_reduction_per_pixel",
    applies_to=ONNX_ARTEFACT,
    matches=f"a float ReduceMean/ReduceMax/ReduceMin/ReduceSum over axis 1 alone of a 4-D tensor with static "
            f"channels (at least {BLOCK}), height and width, written by a convolution ONNX Runtime's blocked "
            f"kernels take (directly or through an activation they keep blocked)",
    changes="Transpose to NHWC (one per tensor, shared by its reductions), Reshape to [N, H*W, C], the reduction "
            "over the last axis, Reshape to the original output; max/min exact, mean/sum re-associated (rounding)",
    why="ONNX Runtime's reductions over an outer axis are slow: PP-MattingV2's attention maps' channel means and "
        "maxima take 10.5 ms of its fp32 time (0.9 ms in the NHWC int8 file); a blocked convolution's output "
        "reordered to NHWC instead costs nothing more; 512x512, AMD Zen 5, 2 threads: 64.9 -> 55.9 ms",
    preserves_outputs=False,
    apply=apply,
)
