"""Dropping outputs from a Paddle program, with the work only they need (``convert --alpha-only``).

A matting program may fetch more than the alpha: RVM also returns its foreground, computed at full
resolution (on 720x1280 frames the foreground's share of the refiner is most of that stage's memory
traffic). A deployment that composites the photo over a background with the alpha never reads it.
:func:`drop_fetches` removes the fetch ops of the dropped outputs and then every op whose results no kept
op and no kept fetch reads, so the program computes exactly what it computed for the outputs it keeps
(each kept op sees the same inputs; nothing is re-implemented).
"""

from typing import Iterable, List, Set

from .static_program import _args, _drop_unused_variables, _has_sub_block, op_reads


def drop_fetches(program, names: Iterable[str]) -> List[str]:
    """Remove from block 0 of the parsed ``ProgramDesc`` the fetch ops of the variables ``names`` and the ops
    only they needed; the remaining fetch ops keep their order (``col`` renumbered from 0).

    An op stays when it is a feed or kept fetch, has a sub-block (control flow is kept whole: what its
    blocks read is not followed here) or writes a variable a kept op reads; ops are walked last to first, so
    a variable stays needed once anything kept reads it. Returns the types of the removed ops (fetches
    included), in program order; an empty list when ``names`` fetches nothing.
    """
    from .program import _framework_pb2

    dropped = set(names)
    block = program.blocks[0]
    if not any(op.type == "fetch" and set(_args(op.inputs)) & dropped for op in block.ops):
        return []
    fp = _framework_pb2()
    needed: Set[str] = set()
    keep = [False] * len(block.ops)
    for index in range(len(block.ops) - 1, -1, -1):
        op = block.ops[index]
        if op.type == "fetch":
            keep[index] = not set(_args(op.inputs)) & dropped
        else:
            keep[index] = (op.type == "feed" or _has_sub_block(op, fp)
                           or bool(set(_args(op.outputs)) & needed))
        if keep[index]:
            needed |= set(op_reads(op))
    removed = [op.type for op, kept in zip(block.ops, keep) if not kept]
    copies = []
    column = 0
    for op, kept in zip(block.ops, keep):
        if not kept:
            continue
        copy = type(op)()
        copy.CopyFrom(op)
        if copy.type == "fetch":
            next(a for a in copy.attrs if a.name == "col").i = column
            column += 1
        copies.append(copy)
    del block.ops[:]
    block.ops.extend(copies)
    _drop_unused_variables(program)
    return removed
