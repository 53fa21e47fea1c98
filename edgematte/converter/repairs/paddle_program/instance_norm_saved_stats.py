"""``instance_norm`` ops without their ``SavedMean`` / ``SavedVariance`` outputs, which Paddle Lite's opt requires,
given both (as new, otherwise unused variables).

paddle 2.6 exports ``instance_norm`` for inference with its ``Y`` output only (MODNet's low-resolution branch).
Paddle's op definition marks ``SavedMean`` and ``SavedVariance`` as intermediate, not dispensable, and opt 2.13
enforces that ("is_dispensable || is_have_output") and writes no ``.nb`` at all. The two outputs hold the
per-instance, per-channel statistics (``[N * C]`` float32); nothing in an inference program reads them, so adding
them does not change what the program computes.
"""

from typing import List

from ..base import PADDLE_PROGRAM, Match, Repair, RepairContext

SLOTS = ("SavedMean", "SavedVariance")


def apply(program, context: RepairContext) -> List[Match]:
    """Add the missing ``SavedMean`` / ``SavedVariance`` outputs (and their variables) to every instance_norm
    of block 0, in place. One match per instance_norm: ``{"op_index", "output", "action": "added" | "kept",
    "added": [slots]}``."""
    from paddle.base.proto import framework_pb2

    block = program.blocks[0]
    variables = {v.name: v for v in block.vars}
    matches = []
    for op_index, op in enumerate(block.ops):
        if op.type != "instance_norm":
            continue
        y = next((a for s in op.outputs if s.parameter == "Y" for a in s.arguments), None)
        x = next((a for s in op.inputs if s.parameter == "X" for a in s.arguments), None)
        record = {"op_index": op_index, "output": y}
        present = {s.parameter for s in op.outputs if s.arguments}
        missing = [slot for slot in SLOTS if slot not in present]
        if not missing:
            matches.append(Match(False, {**record, "action": "kept", "added": []}))
            continue
        dims = list(variables[x].type.lod_tensor.tensor.dims) if x in variables else []
        statistics = [dims[0] * dims[1]] if len(dims) >= 2 and min(dims[:2]) > 0 else [-1]
        for slot in missing:
            name = f"{y}@{slot}"
            var = block.vars.add()
            var.name = name
            var.type.type = framework_pb2.VarType.LOD_TENSOR
            var.type.lod_tensor.tensor.data_type = framework_pb2.VarType.FP32
            var.type.lod_tensor.tensor.dims.extend(statistics)
            slot_desc = next((s for s in op.outputs if s.parameter == slot), None) or op.outputs.add()
            slot_desc.parameter = slot
            slot_desc.arguments.append(name)
        matches.append(Match(True, {**record, "action": "added", "added": missing}))
    return matches


REPAIR = Repair(
    name="instance_norm_saved_stats",
    applies_to=PADDLE_PROGRAM,
    matches="instance_norm ops; changed when they lack the SavedMean or SavedVariance output",
    changes="adds each missing output as a new float32 variable of shape [N * C] that nothing reads",
    why="paddlepaddle 2.6 exports instance_norm without SavedMean/SavedVariance and Paddle Lite opt 2.13 refuses "
        "the program ('is_dispensable || is_have_output'): no .nb at all for MODNet as PaddleSeg exports it",
    preserves_outputs=True,
    apply=apply,
)
