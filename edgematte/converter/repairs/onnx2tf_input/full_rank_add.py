"""Full-rank Adds, which onnx2tf computes channels-first while it goes on treating the sum as channels-last.

onnx2tf 1.29.24 checks each ``Add`` it writes against the ONNX output shape (the "rescue guard" at the end of
``onnx2tf/ops/Add.py``). Its TensorFlow sum is channels-last, ``[1, H, W, C]`` for an ONNX ``[1, C, H, W]``;
when the two shapes differ and both inputs have the output's rank, the guard transposes both inputs back to
channels-first and adds there. The sum keeps the layout flag of its inputs (channels-last), so the ops that
trust the flag (Concat, the binary ops' layout workarounds) mix two layouts; the ops after them guess from the
shape, which works until a shape reads the same both ways. In RVM the new state ``r1`` ``[1, 16, 32, 32]`` is
concatenated into ``[1, 32, 32, 32]`` and the decoder's bilinear 2x Resize scales the channel and row axes:
the TFLite alpha and foreground were off by 1.0 against ONNX Runtime, and onnx2tf exited 0.

The repair writes each Add the guard would take as ``Sub(a, Neg(b))`` (``b`` negated in place of a ``Neg``
when it is a constant), in the private copy onnx2tf reads only. IEEE subtraction is the addition of the
negation, so the graph computes the same bits, and onnx2tf's Sub has no rescue guard. TensorFlow folds
``a - (-b)`` back into one ADD, so the TFLite model gets no extra op. RVM 256x256 (16 Adds rewritten): TFLite
fp32 against the Paddle reference 1.0 before, 1.6e-5 after, and its 25 TRANSPOSEs are gone. PP-MattingV2 at
256x256 (9 Adds): its fp32, int8 and dynamic-range TFLite models keep the same op sequence and give the same
outputs bit for bit. ``Sum(a, b)`` also avoids the guard, but it becomes TFLite ADD_N, which XNNPACK does not
take and which has no int8 kernel.

An Add is taken where the guard fires: a float Add whose two inputs have the output's rank (3 to 5) and
static shapes, and whose output shape its channels-last arrangement does not reproduce (``[1, 16, 32, 32]``,
not ``[1, 8, 8, 8]``, where the guard sees nothing wrong). Adds of a lower-rank operand (a ``[C]`` bias, a
scalar) never reach the guard and stay. On RVM (16 of 20 Adds) and PP-MattingV2 (9) these are exactly the Adds
an instrumented onnx2tf sent through the guard. A guarded sum only Convs read is harmless (Conv transposes an
input whose shape equals the ONNX one), but it is rewritten too: which later op trusts the flag is onnx2tf's
business, and the rewrite costs no op.
"""

from typing import List, Optional

import numpy as np

from ..base import ONNX2TF_INPUT, Match, Repair, RepairContext
from ..onnx.graph import constant_value, drop_unread_constants, tensor_facts, unique_name

RANKS = (3, 4, 5)
# ONNX element types of the Adds taken (float; an integer Add of full rank is shape arithmetic nobody writes).
FLOAT_TYPES = (1, 10, 11, 16)  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


def channels_last(shape: List[int]) -> List[int]:
    """``shape`` with its axis 1 moved last: what onnx2tf's TensorFlow tensor has for an ONNX tensor."""
    return [shape[0], *shape[2:], shape[1]]


def guard_fires(input_shapes: List[List[int]], output_shape: List[int]) -> Optional[str]:
    """Why onnx2tf's rescue guard takes an Add of these static shapes (``None``: it does not)."""
    rank = len(output_shape)
    if rank not in RANKS or any(len(shape) != rank for shape in input_shapes):
        return None
    if channels_last(output_shape) == output_shape:
        return None
    return (f"both inputs have the output's rank {rank}, and onnx2tf's channels-last sum "
            f"{channels_last(output_shape)} differs from {output_shape}: its rescue guard would add channels-first")


def rewrite_full_rank_adds(model, where: str = "model") -> List[dict]:
    """Write, in place, every Add onnx2tf's rescue guard would take as ``Sub(a, Neg(b))`` (see the module
    docstring). Returns one record per float Add of two inputs of the output's rank 3 to 5 that is taken:
    ``action`` ``"rewritten"``, or ``"left"`` when a shape is not static; the ``reason`` says why."""
    shapes, types = tensor_facts(model, where)
    taken = {name for n in model.graph.node for name in (*n.input, *n.output, n.name)}
    taken |= {t.name for t in model.graph.initializer} | {v.name for v in model.graph.input}
    records, kept = [], []
    for node in model.graph.node:
        operands = [shapes.get(name) for name in (*node.input, *node.output[:1])]
        if node.op_type != "Add" or node.domain not in ("", "ai.onnx") or len(node.input) != 2 \
                or types.get(node.output[0]) not in FLOAT_TYPES or None in operands \
                or len(operands[2]) not in RANKS or any(len(shape) != len(operands[2]) for shape in operands[:2]):
            kept.append(node)
            continue
        *input_shapes, output_shape = operands
        record = {"onnx_node": node.name or node.output[0], "input_shapes": input_shapes,
                  "output_shape": output_shape}
        if any(None in shape for shape in operands):
            records.append({**record, "action": "left", "reason": "an input or output shape is not static"})
            kept.append(node)
            continue
        reason = guard_fires(input_shapes, output_shape)
        if reason is None:
            kept.append(node)
            continue
        kept.extend(_as_sub_of_negated(model, node, taken))
        records.append({**record, "action": "rewritten", "reason": reason})
    if any(r["action"] == "rewritten" for r in records):
        operands = {name for node in model.graph.node if node.op_type == "Add" for name in node.input}
        del model.graph.node[:]
        model.graph.node.extend(kept)
        drop_unread_constants(model, operands)  # constants now read negated only
    return records


def _as_sub_of_negated(model, node, taken: set) -> list:
    """``Sub(a, Neg(b))`` for ``Add(a, b)``, same name and output; a constant operand is negated in place of a
    Neg node (moved second: addition is commutative bit for bit)."""
    import onnx

    a, b = node.input
    constant_b, constant_a = constant_value(model, b), constant_value(model, a)
    if constant_b is None and constant_a is not None:
        a, b, constant_b = b, a, constant_a
    nodes = []
    if constant_b is not None:
        negated = unique_name(f"{b}/negated", taken)
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.negative(constant_b), negated))
    else:
        negated = unique_name(f"{node.output[0]}/negated_operand", taken)
        nodes.append(onnx.helper.make_node("Neg", [b], [negated], name=unique_name(f"{node.name or node.output[0]}/neg",
                                                                                 taken)))
    nodes.append(onnx.helper.make_node("Sub", [a, negated], list(node.output), name=node.name))
    return nodes


def apply(model, context: RepairContext) -> List[Match]:
    """:func:`rewrite_full_rank_adds` as a repair: one match per full-rank Add, changed unless ``"left"``."""
    return [Match(r["action"] != "left", r) for r in rewrite_full_rank_adds(model, context.where)]


REPAIR = Repair(
    name="full_rank_add",
    applies_to=ONNX2TF_INPUT,
    matches="float Add nodes whose two inputs have the output's rank (3 to 5, static shapes) and whose output "
            "shape differs from its channels-last arrangement: those onnx2tf's Add rescue guard takes",
    changes="writes each as Sub(a, Neg(b)) (a constant operand negated instead) in the copy onnx2tf reads: the "
            "same sum bit for bit, which TensorFlow folds back into one ADD",
    why="onnx2tf 1.29.24's Add rescue guard adds such inputs channels-first while it goes on treating the sum "
        "as channels-last; once a later shape reads the same both ways the ops after it mix up the axes (RVM "
        "256x256: a [1, 32, 32, 32] concatenation resized on its channel axis, TFLite alpha off by 1.0 while "
        "onnx2tf exits 0)",
    preserves_outputs=True,
    apply=apply,
)
