"""Fix a model's input shapes: the copy of a program that conversion tools and the checked reference take.

:func:`freeze_input_shape` fixes the image input to ``--input-shape``; the other inputs follow from it
(:mod:`edgematte.converter.io_roles`), scalar inputs become constants of the program, the branches they decide
are inlined (:mod:`edgematte.converter.control_flow`), and every shape computation left is folded
(:mod:`edgematte.converter.static_program`). Paddle is imported lazily.
"""

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core.errors import EdgematteError
from ..core.fsutil import atomic_dir
from .control_flow import condition_variables, inline_constant_branches
from .io_roles import ModelIO, OutputRole, image_feed, plan_io, resolve_state_shapes
from .program import (
    _OPS_WITHOUT_INFER_SHAPE,
    ModelFiles,
    ProgramInfo,
    VarSpec,
    _framework_pb2,
    parse_program,
    program_info,
    read_checked_model,
    read_program,
    static_mode,
)
from .prune_outputs import drop_fetches
from .static_program import (
    FoldReport,
    _assign_value_op,
    _declared_attr_types,
    fetchable_static_variables,
    fold_static_values,
    xshape_outputs,
)


def _checked_shape(info: ProgramInfo, feed: VarSpec, shape, option: str) -> Tuple[int, ...]:
    """``shape`` as ints if it fits the feed's declared shape, else an error naming ``option``."""
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise EdgematteError(f"{option} {shape!r}: expected a list of integers") from None
    shown = f"{option} {list(dims)}"
    declared = list(feed.shape)
    if len(dims) != len(declared):
        raise EdgematteError(
            f"{shown}: {info.path.name} input '{feed.name}' has {len(declared)} dimensions {declared}, "
            f"got {len(dims)}"
        )
    if any(d < 1 for d in dims):
        raise EdgematteError(f"{shown}: every dimension must be a positive integer")
    for axis, (want, got) in enumerate(zip(declared, dims)):
        if want >= 0 and want != got:
            raise EdgematteError(
                f"{shown}: {info.path.name} input '{feed.name}' is declared {declared}; dimension {axis} "
                f"must be {want}, got {got}"
            )
    return dims


def _compile_time_shapes(program_bytes: bytes, fixed: Dict[str, Sequence[int]], option: str,
                         path: Path) -> Dict[str, tuple]:
    """Every dense tensor's shape in block 0 after fixing the inputs (``fixed``: name -> dims), by Paddle's
    C++ compile-time InferShape.

    Ops whose output size comes from a tensor computed at run time (``interpolate`` to ``x.shape``,
    ``reshape`` to a shape tensor) still get -1 for those dimensions here. Only the shapes are taken
    from Paddle's C++ program: re-serializing it would also add every op's default attributes.
    """
    from paddle.base import core

    desc = core.ProgramDesc(program_bytes)
    block = desc.block(0)
    for name, dims in fixed.items():
        block.find_var(name.encode()).set_shape(list(dims))
    for i in range(block.op_size()):
        op = block.op(i)
        if op.type() in _OPS_WITHOUT_INFER_SHAPE:
            continue
        try:
            op.infer_shape(block)
        except Exception as e:  # Paddle's enforce errors: the shape does not fit this op
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            shown = list(next(iter(fixed.values())))
            raise EdgematteError(
                f"{option} {shown}: {path.name} cannot take this shape (op {i} '{op.type()}': {first_line})"
            ) from e
    return {
        var.name(): tuple(var.shape())
        for var in block.all_vars()
        if var.type() == core.VarDesc.VarType.LOD_TENSOR
    }


def _run_once(files: ModelFiles, feeds: Dict[str, object], names: Sequence[str], prune: bool = False
              ) -> Dict[str, object]:
    """The values (Paddle LoDTensors) of ``names`` after one run of the model on ``feeds`` (name -> array).

    Used for what only a run computes: the shapes compile-time inference leaves dynamic (shape -> slice ->
    interpolate) and the values of shape computations (:mod:`edgematte.converter.static_program`). Neither
    depends on the input's values, only on its shape (the callers feed zeros). ``prune`` runs only the ops
    ``names`` need, so inputs they do not depend on may be left out (recurrent states not sized yet).
    """
    import paddle

    with static_mode():
        executor = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            if files.params == files.model.with_suffix(".pdiparams"):
                program, _, _ = paddle.static.load_inference_model(str(files.model.with_suffix("")), executor)
            else:  # differently named pair: paddle's older (deprecated, still supported) form
                program, _, _ = paddle.static.load_inference_model(
                    str(files.model.parent), executor,
                    model_filename=files.model.name, params_filename=files.params.name,
                )
            values = executor.run(program, feed=dict(feeds), fetch_list=list(names), return_numpy=False,
                                  use_prune=prune)
            return dict(zip(names, values))


def _with_shapes(program_bytes: bytes, shapes: Dict[str, tuple], path: Path) -> bytes:
    """``program_bytes`` with the declared dims of block 0's tensors in ``shapes`` replaced; ops untouched."""
    fp = _framework_pb2()
    program = parse_program(program_bytes, str(path))
    for var in program.blocks[0].vars:
        if var.name in shapes and var.type.type == fp.VarType.LOD_TENSOR:
            declared = var.type.lod_tensor.tensor.dims
            del declared[:]
            declared.extend(int(d) for d in shapes[var.name])
    return program.SerializeToString()


def _take_run_time_shapes(shapes: Dict[str, tuple], names: Sequence[str], observed: Dict[str, object]) -> None:
    """Put the run-time shapes of ``names`` into ``shapes``, checking they agree with what inference knew."""
    for name in names:
        run_shape = tuple(observed[name].shape())
        inferred = shapes[name]
        if len(run_shape) != len(inferred) or any(0 <= d != r for d, r in zip(inferred, run_shape)):
            raise RuntimeError(  # a bug in Paddle's shape inference or ours, not the user's input
                f"{name}: compile-time shape {list(inferred)} disagrees with the run-time {list(run_shape)}"
            )
        shapes[name] = run_shape


def _xshape_dims(program, shapes: Dict[str, tuple]) -> None:
    """``XShape`` outputs declare ``[0, *X's shape]``; once X's shape is known, so is theirs."""
    for op in program.blocks[0].ops:
        x = next((s.arguments[0] for s in op.inputs if s.parameter == "X" and s.arguments), None)
        for slot in op.outputs:
            if slot.parameter == "XShape" and x in shapes and all(d >= 0 for d in shapes[x]):
                for name in slot.arguments:
                    shapes[name] = (0, *shapes[x])


@dataclass(frozen=True)
class FrozenModel:
    """A copy of a model whose input shapes are fixed; ``still_dynamic`` lists tensors left with -1 dims, ``io``
    every input and output with its role and shape (constants frozen into the program)."""

    files: ModelFiles
    info: ProgramInfo
    shape: Tuple[int, ...]
    compile_time_dynamic: Tuple[str, ...]
    still_dynamic: Tuple[str, ...]
    folded: FoldReport = field(default_factory=FoldReport)
    io: Optional[ModelIO] = None
    inlined: Dict[str, int] = field(default_factory=dict)
    # ``alpha_only``: the outputs left out, and the types of the ops removed with them (in program order)
    dropped_outputs: Tuple[OutputRole, ...] = ()
    dropped_ops: Tuple[str, ...] = ()


def _plan(files: ModelFiles, info: ProgramInfo, shape, constants, option: str) -> ModelIO:
    """Roles and fixed shapes of every input (:mod:`edgematte.converter.io_roles`), states sized by pruned runs."""
    program = parse_program(info.program_bytes, str(files.model))
    fetches = [info.variables[n] for n in info.fetch_names]
    dims = _checked_shape(info, image_feed(info.feeds, files.model), shape, option)
    plan = plan_io(info.feeds, fetches, dims, files.model, constants, option)
    if not plan.recurrent:
        return plan

    def shapes_of(feeds, names):
        return {n: tuple(v.shape()) for n, v in _run_once(files, feeds, names, prune=True).items()}

    return resolve_state_shapes(plan, program, shapes_of)


def _constants_into_program(program, io: ModelIO) -> None:
    """Replace the feed op of each constant input by an ``assign_value`` of its value, and renumber the other
    feeds' columns (a frozen RVM has no ``downsample_ratio`` input any more)."""
    constants = io.constants
    if not constants:
        return
    block = program.blocks[0]
    declared = _declared_attr_types("assign_value")
    assigns = [_assign_value_op(name, value, _var_dtype(block, name), declared) for name, value in constants.items()]
    kept = [op for op in block.ops
            if not (op.type == "feed" and set(a for slot in op.outputs for a in slot.arguments) & set(constants))]
    column = 0
    for op in kept:
        if op.type == "feed":
            next(a for a in op.attrs if a.name == "col").i = column
            column += 1
    feeds = [op for op in kept if op.type == "feed"]
    rest = [op for op in kept if op.type != "feed"]
    copies = []
    for op in [*feeds, *assigns, *rest]:
        copy = type(op)()
        copy.CopyFrom(op)
        copies.append(copy)
    del block.ops[:]
    block.ops.extend(copies)
    for var in block.vars:
        if var.name in constants:
            del var.type.lod_tensor.tensor.dims[:]
            var.type.lod_tensor.tensor.dims.extend(constants[var.name].shape)


def _var_dtype(block, name: str) -> int:
    return next(v.type.lod_tensor.tensor.data_type for v in block.vars if v.name == name)


def _staged(files: ModelFiles, info: ProgramInfo, io: ModelIO, folder: Path, dropped: Sequence[str] = ()
            ) -> Tuple[ModelFiles, Dict[str, int], List[str]]:
    """``(files, inlined branches, removed op types)``: ``files`` themselves, or, when the program has constant
    inputs, branches its fixed inputs decide or outputs to drop (``dropped``, :func:`.prune_outputs.drop_fetches`),
    a copy in ``folder`` with the constants in, those branches inlined and those outputs gone (the params
    linked, not copied).

    Only conditions computed from shapes and constants are decided (``static_only``): one that depends on
    pixel values stays a branch. A branch nested in an inlined one is decided by a run of the staged copy.
    """
    program = parse_program(info.program_bytes, str(files.model))
    _constants_into_program(program, io)  # feeds stay first, then the constants' assign_value ops
    removed = drop_fetches(program, dropped)
    names = condition_variables(program, static_only=True)
    if not io.constants and not names and not removed:
        return files, {}, []
    folder.mkdir()
    staged = ModelFiles(folder / files.model.name, folder / files.model.with_suffix(".pdiparams").name)
    staged.params.symlink_to(files.params.resolve())
    feeds = {i.name: np.zeros(i.shape, i.dtype) for i in io.fed}
    # The original, fed the constants' values, computes the same conditions as the staged copy.
    runner, runner_feeds = files, {**feeds, **io.constants}
    inlined: Dict[str, int] = {}
    while names:
        values = _run_once(runner, runner_feeds, names)
        report = inline_constant_branches(program, {n: np.array(v) for n, v in values.items()})
        for key, count in report.as_dict().items():
            inlined[key] = inlined.get(key, 0) + count
        if not report.changed or not report.undecided:
            break
        staged.model.write_bytes(program.SerializeToString())
        runner, runner_feeds, names = staged, feeds, list(report.undecided)
    staged.model.write_bytes(program.SerializeToString())
    return staged, inlined, removed


def freeze_input_shape(source, dst_dir, shape, option: str = "--input-shape",
                       constants: Optional[Dict[str, float]] = None, alpha_only: bool = False) -> FrozenModel:
    """Write to ``dst_dir`` a copy of the model whose inputs are fixed and shapes re-inferred.

    ``source`` is anything :func:`locate_model_files` takes; ``dst_dir`` is (re)created atomically and
    gets the program under the source's file name, and a byte copy of the params. ``shape`` fixes the image
    input; every other input follows from it (:mod:`edgematte.converter.io_roles`: a trimap has the image's
    size, recurrent states the size the model computes for them) and scalar inputs (``constants``, by name;
    RVM's ``downsample_ratio`` defaults to 0.25) become constants of the program, with any
    ``conditional_block`` they decide inlined (:mod:`edgematte.converter.control_flow`).

    Every variable's shape is then recomputed: first by Paddle's compile-time shape inference, then, for
    those whose size comes from run-time values (``interpolate(size=x.shape[2:])``), from one run on zeros.
    The same run gives the values of the program's shape computations, which are folded into the ops that
    read them (:mod:`edgematte.converter.static_program`; ``FrozenModel.folded`` says what changed). The copy
    computes exactly what the original computes at that shape (the tests hold it to bit equality); tools
    that need static programs (paddle2onnx, opt) get one.

    ``alpha_only`` keeps only the alpha and the state outputs (:meth:`ModelIO.alpha_only`): the other outputs
    (RVM's foreground) and every op only they needed leave the program (``FrozenModel.dropped_outputs``,
    ``dropped_ops``); the kept outputs are computed as before.

    ``shape`` must have the declared rank and agree with every declared static dimension (a 3-channel
    model refuses ``[1, 4, 512, 512]``); errors name ``option``.
    """
    files, info = read_checked_model(source)
    dst_dir = Path(dst_dir)
    if dst_dir.resolve() in (files.model.parent.resolve(), *files.model.resolve().parents):
        raise EdgematteError(f"{dst_dir}: the frozen copy must go to a new folder, not the model's own folder")
    io = _plan(files, info, shape, constants, option)
    dropped: Tuple[OutputRole, ...] = ()
    if alpha_only:
        io, dropped = io.alpha_only()
    dims = io.image.shape
    with atomic_dir(dst_dir) as work:
        staged, inlined, removed = _staged(files, info, io, work / ".staged", [o.name for o in dropped])
        static_bytes, compile_time_dynamic, folded = _static_program(staged, io, option)
        (work / files.model.name).write_bytes(static_bytes)
        shutil.copyfile(files.params, work / files.params.name)
        shutil.rmtree(work / ".staged", ignore_errors=True)
    frozen_info = program_info(static_bytes, dst_dir / files.model.name)
    frozen_files = ModelFiles(dst_dir / files.model.name, dst_dir / files.params.name)
    return FrozenModel(frozen_files, frozen_info, dims, compile_time_dynamic, frozen_info.dynamic_variables, folded,
                       io, inlined, dropped, tuple(removed))


def _static_program(files: ModelFiles, io: ModelIO, option: str):
    """``(program bytes, compile-time dynamic names, FoldReport)``: ``files``' program with the fed inputs at
    their fixed shapes, every shape re-inferred and the shape computations folded."""
    info = read_program(files.model)
    source_program = parse_program(info.program_bytes, str(files.model))
    xshapes = xshape_outputs(source_program)  # shape bookkeeping of reshape2 & co.: no data, never fetched
    fixed = {i.name: i.shape for i in io.fed}
    shapes = _compile_time_shapes(info.program_bytes, fixed, option, files.model)
    compile_time_dynamic = tuple(n for n in program_info(_with_shapes(info.program_bytes, shapes, files.model),
                                                         files.model).dynamic_variables if n not in xshapes)
    static = fetchable_static_variables(source_program)
    observed = {}
    if compile_time_dynamic or static:
        feeds = {i.name: np.zeros(i.shape, i.dtype) for i in io.fed}
        observed = _run_once(files, feeds, list(dict.fromkeys([*compile_time_dynamic, *static])))
    _take_run_time_shapes(shapes, compile_time_dynamic, observed)
    _xshape_dims(source_program, shapes)
    program = parse_program(_with_shapes(info.program_bytes, shapes, files.model), str(files.model))
    folded = fold_static_values(program, {name: np.array(observed[name]) for name in static})
    return program.SerializeToString(), compile_time_dynamic, folded
