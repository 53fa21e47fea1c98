"""Inline the branches of ``if`` statements whose condition is decided once the input shapes are fixed.

Paddle's dy2static compiles ``if c: A else: B`` (``c`` a tensor) into these ops of the enclosing block::

    c      = not_equal / greater_than / ...       # bool [1] (or [])
    conditional_block(Cond=[c], Input=[what A reads], sub_block=i, is_scalar_condition=True)
                     -> Out=[what A writes], Scope=[a STEP_SCOPES holder]
    not_c  = logical_not(c)
    conditional_block(Cond=[not_c], ..., sub_block=j) -> ...
    mask   = cast(c, int32)
    v      = select_input(X=[v written by B, v written by A], Mask=mask)     # one per variable a branch assigns

PaddleSeg's RVM export holds one (``if downsample_ratio != 1``: its refiner path). Paddle Lite's opt and
paddle2onnx want straight-line code. Once ``c`` is known (the shapes are fixed and ``downsample_ratio`` is a
constant), :func:`inline_constant_branches` moves the taken branch's ops into block 0 in place of its
``conditional_block``, drops the other one, and turns each ``select_input`` into an ``assign`` of the input
its mask picks. The program then computes exactly what it computed before, for those inputs.

Paddle's semantics followed here (``conditional_block_op.cc``, ``select_input_op.cc``):

- with ``is_scalar_condition`` the block runs iff the single ``Cond`` tensor (bool) holds true in its first
  element; without it, iff every ``Input`` tensor is non-empty (``numel != 0``; no inputs: always);
- the sub-block runs in a child scope: the variables it declares are local to it (a local name shadows the
  parent's), the others are the parent's. Inlined variables are declared in block 0, a local one renamed if
  its name is taken there (in the inlined ops and in nested blocks that do not declare it themselves);
- ``select_input`` copies ``X[mask]``, ``mask`` an int32 scalar.

Block indices never change (``sub_block`` attributes of other ops stay valid): a branch's block is emptied,
and only empty, unreferenced blocks at the end of the program are removed. Conditions are values of one
Paddle run (the caller's); they must be the same for every input the frozen program will see, which holds for
the ones :func:`condition_variables` lists with ``static_only``.
"""

from collections import deque
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

import numpy as np

from ..core.errors import EdgematteError
from .static_program import _args, _fp, static_variables

# Side-effect-free ops that compute conditions (dy2static's compare / logical_not / cast chain and what feeds
# it). Once the control flow they decided is gone, those no op reads any more are removed.
_CONDITION_OPS = frozenset({
    "logical_not", "logical_and", "logical_or", "logical_xor", "cast",
    "equal", "not_equal", "less_than", "less_equal", "greater_than", "greater_equal",
    "reduce_all", "reduce_any", "fill_constant", "assign_value", "shape", "slice", "scale",
})


@dataclass
class InlineReport:
    """What :func:`inline_constant_branches` did.

    ``inlined``: sub-block indices whose ops now run in block 0; ``dropped``: sub-blocks of branches not taken
    (emptied, with their nested blocks); ``selected``: ``select_input`` output -> the input its ``assign`` now
    copies; ``renamed``: sub-block variable -> its new name in block 0 (only on a name clash); ``removed``: dead
    condition ops removed, by type; ``undecided``: conditions left in block 0 with no known value (a nested
    ``if`` whose condition was computed inside a branch: run the inlined program once more to learn it).
    """

    inlined: List[int] = field(default_factory=list)
    dropped: List[int] = field(default_factory=list)
    selected: Dict[str, str] = field(default_factory=dict)
    renamed: Dict[str, str] = field(default_factory=dict)
    removed: Dict[str, int] = field(default_factory=dict)
    undecided: List[str] = field(default_factory=list)

    def as_dict(self) -> Dict[str, int]:
        """Counts for a conversion record: blocks inlined and dropped, ``select_input`` ops replaced, ..."""
        return {"inlined_blocks": len(self.inlined), "dropped_blocks": len(self.dropped),
                "select_input": len(self.selected), "renamed": len(self.renamed),
                "removed_ops": sum(self.removed.values()), "undecided": len(self.undecided)}

    @property
    def changed(self) -> bool:
        return bool(self.inlined or self.dropped or self.selected)


# ----------------------------------------------------------------------------- reading ops
def _attr(op, name: str):
    return next((a for a in op.attrs if a.name == name), None)


def _slot(slots, name: str) -> List[str]:
    return [a for slot in slots if slot.parameter == name for a in slot.arguments]


def _is_scalar_condition(op) -> bool:
    attr = _attr(op, "is_scalar_condition")
    return bool(attr.b) if attr is not None else False  # the op's declared default


def _sub_block_index(program, op) -> int:
    """The ``sub_block`` of a ``conditional_block``: a block of the program other than block 0."""
    fp = _fp()
    attr = _attr(op, "sub_block")
    if attr is None or attr.type != fp.BLOCK:
        raise EdgematteError("malformed program: a conditional_block has no sub_block attribute")
    index = int(attr.block_idx)
    if not 0 < index < len(program.blocks):
        raise EdgematteError(f"malformed program: conditional_block sub_block {index} is not a block of the "
                             f"program ({len(program.blocks)} blocks)")
    return index


def condition_variables(program, static_only: bool = False) -> List[str]:
    """Names in block 0 whose values decide its control flow, in op order, each once.

    ``program`` is a parsed ``ProgramDesc``. Listed: the ``Cond`` of each ``conditional_block`` with
    ``is_scalar_condition`` (bool [1] or []), its ``Input`` variables otherwise (only their sizes matter), and
    the ``Mask`` of each ``select_input`` (int32 [1]). ``static_only`` keeps those computed from shapes and
    constants alone (:func:`edgematte.converter.static_program.static_variables`), i.e. the same for every
    input of the fixed shape; a condition on the image's values is left out.
    """
    names: List[str] = []
    for op in program.blocks[0].ops:
        if op.type == "conditional_block":
            names.extend(_slot(op.inputs, "Cond") if _is_scalar_condition(op) else _slot(op.inputs, "Input"))
        elif op.type == "select_input":
            names.extend(_slot(op.inputs, "Mask"))
    names = list(dict.fromkeys(names))
    if static_only:
        static = set(static_variables(program))
        names = [n for n in names if n in static]
    return names


def _branch_taken(op, values: Dict[str, np.ndarray]) -> Optional[bool]:
    """Whether Paddle runs this ``conditional_block``'s sub-block; None when ``values`` does not say."""
    if not _is_scalar_condition(op):
        names = _slot(op.inputs, "Input")
        if not all(n in values for n in names):
            return None
        return all(values[n].size != 0 for n in names)
    cond = _slot(op.inputs, "Cond")
    if len(cond) != 1:
        raise EdgematteError(f"malformed program: a scalar conditional_block has {len(cond)} Cond variables, not 1")
    if cond[0] not in values:
        return None
    value = values[cond[0]]
    if value.dtype != np.bool_ or value.size == 0:
        raise EdgematteError(f"condition '{cond[0]}' is {value.dtype} {list(value.shape)}; "
                             "conditional_block needs a non-empty bool tensor")
    return bool(value.reshape(-1)[0])


def _selected_input(op, values: Dict[str, np.ndarray]) -> Optional[str]:
    """The ``X`` a ``select_input`` copies (``X[Mask]``); None when the mask's value is unknown."""
    mask, choices, out = _slot(op.inputs, "Mask"), _slot(op.inputs, "X"), _slot(op.outputs, "Out")
    if len(mask) != 1 or len(out) != 1 or not choices:
        raise EdgematteError(f"malformed program: select_input with Mask {mask}, X {choices}, Out {out}")
    if mask[0] not in values:
        return None
    value = values[mask[0]].reshape(-1)
    if value.size == 0 or not np.issubdtype(value.dtype, np.integer) or not 0 <= int(value[0]) < len(choices):
        raise EdgematteError(f"select_input '{out[0]}': mask '{mask[0]}' = {value[:4].tolist()} does not index "
                             f"its {len(choices)} inputs")
    return choices[int(value[0])]


# ----------------------------------------------------------------------------- editing
def _copy(op):
    copy = type(op)()
    copy.CopyFrom(op)
    return copy


def _rename_op(op, rename: Dict[str, str]) -> None:
    """Replace variable names in ``op``'s inputs, outputs and Variable-typed attributes (in place)."""
    if not rename:
        return
    for slot in (*op.inputs, *op.outputs):
        slot.arguments[:] = [rename.get(a, a) for a in slot.arguments]
    for attr in op.attrs:
        if attr.var_name:
            attr.var_name = rename.get(attr.var_name, attr.var_name)
        if attr.vars_name:
            attr.vars_name[:] = [rename.get(a, a) for a in attr.vars_name]


def _children(program, index: int) -> List[int]:
    return [b.idx for b in program.blocks if b.parent_idx == index and b.idx != index]


def _rename_nested(program, index: int, rename: Dict[str, str]) -> None:
    """Apply ``rename`` (block ``index``'s locals) in the blocks nested in it, except where one re-declares a
    name (there it means the nested block's own variable)."""
    for child in _children(program, index):
        block = program.blocks[child]
        local = {v.name for v in block.vars}
        inherited = {k: v for k, v in rename.items() if k not in local}
        if inherited:
            for op in block.ops:
                _rename_op(op, inherited)
            _rename_nested(program, child, inherited)


def _clear_block(program, index: int, seen: Optional[Set[int]] = None) -> None:
    """Empty block ``index`` and the blocks nested in it (the branch is never run)."""
    seen = set() if seen is None else seen
    if index in seen:
        raise EdgematteError(f"malformed program: block {index} is nested in itself")
    seen.add(index)
    for child in _children(program, index):
        _clear_block(program, child, seen)
    del program.blocks[index].ops[:]
    del program.blocks[index].vars[:]


def _fresh_name(name: str, index: int, taken: Set[str]) -> str:
    candidate, n = f"{name}.inlined{index}", 1
    while candidate in taken:
        n += 1
        candidate = f"{name}.inlined{index}_{n}"
    return candidate


def _take_block(program, index: int, declared: Dict[str, bool], report: InlineReport) -> list:
    """Block ``index``'s ops, to run in block 0 instead: its variables are declared in block 0 (``declared``:
    name -> persistable, updated), renamed on a clash; its nested blocks become block 0's; the block is emptied."""
    sub, block = program.blocks[index], program.blocks[0]
    taken = set(declared) | {v.name for b in program.blocks for v in b.vars}
    rename: Dict[str, str] = {}
    for var in sub.vars:
        if var.name in declared and var.persistable and declared[var.name]:
            continue  # the same weight, declared again: one variable in the root scope
        copy = block.vars.add()
        copy.CopyFrom(var)
        if var.name in declared:  # a local that shadows block 0's variable: keep them apart
            copy.name = rename[var.name] = _fresh_name(var.name, index, taken)
            taken.add(copy.name)
        declared[copy.name] = bool(var.persistable)
    ops = [_copy(op) for op in sub.ops]
    for op in ops:
        _rename_op(op, rename)
    _rename_nested(program, index, rename)
    for child in _children(program, index):  # their ops now run in block 0's scope
        program.blocks[child].parent_idx = 0
    del sub.ops[:]
    del sub.vars[:]
    report.renamed.update(rename)
    return ops


def _assign_op(src: str, dst: str, like):
    """``assign(X=src) -> Out=dst``, with ``like``'s common attributes (op_role, op_callstack, ...)."""
    op = type(like)()
    op.type = "assign"
    op.inputs.add(parameter="X", arguments=[src])
    op.outputs.add(parameter="Out", arguments=[dst])
    for attr in like.attrs:
        if attr.name.startswith("op_") or attr.name == "with_quant_attr":
            op.attrs.add().CopyFrom(attr)
    return op


def _referenced(program, skip_block0: bool = False) -> Set[str]:
    """Every variable name some op reads or writes (inputs, outputs, Variable-typed attributes)."""
    names: Set[str] = set()
    for block in program.blocks[1 if skip_block0 else 0:]:
        for op in block.ops:
            names.update(_args(op.inputs), _args(op.outputs))
            names.update(n for a in op.attrs for n in (a.var_name, *a.vars_name) if n)
    return names


def _remove_dead_conditions(program, ops: list, roots: Set[str], report: InlineReport) -> Tuple[list, Set[str]]:
    """``ops`` (block 0's, in order) without the condition ops (:data:`_CONDITION_OPS`) that only computed
    ``roots`` and their own inputs, now that nothing reads them, and the names those ops wrote. Ops writing a
    persistable variable, or a variable something else also writes, stay."""
    block = program.blocks[0]
    persistable = {v.name for v in block.vars if v.persistable}
    elsewhere = _referenced(program, skip_block0=True)
    candidates, removed = set(roots), set()
    while candidates:
        read = elsewhere | {a for op in ops for a in _args(op.inputs)}
        read |= {n for op in ops for a in op.attrs for n in (a.var_name, *a.vars_name) if n}
        writers = {}
        for op in ops:
            for name in _args(op.outputs):
                writers.setdefault(name, []).append(op)
        dead = []
        for name in candidates:
            producers = writers.get(name, [])
            if len(producers) != 1 or producers[0].type not in _CONDITION_OPS:
                continue
            outputs = _args(producers[0].outputs)
            if not any(o in read or o in persistable or len(writers[o]) != 1 for o in outputs):
                dead.append(producers[0])
        dead_ids = {id(op) for op in dead}
        candidates = {a for op in dead for a in _args(op.inputs)}
        for op in dead:
            report.removed[op.type] = report.removed.get(op.type, 0) + 1
            removed.update(_args(op.outputs))
        ops = [op for op in ops if id(op) not in dead_ids]
    return ops, removed


def _forget_variables(program, names: Set[str]) -> None:
    """Remove block 0's declarations of ``names`` that no op references any more (persistables stay)."""
    unused = names - _referenced(program)
    block = program.blocks[0]
    keep = [_copy(v) for v in block.vars if v.persistable or v.name not in unused]
    if len(keep) != len(block.vars):
        del block.vars[:]
        block.vars.extend(keep)


def _trim_blocks(program) -> None:
    """Remove empty blocks at the end of the program that no op refers to (no other block's index changes)."""
    fp = _fp()
    while len(program.blocks) > 1:
        last = program.blocks[-1]
        referenced = any((a.type == fp.BLOCK and a.block_idx == last.idx)
                         or (a.type == fp.BLOCKS and last.idx in a.blocks_idx)
                         for b in program.blocks for op in b.ops for a in op.attrs)
        if last.ops or last.vars or referenced or any(b.parent_idx == last.idx for b in program.blocks[:-1]):
            return
        del program.blocks[-1]


def inline_constant_branches(program, values) -> InlineReport:
    """Replace block 0's control flow whose conditions ``values`` holds by straight-line code (in place).

    ``program`` is a parsed ``ProgramDesc`` (:func:`edgematte.converter.program.parse_program`); ``values``
    maps variable names to their values (numpy arrays or Paddle tensors; conditions: bool [1] or [], masks:
    int32 [1]), typically :func:`condition_variables` fetched from one run at the fixed shape. A decided
    ``conditional_block`` is replaced by its sub-block's ops if its branch is taken, else removed; a
    ``select_input`` with a known mask becomes ``assign(X[mask]) -> Out``. A taken branch's own
    ``conditional_block`` s are decided the same way when ``values`` holds their conditions (else they stay, in
    block 0: ``InlineReport.undecided``). Ops that only computed the removed conditions are removed; everything
    whose condition is unknown is left exactly as it was. On an error (:class:`EdgematteError`: a malformed
    program, or values Paddle would refuse) ``program`` is left as it was given.
    """
    values = {name: np.asarray(value) for name, value in values.items()}
    original = program.SerializeToString()
    try:
        return _inline(program, values)
    except EdgematteError:
        program.ParseFromString(original)  # ParseFromString clears first: the program as given
        raise


def _inline(program, values: Dict[str, np.ndarray]) -> InlineReport:
    """:func:`inline_constant_branches` on numpy ``values``, raising with ``program`` half edited."""
    report = InlineReport()
    block = program.blocks[0]
    declared = {v.name: bool(v.persistable) for v in block.vars}
    pending = deque(_copy(op) for op in block.ops)
    kept, roots, unwritten, used_blocks = [], set(), set(), set()
    while pending:
        op = pending.popleft()
        taken = _branch_taken(op, values) if op.type == "conditional_block" else None
        chosen = _selected_input(op, values) if op.type == "select_input" else None
        if taken is not None:
            index = _sub_block_index(program, op)
            if index in used_blocks:
                raise EdgematteError(f"malformed program: block {index} is the sub_block of two ops")
            used_blocks.add(index)
            if taken:
                pending.extendleft(reversed(_take_block(program, index, declared, report)))
                report.inlined.append(index)
            else:
                _clear_block(program, index)
                report.dropped.append(index)
                unwritten.update(_slot(op.outputs, "Out"))
            roots.update(_slot(op.inputs, "Cond"))
            unwritten.update(_slot(op.outputs, "Scope"))
        elif chosen is not None:
            out = _slot(op.outputs, "Out")[0]
            kept.append(_assign_op(chosen, out, op))
            report.selected[out] = chosen
            roots.update(_slot(op.inputs, "Mask"))
            unwritten.update(a for a in _slot(op.inputs, "X") if a != chosen)
        else:
            kept.append(op)
    written = {a for op in kept for a in _args(op.outputs)} | {n for n, p in declared.items() if p}
    for out, chosen in report.selected.items():
        if chosen not in written:  # the mask disagrees with the conditions: the copy would read nothing
            raise EdgematteError(f"select_input '{out}': its mask picks '{chosen}', which no op left in the "
                                 "program writes (the condition and mask values disagree)")
    kept, removed = _remove_dead_conditions(program, kept, roots, report)
    del block.ops[:]
    block.ops.extend(kept)
    _forget_variables(program, roots | unwritten | removed)
    _trim_blocks(program)
    known = set(values)
    report.undecided = [n for n in condition_variables(program) if n not in known]
    return report
