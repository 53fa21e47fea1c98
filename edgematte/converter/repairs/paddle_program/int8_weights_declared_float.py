"""Weights stored as int8 for Paddle Lite to dequantize at load are declared float32 in the copy opt reads.

A weights-only INT8 program (:mod:`edgematte.quant.paddle_weight_int8`) stores a conv's weight as int8 and marks
the op (``quantize_weight_bits``, ``<weight>_quant_scale``); edgematte declares the variable INT8, what the params
file holds. Paddle Lite's light predictor turns such a weight back into float32 when it loads the ``.nb``, and its
opt plans kernels for that float32 weight: it wants the declaration paddle's own ``WeightQuantization`` writes,
float32. The edit changes a declaration only; the data and what Lite computes are the same.
"""

from typing import List

from ..base import PADDLE_PROGRAM, Match, Repair, RepairContext


def apply(program, context: RepairContext) -> List[Match]:
    """Declare FP32 every INT8/INT16 variable that an op marked with ``quantize_weight_bits`` reads as a weight
    with a ``<name>_quant_scale`` attribute. One match per such variable:
    ``{"block", "variable", "declared", "action": "patched"}``."""
    from paddle.base.proto import framework_pb2

    weights = set()
    for block in program.blocks:
        for op in block.ops:
            attrs = {a.name for a in op.attrs}
            if "quantize_weight_bits" in attrs:
                weights |= {name for slot in op.inputs for name in slot.arguments if f"{name}_quant_scale" in attrs}
    integer = (framework_pb2.VarType.INT8, framework_pb2.VarType.INT16)
    matches = []
    for block_index, block in enumerate(program.blocks):
        for var in block.vars:
            tensor = var.type.lod_tensor.tensor
            if var.name in weights and tensor.data_type in integer:
                declared = framework_pb2.VarType.Type.Name(tensor.data_type)
                tensor.data_type = framework_pb2.VarType.FP32
                matches.append(Match(True, {"block": block_index, "variable": var.name, "declared": declared,
                                            "action": "patched"}))
    return matches


REPAIR = Repair(
    name="int8_weights_declared_float",
    applies_to=PADDLE_PROGRAM,
    matches="INT8/INT16 weights of ops marked for Paddle Lite's load-time dequantization (quantize_weight_bits)",
    changes="declares each such weight FP32, as paddle's WeightQuantization writes it; the stored data is unchanged",
    why="Paddle Lite dequantizes these weights to float32 as it loads the .nb, and opt 2.13 plans for that: with "
        "the weight declared INT8 it fails ('Can't find a 'calib' kernel to trans: Tensor<x86,int8_t,...> -> "
        "Tensor<x86,float,...>'), so no weights-only INT8 .nb",
    preserves_outputs=True,
    apply=apply,
)
