"""Fold what a program computes from tensor shapes alone into constants, once its input shapes are fixed.

PaddleSeg's ``export.py`` saves the feed as ``[None, 3, None, None]``. Wherever the model code takes a size
from a tensor (``x.shape[2:]``, ``paddle.shape(x)``), the saved program keeps that computation: ``shape`` ->
``slice`` (-> ``cast``, ``scale``, ...) -> an op that takes the result as a tensor input (interpolate's
``SizeTensor``, reshape's ``ShapeTensor``, slice's ``EndsTensorList``) or as an attribute given as a Variable
(pool2d's ``ksize``). Paddle Lite's opt rejects such programs ("Unknown attribute type for attr ksize") and
paddle2onnx cannot convert them. Once the input shape is fixed, every such value is a constant.

:func:`static_variables` finds the variables whose values depend on shapes only (``shape`` outputs, and the
outputs of ops whose every input is such a variable or that have no inputs). Their values come from Paddle
itself (one run, :func:`edgematte.converter.program.freeze_input_shape`), so no op is re-implemented here.
:func:`fold_static_values` then

1. writes each value into the attribute its consumer would have read without the tensor (:data:`TENSOR_ATTRS`,
   one entry per op input that overrides an attribute), and turns Variable-typed attributes into plain ones of
   the type the op declares;
2. gives any other consumer the value from an ``assign_value`` op, so the program computes exactly what it did;
3. deletes the shape computations nobody reads any more.

The program then computes what it computed before, at the fixed shape, with no shape arithmetic left.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Set, Tuple

import numpy as np

from ..core.errors import EdgematteError

# Ops never folded: I/O, control flow (their sub-blocks), and ops whose output is not a function of shapes.
_NEVER_STATIC = frozenset({
    "feed", "fetch", "conditional_block", "while", "recurrent", "select_input", "select_output",
    "uniform_random", "gaussian_random", "randint", "randperm", "dropout", "bernoulli", "multinomial",
    "truncated_gaussian_random", "sampling_id", "print", "assert", "save", "load",
})
# A larger constant is a tensor of the model, not a shape: it stays as its producer made it.
MAX_FOLDED_ELEMENTS = 1024

_INTERP = ("bilinear_interp_v2", "nearest_interp_v2", "bicubic_interp_v2", "linear_interp_v2",
           "trilinear_interp_v2")
_SPATIAL_AXES = {"linear_interp_v2": 1, "trilinear_interp_v2": 3, "bilinear_interp_v2": 2, "nearest_interp_v2": 2,
                 "bicubic_interp_v2": 2}


@dataclass(frozen=True)
class TensorAttr:
    """An op input that, when given, overrides attribute ``attr``. ``each``: a list of scalar tensors (one value
    each) rather than one 1-D tensor."""

    slot: str
    attr: str
    each: bool = False


# op type -> the inputs that override attributes, in the op's precedence order (a slot listed first wins).
TENSOR_ATTRS: Dict[str, Tuple[TensorAttr, ...]] = {
    **{op: (TensorAttr("SizeTensor", "out_size", each=True), TensorAttr("OutSize", "out_size"),
            TensorAttr("Scale", "scale")) for op in _INTERP},
    "reshape2": (TensorAttr("ShapeTensor", "shape", each=True), TensorAttr("Shape", "shape")),
    "slice": (TensorAttr("StartsTensorList", "starts", each=True), TensorAttr("StartsTensor", "starts"),
              TensorAttr("EndsTensorList", "ends", each=True), TensorAttr("EndsTensor", "ends")),
    "strided_slice": (TensorAttr("StartsTensorList", "starts", each=True), TensorAttr("StartsTensor", "starts"),
                      TensorAttr("EndsTensorList", "ends", each=True), TensorAttr("EndsTensor", "ends"),
                      TensorAttr("StridesTensorList", "strides", each=True), TensorAttr("StridesTensor", "strides")),
    "fill_constant": (TensorAttr("ShapeTensorList", "shape", each=True), TensorAttr("ShapeTensor", "shape"),
                      TensorAttr("ValueTensor", "value")),
    "expand_v2": (TensorAttr("expand_shapes_tensor", "shape", each=True), TensorAttr("Shape", "shape")),
    "tile": (TensorAttr("repeat_times_tensor", "repeat_times", each=True), TensorAttr("RepeatTimes", "repeat_times")),
    "unsqueeze2": (TensorAttr("AxesTensorList", "axes", each=True), TensorAttr("AxesTensor", "axes")),
    "squeeze2": (TensorAttr("AxesTensorList", "axes", each=True), TensorAttr("AxesTensor", "axes")),
    "scale": (TensorAttr("ScaleTensor", "scale"),),
    "concat": (TensorAttr("AxisTensor", "axis"),),
    "split": (TensorAttr("SectionsTensorList", "sections", each=True), TensorAttr("AxisTensor", "axis")),
}


@dataclass
class FoldReport:
    """What :func:`fold_static_values` did: attributes written (``op.attr`` -> count), constants materialised
    for other consumers, ops removed (by type)."""

    attributes: Dict[str, int] = field(default_factory=dict)
    materialised: List[str] = field(default_factory=list)
    removed: Dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"attributes": dict(sorted(self.attributes.items())), "materialised": list(self.materialised),
                "removed_ops": dict(sorted(self.removed.items()))}

    @property
    def changed(self) -> bool:
        return bool(self.attributes or self.materialised or self.removed)


def _fp():
    from .program import _framework_pb2

    return _framework_pb2()


def _args(slots) -> List[str]:
    return [arg for slot in slots for arg in slot.arguments]


def op_reads(op) -> List[str]:
    """The variables ``op`` reads, in order: its input arguments, then the Variables its attributes name
    (PaddleSeg's export gives pool2d ``ksize``, interpolate sizes and others as Variables)."""
    return _args(op.inputs) + [n for a in op.attrs for n in (a.var_name, *a.vars_name) if n]


def op_writes(op) -> List[str]:
    """The variables ``op`` writes, in order."""
    return _args(op.outputs)


def _has_sub_block(op, fp) -> bool:
    return any(a.type in (fp.BLOCK, fp.BLOCKS) for a in op.attrs)


def static_variables(program) -> List[str]:
    """Names of block 0's variables whose values depend on tensor shapes only, in the order ops produce them.

    ``program`` is a parsed ``ProgramDesc`` whose input shapes are fixed. Persistable variables (weights)
    are never static: an op reading one is part of the model.
    """
    fp = _fp()
    block = program.blocks[0]
    persistable = {v.name for v in block.vars if v.persistable}
    dense = {v.name for v in block.vars if v.type.type == fp.VarType.LOD_TENSOR}
    static: List[str] = []
    known: Set[str] = set()
    for op in block.ops:
        if op.type in _NEVER_STATIC or _has_sub_block(op, fp):
            continue
        outputs = [a for a in _args(op.outputs) if a in dense and a not in persistable]
        if not outputs:
            continue
        inputs = _args(op.inputs)
        if op.type == "shape" or all(a in known for a in inputs):
            for name in outputs:
                if name not in known:
                    known.add(name)
                    static.append(name)
    return static


# ----------------------------------------------------------------------------- attributes
def _declared_attr_types(op_type: str) -> Dict[str, int]:
    from paddle.base import framework

    try:
        proto = framework.OpProtoHolder.instance().get_op_proto(op_type)
    except ValueError:  # an op this paddle does not know
        return {}
    return {a.name: a.type for a in proto.attrs}


def _set_attr(op, name: str, attr_type: int, value) -> None:
    """Write attribute ``name`` of ``op`` as ``attr_type`` (framework.proto AttrType) with ``value``."""
    fp = _fp()
    attr = next((a for a in op.attrs if a.name == name), None)
    if attr is None:
        attr = op.attrs.add()
    attr.Clear()
    attr.name, attr.type = name, attr_type
    flat = np.asarray(value).reshape(-1)
    if attr_type == fp.INTS:
        attr.ints.extend(int(v) for v in flat)
    elif attr_type == fp.LONGS:
        attr.longs.extend(int(v) for v in flat)
    elif attr_type == fp.FLOATS:
        attr.floats.extend(float(v) for v in flat)
    elif attr_type == fp.FLOAT64S:
        attr.float64s.extend(float(v) for v in flat)
    elif attr_type == fp.BOOLEANS:
        attr.bools.extend(bool(v) for v in flat)
    elif flat.size != 1:
        raise ValueError(f"attribute {name} takes one value, got {flat.size}")
    elif attr_type == fp.INT:
        attr.i = int(flat[0])
    elif attr_type == fp.LONG:
        attr.l = int(flat[0])
    elif attr_type == fp.FLOAT:
        attr.f = float(flat[0])
    elif attr_type == fp.FLOAT64:
        attr.float64 = float(flat[0])
    elif attr_type == fp.BOOLEAN:
        attr.b = bool(flat[0])
    elif attr_type == fp.STRING:
        attr.s = repr(float(flat[0]))
    else:
        raise ValueError(f"attribute {name}: cannot write a constant as {fp.AttrType.Name(attr_type)}")


def _attr(op, name: str):
    return next((a for a in op.attrs if a.name == name), None)


def _count(report: Dict[str, int], key: str) -> None:
    report[key] = report.get(key, 0) + 1


def _fold_variable_attrs(op, values, declared, report: FoldReport) -> None:
    """Attributes given as Variables (``ksize: VARS``) become plain attributes of the declared type."""
    fp = _fp()
    for attr in list(op.attrs):
        if attr.type not in (fp.VAR, fp.VARS):
            continue
        names = [attr.var_name] if attr.type == fp.VAR else list(attr.vars_name)
        if not names or not all(n in values for n in names):
            continue
        value = np.concatenate([np.asarray(values[n]).reshape(-1) for n in names])
        if attr.name not in declared:
            raise EdgematteError(f"op {op.type}: attribute {attr.name} is a Variable and its type is unknown")
        _set_attr(op, attr.name, declared[attr.name], value)
        _count(report.attributes, f"{op.type}.{attr.name}")


def _interp_sizes(op, value, declared) -> bool:
    """Interpolate's sizes into ``out_d``/``out_h``/``out_w``; only when no positive ``scale`` attribute would
    override them once the tensor is gone (Paddle's precedence: size tensors, then scale, then out_h/out_w)."""
    scale = _attr(op, "scale")
    if scale is not None and any(v > 0 for v in scale.floats):
        return False
    sizes = [int(v) for v in np.asarray(value).reshape(-1)]
    for name, size in zip(("out_d", "out_h", "out_w")[3 - len(sizes):], sizes):
        _set_attr(op, name, declared.get(name, _fp().INT), size)
    return True


def _fold_tensor_attrs(op, values, declared, report: FoldReport) -> None:
    """Inputs that override an attribute (:data:`TENSOR_ATTRS`) become that attribute when their values are
    known; the input is then cleared."""
    written: Set[str] = set()
    for rule in TENSOR_ATTRS.get(op.type, ()):
        slot = next((s for s in op.inputs if s.parameter == rule.slot), None)
        if slot is None or not slot.arguments or not all(a in values for a in slot.arguments):
            continue
        if rule.attr in written:  # a slot of higher precedence already decided this attribute
            del slot.arguments[:]
            continue
        value = np.concatenate([np.asarray(values[a]).reshape(-1) for a in slot.arguments])
        if rule.attr == "out_size":
            if not _interp_sizes(op, value, declared):
                continue
        elif rule.attr == "scale" and op.type in _INTERP and value.size == 1:
            # A one-value Scale tensor scales every spatial axis; the attribute needs one value per axis.
            _set_attr(op, "scale", declared["scale"], np.repeat(value, _SPATIAL_AXES[op.type]))
        elif rule.attr == "value":  # fill_constant keeps the value as text too (str_value wins when set)
            _set_attr(op, "value", declared["value"], value)
            _set_attr(op, "str_value", declared["str_value"], value)
        else:
            _set_attr(op, rule.attr, declared[rule.attr], value)
        if rule.attr in ("starts", "ends", "strides") and _attr(op, "infer_flags") is not None:
            _set_attr(op, "infer_flags", declared["infer_flags"], np.ones(len(_attr(op, "axes").ints)))
        written.add(rule.attr)
        del slot.arguments[:]
        _count(report.attributes, f"{op.type}.{rule.slot}")


# ----------------------------------------------------------------------------- constants for other consumers
_ASSIGN_VALUE_FIELDS = {"FP32": "fp32_values", "FP64": "fp64_values", "INT32": "int32_values",
                        "INT64": "int64_values", "BOOL": "bool_values"}


def _assign_value_op(name: str, value: np.ndarray, var_dtype: int, declared: Dict[str, int]):
    """An ``assign_value`` op that writes ``value`` (its shape and the variable's dtype) into ``name``."""
    fp = _fp()
    dtype_name = fp.VarType.Type.Name(var_dtype)
    if dtype_name not in _ASSIGN_VALUE_FIELDS:
        raise EdgematteError(f"{name}: a shape-derived constant of type {dtype_name} cannot be written as a constant")
    op = fp.OpDesc()
    op.type = "assign_value"
    out = op.outputs.add()
    out.parameter = "Out"
    out.arguments.append(name)
    _set_attr(op, "shape", declared["shape"], np.asarray(value.shape, dtype=np.int64))
    _set_attr(op, "dtype", declared["dtype"], var_dtype)
    field_name = _ASSIGN_VALUE_FIELDS[dtype_name]
    _set_attr(op, field_name, declared[field_name], np.asarray(value).reshape(-1))
    return op


def _removable(op, values: Dict[str, np.ndarray], dense: Set[str]) -> bool:
    """A shape computation whose every output value is known (``XShape``, which holds no data, aside). An op
    without inputs (``fill_constant``) is a constant already: it stays while something reads it."""
    outputs = [a for slot in op.outputs if slot.parameter != "XShape" for a in slot.arguments if a in dense]
    return (bool(outputs) and bool(_args(op.inputs)) and op.type not in _NEVER_STATIC
            and all(a in values for a in outputs))


def fold_static_values(program, values: Dict[str, np.ndarray]) -> FoldReport:
    """Fold ``values`` (static variable -> its value at the fixed shape, see :func:`static_variables`) into
    ``program`` (a parsed ``ProgramDesc``, edited in place); returns what changed.

    Values larger than :data:`MAX_FOLDED_ELEMENTS` are left to their producers.
    """
    fp = _fp()
    block = program.blocks[0]
    values = {k: np.asarray(v) for k, v in values.items() if np.asarray(v).size <= MAX_FOLDED_ELEMENTS}
    dense = {v.name for v in block.vars if v.type.type == fp.VarType.LOD_TENSOR}
    var_dtype = {v.name: v.type.lod_tensor.tensor.data_type for v in block.vars if v.name in dense}
    report = FoldReport()
    removed = [op for op in block.ops if _removable(op, values, dense)]
    removed_ids = {id(op) for op in removed}
    computed = {a for op in removed for a in _args(op.outputs)}
    kept = []
    materialised: Set[str] = set()
    assign_declared = _declared_attr_types("assign_value")
    for op in block.ops:
        if id(op) in removed_ids:
            _count(report.removed, op.type)
            continue
        declared = _declared_attr_types(op.type)
        _fold_variable_attrs(op, values, declared, report)
        _fold_tensor_attrs(op, values, declared, report)
        for name in _args(op.inputs):
            if name in computed and name not in materialised:
                kept.append(_assign_value_op(name, values[name], var_dtype[name], assign_declared))
                materialised.add(name)
                report.materialised.append(name)
        copy = fp.OpDesc()
        copy.CopyFrom(op)
        kept.append(copy)
    read = {a for op in kept for a in _args(op.inputs)} | {a for b in program.blocks[1:] for op in b.ops
                                                           for a in _args(op.inputs)}
    unread_constants = [op for op in kept if not _args(op.inputs) and op.type in ("fill_constant", "assign_value")
                        and not set(_args(op.outputs)) & read]
    for op in unread_constants:  # constants only the deleted shape computations read
        _count(report.removed, op.type)
    del block.ops[:]
    block.ops.extend(op for op in kept if not any(op is u for u in unread_constants))
    _drop_unused_variables(program)
    return report


def _drop_unused_variables(program) -> None:
    """Forget block 0's non-persistable variables no op of any block reads or writes any more."""
    used = {a for b in program.blocks for op in b.ops for a in (*op_reads(op), *op_writes(op))}
    block = program.blocks[0]
    keep = [v for v in block.vars if v.persistable or v.name in used or v.name in ("feed", "fetch")]
    if len(keep) != len(block.vars):
        copies = []
        for v in keep:
            copy = type(v)()
            copy.CopyFrom(v)
            copies.append(copy)
        del block.vars[:]
        block.vars.extend(copies)


def xshape_outputs(program) -> Set[str]:
    """Block 0's ``XShape`` outputs (reshape2, transpose2, ... record their input's shape there, no data)."""
    return {a for op in program.blocks[0].ops for slot in op.outputs if slot.parameter == "XShape"
            for a in slot.arguments}


def fetchable_static_variables(program) -> List[str]:
    """The static variables worth fetching: :func:`static_variables` minus ``XShape`` outputs."""
    xshape = xshape_outputs(program)
    return [n for n in static_variables(program) if n not in xshape]
