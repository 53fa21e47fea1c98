"""A float64 copy of a Paddle inference program: the yardstick for an fp32 model's own float noise.

Deep float32 nets (MODNet-ResNet50_vd, HRNet) differ from themselves across kernel sets (oneDNN vs
plain CPU) by 1e-4 to 6e-4: summation order and fused kernels, no conversion error. A fixed 1e-4
bound for every fp32 artefact therefore fails correct conversions of those models. The copy made here
computes the same program in float64 (about 1e-13 relative rounding, a stand-in for the exact result),
so ``|fp32 reference - float64|`` measures how far the reference itself is from the truth, and
:func:`derived_bound` turns that into the bound an fp32 artefact of the same model must meet.

:func:`float64_copy` rewrites a legacy inference program (``.pdmodel`` + combined ``.pdiparams``, see
:mod:`edgematte.converter.program`) with plain Python and the ``framework.proto`` messages:

* every FP32 dense tensor (``LOD_TENSOR`` / ``LOD_TENSOR_ARRAY``) of every block becomes FP64;
* every dtype attribute (``dtype``, ``in_dtype``, ``out_dtype``) equal to FP32 becomes FP64, so a cast
  to float32 casts to float64 and a ``fill_constant`` / ``assign_value`` makes float64 constants
  (``assign_value``'s ``fp32_values`` move to ``fp64_values``, the values unchanged);
* every FP32 parameter of the params file is widened to FP64 (exactly: float64 holds every float32);
* a float tensor wired to an input that a kernel reads as float32 regardless (an interpolate's ``Scale``)
  gets a ``cast`` back to float32 in front of that op: it is a resize factor, not image data.

Integer, bool and fp16 tensors stay as they are. The copy needs a float64 CPU kernel for every op that
touches a float tensor; a program with an op lacking one is refused with an :class:`EdgematteError`
naming the op type, before anything is written.
"""

import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..core.errors import EdgematteError, one_line
from ..core.fsutil import atomic_dir
from .program import (
    ModelFiles,
    check_params_file,
    locate_model_files,
    parse_program,
    program_info,
    read_param_records,
    read_program,
)

# Attributes whose integer value is a framework.proto VarType.Type (cast, fill_constant, assign_value,
# uniform_random, gaussian_random, arg_max, reduce_*: -1 there means "same as the input").
_DTYPE_ATTRS = frozenset({"dtype", "in_dtype", "out_dtype"})

# Ops with no kernel (the executor runs them itself): they move tensors of any dtype.
_KERNEL_FREE_OPS = frozenset(
    {"feed", "fetch", "conditional_block", "while", "recurrent", "select_input", "select_output"}
)

# Op inputs that kernels read as float32 whatever the program says (phi's interpolate reads ``Scale`` with
# ``data<float>()``): a float64 tensor wired there gets a cast back to float32 in front of the op. RVM's
# ``downsample_ratio`` reaches bilinear_interp_v2 this way.
_FLOAT32_ONLY_INPUTS = {
    **{f"{mode}_interp{v}": ("Scale",) for mode in ("linear", "bilinear", "trilinear", "nearest", "bicubic")
       for v in ("", "_v2")},
}

# The fp32 noise of a deep net is ~1e-4..1e-3; bounds are derived from it, see derived_bound.
DEFAULT_FLOOR = 1e-4
DEFAULT_FACTOR = 4.0
# A quarter of the smallest real conversion error (1e-2): no measured noise lifts a bound above it.
DEFAULT_CEILING = 2.5e-3


def _framework_pb2():
    from paddle.base.proto import framework_pb2

    return framework_pb2


def _files_of(model_files) -> ModelFiles:
    """``model_files`` as :class:`ModelFiles`; anything :func:`locate_model_files` takes is accepted too."""
    if isinstance(model_files, ModelFiles):
        for f, kind in ((model_files.model, "model (.pdmodel)"), (model_files.params, "parameters (.pdiparams)")):
            if not Path(f).is_file():
                raise EdgematteError(f"{f}: {kind} file not found")
        return ModelFiles(Path(model_files.model), Path(model_files.params))
    return locate_model_files(model_files)


# ----------------------------------------------------------------------------- the program
def _widen_tensor_desc(tensor, fp) -> bool:
    if tensor.data_type == fp.VarType.FP32:
        tensor.data_type = fp.VarType.FP64
        return True
    return False


def _widen_variables(program, fp) -> Dict[int, set]:
    """Make every FP32 tensor variable FP64; returns, per block index, the names of all float64 variables."""
    float64 = {}
    for index, block in enumerate(program.blocks):
        names = float64.setdefault(index, set())
        for var in block.vars:
            kind = var.type.type
            if kind == fp.VarType.LOD_TENSOR:
                tensor = var.type.lod_tensor.tensor
            elif kind == fp.VarType.LOD_TENSOR_ARRAY:
                tensor = var.type.tensor_array.tensor
            elif kind == fp.VarType.SELECTED_ROWS:
                tensor = var.type.selected_rows
            else:
                continue
            _widen_tensor_desc(tensor, fp)
            if tensor.data_type == fp.VarType.FP64:
                names.add(var.name)
    return float64


def _widen_attributes(op, fp) -> None:
    """FP32 dtype attributes -> FP64; ``assign_value``'s float32 payload moves to its float64 field."""
    for attr in op.attrs:
        if attr.name in _DTYPE_ATTRS and attr.type == fp.AttrType.INT and attr.i == fp.VarType.FP32:
            attr.i = fp.VarType.FP64
    if op.type == "assign_value":
        attrs = {a.name: a for a in op.attrs}
        fp32 = attrs.get("fp32_values")
        if fp32 is not None and len(fp32.floats):
            values = [float(v) for v in fp32.floats]  # float32 -> float64 is exact
            del fp32.floats[:]
            fp64 = attrs.get("fp64_values")
            if fp64 is None:
                fp64 = op.attrs.add(name="fp64_values", type=fp.AttrType.FLOAT64S)
            del fp64.float64s[:]
            fp64.float64s.extend(values)


def _find_var(program, block_index: int, name: str):
    """The declaration of ``name`` as seen from a block (its own, else its ancestors'); None if undeclared."""
    while block_index >= 0:
        block = program.blocks[block_index]
        found = next((v for v in block.vars if v.name == name), None)
        if found is not None:
            return found
        block_index = block.parent_idx if block.parent_idx != block_index else -1
    return None


def _cast_back_float32_inputs(program, float64: Dict[int, set], fp) -> None:
    """Insert ``cast`` float64 -> float32 in front of inputs that kernels read as float32 (see _FLOAT32_ONLY_INPUTS).

    The cast's output is a new variable ``NAME@float32``, declared in the op's block; the op reads it instead.
    """
    for index, block in enumerate(program.blocks):
        visible = _visible_float64(program, float64, index)
        ops = list(block.ops)
        rewritten, changed = [], False
        for op in ops:
            for slot in op.inputs:
                if slot.parameter not in _FLOAT32_ONLY_INPUTS.get(op.type, ()):
                    continue
                for position, name in enumerate(slot.arguments):
                    if name not in visible:
                        continue
                    narrow = f"{name}@float32"
                    if not any(v.name == narrow for v in block.vars):
                        var = block.vars.add()
                        var.CopyFrom(_find_var(program, index, name))
                        var.name, var.persistable = narrow, False
                        var.type.lod_tensor.tensor.data_type = fp.VarType.FP32
                    cast = fp.OpDesc(type="cast")
                    cast.inputs.add(parameter="X", arguments=[name])
                    cast.outputs.add(parameter="Out", arguments=[narrow])
                    cast.attrs.add(name="in_dtype", type=fp.AttrType.INT, i=fp.VarType.FP64)
                    cast.attrs.add(name="out_dtype", type=fp.AttrType.INT, i=fp.VarType.FP32)
                    rewritten.append(cast)
                    slot.arguments[position] = narrow
                    changed = True
            rewritten.append(op)
        if changed:
            del block.ops[:]
            block.ops.extend(rewritten)


def _visible_float64(program, float64: Dict[int, set], block_index: int) -> set:
    """Float64 names visible from a block: its own and its ancestors' (sub-blocks read their parents')."""
    names = set()
    while block_index >= 0:
        names |= float64.get(block_index, set())
        parent = program.blocks[block_index].parent_idx
        block_index = parent if parent != block_index else -1
    return names


def _fp64_kernel_ops(op_types: Sequence[str]) -> Dict[str, bool]:
    """``{op type: has a float64 CPU kernel}`` for the op types that have kernels at all (others are absent)."""
    from paddle.base import core

    phi = core._get_registered_phi_kernels("all")
    fluid = core._get_all_register_op_kernels("all")
    found = {}
    for op_type in op_types:
        keys = list(phi.get(core._get_phi_kernel_name(op_type), [])) + list(phi.get(op_type, []))
        keys += list(fluid.get(op_type, []))
        if not keys:
            continue
        found[op_type] = any(
            ("CPU" in k and "float64" in k) or ("Place(cpu)" in k and "data_type[double]" in k and "PLAIN" in k)
            for k in keys
        )
    return found


def _check_fp64_kernels(program, float64: Dict[int, set], path: Path) -> None:
    """Refuse (one line naming the op) a program with an op on float64 tensors that has no float64 CPU kernel."""
    needing = {}
    for index, block in enumerate(program.blocks):
        visible = _visible_float64(program, float64, index)
        for op in block.ops:
            if op.type in _KERNEL_FREE_OPS:
                continue
            args = [a for slot in (*op.inputs, *op.outputs) for a in slot.arguments]
            if any(a in visible for a in args):
                needing.setdefault(op.type, [])
    kernels = _fp64_kernel_ops(sorted(needing))
    missing = sorted(t for t, ok in kernels.items() if not ok)
    if missing:
        raise EdgematteError(
            f"{path}: cannot make a float64 copy: op type {', '.join(repr(m) for m in missing)} has no float64 "
            "CPU kernel in paddlepaddle"
        )


def float64_program_bytes(program_bytes: bytes, path) -> bytes:
    """The ``ProgramDesc`` bytes with every FP32 tensor and dtype attribute made FP64 (see the module docstring).

    ``path`` is named in errors. Raises :class:`EdgematteError` if some op on float tensors has no float64
    CPU kernel in the installed paddlepaddle.
    """
    fp = _framework_pb2()
    path = Path(path)
    program = parse_program(program_bytes, str(path))
    float64 = _widen_variables(program, fp)
    for block in program.blocks:
        for op in block.ops:
            _widen_attributes(op, fp)
    _check_fp64_kernels(program, float64, path)
    _cast_back_float32_inputs(program, float64, fp)
    return program.SerializeToString()


# ----------------------------------------------------------------------------- the params file
def _float64_params_bytes(info, params_path: Path) -> bytes:
    """The combined params file with every FP32 tensor widened to FP64; other tensors byte-identical."""
    records = read_param_records(info, params_path)
    return b"".join((r.replaced(r.array().astype(np.float64)) if r.dtype == "float32" else r).to_bytes()
                    for r in records)


def float64_copy(model_files, dst_dir) -> ModelFiles:
    """Write to ``dst_dir`` a float64 copy of a fixed-shape Paddle inference model; return its two files.

    ``model_files``: a :class:`ModelFiles` (e.g. ``freeze_input_shape(...).files``) or anything
    :func:`locate_model_files` takes. ``dst_dir`` is (re)created atomically and must not be the model's own
    folder; it gets the program and params under the source's file names. The copy takes float64 inputs
    (same shapes, same names) and gives float64 outputs. Raises :class:`EdgematteError` (one line naming
    the file) for a corrupt model or params file, or an op without a float64 CPU kernel.
    """
    files = _files_of(model_files)
    info = read_program(files.model)
    dst_dir = Path(dst_dir)
    if dst_dir.resolve() in (files.model.parent.resolve(), *files.model.resolve().parents):
        raise EdgematteError(f"{dst_dir}: the float64 copy must go to a new folder, not the model's own folder")
    program_bytes = float64_program_bytes(info.program_bytes, files.model)
    params_bytes = _float64_params_bytes(info, files.params)
    with atomic_dir(dst_dir, inputs=[files.model, files.params], what="float64 copy folder") as work:
        (work / files.model.name).write_bytes(program_bytes)
        (work / files.params.name).write_bytes(params_bytes)
    copied = ModelFiles(dst_dir / files.model.name, dst_dir / files.params.name)
    check_params_file(program_info(program_bytes, copied.model), copied.params)
    return copied


# ----------------------------------------------------------------------------- running it
_OPERATOR = re.compile(r"\[operator\s*<\s*(\w+)\s*>\s*error\]")


def _paddle_failure(files: ModelFiles, what: str, e: Exception) -> EdgematteError:
    """A one-line error from a Paddle exception: the failing op (Paddle appends it) and the first line."""
    text = str(e).strip()
    op = _OPERATOR.search(text)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("---")]
    first = next((line for line in lines if not line.startswith(("C++ Traceback", "Error Message Summary"))),
                 type(e).__name__)
    where = f" (op '{op.group(1)}')" if op else ""
    return EdgematteError(one_line(f"{files.model}: {what} failed{where}: {first}")[:400])


def _check_feeds(info, feeds: Sequence[Dict[str, np.ndarray]], path: Path) -> None:
    """Each feed dict must name exactly the model's inputs, with arrays fitting their declared static dims."""
    for index, feed in enumerate(feeds):
        if sorted(feed) != sorted(info.feed_names):
            raise EdgematteError(
                f"{path}: feed {index} has inputs {sorted(feed)}, the model takes {list(info.feed_names)}")
        for spec in info.feeds:
            shape = tuple(np.shape(feed[spec.name]))
            if len(shape) != len(spec.shape) or any(0 <= d != s for d, s in zip(spec.shape, shape)):
                raise EdgematteError(f"{path}: feed {index} gives input '{spec.name}' shape {list(shape)}, the model "
                                     f"declares {list(spec.shape)}")


class Float64Model:
    """A float64 copy loaded once in Paddle Inference (plain CPU kernels, no IR passes), run feed by feed.

    Without IR passes nothing is fused or rewritten: the float64 run computes the program as written. oneDNN is
    off because its kernels are float32-only. Errors name ``source`` (the model the copy was made from) if
    given, else the copy.
    """

    def __init__(self, files: ModelFiles, threads: int = 2, source=None):
        from paddle import inference

        self.shown = ModelFiles(Path(source), files.params) if source is not None else files
        self.info = read_program(files.model)
        config = inference.Config(str(files.model), str(files.params))
        config.disable_gpu()
        config.disable_mkldnn()
        config.switch_ir_optim(False)
        config.disable_glog_info()
        config.set_cpu_math_library_num_threads(int(threads))
        try:
            self._predictor = inference.create_predictor(config)
        except Exception as e:  # Paddle's enforce errors
            raise _paddle_failure(self.shown, "loading the float64 copy in Paddle Inference", e) from e

    def run(self, feed: Dict[str, np.ndarray]) -> List[np.ndarray]:
        """Every output (float64, fetch order) on ``feed`` (``{input name: array}``, any float dtype)."""
        _check_feeds(self.info, [feed], self.shown.model)
        predictor = self._predictor
        for name in predictor.get_input_names():
            value = np.ascontiguousarray(feed[name], dtype=np.float64)
            handle = predictor.get_input_handle(name)
            handle.reshape(list(value.shape))
            handle.copy_from_cpu(value)
        try:
            predictor.run()
        except Exception as e:
            raise _paddle_failure(self.shown, "running the float64 copy", e) from e
        return [np.array(predictor.get_output_handle(n).copy_to_cpu(), copy=True)
                for n in predictor.get_output_names()]


def run_float64(files: ModelFiles, feeds: Sequence[Dict[str, np.ndarray]], threads: int = 2,
                source=None) -> List[List[np.ndarray]]:
    """Run a float64 copy (:class:`Float64Model`) on each feed dict.

    ``feeds``: per image ``{input name: array}`` (any float dtype, cast to float64). Returns per image the
    outputs in fetch order, float64.
    """
    shown = Path(source) if source is not None else files.model
    _check_feeds(read_program(files.model), feeds, shown)  # before loading: a wrong feed is the caller's error
    model = Float64Model(files, threads, source)
    return [model.run(feed) for feed in feeds]


# ----------------------------------------------------------------------------- the noise and the bound
@dataclass(frozen=True)
class FloatNoise:
    """How far an fp32 reference is from the float64 copy of its own program.

    ``max_abs[k]`` / ``mean_abs[k]``: over every image, the largest and the mean ``|reference - float64|``
    of output ``k`` (fetch order; output 0 is the alpha matte, in [0, 1]). Only the outputs the caller
    gave references for are compared, so both tuples may be shorter than ``output_names``.
    ``outputs``: per image, every output of the float64 copy (float64 arrays in fetch order), for a
    caller that wants to compare artefacts against the truth directly. ``seconds``: wall time of making
    and running the float64 copy.
    """

    output_names: Tuple[str, ...]
    max_abs: Tuple[float, ...]
    mean_abs: Tuple[float, ...]
    outputs: List[List[np.ndarray]] = field(repr=False)
    seconds: float

    @property
    def alpha_max_abs(self) -> float:
        """``max_abs`` of the first output (the alpha matte): what :func:`derived_bound` takes."""
        return self.max_abs[0]


def _reference_lists(reference_outputs, count: int) -> List[List[np.ndarray]]:
    """Per image, the reference outputs in fetch order; a bare array stands for the first output alone."""
    if len(reference_outputs) != count:
        raise EdgematteError(f"float noise: {count} feeds but {len(reference_outputs)} reference outputs")
    lists = [[ref] if isinstance(ref, np.ndarray) else list(ref) for ref in reference_outputs]
    if not lists or any(len(r) != len(lists[0]) or not r for r in lists):
        raise EdgematteError("float noise: every image needs the same number (at least one) of reference outputs")
    return lists


def measure_float_noise(frozen_files, feeds: Sequence[Dict[str, np.ndarray]], reference_outputs,
                        threads: int = 2) -> FloatNoise:
    """Measure the fp32 float noise of a fixed-shape model against its float64 copy.

    ``frozen_files``: the fixed-shape fp32 model (:class:`ModelFiles` or anything
    :func:`locate_model_files` takes; ``freeze_input_shape(...).files``). ``feeds``: per parity image,
    ``{input name: float32 array}`` at the frozen shape (e.g. [1, 3, H, W], normalized to [-1, 1]).
    ``reference_outputs``: per image, the fp32 reference's outputs on that feed as a list of arrays in
    fetch order (the first is the alpha matte); a bare array instead of a list means "the first output
    only". The float64 copy is written to a temporary folder, run on the same feeds widened to float64,
    and removed. Raises :class:`EdgematteError` if the copy cannot be made or run, or a reference's shape
    differs from the copy's output.
    """
    start = time.perf_counter()
    files = _files_of(frozen_files)
    feeds = list(feeds)
    references = _reference_lists(reference_outputs, len(feeds))
    info = read_program(files.model)
    _check_feeds(info, feeds, files.model)  # before the copy: the errors name the user's model
    output_names = info.fetch_names
    with tempfile.TemporaryDirectory(prefix="edgematte-float64-") as tmp:
        copy = float64_copy(files, Path(tmp) / "float64")
        outputs = run_float64(copy, feeds, threads, source=files.model)
    compared = len(references[0])
    if compared > len(output_names):
        raise EdgematteError(f"{files.model}: {compared} reference outputs but the model has {len(output_names)}")
    max_abs, mean_abs = [], []
    for k in range(compared):
        worst, total, count = 0.0, 0.0, 0
        for index, (refs, truth) in enumerate(zip(references, outputs)):
            ref = np.asarray(refs[k], dtype=np.float64)
            if ref.shape != truth[k].shape:
                raise EdgematteError(f"{files.model}: reference output {k} of image {index} has shape "
                                     f"{list(ref.shape)}, the model gives {list(truth[k].shape)}")
            diff = np.abs(ref - truth[k])
            if not np.all(np.isfinite(diff)):
                raise EdgematteError(f"{files.model}: output {k} of image {index} is not finite (NaN or inf)")
            worst, total, count = max(worst, float(diff.max(initial=0.0))), total + float(diff.sum()), count + diff.size
        max_abs.append(worst)
        mean_abs.append(total / max(count, 1))
    return FloatNoise(tuple(output_names), tuple(max_abs), tuple(mean_abs), outputs, time.perf_counter() - start)


def derived_bound(noise_max_abs: float, floor: float = DEFAULT_FLOOR, factor: float = DEFAULT_FACTOR,
                  ceiling: float = DEFAULT_CEILING) -> float:
    """The max-abs bound an fp32 artefact gets from its float noise: ``min(ceiling, max(floor, factor * noise))``.

    ``noise_max_abs``: :attr:`FloatNoise.alpha_max_abs`, the reference's own error ``e`` against the
    float64 truth (alpha in [0, 1]; measured on PaddleSeg's official programs: 1e-6 for PP-MattingV2,
    5e-5..2.6e-4 for MODNet / HRNet / HumanMatting at 256 and 512).

    Why ``factor = 4``: an artefact built by another tool runs other kernels (Winograd or im2col
    convolutions, other summation orders, approximate exp/tanh), so its own error ``e'`` against the
    truth is independent of the reference's and of the same size; by the triangle inequality
    ``|artefact - reference| <= e + e' ~ 2e``. Another 2x covers an artefact whose kernels are noisier
    than the reference's (fp32 GEMMs with a different blocking) and the images where the artefact's worst
    pixel is not the reference's. Measured, oneDNN vs plain CPU (two fp32 kernel sets) differ by 60-90% of
    the sum of their two noises: the 2x is nearly used up, the other 2x is the headroom. At a noise of
    6e-4 (the most seen across kernel sets) the bound is 2.4e-3, 4x below the smallest real conversion
    errors (>= 1e-2: a wrong resize mode, a dropped bias, a mis-folded BatchNorm), so a real error still
    fails. The floor keeps the historic 1e-4 bound for models whose noise is tiny: a bound of 4e-7 would
    fail artefacts for float noise alone.

    The ceiling (2.5e-3) keeps that margin whatever is measured. A noise above ``ceiling / factor`` is no
    float noise: PP-Matting-HRNet's alpha goes through ``arg_max`` over trimap classes, and a pixel whose
    classes tie flips between 0 and 1 (fp32 oneDNN vs float64 differ by 1.0 at 256x256). Such outputs need
    a decision-aware comparison; a max-abs bound derived from them would accept anything. A negative, NaN
    or infinite noise is a caller's bug (:class:`ValueError`).
    """
    noise = float(noise_max_abs)
    if not np.isfinite(noise) or noise < 0 or not 0 <= floor <= ceiling or not factor >= 1:
        raise ValueError(f"derived_bound: noise {noise_max_abs!r}, floor {floor!r}, factor {factor!r}, "
                         f"ceiling {ceiling!r}")
    return min(float(ceiling), max(float(floor), float(factor) * noise))
