"""A convolution of a channel concatenation that ONNX Runtime's blocked kernels refuse, as one convolution per part.

ONNX Runtime's NCHWc layout pass (x86: 16-channel blocks with AVX-512, 8 with AVX2) takes a convolution into its
blocked kernels only when its input channels are fewer than a block (the input stays NCHW) or a multiple of 4 (padded
to whole blocks): measured on onnxruntime 1.23 for 1 to 40 input channels (:func:`blocked`; the test asks the
installed ONNX Runtime again). A convolution whose input concatenates a feature map with the 3-channel image has
neither: PP-MattingV2's ``131 = 64 + 64 + 3``, ``67 = 32 + 32 + 3`` and ``19 = 16 + 3`` run on the plain im2col path
(``FusedConv``), the slowest kernels of the model (ONNX Runtime 1.23, 512x512: the 67 -> 16 one 11 % and the 19 -> 8
one 9 % of the fp32 time).

A convolution is linear in its input channels: ``Conv(Concat(a, b, c), W) = Conv(a, W_a) + Conv(b, W_b) + Conv(c,
W_c)``, each part with its slice of the weights (the bias on the first). Each part then has a channel count the
blocked kernels take, the sums are added by ONNX Runtime into the blocked convolution that produces them (its Conv +
Add fusion, the activation after the sum), and the concatenation's copy is gone when nothing else reads it.
PP-MattingV2 512x512, AMD Zen 5, 2 threads, interleaved: 79.3 -> 69.3 ms for the three (25 rounds).

The sum's order changes (part by part instead of the kernel's order): the outputs move by rounding, 9.5e-7 at most
on PP-MattingV2 512x512 (random input in [-1, 1]), below what the graph's own kernels differ by between ONNX
Runtime's optimization levels (2.4e-6).

Matched: a float ``Conv`` whose weights (and bias) are constants spanning every input channel (one group) and whose
input is a ``Concat`` along the channels (axis 1) of parts with static channel counts whose total the blocked
kernels refuse; split when they take every part: the parts then all run blocked, where the whole did not.
"""

from typing import List, Optional

import numpy as np

from ..base import ONNX_ARTEFACT, Match, Repair, RepairContext
from ..onnx.graph import attr, constant_value, drop_unread_constants, tensor_facts, unique_name

BLOCK = 16
"""ONNX Runtime's NCHWc block on AVX-512 (8 with AVX2 only)."""
ALIGNMENT = 4
"""Input channels at or above a block that ONNX Runtime pads to whole blocks must be a multiple of this."""
FLOAT = 1


def blocked(channels: int) -> bool:
    """Whether ONNX Runtime's NCHWc pass takes a convolution of ``channels`` input channels."""
    return channels < BLOCK or channels % ALIGNMENT == 0


def split_concatenated_convs(model, where: str = "model") -> List[dict]:
    """Rewrite, in place, each matched ``Conv`` (module docstring) as one ``Conv`` per part of its concatenated
    input and a chain of ``Add``\\ s writing its output tensor. One record per convolution of a channel
    concatenation that ONNX Runtime's blocked kernels do not take whole: ``{"onnx_node", "parts": channel counts,
    "action": "split" | "left", "reason"}``."""
    shapes, types = tensor_facts(model, where)
    producers = {output: node for node in model.graph.node for output in node.output}
    taken = {name for n in model.graph.node for name in (*n.input, *n.output, n.name)}
    taken |= {t.name for t in model.graph.initializer} | {v.name for v in model.graph.input}
    records, nodes, replaced = [], [], set()
    for node in model.graph.node:
        concat = producers.get(node.input[0]) if node.op_type == "Conv" and node.input else None
        if concat is None or concat.op_type != "Concat" or concat.domain not in ("", "ai.onnx") \
                or node.domain not in ("", "ai.onnx") or attr(concat, "axis") not in (1, -3):
            nodes.append(node)
            continue
        parts = [(shapes.get(name) or [None, None])[1] for name in concat.input]
        if None not in parts and blocked(sum(parts)):  # ONNX Runtime's blocked kernels take it whole
            nodes.append(node)
            continue
        record = {"onnx_node": node.name or node.output[0], "parts": parts}
        weights = constant_value(model, node.input[1]) if len(node.input) > 1 else None
        bias = constant_value(model, node.input[2]) if len(node.input) > 2 and node.input[2] else None
        reason = _why_left(node, parts, weights, bias, types)
        if reason is not None:
            records.append({**record, "action": "left", "reason": reason})
            nodes.append(node)
            continue
        nodes.extend(_per_part(model, node, list(concat.input), parts, weights, taken))
        replaced.update(node.input[1:])
        records.append({**record, "action": "split",
                        "reason": f"{sum(parts)} input channels: not blocked; parts {parts}: all blocked"})
    if replaced:
        read = {name for n in nodes for name in n.input} | {o.name for o in model.graph.output}
        kept = [n for n in nodes if n.op_type != "Concat" or any(o in read for o in n.output)]
        del model.graph.node[:]
        model.graph.node.extend(kept)
        drop_unread_constants(model, replaced)
    return records


def _why_left(node, parts, weights, bias, types) -> Optional[str]:
    """Why the convolution ``node`` of a concatenation of ``parts`` channels is not split (``None``: it is)."""
    if None in parts:
        return "a part's channel count is not static"
    if weights is None or weights.ndim != 4 or weights.shape[1] != sum(parts) or types.get(node.output[0]) != FLOAT:
        return "its weights are not a float constant over the concatenated channels"
    if len(node.input) > 2 and node.input[2] and bias is None:
        return "its bias is not a constant"
    if not all(blocked(c) for c in parts):
        return f"parts {parts}: not every part would run blocked"
    return None


def _per_part(model, node, inputs: List[str], parts: List[int], weights: np.ndarray, taken: set) -> list:
    """One Conv per part (``node``'s attributes, its weight slice, the bias on the first) and the Adds that sum
    them into ``node``'s output."""
    import onnx

    name = node.name or node.output[0]
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    convs, sums, start = [], [], 0
    for k, (part, channels) in enumerate(zip(inputs, parts)):
        weight = unique_name(f"{node.input[1]}/part{k}", taken)
        model.graph.initializer.append(onnx.numpy_helper.from_array(
            np.ascontiguousarray(weights[:, start:start + channels]), weight))
        start += channels
        operands = [part, weight] + ([node.input[2]] if k == 0 and len(node.input) > 2 and node.input[2] else [])
        convs.append(onnx.helper.make_node("Conv", operands, [unique_name(f"{node.output[0]}/part{k}", taken)],
                                           name=unique_name(f"{name}/part{k}", taken), **attributes))
    total = convs[0].output[0]
    for k, conv in enumerate(convs[1:], start=1):
        output = node.output[0] if k == len(convs) - 1 else unique_name(f"{node.output[0]}/sum{k}", taken)
        sums.append(onnx.helper.make_node("Add", [total, conv.output[0]], [output],
                                          name=unique_name(f"{name}/sum{k}", taken)))
        total = output
    return convs + sums


def apply(model, context: RepairContext) -> List[Match]:
    """:func:`split_concatenated_convs` as a repair: one match per convolution of a concatenation, changed when
    split."""
    return [Match(r["action"] == "split", r) for r in split_concatenated_convs(model, context.where)]


REPAIR = Repair(
    name="conv_per_concatenated_part",
    applies_to=ONNX_ARTEFACT,
    matches=f"a float Conv (one group, constant weights) of a channel Concat whose total ONNX Runtime's blocked "
            f"kernels refuse (at least {BLOCK} and not a multiple of {ALIGNMENT}) while they take each part",
    changes="one Conv per part with its slice of the weights (the bias on the first), summed by Adds into the "
            "original output; the Concat goes when nothing else reads it; the sum re-associated (rounding only)",
    why="ONNX Runtime's NCHWc pass leaves a convolution whose input channels are neither fewer than its 16-channel "
        "block nor a multiple of 4 on the slow im2col path: PP-MattingV2's image concatenations (131, 67, 19 "
        "channels); 512x512, AMD Zen 5, 2 threads: 79.3 -> 69.3 ms",
    preserves_outputs=False,
    apply=apply,
)
