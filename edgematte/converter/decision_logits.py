"""The hard decisions of a Paddle inference program: which ``arg_max`` ops shape the alpha, and how.

PP-Matting and PP-HumanMatting compute ``index = argmax(scores, axis=1)`` and build the alpha from
``index == k`` masks. Where the reference's own top-2 margin is within float noise, another kernel set may
flip the decision; :mod:`edgematte.core.decision_parity` excuses exactly those pixels. It needs two things
from the program, both found here without running it:

* :func:`decision_points`: the block-0 ``arg_max`` ops whose result reaches the first fetch (the alpha),
  each with its scores variable (arg_max's ``X``: the logits, or softmax probabilities as in both models)
  and its **route**: the spatial ops between the decision and the alpha, as plain data (a tuple of step
  dicts, the ``ROUTE_STEPS`` of :mod:`edgematte.core.decision_parity`), so core can map a margin map at the
  scores' resolution onto alpha pixels without knowing Paddle.
* :func:`with_logits`: a copy of the model whose fetch list also returns those scores variables.

A route needs static shapes (the sizes of interpolations): build it from a program frozen with
:func:`edgematte.converter.program.freeze_input_shape`. An op on the route whose spatial footprint is not
known here leaves the point with ``route=None`` and a ``route_problem`` naming it.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..core.errors import EdgematteError
from ..core.fsutil import atomic_dir
from .program import ModelFiles, _io_columns, parse_program, program_info, read_checked_model

# Ops whose output at a position reads its inputs at that same position (channel mixing is allowed: margins
# are tracked per position with the channels collapsed, which is conservative).
_POINTWISE = frozenset({
    "equal", "not_equal", "greater_than", "greater_equal", "less_than", "less_equal", "cast", "scale", "relu",
    "relu6", "leaky_relu", "sigmoid", "tanh", "hard_sigmoid", "hard_swish", "swish", "silu", "gelu", "exp", "log",
    "sqrt", "rsqrt", "abs", "square", "clip", "elementwise_add", "elementwise_sub", "elementwise_mul",
    "elementwise_div", "elementwise_max", "elementwise_min", "elementwise_pow", "logical_and", "logical_or",
    "logical_not", "logical_xor", "where", "assign", "dropout", "softmax", "concat", "slice", "unsqueeze2",
    "squeeze2", "reshape2", "share_data", "pow", "floor", "round", "sign", "batch_norm", "sync_batch_norm"})
# The data output slot of the ops whose slot is not "Out" (the others, e.g. XShape or MeanOut, carry no data).
_OUT_SLOT = {"batch_norm": "Y", "sync_batch_norm": "Y", "instance_norm": "Y", "conv2d": "Output",
             "depthwise_conv2d": "Output"}
_WINDOW_OPS = ("conv2d", "depthwise_conv2d", "pool2d")
_RESAMPLE_OPS = {"nearest_interp_v2": "nearest", "bilinear_interp_v2": "bilinear", "bicubic_interp_v2": "bicubic",
                 "nearest_interp": "nearest", "bilinear_interp": "bilinear", "bicubic_interp": "bicubic"}
_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "edge": "edge", "circular": "wrap"}
# Ops whose outputs never depend on the values of their inputs (only on their shapes).
_SHAPE_ONLY = frozenset({"shape", "size", "fill_constant", "fill_any_like", "fill_zeros_like"})
# Input slots that carry data (the rest are weights, shape tensors, attributes as tensors).
_DATA_SLOTS = ("X", "Y", "Input", "Condition")


@dataclass(frozen=True)
class DecisionPoint:
    """One ``arg_max`` of block 0 whose result reaches the alpha (the first fetch).

    ``logits`` is the scores variable argmax reads (its ``X``: (N, C, h, w) float32), ``index`` its
    result, ``axis`` the class axis (1 in both models), ``op_index`` its position in block 0. ``route`` is
    the chain of spatial steps from ``index`` to the alpha (dicts for :mod:`edgematte.core.decision_parity`)
    or ``None`` with ``route_problem`` saying why (dynamic shapes, an op of unknown footprint).
    """

    op_index: int
    logits: str
    index: str
    axis: int
    logits_shape: Tuple[int, ...]
    route: Optional[Tuple[dict, ...]]
    route_problem: Optional[str] = None

    def to_dict(self) -> dict:
        return {"op_index": self.op_index, "logits": self.logits, "index": self.index, "axis": self.axis,
                "logits_shape": list(self.logits_shape), "route": None if self.route is None else list(self.route),
                "route_problem": self.route_problem}


def _slot(op, slot: str, outputs: bool = False) -> List[str]:
    return [a for v in (op.outputs if outputs else op.inputs) if v.parameter == slot for a in v.arguments]


def _attrs(op) -> Dict[str, object]:
    """An op's attributes as Python values (only the kinds the footprints read)."""
    values = {}
    for a in op.attrs:
        if a.ints:
            values[a.name] = [int(i) for i in a.ints]
        elif a.longs:
            values[a.name] = [int(i) for i in a.longs]
        elif a.HasField("s"):
            values[a.name] = a.s
        elif a.HasField("b"):
            values[a.name] = bool(a.b)
        elif a.HasField("l"):
            values[a.name] = int(a.l)
        elif a.HasField("i"):
            values[a.name] = int(a.i)
        elif a.HasField("f"):
            values[a.name] = float(a.f)
    return values


class _RouteProblem(Exception):
    """An op on the route whose footprint is unknown, or a shape the route needs that is dynamic."""


def _hw(shapes: Dict[str, Tuple[int, ...]], name: str) -> Tuple[int, int]:
    shape = shapes.get(name)
    if shape is None or len(shape) < 2 or any(d < 0 for d in shape[-2:]):
        raise _RouteProblem(f"'{name}' has no static spatial size {list(shape or ())} (freeze the input shape first)")
    return int(shape[-2]), int(shape[-1])


def _window_pads(attrs, in_hw, kernel, stride, dilation) -> Tuple[int, int, int, int]:
    """(top, bottom, left, right) padding of a conv/pool, from its paddings and padding_algorithm."""
    algorithm = attrs.get("padding_algorithm", "EXPLICIT")
    if algorithm == "VALID":
        return 0, 0, 0, 0
    if algorithm == "SAME":
        pads = []
        for size, k, s, d in zip(in_hw, kernel, stride, dilation):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        return pads[0][0], pads[0][1], pads[1][0], pads[1][1]
    p = list(attrs.get("paddings", [0, 0]))
    if len(p) == 2:
        return p[0], p[0], p[1], p[1]
    if len(p) == 4:
        return p[0], p[1], p[2], p[3]
    raise _RouteProblem(f"paddings {p} of unknown layout")


def _window_step(op, attrs, data_in, shapes) -> dict:
    """A conv2d / pool2d as a 'window' step: each output position reads a kernel-sized window."""
    if op.type == "pool2d":
        if attrs.get("global_pooling") or attrs.get("adaptive"):
            return {"op": "global"}
        kernel = list(attrs.get("ksize", [1, 1]))
        if attrs.get("ceil_mode"):
            raise _RouteProblem("pool2d with ceil_mode")
    else:
        kernel = list(shapes[_slot(op, "Filter")[0]][-2:])
    stride = list(attrs.get("strides", [1, 1]))
    dilation = list(attrs.get("dilations", [1, 1])) if op.type != "pool2d" else [1, 1]
    in_hw = _hw(shapes, data_in)
    if attrs.get("data_format", "NCHW") not in ("NCHW", "AnyLayout"):
        raise _RouteProblem(f"{op.type} with data_format {attrs.get('data_format')}")
    return {"op": "window", "kernel": kernel, "stride": stride, "dilation": dilation,
            "pads": list(_window_pads(attrs, in_hw, kernel, stride, dilation))}


def _keeps_spatial(op, attrs, data_in, out, shapes) -> bool:
    """Whether a reshape-like / slice / concat / softmax op leaves the last two (H, W) axes alone."""
    rank = len(shapes.get(data_in, ()))
    if op.type in ("concat", "softmax"):
        axis = int(attrs.get("axis", -1))
        return rank >= 3 and (axis % rank) < rank - 2
    if op.type == "slice":
        axes = [a % rank for a in attrs.get("axes", [])] if rank else [-1]
        return rank >= 3 and all(a < rank - 2 for a in axes)
    if op.type in ("unsqueeze2", "squeeze2", "reshape2"):
        return _hw(shapes, data_in) == _hw(shapes, out) and len(shapes.get(out, ())) >= 3
    return True


def _step_for(op, tainted_inputs: Sequence[str], out: str, shapes) -> dict:
    """The route step of one op that reads the decision (raises :class:`_RouteProblem` if unknown)."""
    attrs = _attrs(op)
    data_in = tainted_inputs[0]
    if op.type in _RESAMPLE_OPS:
        if attrs.get("data_layout", "NCHW") != "NCHW":
            raise _RouteProblem(f"{op.type} with data_layout {attrs.get('data_layout')}")
        return {"op": "resample", "method": _RESAMPLE_OPS[op.type], "align_corners": bool(attrs.get("align_corners")),
                "align_mode": int(attrs.get("align_mode", 1)), "in_hw": list(_hw(shapes, data_in)),
                "out_hw": list(_hw(shapes, out))}
    if op.type in _WINDOW_OPS:
        step = _window_step(op, attrs, data_in, shapes)
    elif op.type in ("pad3d", "pad2d"):
        if _slot(op, "Paddings"):
            raise _RouteProblem(f"{op.type} with paddings from a tensor")
        p = list(attrs.get("paddings", []))
        # pad3d: [left, right, top, bottom, front, back]; pad2d: [top, bottom, left, right]
        pads = [p[2], p[3], p[0], p[1]] if op.type == "pad3d" else p[:4]
        if op.type == "pad3d" and any(p[4:6]):
            raise _RouteProblem("pad3d padding the depth axis")
        mode = _PAD_MODES.get(str(attrs.get("mode", "constant")))
        if mode is None:
            raise _RouteProblem(f"{op.type} mode {attrs.get('mode')}")
        step = {"op": "pad", "pads": pads, "mode": mode}
    elif op.type == "instance_norm":
        step = {"op": "global"}  # statistics over all of H, W: every position reads every position
    elif op.type in _POINTWISE and _keeps_spatial(op, attrs, data_in, out, shapes):
        step = {"op": "pointwise"}
    else:
        raise _RouteProblem(f"op '{op.type}' (writing '{out}') has no known spatial footprint")
    return step


def _route(block, start: int, index: str, alpha: str, shapes) -> Tuple[dict, ...]:
    """Route steps from ``index`` (written by op ``start``) to ``alpha``, in block order.

    Each step reads named margin maps and writes one (``inputs`` / ``output``); the maps are the tainted
    variables, i.e. those that depend on the decision. Untainted inputs of an op (weights, the detail
    branch) do not enter the step: they do not flip with the decision.
    """
    tainted = {index}
    steps = [{"op": "source", "output": index, "hw": list(_hw(shapes, index))}]
    for op in list(block.ops)[start + 1:]:
        if op.type in ("fetch", "feed") or op.type in _SHAPE_ONLY:
            continue
        reads = [a for slot in _DATA_SLOTS for a in _slot(op, slot) if a in tainted]
        other = [a for v in op.inputs if v.parameter not in _DATA_SLOTS for a in v.arguments if a in tainted]
        if other:
            raise _RouteProblem(f"op '{op.type}' reads the decision through a non-data input {other}")
        if not reads:
            continue
        slot = _OUT_SLOT.get(op.type, "Out")
        outs = _slot(op, slot, outputs=True)
        if len(outs) != 1:
            raise _RouteProblem(f"op '{op.type}' reading the decision has outputs {outs} in slot {slot}")
        step = _step_for(op, reads, outs[0], shapes)
        step.update(inputs=list(dict.fromkeys(reads)), output=outs[0], hw=list(_hw(shapes, outs[0])), type=op.type)
        steps.append(step)
        tainted.add(outs[0])
    if alpha not in tainted:
        raise _RouteProblem(f"the decision does not reach '{alpha}'")
    return tuple(steps)


def _reaches(block, start: int, index: str, target: str) -> bool:
    """Whether any chain of block-0 ops after ``start`` carries ``index`` into ``target``."""
    live = {index}
    for op in list(block.ops)[start + 1:]:
        if op.type == "fetch":
            continue
        if any(a in live for v in op.inputs for a in v.arguments):
            live.update(a for v in op.outputs for a in v.arguments)
    return target in live


def decision_points(program) -> List[DecisionPoint]:
    """The ``arg_max`` ops of block 0 (a parsed ProgramDesc) whose result reaches the first fetch.

    Empty for a model without hard decisions. Raises :class:`EdgematteError` only for a program without a
    fetch; a route that cannot be built is reported in the point (``route=None``, ``route_problem``).
    """
    from .program import _framework_pb2, _var_spec

    fp = _framework_pb2()
    block = program.blocks[0]
    fetches = _io_columns(block, "fetch", "X", "<program>")
    if not fetches:
        raise EdgematteError("decision_points: the program has no fetch op (not an inference model)")
    alpha = fetches[0]
    shapes = {}
    for var in block.vars:
        spec = _var_spec(var, fp)
        if spec is not None:
            shapes[var.name] = spec.shape
    points = []
    for i, op in enumerate(block.ops):
        if op.type != "arg_max":
            continue
        (logits,), (index,) = _slot(op, "X"), _slot(op, "Out", outputs=True)
        if not _reaches(block, i, index, alpha):
            continue
        attrs = _attrs(op)
        axis = int(attrs.get("axis", -1))
        rank = len(shapes.get(logits, ()))
        route, problem = None, None
        try:
            if attrs.get("flatten") or rank != 4 or axis % rank != 1:
                raise _RouteProblem(f"arg_max over axis {axis} of a rank-{rank} tensor, flatten {attrs.get('flatten')}")
            route = _route(block, i, index, alpha, shapes)
        except _RouteProblem as e:
            problem = str(e)
        points.append(DecisionPoint(i, logits, index, axis, tuple(shapes.get(logits, ())), route, problem))
    return points


def _add_fetches(program, names: Sequence[str]) -> None:
    """Append one ``fetch`` op per name to block 0, with the next ``col`` values (a copy of an existing fetch)."""
    block = program.blocks[0]
    declared = {v.name for v in block.vars}
    template = next(op for op in block.ops if op.type == "fetch")
    cols = [a.i for op in block.ops if op.type == "fetch" for a in op.attrs if a.name == "col"]
    col = max(cols, default=-1) + 1
    for name in names:
        if name not in declared:
            raise EdgematteError(f"with_logits: variable '{name}' is not declared in the program")
        op = block.ops.add()
        op.CopyFrom(template)
        for slot in op.inputs:
            if slot.parameter == "X":
                del slot.arguments[:]
                slot.arguments.append(name)
        for attr in op.attrs:
            if attr.name == "col":
                attr.i = col
        col += 1


def with_logits(model_files, dst_dir) -> Tuple[ModelFiles, Tuple[str, ...]]:
    """Write to ``dst_dir`` a copy of the model that also fetches the scores of its decision points.

    ``model_files`` is a :class:`ModelFiles` or anything
    :func:`~edgematte.converter.program.locate_model_files` takes. The copy's
    fetch list is the original's, unchanged and first, then the scores variables of
    :func:`decision_points` (each once, in op order, unless already fetched) with the next ``col`` values.
    Only the program is written (a few hundred KB): the copy reads the original's params file, so it computes
    with the very same weights. Returns the copy's files (its program, the original params) and the scores'
    fetch names, in op order (empty for a model without decisions; the copy is still written). Fetch them by
    name: Paddle Inference's ``get_output_names()`` lists the fetches in ``col`` order. ``dst_dir`` is
    (re)created atomically and must not be the model's folder.
    """
    if isinstance(model_files, ModelFiles):
        model_files = (model_files.model, model_files.params)
    files, info = read_checked_model(model_files)
    dst_dir = Path(dst_dir)
    if dst_dir.resolve() in (files.model.parent.resolve(), *files.model.resolve().parents):
        raise EdgematteError(f"{dst_dir}: the copy with logits must go to a new folder, not the model's own folder")
    program = parse_program(info.program_bytes, str(files.model))
    names = tuple(dict.fromkeys(p.logits for p in decision_points(program)))
    _add_fetches(program, [n for n in names if n not in info.fetch_names])
    data = program.SerializeToString()
    program_info(data, dst_dir / files.model.name)  # the copy still reads as an inference model
    with atomic_dir(dst_dir) as work:
        (work / files.model.name).write_bytes(data)
    return ModelFiles(dst_dir / files.model.name, files.params), names
