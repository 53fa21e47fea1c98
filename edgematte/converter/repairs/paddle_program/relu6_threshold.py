"""relu6 ops without a ``threshold`` attribute get ``threshold = 6.0``, which Paddle Lite's opt insists on.

relu6's threshold is 6 by definition, so the edit does not change what the program computes; a relu6 that
already has one is left as it is.
"""

from typing import List

from ..base import PADDLE_PROGRAM, Match, Repair, RepairContext

RELU6_THRESHOLD = 6.0


def apply(program, context: RepairContext) -> List[Match]:
    """Add ``threshold = 6.0`` (FLOAT) in place to every relu6 op of the ``ProgramDesc`` that lacks it.

    One match per relu6 op, in program order: ``{"block", "op_index", "output", "action": "patched" | "kept"}``.
    """
    from paddle.base.proto import framework_pb2

    matches = []
    for block_index, block in enumerate(program.blocks):
        for op_index, op in enumerate(block.ops):
            if op.type != "relu6":
                continue
            outputs = [arg for var in op.outputs if var.parameter == "Out" for arg in var.arguments]
            record = {"block": block_index, "op_index": op_index, "output": outputs[0] if outputs else None}
            if any(a.name == "threshold" for a in op.attrs):
                matches.append(Match(False, {**record, "action": "kept"}))
                continue
            attr = op.attrs.add()
            attr.name = "threshold"
            attr.type = framework_pb2.FLOAT
            attr.f = RELU6_THRESHOLD
            matches.append(Match(True, {**record, "action": "patched"}))
    return matches


REPAIR = Repair(
    name="relu6_threshold",
    applies_to=PADDLE_PROGRAM,
    matches="relu6 ops; those without a 'threshold' attribute are changed",
    changes="adds threshold = 6.0 (FLOAT), relu6's definition, to each relu6 that lacks it; nothing else",
    why="paddlepaddle 2.6 exports relu6 without its threshold attribute and Paddle Lite opt 2.13 aborts on it "
        "('No attributes called threshold found for relu6'): no .nb at all for a model "
        "with a relu6 (PP-MattingV2's transformer blocks)",
    preserves_outputs=True,
    apply=apply,
)
