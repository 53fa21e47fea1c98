"""ONNX -> TFLite with onnx2tf, its traps contained.

onnx2tf (1.29.24, docs/toolchain.md, onnx2tf) is run in a subprocess and never trusted on its own word:

- It overwrites its input ``.onnx`` (even with ``-nuo``): it only ever sees a private copy.
- It writes into the current directory and, when every input looks like an NHWC image batch, loads
  ``calibration_image_sample_data_20x128x128x3_float32.npy`` from there or DOWNLOADS it. It runs in a
  private temporary directory that always holds that file (synthetic images unless the caller gives
  some), so it never touches the network or the caller's folder.
- It shells out to ``onnxsim`` found on ``PATH``; without it the conversion fails deep in the graph.
  The directory of ``sys.executable`` (the venv's ``bin``) goes first on its ``PATH``.
- It exits 0 on some failures: every expected ``.tflite`` must exist, load in LiteRT and run once
  (finite outputs) before anything is published.
- Its output is very verbose: it goes to a log file (ANSI colours removed), shown only on failure as
  one line (the last meaningful error) plus the log's path.
- It mistranslates some exact ONNX patterns (docs/toolchain.md, traps 16 and 17), and LiteRT sums some
  reductions badly (trap 18): the registry's ``onnx2tf_input`` repairs rewrite them in the private copy, and
  ONNX Runtime must compute the same outputs on the rewritten copy, bit for bit, or within rounding for a
  rewrite that only re-associates sums (:func:`repair_bridge`).
- On a deep net at full size it can be killed for memory after its SavedModel is complete: the TFLite
  files it did not finish are made from that SavedModel in a process of their own
  (:func:`recover_from_saved_model`); an fp16 file that cannot be had is reported, not fatal.

Layouts: ``"nhwc"`` (default; what TFLite delegates want) transposes every 4-D input to NHWC;
``"nchw"`` keeps the inputs as in ONNX (onnx2tf ``-k``; it inserts one TRANSPOSE). onnx2tf writes
4-D *outputs* NHWC either way: alpha is ``[N, H, W, 1]`` where ONNX has ``[N, 1, H, W]``. The layout
of every input and output is recorded in the returned info.

INT8: :func:`convert_to_tflite` can keep onnx2tf's TensorFlow SavedModel (``saved_model_dir``);
:mod:`edgematte.quant.tflite` quantizes it.
"""

import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core import versions
from ..core.errors import EdgematteError
from ..core.fsutil import atomic_dir, atomic_path, sha256_file
from ..core.tools import clean_log, died_with, last_error_line, python_tool_env, run_tool
from ..runtime.model_io import channels_last_perm, layout_names, onnx_to_layout
from .onnx import REASSOCIATION_TOLERANCE, outputs_differ, run_unoptimized
from .repairs import registry
from .repairs.base import ONNX2TF_INPUT, RepairContext
from .saved_model_tflite import convert_saved_model
from .tflite_repairs import repair_tflite_file

LAYOUTS = ("nhwc", "nchw")
# Our precision name -> the suffix onnx2tf gives the file (``<onnx stem>_<suffix>.tflite``).
ONNX2TF_SUFFIX = {"fp32": "float32", "fp16": "float16"}
DEFAULT_FILE_NAMES = {"fp32": "model_fp32.tflite", "fp16": "model_fp16.tflite"}
DEFAULT_LOG_NAME = "onnx2tf.log"
# onnx2tf's log lines once its SavedModel, then its float32 TFLite file, are complete (onnx2tf.py)
ONNX2TF_SAVED_MODEL_DONE = "saved_model output complete!"
ONNX2TF_FP32_DONE = "Float32 tflite output complete!"
# onnx2tf loads this from the cwd instead of downloading it (utils/common_functions.py).
ONNX2TF_SAMPLE_IMAGES_NAME = "calibration_image_sample_data_20x128x128x3_float32.npy"
SAMPLE_IMAGES_SHAPE = (20, 128, 128, 3)
# A bound for a hung onnx2tf, not a speed target: PP-HumanMatting at 384x640 took 1869 s of conversion (onnx2tf
# most of it) on the 2-core host shared with other work, and 1800 s once stopped it (docs/toolchain.md, onnx2tf).
ONNX2TF_TIMEOUT_S = 3600


# ---------------------------------------------------------------------------------------------
# The ONNX side: what goes in


def read_onnx_interface(onnx_path) -> Tuple[bytes, List[dict], List[dict]]:
    """Read a fixed-shape float ONNX model: ``(file bytes, inputs, outputs)``.

    Each input/output is ``{"name": str, "shape": [int, ...], "dtype": "float32"...}``; output
    dimensions that ONNX does not state are ``-1``. Raises :class:`EdgematteError` (one line) for a
    missing or unreadable file, a dynamic input dimension or a non-float input.
    """
    import onnx
    from onnx import helper

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise EdgematteError(f"{onnx_path}: ONNX model not found")
    data = onnx_path.read_bytes()
    try:
        model = onnx.load_from_string(data)
        # a file cut at a field boundary still parses; the checker catches what is then missing
        onnx.checker.check_model(model)
    except Exception as e:  # protobuf's DecodeError, onnx's ValidationError
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise EdgematteError(f"{onnx_path}: not a valid ONNX model ({type(e).__name__}: {detail})") from e
    graph = model.graph
    initializer_names = {t.name for t in graph.initializer}
    inputs = [_value_info(v, helper) for v in graph.input if v.name not in initializer_names]
    outputs = [_value_info(v, helper) for v in graph.output]
    if not inputs or not outputs:
        raise EdgematteError(f"{onnx_path}: the ONNX graph has no inputs or no outputs (truncated file?)")
    for spec in inputs:
        if any(d <= 0 for d in spec["shape"]):
            raise EdgematteError(
                f"{onnx_path}: input {spec['name']!r} has a dynamic shape {spec['shape']}; "
                "export the ONNX model with a fixed input size for TFLite"
            )
        if spec["dtype"] != "float32":
            raise EdgematteError(f"{onnx_path}: input {spec['name']!r} is {spec['dtype']}; onnx2tf needs float32 here")
    return data, inputs, outputs


def _value_info(value, helper) -> dict:
    tensor_type = value.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim]
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).name
    except (KeyError, TypeError, ValueError):
        dtype = f"onnx_type_{tensor_type.elem_type}"
    return {"name": value.name, "shape": shape, "dtype": dtype}


def synthetic_sample_images(count: int = SAMPLE_IMAGES_SHAPE[0], size: int = SAMPLE_IMAGES_SHAPE[1],
                            seed: int = 0) -> np.ndarray:
    """Deterministic image-like data: float32 ``[count, size, size, 3]`` in 0..1.

    Smooth colour gradients with a few soft-edged discs: enough structure for onnx2tf's internal
    ONNX-vs-TF checks, which feed this (resized to the model input) through both graphs.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0.0, 1.0, size), np.linspace(0.0, 1.0, size), indexing="ij")
    images = np.empty((count, size, size, 3), dtype=np.float32)
    for i in range(count):
        frequency = rng.uniform(0.5, 3.0, (3, 2))
        phase = rng.uniform(0.0, 2 * np.pi, 3)
        image = 0.5 + 0.35 * np.sin(2 * np.pi * (frequency[:, :1, None] * yy + frequency[:, 1:, None] * xx)
                                    + phase[:, None, None])
        for _ in range(3):
            cy, cx, radius = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.08, 0.3)
            disc = 1.0 / (1.0 + np.exp((np.hypot(yy - cy, xx - cx) - radius) * 60.0))
            image = image * (1 - disc) + rng.uniform(0.0, 1.0, (3, 1, 1)) * disc
        images[i] = np.clip(image, 0.0, 1.0).transpose(1, 2, 0)
    return images


def _check_sample_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] < 1:
        raise EdgematteError(f"sample images must be float32 [K, H, W, 3] in 0..1, got shape {images.shape}")
    if not np.isfinite(images).all() or images.min() < 0.0 or images.max() > 1.0:
        raise EdgematteError("sample images must be float32 in 0..1 (onnx2tf feeds them unnormalized)")
    return images


# ---------------------------------------------------------------------------------------------
# The copy onnx2tf reads: repaired, and proven to compute what the ONNX model computes


def repair_bridge(onnx_bytes: bytes, onnx_inputs: List[dict], where: str = "model",
                  seed: int = 0) -> Tuple[bytes, List[dict], Optional[dict]]:
    """Apply the ``onnx2tf_input`` repairs of the registry to a copy of ``onnx_bytes`` (the model onnx2tf is
    about to read), and prove the copy right in ONNX Runtime (optimizations off) on a seeded feed in [-1, 1]
    (``onnx_inputs`` as :func:`read_onnx_interface` gives them), in two steps:

    - the repairs that re-associate float arithmetic (``preserves_outputs=False``) run first: the outputs may
      move by rounding only, at most :data:`REASSOCIATION_TOLERANCE` of each output's range;
    - the exact ones then run on that: the outputs must stay the same bit for bit.

    Returns ``(bytes for onnx2tf, registry.apply_all records, {"max_abs" (the exact step's: 0),
    "reassociated_max_abs", "outputs", "seed"} or None when nothing was rewritten)``. A rewrite that fails its
    proof raises ``AssertionError`` (a repair bug).
    """
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    context = RepairContext(where=where)
    reassociating = registry.apply_all(ONNX2TF_INPUT, model, context, preserves_outputs=False)
    middle = model.SerializeToString() if registry.changed(reassociating) else onnx_bytes
    exact = registry.apply_all(ONNX2TF_INPUT, model, context, preserves_outputs=True)
    applied = reassociating + exact
    if not registry.changed(applied):
        return onnx_bytes, applied, None
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise AssertionError(f"{where}: the repaired copy for onnx2tf fails the ONNX checker: {e}") from e
    repaired = model.SerializeToString()
    rng = np.random.default_rng(seed)
    feed = {s["name"]: rng.uniform(-1, 1, s["shape"]).astype(s["dtype"]) for s in onnx_inputs}
    before = run_unoptimized(onnx_bytes, feed)
    reassociated_max_abs = 0.0
    if middle is not onnx_bytes:
        moved = run_unoptimized(middle, feed)
        differ, reassociated_max_abs = outputs_differ(before, moved, REASSOCIATION_TOLERANCE)
        if differ:
            raise AssertionError(f"{where}: the re-associating repairs for onnx2tf move outputs {differ} by "
                                 f"{reassociated_max_abs:g}, beyond rounding")
        before = moved
    if registry.changed(exact):
        differ, max_abs = outputs_differ(before, run_unoptimized(repaired, feed))
        if differ:
            raise AssertionError(f"{where}: the repaired copy for onnx2tf changes outputs {differ} "
                                 f"(max abs {max_abs:g}); its repairs must be exact")
    return repaired, applied, {"max_abs": 0.0, "reassociated_max_abs": reassociated_max_abs,
                               "outputs": len(before), "seed": seed}


# ---------------------------------------------------------------------------------------------
# Layouts (the conversions between them: edgematte.runtime.model_io)


def tensor_layout(onnx_shape: Sequence[int], tflite_shape: Sequence[int],
                  onnx_value: Optional[np.ndarray] = None, tflite_value: Optional[np.ndarray] = None) -> str:
    """How a TFLite tensor is laid out relative to the same ONNX tensor.

    Returns ``"nchw"`` (same axes as ONNX) or ``"nhwc"`` (channels moved last) for rank 4, likewise
    ``ncw``/``nwc`` and ``ncdhw``/``ndhwc``; ``"as_onnx"`` for other ranks with the same shape;
    ``"unknown"`` when neither arrangement gives the TFLite shape. When both do (e.g. ``[1, 8, 8, 8]``)
    the shape cannot tell: with both values given (same input), the arrangement whose values agree
    more closely wins, else ``"ambiguous"``.
    """
    onnx_shape, tflite_shape = tuple(onnx_shape), tuple(tflite_shape)
    rank = len(onnx_shape)
    first, last = layout_names(rank)
    if rank < 3 or rank > 5:
        return "as_onnx" if onnx_shape == tflite_shape else "unknown"
    perm = channels_last_perm(rank)
    as_first = onnx_shape == tflite_shape
    as_last = tuple(onnx_shape[p] for p in perm) == tflite_shape
    if as_first and not as_last:
        return first
    if as_last and not as_first:
        return last
    if not as_first:
        return "unknown"
    if onnx_value is None or tflite_value is None:
        return "ambiguous"
    onnx_value = np.asarray(onnx_value, dtype=np.float64)
    tflite_value = np.asarray(tflite_value, dtype=np.float64)
    error_first = np.abs(onnx_value - tflite_value).max()
    error_last = np.abs(onnx_value.transpose(perm) - tflite_value).max()
    return first if error_first <= error_last else last


# ---------------------------------------------------------------------------------------------
# Logs


def keep_log(log_text: str, log_path: Optional[Path], prefix: str) -> Path:
    """Write a log where it outlives the temporary working directory; returns its path."""
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".log")
        os.close(fd)
        log_path = Path(name)
        log_path.write_text(log_text, encoding="utf-8")
    else:
        with atomic_path(log_path) as tmp:
            tmp.write_text(log_text, encoding="utf-8")
    return Path(log_path)


# ---------------------------------------------------------------------------------------------
# Checking what came out


def probe_tflite(path: Path) -> Tuple[list, list]:
    """Load ``path`` in LiteRT and run it once on zeros; returns its (input, output) TensorSpecs.

    Raises :class:`EdgematteError` when it does not load, does not run or gives non-finite numbers.
    """
    from ..runtime.backends.litert import LiteRTBackend

    backend = LiteRTBackend(path, threads=1)
    try:
        outputs = backend.run_feeds([np.zeros([max(d, 1) for d in spec.shape], dtype=spec.dtype)
                                     for spec in backend.inputs])
    except (RuntimeError, ValueError) as e:
        raise EdgematteError(f"{path}: LiteRT cannot run this model ({str(e).strip().splitlines()[0]})") from e
    if any(np.issubdtype(out.dtype, np.floating) and not np.isfinite(out).all() for out in outputs):
        raise EdgematteError(f"{path}: LiteRT gives non-finite outputs on a zero input")
    return backend.inputs, backend.outputs


def _match_onnx(tflite_specs, onnx_specs: List[dict]) -> List[dict]:
    """The ONNX tensor for each TFLite tensor: by name, else by position."""
    by_name = {s["name"]: s for s in onnx_specs}
    if all(t.name in by_name for t in tflite_specs):
        return [by_name[t.name] for t in tflite_specs]
    if len(tflite_specs) == len(onnx_specs):
        return list(onnx_specs)
    return [None] * len(tflite_specs)


def input_layout(onnx_shape: Sequence[int], tflite_shape: Sequence[int], layout: str) -> str:
    """An input's layout in onnx2tf's TFLite model, converted with ``layout``: :func:`tensor_layout`, and where
    the shape cannot tell (``[1, 16, 16, 16]``) onnx2tf's own rule (``ops/Input.py``): every rank 3-5 input
    is moved channels-last, except the inputs ``-k`` keeps (all of them under ``"nchw"``)."""
    found = tensor_layout(onnx_shape, tflite_shape)
    if found != "ambiguous":
        return found
    first, last = layout_names(len(onnx_shape))
    return last if layout == "nhwc" else first


def _describe(tflite_specs, onnx_specs: List[dict], layout: Optional[str] = None) -> List[dict]:
    """Name, shape, dtype and layout of each TFLite tensor beside its ONNX twin; ``layout``: the conversion's,
    given for inputs only (an output's ambiguous layout is settled by running, :func:`_settle_ambiguous_layouts`)."""
    described = []
    for spec, onnx_spec in zip(tflite_specs, _match_onnx(tflite_specs, onnx_specs)):
        if onnx_spec is None:
            found = "unknown"
        elif layout is None:
            found = tensor_layout(onnx_spec["shape"], spec.shape)
        else:
            found = input_layout(onnx_spec["shape"], spec.shape, layout)
        entry = {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype,
                 "onnx_name": onnx_spec["name"] if onnx_spec else None,
                 "onnx_shape": onnx_spec["shape"] if onnx_spec else None, "layout": found}
        if spec.quant is not None:
            entry["quant"] = {"scale": spec.quant[0], "zero_point": spec.quant[1]}
        described.append(entry)
    return described


def _settle_ambiguous_layouts(onnx_bytes: bytes, tflite_path: Path, entry: dict) -> None:
    """Decide ambiguous output layouts (e.g. ``[1, 8, 8, 8]``) by running ONNX Runtime and LiteRT once."""
    if not any(o["layout"] == "ambiguous" for o in entry["outputs"]):
        return
    import onnxruntime

    from ..runtime.backends.litert import LiteRTBackend

    rng = np.random.default_rng(0)
    xs = {e["onnx_name"]: rng.random(e["onnx_shape"], dtype=np.float32) for e in entry["inputs"]}
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    onnx_outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, xs)))
    tflite_outputs = LiteRTBackend(tflite_path, threads=1).run_feeds(
        [onnx_to_layout(xs[e["onnx_name"]], e["layout"]) for e in entry["inputs"]])
    for output, tflite_value in zip(entry["outputs"], tflite_outputs):
        if output["layout"] == "ambiguous" and output["onnx_name"] in onnx_outputs:
            output["layout"] = tensor_layout(output["onnx_shape"], output["shape"],
                                             onnx_outputs[output["onnx_name"]], tflite_value)


# ---------------------------------------------------------------------------------------------
# The conversion


def convert_to_tflite(onnx_path, out_dir, layout: str = "nhwc", fp16: bool = True,
                      file_names: Optional[Dict[str, str]] = None, saved_model_dir=None, log_path=None,
                      sample_images: Optional[np.ndarray] = None, timeout_s: float = ONNX2TF_TIMEOUT_S,
                      name: Optional[str] = None) -> dict:
    """Convert a fixed-shape float ONNX model to TFLite fp32 (and fp16) with onnx2tf.

    ``layout``: ``"nhwc"`` (inputs transposed to channels-last) or ``"nchw"`` (inputs as in ONNX).
    ``file_names``: precision (``"fp32"``, ``"fp16"``) -> file name in ``out_dir``; defaults
    ``model_fp32.tflite`` / ``model_fp16.tflite``. The fp16 model stores float16 weights and
    computes with float32 inputs and outputs on the CPU.
    ``saved_model_dir``: where to keep onnx2tf's TensorFlow SavedModel (for
    :func:`edgematte.quant.tflite.quantize_int8`).
    ``log_path``: where the onnx2tf log goes on success (default ``out_dir/onnx2tf.log``) and on
    failure (default: a kept temporary file, named in the error).
    ``sample_images``: float32 ``[K, H, W, 3]`` in 0..1 that onnx2tf uses for its internal checks;
    default :func:`synthetic_sample_images`. ``name``: what errors and warnings call the model (``onnx_path``).

    The ONNX file is never modified (onnx2tf reads a copy with the ``onnx2tf_input`` repairs,
    :func:`repair_bridge`); nothing is written to the current directory; nothing is
    downloaded. Each file onnx2tf wrote gets the ``tflite`` repairs, proven bit for bit in LiteRT
    (:func:`~edgematte.converter.tflite_repairs.repair_tflite_file`; ``tflite_repairs`` lists them as
    :func:`registry.summary` does). Files appear in ``out_dir`` only after every one of them loaded and ran in LiteRT,
    each written atomically. Raises :class:`EdgematteError` with one line on any failure.

    Returns ``{"onnx", "onnx_sha256", "layout", "files": {precision: {"path", "precision", "bytes",
    "sha256", "inputs", "outputs", "tflite_repairs"}}, "saved_model_dir", "log_path", "onnx2tf_version",
    "tensorflow_version", "wall_time_s", "applied_repairs", "repairs", "repair_check"}``; each
    input/output is ``{"name", "shape", "dtype", "layout", "onnx_name", "onnx_shape"}`` with ``layout``
    as :func:`tensor_layout` reports it. ``applied_repairs``: the repairs of the copy onnx2tf read
    (:func:`registry.summary`: ``{"name", "kind": "onnx2tf_input", "matched", "changed", "why"}``),
    ``repairs`` their per-match records, ``repair_check`` :func:`repair_bridge`'s proof (``None``: nothing
    rewritten). ``recovered``: ``None``, or when onnx2tf failed after its SavedModel was complete what
    :func:`recover_from_saved_model` returned; ``not_built``: ``{precision: why}`` for a requested fp16 file
    that could not be had then (``files`` lacks it).
    """
    started = time.perf_counter()
    if layout not in LAYOUTS:
        raise EdgematteError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    onnx_path, out_dir, names = Path(onnx_path), Path(out_dir), dict(DEFAULT_FILE_NAMES, **(file_names or {}))
    where = name or str(onnx_path)
    precisions = ["fp32"] + (["fp16"] if fp16 else [])
    onnx_bytes, onnx_inputs, onnx_outputs = read_onnx_interface(onnx_path)
    bridge_bytes, applied, repair_check = repair_bridge(onnx_bytes, onnx_inputs, where=where)
    images = _check_sample_images(synthetic_sample_images() if sample_images is None else sample_images)
    env_path = python_tool_env()["PATH"]
    if shutil.which("onnxsim", path=env_path) is None:
        raise EdgematteError(f"onnxsim not found next to {sys.executable}; onnx2tf needs it (pip install onnxsim)")

    with tempfile.TemporaryDirectory(prefix="edgematte-onnx2tf-") as workdir:
        workdir = Path(workdir)
        # a private copy (repaired): onnx2tf rewrites the file it is given
        (workdir / "model.onnx").write_bytes(bridge_bytes)
        np.save(workdir / ONNX2TF_SAMPLE_IMAGES_NAME, images)
        argv = [sys.executable, "-c", "import sys; from onnx2tf import main; sys.exit(main())",
                "-i", "model.onnx", "-o", "saved_model"]
        if layout == "nchw":
            keep = [s["name"] for s in onnx_inputs if len(s["shape"]) >= 3]
            if keep:
                argv += ["-k", *keep]
        done = run_tool(argv, what="onnx2tf", timeout_s=timeout_s, cwd=workdir, env=python_tool_env(),
                        log_file=workdir / "onnx2tf.log")
        returncode = done.returncode
        log_text = clean_log(done.output)

        produced = {p: workdir / "saved_model" / f"model_{ONNX2TF_SUFFIX[p]}.tflite" for p in precisions}
        recovered = None
        try:
            if returncode != 0:
                recovered = recover_from_saved_model(workdir / "saved_model", produced, returncode, log_text,
                                                     [s["name"] for s in onnx_outputs], timeout_s)
                for precision in recovered["not_built"]:
                    del produced[precision]
            missing = [p.name for p in produced.values() if not p.is_file() or p.stat().st_size == 0]
            if missing:
                raise EdgematteError(f"onnx2tf exited 0 but wrote no {', '.join(missing)}: {last_error_line(log_text)}")
            files = {}
            for precision, path in produced.items():
                tflite_repairs = registry.summary(repair_tflite_file(path, where=f"{where} ({precision} TFLite)"))
                tflite_inputs, tflite_outputs = probe_tflite(path)
                files[precision] = {"precision": precision, "inputs": _describe(tflite_inputs, onnx_inputs, layout),
                                    "outputs": _describe(tflite_outputs, onnx_outputs),
                                    "tflite_repairs": tflite_repairs}
                _settle_ambiguous_layouts(onnx_bytes, path, files[precision])
        except EdgematteError as e:
            kept = keep_log(log_text, Path(log_path) if log_path else None, "edgematte-onnx2tf-")
            raise EdgematteError(f"{where}: TFLite conversion failed: {e} (log: {kept})") from None

        # everything checked: publish
        out_dir.mkdir(parents=True, exist_ok=True)
        for precision, path in produced.items():
            target = out_dir / names[precision]
            with atomic_path(target, suffix=".tflite") as tmp:
                shutil.copyfile(path, tmp)
            files[precision].update(path=str(target), bytes=target.stat().st_size, sha256=sha256_file(target))
        kept_saved_model = None
        if saved_model_dir is not None:
            with atomic_dir(saved_model_dir) as tmp:
                shutil.copytree(workdir / "saved_model", tmp, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("*.tflite"))
            kept_saved_model = str(saved_model_dir)
        kept_log = keep_log(log_text, Path(log_path) if log_path else out_dir / DEFAULT_LOG_NAME, "")

    return {
        "onnx": str(onnx_path),
        "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "layout": layout,
        "files": files,
        "saved_model_dir": kept_saved_model,
        "log_path": str(kept_log),
        "onnx2tf_version": versions.describe(versions.installed_version("onnx2tf")),
        "tensorflow_version": versions.describe(versions.installed_version("tensorflow")),
        "wall_time_s": round(time.perf_counter() - started, 2),
        "applied_repairs": registry.summary(applied),
        "repairs": [record for repair in applied for record in repair["records"]],
        "repair_check": repair_check,
        "recovered": recovered,
        "not_built": recovered["not_built"] if recovered else {},
    }


def recover_from_saved_model(saved_model_dir: Path, produced: Dict[str, Path], returncode: int, log_text: str,
                             output_names: Sequence[str], timeout_s: float) -> dict:
    """After onnx2tf failed with ``returncode``: the TFLite files that can still be had, when its SavedModel was
    complete (its log says so and ``saved_model.pb`` is there). Deep nets at full size get onnx2tf killed for
    memory after that point (:mod:`edgematte.converter.saved_model_tflite`).

    The float32 file onnx2tf finished before it died (its log says so) is kept as it is; every other precision in
    ``produced`` is converted from the SavedModel in a process of its own, into its ``produced`` path. Raises
    :class:`EdgematteError` (one line) when the SavedModel was not complete or the float32 model cannot be had;
    a float16 model that cannot be had is only reported. Returns ``{"onnx2tf": how onnx2tf ended, "files":
    {precision: "onnx2tf" | "saved_model"}, "not_built": {precision: why}}``.
    """
    how = died_with(returncode) or f"exited with {returncode}"
    ended = f"onnx2tf {how}: {last_error_line(log_text)}"
    if ONNX2TF_SAVED_MODEL_DONE not in log_text or not (saved_model_dir / "saved_model.pb").is_file():
        raise EdgematteError(ended)
    files, not_built = {}, {}
    for precision, path in produced.items():
        if precision == "fp32" and ONNX2TF_FP32_DONE in log_text and path.is_file() and path.stat().st_size:
            files[precision] = "onnx2tf"
            continue
        path.unlink(missing_ok=True)  # whatever the killed process left half-written
        try:
            convert_saved_model(saved_model_dir, precision, path, output_names, timeout_s)
        except EdgematteError as e:
            if precision == "fp32":
                raise EdgematteError(f"{ended}; then {e}") from None
            not_built[precision] = f"{ended}; then {e}"
            continue
        files[precision] = "saved_model"
    return {"onnx2tf": ended, "files": files, "not_built": not_built}
