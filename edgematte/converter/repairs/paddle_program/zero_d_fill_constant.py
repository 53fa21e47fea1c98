"""0-D ``fill_constant`` ops, on which a Paddle Lite ``.nb`` aborts, given the shape ``[1]``.

paddle 2.6 writes a Python number compared with a tensor (``paddle.argmax(x, 1) == 1``, PP-HumanMatting's and
PP-Matting's fusion) as a ``fill_constant`` of shape ``[]`` (a 0-D tensor) feeding ``equal``. opt 2.13 converts
it, and the ``.nb`` then aborts the whole process when it runs ("fill_constant_op.cc:44 no valid out_shape"):
there is no catching that in Python.

Where every reader of the constant broadcasts it against an operand of rank >= 1 (elementwise arithmetic and
comparisons), a ``[1]`` tensor broadcasts to exactly the same result as a 0-D one, so the edit preserves what the
program computes. A 0-D constant read by anything else (a reshape, a concat, a fetch) is left as it is.
"""

from typing import Dict, List

from ..base import PADDLE_PROGRAM, Match, Repair, RepairContext

# Readers for which a [1] operand broadcasts exactly as a 0-D one does (the other operand has rank >= 1).
BROADCASTING_READERS = frozenset({
    "equal", "not_equal", "less_than", "less_equal", "greater_than", "greater_equal",
    "elementwise_add", "elementwise_sub", "elementwise_mul", "elementwise_div", "elementwise_max",
    "elementwise_min", "elementwise_pow", "elementwise_floordiv", "elementwise_mod",
    "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor",
})


def _outputs(op) -> List[str]:
    return [a for slot in op.outputs for a in slot.arguments]


def _rank(dims_by_name: Dict[str, List[int]], name: str) -> int:
    return len(dims_by_name.get(name, []))


def _verdict(program, name: str, dims_by_name) -> str:
    """Why the 0-D constant ``name`` may become ``[1]``, or "" when it may not (a reader that is not a
    broadcasting elementwise op, or one whose other operand is 0-D too)."""
    readers = [op for block in program.blocks for op in block.ops
               if name in [a for slot in op.inputs for a in slot.arguments]]
    if not readers:
        return ""
    for op in readers:
        if op.type not in BROADCASTING_READERS:
            return ""
        others = [a for slot in op.inputs for a in slot.arguments if a != name]
        if not others or min(_rank(dims_by_name, o) for o in others) < 1:
            return ""
    return f"read only by {', '.join(sorted({op.type for op in readers}))} against operands of rank >= 1"


def apply(program, context: RepairContext) -> List[Match]:
    """Give each 0-D ``fill_constant`` whose readers all broadcast (see the module docstring) the shape ``[1]``,
    in its ``shape`` attribute and its output's declared dims. One match per 0-D fill_constant of block 0:
    ``{"op_index", "output", "action": "reshaped" | "kept", "reason"}``."""
    from paddle.base.proto import framework_pb2

    block = program.blocks[0]
    dims_by_name = {v.name: list(v.type.lod_tensor.tensor.dims) for v in block.vars
                    if v.type.type == framework_pb2.VarType.LOD_TENSOR}
    matches = []
    for op_index, op in enumerate(block.ops):
        if op.type != "fill_constant" or len(_outputs(op)) != 1:
            continue
        if any(slot.arguments for slot in op.inputs):  # the shape comes from a tensor: not a constant shape
            continue
        shape = next((a for a in op.attrs if a.name == "shape"), None)
        (name,) = _outputs(op)
        if (shape is not None and (list(shape.longs) or list(shape.ints))) or dims_by_name.get(name) not in ([], None):
            continue
        record = {"op_index": op_index, "output": name}
        reason = _verdict(program, name, dims_by_name)
        if not reason:
            matches.append(Match(False, {**record, "action": "kept",
                                         "reason": "a reader may depend on it being 0-D"}))
            continue
        if shape is None:
            shape = op.attrs.add()
            shape.name, shape.type = "shape", framework_pb2.LONGS
        del shape.longs[:]
        del shape.ints[:]
        (shape.longs if shape.type == framework_pb2.LONGS else shape.ints).append(1)
        var = next(v for v in block.vars if v.name == name)
        var.type.lod_tensor.tensor.dims.append(1)
        matches.append(Match(True, {**record, "action": "reshaped", "reason": reason}))
    return matches


REPAIR = Repair(
    name="zero_d_fill_constant",
    applies_to=PADDLE_PROGRAM,
    matches="fill_constant ops of shape [] (0-D tensors); changed when every reader is an elementwise op or "
            "comparison that broadcasts it against an operand of rank >= 1",
    changes="sets the op's shape attribute and its output's declared dims to [1], which broadcasts to the same "
            "result",
    why="paddle 2.6 exports `argmax(x) == 1` with a 0-D fill_constant; Paddle Lite 2.13's .nb aborts the whole "
        "process on it at run time ('fill_constant_op.cc:44 no valid out_shape'): PP-HumanMatting and PP-Matting "
        "as PaddleSeg exports them",
    preserves_outputs=True,
    apply=apply,
)
