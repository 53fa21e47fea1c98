"""Paddle inference model -> ONNX, with the graph repairs that make paddle2onnx's output exact.

Steps (:func:`export_onnx`): paddle2onnx, then the ONNX repairs of the registry
(``edgematte/converter/repairs/``, one module per tool bug) in two stages, then onnxsim:

- corrections (``preserves_outputs=False``) make the graph compute what Paddle computes where paddle2onnx
  got it wrong (``adaptive_pool_windows``: paddle2onnx's uneven adaptive pools); each proves its own
  replacement, and the whole graph must then pass the ONNX checker;
- normalizations (``preserves_outputs=True``) rewrite patterns that are correct ONNX but that onnx2tf
  cannot convert (``unsqueezed_pad_fold``: Unsqueeze -> 5-D Pad -> Squeeze becomes one 4-D Pad); ONNX
  Runtime must reproduce the corrected graph's outputs on the rewritten one (:func:`_normalize_checked`).

That graph is what onnx2tf and the int8 quantizer read. The published ``model.onnx`` is that graph with the
``onnx_artefact`` repairs (:func:`tune_onnx_artefact`), which suit it to ONNX Runtime's own kernels (a convolution
of a concatenation its blocked kernels refuse, split per part) and are proven within rounding.

Native code on graphs nobody has verified yet (ONNX shape inference, the full ONNX checker, ONNX Runtime) runs in
one child process per export (:class:`~edgematte.core.native_child.NativeChild`, started while paddle2onnx runs),
after a static scan for attribute values known to crash it (:func:`.repairs.onnx.graph.refuse_native_hazards`):
a graph that still kills it costs one line, ``"<model.onnx>: ONNX Runtime died with SIGFPE (signal 8)"``, not
the process. onnxsim runs as its own subprocess.

Layout: NCHW only (PaddleSeg's matting models). Shapes must be static; freeze the input first.
"""

import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..core.errors import EdgematteError
from ..core.fsutil import atomic_path
from ..core.native_child import NativeChild, NativeCrash, death_line, run_native
from ..core.tools import python_tool_env, run_tool, signal_name
from ..core.versions import installed_versions
from .program import locate_model_files, parse_program, read_program
from .repairs import registry
from .repairs.base import ONNX, ONNX_ARTEFACT, RepairContext
from .repairs.onnx.graph import native_hazards, opset_version, refuse_native_hazards

PADDLE2ONNX_TIMEOUT_S = 900
ONNXSIM_TIMEOUT_S = 900
# onnxsim's result is kept only when it reproduces the unsimplified graph this closely (max abs on
# inputs in [-1, 1]); a deep net whose BatchNorm folding moves more than this simply stays unsimplified.
SIMPLIFY_TOLERANCE = 1e-5
# A graph normalization only moves data (no arithmetic changes): the whole graph must reproduce its
# outputs to within float32 rounding of a changed kernel schedule, on inputs in [-1, 1].
NORMALIZATION_TOLERANCE = 1e-7
# The packages whose versions an export records.
TOOLS = ("paddle2onnx", "paddlepaddle", "onnx", "onnxsim", "onnxruntime")
# What the export's native child imports at start (while paddle2onnx runs), before its first call.
NATIVE_PRELOAD = ("onnx", "onnxruntime", __name__)


# --------------------------------------------------------------------------------------------------
# The repairs, in two stages


def _correct(model, context: RepairContext) -> List[dict]:
    """The correcting ONNX repairs on ``model`` in place (:func:`registry.apply_all` records); the result must
    pass the ONNX checker."""
    applied = registry.apply_all(ONNX, model, context, preserves_outputs=False)
    refuse_native_hazards(model, context.where)
    try:
        _check(model)
    except EdgematteError:
        raise
    except Exception as e:
        raise AssertionError(f"repaired graph fails the ONNX checker: {e}") from e
    return applied


def _normalize_checked(model, context: RepairContext, feed, reference_outputs) -> Tuple[List[dict], Optional[dict]]:
    """The output-preserving ONNX repairs on ``model`` in place, proven: the ONNX checker passes and ONNX
    Runtime reproduces ``reference_outputs`` (the graph before, on ``feed``) within NORMALIZATION_TOLERANCE.

    Returns ``(registry.apply_all records, {"max_abs", "tolerance"})``; the check is ``None`` when nothing
    was changed.
    """
    applied = registry.apply_all(ONNX, model, context, preserves_outputs=True)
    if not registry.changed(applied):
        return applied, None
    refuse_native_hazards(model, context.where)
    try:
        _check(model)
    except EdgematteError:
        raise
    except Exception as e:
        raise AssertionError(f"normalized graph fails the ONNX checker: {e}") from e
    outputs = _run_onnx(model, feed)
    diff = max(float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")
               for a, b in zip(outputs, reference_outputs))
    if not diff <= NORMALIZATION_TOLERANCE:
        raise AssertionError(f"graph normalization changed the outputs by {diff:g} (> {NORMALIZATION_TOLERANCE:g})")
    return applied, {"max_abs": diff, "tolerance": NORMALIZATION_TOLERANCE}


def run_unoptimized(onnx_bytes: bytes, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """ONNX Runtime's outputs by name, with every graph optimization off: each node runs as written, so that
    a rewrite is judged by its own arithmetic (ONNX Runtime fuses Conv + Add, not Conv + Sub)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))


# A rewrite that only re-associates float arithmetic (``preserves_outputs=False``: the onnx2tf_input and
# onnx_artefact repairs that do) may move an output by its own rounding, never by this share of the output's range
# (a wrong rewrite moves it by its size); the artefact's parity against the reference then holds the model to its
# noise-derived bound.
REASSOCIATION_TOLERANCE = 1e-2


def outputs_differ(before: Dict[str, np.ndarray], after: Dict[str, np.ndarray], tolerance: float = 0.0):
    """``(names of outputs that differ beyond tolerance x max(1, |output|), max abs over all outputs)``; a
    tolerance of 0 asks for the same bits."""
    differ, max_abs = [], 0.0
    for name, value in before.items():
        got = after[name]
        if got.shape != value.shape:
            differ.append(name)
            max_abs = float("inf")
            continue
        error = float(np.nanmax(np.abs(got.astype(np.float64) - value))) if value.size else 0.0
        max_abs = max(max_abs, error)
        if tolerance == 0.0:
            same = np.array_equal(got, value, equal_nan=True)
        else:
            same = error <= tolerance * max(1.0, float(np.nanmax(np.abs(value))) if value.size else 1.0)
        if not same:
            differ.append(name)
    return differ, max_abs


def tune_onnx_artefact(bridge_path, out_path, where: Optional[str] = None, seed: int = 0) -> dict:
    """The published ONNX artefact: the graph at ``bridge_path`` (what :func:`export_onnx` wrote, which onnx2tf and
    the int8 quantizer read) with the ``onnx_artefact`` repairs for ONNX Runtime's kernels, written atomically to
    ``out_path``. A rewritten graph must pass the ONNX checker and move no output (ONNX Runtime, optimizations off,
    a seeded feed in [-1, 1]) by more than rounding, :data:`REASSOCIATION_TOLERANCE` of its range: a wrong rewrite
    moves it by its size; the artefact's parity against the reference then holds it to the fp32 bound.

    Returns ``{"applied_repairs": registry.summary records, "records": the repairs' per-match records (each with
    its repair's name, ``"repair"``),
    "check": {"max_abs", "tolerance", "seed"} or None when nothing was rewritten}``. A rewrite that fails its proof
    raises ``AssertionError`` (a repair bug).
    """
    import onnx

    where = where or str(out_path)
    original = Path(bridge_path).read_bytes()
    model = onnx.load_from_string(original)
    applied = registry.apply_all(ONNX_ARTEFACT, model, RepairContext(where=where))
    check = None
    if registry.changed(applied):
        try:
            _check(model)
        except Exception as e:
            raise AssertionError(f"{where}: the graph tuned for ONNX Runtime fails the ONNX checker: {e}") from e
        tuned = model.SerializeToString()
        rng = np.random.default_rng(seed)
        feed = {name: rng.uniform(-1, 1, shape).astype(np.float32) for name, shape in _float_inputs(model)}
        differ, max_abs = outputs_differ(run_unoptimized(original, feed), run_unoptimized(tuned, feed),
                                         REASSOCIATION_TOLERANCE)
        if differ:
            raise AssertionError(f"{where}: the repairs for ONNX Runtime move outputs {differ} by {max_abs:g}, "
                                 f"beyond rounding")
        check = {"max_abs": max_abs, "tolerance": REASSOCIATION_TOLERANCE, "seed": seed}
    with atomic_path(out_path, suffix=".onnx") as target:
        Path(target).write_bytes(model.SerializeToString() if check else original)
    return {"applied_repairs": registry.summary(applied), "records": _records(applied), "check": check}


def _float_inputs(model) -> List[Tuple[str, List[int]]]:
    """The graph's inputs (not its initializers) as ``(name, static shape)``; only float32 inputs of static shape
    reach here (:func:`export_onnx` needs a fixed input shape)."""
    constants = {t.name for t in model.graph.initializer}
    return [(v.name, [d.dim_value for d in v.type.tensor_type.shape.dim])
            for v in model.graph.input if v.name not in constants]


def _records(applied: List[dict]) -> List[dict]:
    """The repairs' own per-match records, in order, each with the name of its repair (``"repair"``)."""
    return [{"repair": repair["name"], **record} for repair in applied for record in repair["records"]]


# --------------------------------------------------------------------------------------------------
# The tools


def run_paddle2onnx(model_dir, out_path, opset: int = 11) -> str:
    """Convert the Paddle inference model in ``model_dir`` with paddle2onnx, unrepaired; returns its log.

    paddle2onnx exits 0 even when it fails (it then leaves an empty file), so success is judged by
    the file it writes.
    """
    files = locate_model_files(model_dir)
    model, params = files.model, files.params
    out_path = Path(out_path)
    out_path.unlink(missing_ok=True)
    done = run_tool(
        [sys.executable, "-m", "paddle2onnx.command", "--model_dir", str(model.parent), "--model_filename", model.name,
         "--params_filename", params.name, "--save_file", str(out_path), "--opset_version", str(opset),
         "--enable_onnx_checker", "True"],
        what=f"{model}: paddle2onnx", timeout_s=PADDLE2ONNX_TIMEOUT_S, env=python_tool_env())
    if done.timed_out:
        raise EdgematteError(f"{model}: paddle2onnx did not finish within {PADDLE2ONNX_TIMEOUT_S} s")
    if signal_name(done.returncode):
        raise EdgematteError(death_line(model, "paddle2onnx", done.returncode, done.output))
    if done.returncode != 0 or not out_path.is_file() or out_path.stat().st_size == 0:
        raise EdgematteError(f"{model}: paddle2onnx failed: {done.error_line()}")
    return done.output.strip()


def _random_feed(model, seed: int = 0) -> Dict[str, np.ndarray]:
    """Seeded inputs in [-1, 1] (PaddleSeg's normalized image range) for every graph input."""
    import onnx

    rng = np.random.default_rng(seed)
    initializers = {i.name for i in model.graph.initializer}
    feed = {}
    for v in model.graph.input:
        if v.name in initializers:
            continue
        dtype = onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)
        shape = [d.dim_value for d in v.type.tensor_type.shape.dim]
        feed[v.name] = rng.uniform(-1, 1, shape).astype(dtype)
    return feed


# The native steps take the serialized graph: both need it serialized anyway, and it crosses to the child as is.
def _check(model) -> None:
    """The full ONNX checker (it runs shape inference) on ``model``, in the export's native child when one is open."""
    run_native("the ONNX checker", _full_check, model.SerializeToString())


def _full_check(model_bytes: bytes) -> None:
    import onnx

    onnx.checker.check_model(model_bytes, full_check=True)


def _run_onnx(model, feed) -> List[np.ndarray]:
    """``model``'s outputs on ``feed`` in ONNX Runtime (one thread, without layout optimizations), in the export's
    native child when one is open."""
    return run_native("ONNX Runtime", _ort_outputs, model.SerializeToString(), feed)


def _ort_outputs(model_bytes: bytes, feed) -> List[np.ndarray]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    # The export's checks compare one graph with another, so they fix ONNX Runtime's kernel choice: its layout
    # optimizations (NCHWc) pick blocked kernels by channel count, which round differently (RVM's refiner at
    # 720x1280: a 4-channel upsample against the 1-channel one channel_slice_pushdown leaves, 1.5e-5). Without
    # them the pushdown is bit for bit. The artefact's own parity runs at the default level, as users run it.
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    session = onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def _simplify(model, workdir: Path, reference_outputs, feed) -> Tuple[object, dict]:
    """onnxsim ``model`` (in a subprocess: a crash there must not take the export down).

    Returns ``(model to keep, note)``: the simplified graph only if it passes the ONNX checker and
    reproduces ``reference_outputs`` within SIMPLIFY_TOLERANCE, else the unsimplified one.
    """
    import onnx

    src, dst = workdir / "repaired.onnx", workdir / "simplified.onnx"
    onnx.save(model, src)
    done = run_tool([sys.executable, "-m", "onnxsim", str(src), str(dst)], what="onnxsim", timeout_s=ONNXSIM_TIMEOUT_S,
                    env=python_tool_env())
    if done.timed_out:
        raise EdgematteError(f"onnxsim: did not finish within {ONNXSIM_TIMEOUT_S} s")
    note = {"log_tail": done.output.strip()[-2000:]}
    if done.returncode != 0 or not dst.is_file():
        died = signal_name(done.returncode)
        how = f"died with {died}" if died else f"exited with {done.returncode}"
        return model, {**note, "kept": False, "reason": f"onnxsim {how}"}
    try:
        simplified = onnx.load(str(dst))
        hazards = native_hazards(simplified)
        if hazards:
            return model, {**note, "kept": False, "reason": f"simplified graph invalid: {hazards[0]}"}
        _check(simplified)
        outputs = _run_onnx(simplified, feed)
    except NativeCrash as e:  # the simplified graph killed the checker or ONNX Runtime: keep the one that did not
        return model, {**note, "kept": False, "reason": f"simplified graph crashed: {e}"}
    except Exception as e:
        return model, {**note, "kept": False, "reason": f"simplified graph invalid: {str(e).splitlines()[0][:300]}"}
    diff = max(float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")
               for a, b in zip(outputs, reference_outputs))
    if not diff <= SIMPLIFY_TOLERANCE:
        return model, {**note, "kept": False, "reason": f"simplified graph differs by {diff:g}", "max_abs": diff}
    return simplified, {**note, "kept": True, "max_abs": diff,
                        "nodes_before": len(model.graph.node), "nodes_after": len(simplified.graph.node)}


def _tensor_infos(values, initializers=()) -> List[dict]:
    import onnx

    return [{"name": v.name,
             "shape": [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim],
             "dtype": str(onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type))}
            for v in values if v.name not in initializers]


def export_onnx(model_dir, out_path, opset: int = 11, name: Optional[str] = None) -> dict:
    """Paddle legacy inference model (fixed input shape) -> exact ONNX file at ``out_path``; ``name`` (default
    ``out_path``) is what a crash line calls the graph (the file the user gets, where ``out_path`` is a private one).

    Steps: paddle2onnx (opset ``opset``; it may raise the opset if an op needs it), the correcting ONNX
    repairs (every adaptive pool whose windows differ from Paddle's), the output-preserving ones for
    onnx2tf (proven in ONNX Runtime, :func:`_normalize_checked`), onnxsim (kept only if it validates),
    atomic write. Returns::

        {"path", "opset", "inputs": [{"name", "shape", "dtype"}], "outputs": [...same, shapes measured],
         "repairs": [the correcting repairs' per-match records: one per Paddle adaptive pool,
                     see repairs/onnx/adaptive_pool_windows.py],
         "normalizations": [the output-preserving repairs' per-match records: one per pattern found,
                            see repairs/onnx/unsqueezed_pad_fold.py],
         "normalization_check": {"max_abs", "tolerance"} or None when nothing was rewritten,
         "applied_repairs": [{"name", "kind": "onnx", "matched", "changed", "why"}, one per registered repair,
                             in the order they ran],
         "simplify": {"kept", "reason"?, "max_abs"?, ...}, "tool_versions": {package: version or None},
         "paddle2onnx_log": str}
    """
    import onnx

    model_file = locate_model_files(model_dir).model
    program_info = read_program(model_file)
    for feed in program_info.feeds:
        if any(d <= 0 for d in feed.shape):
            raise EdgematteError(f"{model_file}: input '{feed.name}' has shape {list(feed.shape)}; export needs a "
                                 f"fixed input shape (freeze it first)")
    context = RepairContext(where=str(model_file),
                            paddle_program=parse_program(program_info.program_bytes, str(model_file)))
    # The native child starts first: its imports overlap paddle2onnx. Leaving the block ends it and removes tmp.
    with NativeChild(name or out_path, preload=NATIVE_PRELOAD), \
            tempfile.TemporaryDirectory(prefix="edgematte-onnx-") as tmp:
        tmp = Path(tmp)
        raw_path = tmp / "paddle2onnx.onnx"
        log = run_paddle2onnx(model_dir, raw_path, opset)
        model = onnx.load(str(raw_path))
        corrections = _correct(model, context)
        feed = _random_feed(model)
        reference_outputs = _run_onnx(model, feed)
        normalizations, normalization_check = _normalize_checked(model, context, feed, reference_outputs)
        model, simplify_note = _simplify(model, tmp, reference_outputs, feed)

        outputs = _tensor_infos(model.graph.output)
        for info, value in zip(outputs, reference_outputs):
            info["shape"] = list(value.shape)
        with atomic_path(out_path, suffix=".onnx") as target:
            onnx.save(model, str(target))
    return {
        "path": str(out_path),
        "opset": opset_version(model, opset),
        "inputs": _tensor_infos(model.graph.input, {i.name for i in model.graph.initializer}),
        "outputs": outputs,
        "repairs": _records(corrections),
        "normalizations": _records(normalizations),
        "normalization_check": normalization_check,
        "applied_repairs": registry.summary(corrections + normalizations),
        "simplify": simplify_note,
        "tool_versions": installed_versions(TOOLS),
        "paddle2onnx_log": log,
    }
