"""softmax(x) rewritten as softmax(x - max(x)), because Paddle Lite's x86 softmax overflows on large logits.

Lite 2.13's x86 softmax kernel does not subtract the maximum before ``exp()``: logits above about 88 overflow
float32, and the result is NaN or garbage. PaddleSeg's PP-HumanMatting export feeds its glance softmax logits up
to about 1e3 (seeded weights, measured 1058 at 384x640), and its x86 ``.nb`` then gave alpha mean 0.15 where the
reference gives 0.72. The x86 ``.nb`` is the twin whose figures the arm ``.nb`` carries, so it must compute what
the arm one does.

softmax is invariant under a shift along its axis, so inserting ``reduce_max`` (keep_dim) and ``elementwise_sub``
before each softmax computes the same function (up to float rounding, and without the overflow). The arm ``.nb``
gets the same program: Lite's ARM kernel subtracts the maximum itself, so shifting first changes nothing there.
"""

from typing import List

from ..base import PADDLE_PROGRAM, Match, Repair, RepairContext


def _attr(op, name, default):
    found = next((a for a in op.attrs if a.name == name), None)
    return default if found is None else found


def _new_var(block, name: str, like, dims) -> None:
    var = block.vars.add()
    var.CopyFrom(like)
    var.name = name
    var.persistable = False
    del var.type.lod_tensor.tensor.dims[:]
    var.type.lod_tensor.tensor.dims.extend(dims)


def _op(framework_pb2, op_type: str, inputs: dict, outputs: dict, attrs: list):
    op = framework_pb2.OpDesc()
    op.type = op_type
    for slot, names in inputs.items():
        desc = op.inputs.add()
        desc.parameter = slot
        desc.arguments.extend(names)
    for slot, names in outputs.items():
        desc = op.outputs.add()
        desc.parameter = slot
        desc.arguments.extend(names)
    for name, kind, value in attrs:
        attr = op.attrs.add()
        attr.name, attr.type = name, kind
        if kind == framework_pb2.INTS:
            attr.ints.extend(value)
        elif kind == framework_pb2.INT:
            attr.i = value
        elif kind == framework_pb2.BOOLEAN:
            attr.b = value
    return op


def apply(program, context: RepairContext) -> List[Match]:
    """Shift every softmax of block 0 by its maximum along its axis, in place (see the module docstring).
    One match per softmax: ``{"op_index", "input", "axis", "action": "shifted" | "kept", "reason"?}``."""
    from paddle.base.proto import framework_pb2 as fp

    block = program.blocks[0]
    variables = {v.name: v for v in block.vars}
    producers = {a: op.type for op in block.ops for s in op.outputs for a in s.arguments}
    matches, rebuilt = [], []
    for op_index, op in enumerate(block.ops):
        if op.type != "softmax":
            rebuilt.append(op)
            continue
        x = next(a for s in op.inputs if s.parameter == "X" for a in s.arguments)
        dims = list(variables[x].type.lod_tensor.tensor.dims) if x in variables else []
        axis_attr = _attr(op, "axis", None)
        axis = axis_attr.i if axis_attr is not None else -1
        record = {"op_index": op_index, "input": x, "axis": axis}
        if producers.get(x) == "elementwise_sub" and x.endswith("@shifted"):
            matches.append(Match(False, {**record, "action": "kept", "reason": "already shifted"}))
            rebuilt.append(op)
            continue
        if not dims or min(dims) < 1:
            matches.append(Match(False, {**record, "action": "kept", "reason": "the input shape is not static"}))
            rebuilt.append(op)
            continue
        axis = axis % len(dims)
        peak, shifted = f"{x}@max", f"{x}@shifted"
        _new_var(block, peak, variables[x], [1 if i == axis else d for i, d in enumerate(dims)])
        _new_var(block, shifted, variables[x], dims)
        rebuilt.append(_op(fp, "reduce_max", {"X": [x]}, {"Out": [peak]},
                           [("dim", fp.INTS, [axis]), ("keep_dim", fp.BOOLEAN, True),
                            ("reduce_all", fp.BOOLEAN, False), ("in_dtype", fp.INT, -1), ("out_dtype", fp.INT, -1)]))
        rebuilt.append(_op(fp, "elementwise_sub", {"X": [x], "Y": [peak]}, {"Out": [shifted]},
                           [("axis", fp.INT, -1)]))
        for slot in op.inputs:
            if slot.parameter == "X":
                slot.arguments[:] = [shifted]
        rebuilt.append(op)
        matches.append(Match(True, {**record, "action": "shifted"}))
    if any(m.changed for m in matches):
        copies = []
        for op in rebuilt:
            copy = fp.OpDesc()
            copy.CopyFrom(op)
            copies.append(copy)
        del block.ops[:]
        block.ops.extend(copies)
    return matches


REPAIR = Repair(
    name="softmax_max_shift",
    applies_to=PADDLE_PROGRAM,
    matches="softmax ops of block 0 with a static input shape",
    changes="inserts reduce_max (keep_dim, along the softmax axis) and elementwise_sub before each, so the softmax "
            "reads x - max(x): the same function without exp() overflow",
    why="Paddle Lite 2.13's x86 softmax does not subtract the maximum and overflows above about 88: PaddleSeg's "
        "PP-HumanMatting export (glance logits up to ~1e3) gave an x86 .nb alpha mean 0.15 against 0.72, and the x86 "
        ".nb is the twin whose figures the arm .nb carries",
    preserves_outputs=True,
    apply=apply,
)
