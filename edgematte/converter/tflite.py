"""ONNX -> TFLite with onnx2tf, its traps contained; full-integer quantization with TensorFlow's converter.

onnx2tf (1.29.24, TOOLCHAIN.md) is run in a subprocess and never trusted on its own word:

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

Layouts: ``"nhwc"`` (default; what TFLite delegates want) transposes every 4-D input to NHWC;
``"nchw"`` keeps the inputs as in ONNX (onnx2tf ``-k``; it inserts one TRANSPOSE). onnx2tf writes
4-D *outputs* NHWC either way: alpha is ``[N, H, W, 1]`` where ONNX has ``[N, 1, H, W]``. The layout
of every input and output is recorded in the returned info.

INT8: :func:`convert_to_tflite` can keep onnx2tf's TensorFlow SavedModel (``saved_model_dir``);
:func:`quantize_int8` turns it into a full-integer model from a calibration array with
``tf.lite.TFLiteConverter`` (the same numbers onnx2tf's ``-oiqt`` gives, TOOLCHAIN.md), again in a
subprocess so TensorFlow never loads into the calling process.
"""

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..core.errors import EdgematteError
from ..core.fsutil import atomic_dir, atomic_path, sha256_file

LAYOUTS = ("nhwc", "nchw")
# Our precision name -> the suffix onnx2tf gives the file (``<onnx stem>_<suffix>.tflite``).
ONNX2TF_SUFFIX = {"fp32": "float32", "fp16": "float16"}
DEFAULT_FILE_NAMES = {"fp32": "model_fp32.tflite", "fp16": "model_fp16.tflite"}
DEFAULT_LOG_NAME = "onnx2tf.log"
# onnx2tf loads this from the cwd instead of downloading it (utils/common_functions.py).
ONNX2TF_SAMPLE_IMAGES_NAME = "calibration_image_sample_data_20x128x128x3_float32.npy"
SAMPLE_IMAGES_SHAPE = (20, 128, 128, 3)
ONNX2TF_TIMEOUT_S = 1800
QUANTIZE_TIMEOUT_S = 3600
INT8_IO_DTYPES = ("float32", "int8")

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# glog / absl lines from TensorFlow (E0000 00:00:... , W1124 21:12:...) and TF's own timestamped logs.
_TF_NOISE = re.compile(r"^([EWIF]\d{4} \d\d:\d\d|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [EWIF] )")
_PYTHON_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt))(: .*)?$")
# onnx2tf's "ERROR:" lines that announce a traceback rather than say what went wrong.
_GENERIC_ONNX2TF_ERRORS = ("the trace log is below", "read this and deal with it")


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
# Layouts


def _channels_last_perm(rank: int) -> Tuple[int, ...]:
    return (0,) + tuple(range(2, rank)) + (1,)


def _layout_names(rank: int) -> Tuple[str, str]:
    """``(channels-first name, channels-last name)`` for a tensor rank: nchw/nhwc, ncw/nwc, ncdhw/ndhwc."""
    spatial = {3: "w", 4: "hw", 5: "dhw"}.get(rank)
    if spatial is None:
        return "as_onnx", "as_onnx"
    return f"nc{spatial}", f"n{spatial}c"


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
    first, last = _layout_names(rank)
    if rank < 3 or rank > 5:
        return "as_onnx" if onnx_shape == tflite_shape else "unknown"
    perm = _channels_last_perm(rank)
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


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """An ONNX-layout (channels-first) array rearranged to ``layout`` (``nhwc``, ``nwc``... or as is)."""
    first, last = _layout_names(x.ndim)
    if layout == last and last != first:
        return np.ascontiguousarray(x.transpose(_channels_last_perm(x.ndim)))
    return x


def from_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """Inverse of :func:`to_layout`: a ``layout`` array back to ONNX's channels-first axes."""
    first, last = _layout_names(x.ndim)
    if layout == last and last != first:
        return np.ascontiguousarray(x.transpose(np.argsort(_channels_last_perm(x.ndim))))
    return x


# ---------------------------------------------------------------------------------------------
# Running tools in a subprocess


def _tool_env(extra_pythonpath: Optional[Path] = None) -> Dict[str, str]:
    """The caller's environment with this interpreter's bin first on PATH (onnx2tf runs ``onnxsim``)."""
    env = dict(os.environ)
    # not resolved: in a venv, sys.executable is the venv's bin/python symlink, which is the point
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    if extra_pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(extra_pythonpath), env.get("PYTHONPATH")) if p)
    return env


def _run_logged(argv: Sequence[str], cwd: Path, log_file: Path, timeout_s: float, what: str,
                extra_pythonpath: Optional[Path] = None) -> int:
    """Run ``argv`` in ``cwd`` with stdout+stderr going to ``log_file``; returns the exit code."""
    env = _tool_env(extra_pythonpath)
    with open(log_file, "wb") as log:
        try:
            done = subprocess.run(list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.write(f"\nERROR: {what} did not finish within {timeout_s:.0f} s\n".encode())
            return -1
    return done.returncode


def clean_log(raw: str) -> str:
    """A tool log without ANSI colour codes."""
    return _ANSI_ESCAPE.sub("", raw)


def last_error_line(log_text: str) -> str:
    """The most telling error line of an onnx2tf / TensorFlow log (one line, at most 300 characters).

    onnx2tf's own last ``ERROR:`` line (e.g. ``FancyMatte OP is not yet implemented.``) plus the
    final Python exception (``ModuleNotFoundError: ...``) when both exist; else whichever exists;
    else the last line that is not TensorFlow start-up noise.
    """
    lines = [ln.strip() for ln in clean_log(log_text).splitlines()]
    lines = [ln for ln in lines if ln and not _TF_NOISE.match(ln)]
    onnx2tf_error = next(
        (ln for ln in reversed(lines)
         if ln.startswith("ERROR:") and not any(g in ln.lower() for g in _GENERIC_ONNX2TF_ERRORS)),
        None,
    )
    exception = next((ln for ln in reversed(lines) if _PYTHON_EXCEPTION.match(ln)), None)
    parts = [p for p in (onnx2tf_error, exception) if p]
    if not parts:
        parts = lines[-1:] or ["no output"]
    message = " / ".join(parts)
    return message if len(message) <= 300 else message[:297] + "..."


def _keep_log(log_text: str, log_path: Optional[Path], prefix: str) -> Path:
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


def _tool_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# ---------------------------------------------------------------------------------------------
# Checking what came out


def _probe_tflite(path: Path) -> Tuple[list, list]:
    """Load ``path`` in LiteRT and run it once on zeros; returns its (input, output) TensorSpecs.

    Raises :class:`EdgematteError` when it does not load, does not run or gives non-finite numbers.
    """
    from ..runtime.backends.litert import LiteRTBackend

    backend = LiteRTBackend(path, threads=1)
    if len(backend.inputs) != 1:
        # the Backend contract is one input; the matting models have one
        raise EdgematteError(f"{path}: expected one input, the TFLite model has {len(backend.inputs)}")
    spec = backend.inputs[0]
    try:
        out = backend.run(np.zeros([max(d, 1) for d in spec.shape], dtype=spec.dtype))
    except (RuntimeError, ValueError) as e:
        raise EdgematteError(f"{path}: LiteRT cannot run this model ({str(e).strip().splitlines()[0]})") from e
    if np.issubdtype(out.dtype, np.floating) and not np.isfinite(out).all():
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


def _describe(tflite_specs, onnx_specs: List[dict]) -> List[dict]:
    described = []
    for spec, onnx_spec in zip(tflite_specs, _match_onnx(tflite_specs, onnx_specs)):
        entry = {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype,
                 "onnx_name": onnx_spec["name"] if onnx_spec else None,
                 "onnx_shape": onnx_spec["shape"] if onnx_spec else None,
                 "layout": tensor_layout(onnx_spec["shape"], spec.shape) if onnx_spec else "unknown"}
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

    (input_entry,) = entry["inputs"]
    x = np.random.default_rng(0).random(input_entry["onnx_shape"], dtype=np.float32)
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    onnx_outputs = dict(zip([o.name for o in session.get_outputs()],
                            session.run(None, {session.get_inputs()[0].name: x})))
    tflite_outputs = LiteRTBackend(tflite_path, threads=1).run_all(to_layout(x, input_entry["layout"]))
    for output, tflite_value in zip(entry["outputs"], tflite_outputs):
        if output["layout"] == "ambiguous" and output["onnx_name"] in onnx_outputs:
            output["layout"] = tensor_layout(output["onnx_shape"], output["shape"],
                                             onnx_outputs[output["onnx_name"]], tflite_value)


# ---------------------------------------------------------------------------------------------
# The conversion


def convert_to_tflite(onnx_path, out_dir, layout: str = "nhwc", fp16: bool = True,
                      file_names: Optional[Dict[str, str]] = None, saved_model_dir=None, log_path=None,
                      sample_images: Optional[np.ndarray] = None, timeout_s: float = ONNX2TF_TIMEOUT_S) -> dict:
    """Convert a fixed-shape float ONNX model to TFLite fp32 (and fp16) with onnx2tf.

    ``layout``: ``"nhwc"`` (inputs transposed to channels-last) or ``"nchw"`` (inputs as in ONNX).
    ``file_names``: precision (``"fp32"``, ``"fp16"``) -> file name in ``out_dir``; defaults
    ``model_fp32.tflite`` / ``model_fp16.tflite``. The fp16 model stores float16 weights and
    computes with float32 inputs and outputs on the CPU.
    ``saved_model_dir``: where to keep onnx2tf's TensorFlow SavedModel (for :func:`quantize_int8`).
    ``log_path``: where the onnx2tf log goes on success (default ``out_dir/onnx2tf.log``) and on
    failure (default: a kept temporary file, named in the error).
    ``sample_images``: float32 ``[K, H, W, 3]`` in 0..1 that onnx2tf uses for its internal checks;
    default :func:`synthetic_sample_images`.

    The ONNX file is never modified; nothing is written to the current directory; nothing is
    downloaded. Files appear in ``out_dir`` only after every one of them loaded and ran in LiteRT,
    each written atomically. Raises :class:`EdgematteError` with one line on any failure.

    Returns ``{"onnx", "onnx_sha256", "layout", "files": {precision: {"path", "precision", "bytes",
    "sha256", "inputs", "outputs"}}, "saved_model_dir", "log_path", "onnx2tf_version",
    "tensorflow_version", "wall_time_s"}``; each input/output is ``{"name", "shape", "dtype",
    "layout", "onnx_name", "onnx_shape"}`` with ``layout`` as :func:`tensor_layout` reports it.
    """
    started = time.perf_counter()
    if layout not in LAYOUTS:
        raise EdgematteError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    onnx_path = Path(onnx_path)
    out_dir = Path(out_dir)
    names = dict(DEFAULT_FILE_NAMES)
    names.update(file_names or {})
    precisions = ["fp32"] + (["fp16"] if fp16 else [])
    onnx_bytes, onnx_inputs, onnx_outputs = read_onnx_interface(onnx_path)
    images = _check_sample_images(synthetic_sample_images() if sample_images is None else sample_images)
    env_path = _tool_env()["PATH"]
    if shutil.which("onnxsim", path=env_path) is None:
        raise EdgematteError(f"onnxsim not found next to {sys.executable}; onnx2tf needs it (pip install onnxsim)")

    with tempfile.TemporaryDirectory(prefix="edgematte-onnx2tf-") as workdir:
        workdir = Path(workdir)
        # a private copy: onnx2tf rewrites the file it is given
        (workdir / "model.onnx").write_bytes(onnx_bytes)
        np.save(workdir / ONNX2TF_SAMPLE_IMAGES_NAME, images)
        argv = [sys.executable, "-c", "import sys; from onnx2tf import main; sys.exit(main())",
                "-i", "model.onnx", "-o", "saved_model"]
        if layout == "nchw":
            keep = [s["name"] for s in onnx_inputs if len(s["shape"]) >= 3]
            if keep:
                argv += ["-k", *keep]
        raw_log = workdir / "onnx2tf.log"
        returncode = _run_logged(argv, workdir, raw_log, timeout_s, "onnx2tf")
        log_text = clean_log(raw_log.read_text(encoding="utf-8", errors="replace"))

        produced = {p: workdir / "saved_model" / f"model_{ONNX2TF_SUFFIX[p]}.tflite" for p in precisions}
        try:
            if returncode != 0:
                raise EdgematteError(f"onnx2tf exited with {returncode}: {last_error_line(log_text)}")
            missing = [p.name for p in produced.values() if not p.is_file() or p.stat().st_size == 0]
            if missing:
                raise EdgematteError(f"onnx2tf exited 0 but wrote no {', '.join(missing)}: {last_error_line(log_text)}")
            files = {}
            for precision, path in produced.items():
                tflite_inputs, tflite_outputs = _probe_tflite(path)
                files[precision] = {"precision": precision, "inputs": _describe(tflite_inputs, onnx_inputs),
                                    "outputs": _describe(tflite_outputs, onnx_outputs)}
                _settle_ambiguous_layouts(onnx_bytes, path, files[precision])
        except EdgematteError as e:
            kept = _keep_log(log_text, Path(log_path) if log_path else None, "edgematte-onnx2tf-")
            raise EdgematteError(f"{onnx_path}: TFLite conversion failed: {e} (log: {kept})") from None

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
        kept_log = _keep_log(log_text, Path(log_path) if log_path else out_dir / DEFAULT_LOG_NAME, "")

    return {
        "onnx": str(onnx_path),
        "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "layout": layout,
        "files": files,
        "saved_model_dir": kept_saved_model,
        "log_path": str(kept_log),
        "onnx2tf_version": _tool_version("onnx2tf"),
        "tensorflow_version": _tool_version("tensorflow"),
        "wall_time_s": round(time.perf_counter() - started, 2),
    }


# ---------------------------------------------------------------------------------------------
# Full-integer quantization
#
# TensorFlow's converter quantizes in two stages: calibration (the float model runs on the
# calibration data and records every activation's min/max) and quantization (MLIR turns the
# calibrated model into an int8 one). Calibration is the slow part (about 30 s for PP-MattingV2 at
# 512x512 with 32 images); quantization takes about a second. The stages are run separately here
# so that one calibration serves many variants (float/int8 I/O, layers kept float):
# ``tf.lite.TFLiteConverter`` with ``_experimental_calibrate_only`` gives the calibrated model,
# ``tensorflow.lite.python.convert.mlir_quantize`` quantizes it exactly as ``converter.convert()``
# does (same MAD, bit for bit on the tiny test net) and takes ``denylisted_nodes`` /
# ``denylisted_ops``, the mechanism behind ``tf.lite.experimental.QuantizationDebugOptions``.
# What TF 2.19 does with them (verified on PP-MattingV2): a denylisted node is named by its op's
# output tensor name, the full fused name (``model/tf.nn.relu_5/Relu;model/tf.math.add_9/Add;...``,
# a part of it matches nothing); an op type is the builtin name in capitals (``BATCH_MATMUL``;
# ``tfl.batch_matmul`` matches nothing). Neither is reported when it matches nothing, so every
# written model is checked: each kept node and op must compute in float. Denylisting happens after
# scales are assigned, so a kept op does not untie the shared scale of its neighbours (e.g. the
# inputs of a CONCATENATION keep the concatenation's scale).
#
# Shared scales are the largest int8 error on PP-MattingV2. TFLite's int8 CONCATENATION (and
# REDUCE_MAX, PAD, AVERAGE_POOL_2D, RESIZE_BILINEAR, RESHAPE...) must have one scale for all inputs and
# the output, and MLIR propagates it upstream through every such op. PP-MattingV2 concatenates
# channel max/mean maps of features in [0, 5.4] with those of features in [0, 204]: the narrow
# features feeding the detail branch were quantized at the wide scale (about 7 levels), which alone
# cost 0.0148 of the 0.0179 MAD of plain full int8. :func:`_untie_concatenation_scales` puts an
# identity (MUL by 1.0) in front of each concatenation input whose calibrated range is much narrower
# than the concatenation's; MLIR folds it into a requantizing QUANTIZE (or into a MUL just before
# it), so everything upstream keeps its own scale. Measured: MAD 0.0179 -> 0.0086; the few
# requantizations it adds are elementwise (latency unchanged within this machine's noise).
#
# TF records each activation's absolute min/max over the calibration set, so one outlier pixel
# sets the scale of a whole tensor. ``activation_ranges="mse"`` replaces each recorded range by
# the one that minimises the expected squared error (clipping beyond it plus rounding within it,
# step**2 / 12) over the activation histogram of the calibration tensors: 0.0086 -> 0.0072 on top
# of the untying. It changes scales only, not the graph.

INT8_JOB_KINDS = ("full_integer", "dynamic_range", "layer_errors")
DEFAULT_UNTIE_RATIO = 4.0
ACTIVATION_RANGES = ("minmax", "mse")
DEFAULT_ACTIVATION_RANGES = "mse"
RANGE_HISTOGRAM_BINS = 2048
RANGE_HISTOGRAM_IMAGES = 16
"""Calibration tensors whose activation histograms choose the ``"mse"`` ranges (the first ones)."""
UNTIE_SUFFIX = "/requantize"
_CALIBRATION_KEY_SUFFIX = ".key.json"


def quantize_int8(saved_model_dir, calib_batches: Union[np.ndarray, Sequence[np.ndarray], None], out_path,
                  io_dtype: str = "float32", keep_float_nodes: Sequence[str] = (), keep_float_ops: Sequence[str] = (),
                  calibrated_model=None, untie_ratio: Optional[float] = DEFAULT_UNTIE_RATIO,
                  activation_ranges: str = DEFAULT_ACTIVATION_RANGES, log_path=None,
                  timeout_s: float = QUANTIZE_TIMEOUT_S) -> Path:
    """Full-integer (int8 weights and activations) TFLite model from a SavedModel and calibration data.

    ``saved_model_dir``: a SavedModel with one input, e.g. ``convert_to_tflite(..., saved_model_dir=)``.
    ``calib_batches``: float32 ``[K, *input_shape]`` (or K arrays of the input shape) in the
    SavedModel's input layout (NHWC after a default conversion) and value range (normalized the way
    the model expects its input). ``io_dtype``: ``"float32"`` keeps float input/output (a QUANTIZE /
    DEQUANTIZE pair inside), ``"int8"`` makes them int8 (quantize with
    :func:`edgematte.runtime.backends.litert.quantize`).

    ``keep_float_nodes``: ops to leave in float, each named by its output tensor's full name in the
    TFLite model (as :func:`edgematte.quant.tflite_int8.model_ops` lists them, e.g.
    ``"model_111/tf.concat_23/concat"``); their int8 inputs are dequantized and their outputs
    quantized again. ``keep_float_ops``: TFLite builtin op types kept float everywhere
    (``"BATCH_MATMUL"``). A name or type that is not in the model, or that the quantizer leaves
    int8 anyway (MLIR does for some scale-preserving ops, e.g. an AVERAGE_POOL_2D reading the model
    input), raises :class:`EdgematteError`.

    ``calibrated_model``: where to keep the calibrated model (the float model with its recorded
    activation ranges) so that later calls skip the calibration. If the file exists and was made
    from the same SavedModel, calibration data and ``activation_ranges`` (a ``.key.json`` beside it
    records them; ``calib_batches=None`` accepts it unchecked) it is used; else it is (re)written.

    ``activation_ranges``: ``"minmax"`` (TensorFlow's: absolute min/max over the calibration data)
    or ``"mse"`` (ranges that minimise clipping plus rounding error over the activation histograms
    of the first :data:`RANGE_HISTOGRAM_IMAGES` calibration tensors; see the comment above).

    ``untie_ratio``: a CONCATENATION input whose calibrated range is at least this many times
    narrower than the concatenation's output gets its own scale (a requantize in front of the
    concatenation, see the comment above); ``None`` keeps TensorFlow's shared scales.

    Runs TensorFlow in a subprocess; the result must load and run in LiteRT and honour the kept
    names before it is written (atomically) to ``out_path``. Returns ``out_path``.
    """
    job = {"kind": "full_integer", "out": out_path, "io_dtype": io_dtype,
           "keep_float_nodes": list(keep_float_nodes), "keep_float_ops": list(keep_float_ops)}
    (written,), _ = _run_int8_jobs(saved_model_dir, calib_batches, [job], calibrated_model=calibrated_model,
                                   untie_ratio=untie_ratio, activation_ranges=activation_ranges,
                                   log_path=log_path, timeout_s=timeout_s)
    return written


def _tflite_ops(path) -> List[dict]:
    """Every op of a ``.tflite`` model in execution order, read with LiteRT.

    Each op is ``{"index", "op", "inputs", "outputs"}``; each input/output tensor is ``{"index",
    "name", "dtype", "shape", "scale", "zero_point"}`` (``scale`` None for float tensors and
    per-channel weights show their first scale). Constant inputs (weights, biases, shapes) are
    listed too; optional inputs that are absent are left out.
    """
    from ..runtime.backends.litert import _import_interpreter

    interpreter_class, _, _ = _import_interpreter()
    interpreter = interpreter_class(model_path=str(path))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}

    def describe(index):
        detail = tensors[index]
        scales = detail.get("quantization_parameters", {}).get("scales")
        zero_points = detail.get("quantization_parameters", {}).get("zero_points")
        quantized = scales is not None and len(scales) > 0
        return {"index": int(index), "name": detail["name"], "dtype": np.dtype(detail["dtype"]).name,
                "shape": [int(d) for d in detail["shape"]],
                "scale": float(scales[0]) if quantized else None,
                "zero_point": int(zero_points[0]) if quantized else None}

    return [{"index": int(op["index"]), "op": op["op_name"],
             "inputs": [describe(i) for i in op["inputs"] if i >= 0],
             "outputs": [describe(i) for i in op["outputs"]]}
            for op in interpreter._get_ops_details()]  # the only op-level view LiteRT's Python API has


def _check_kept_float(path: Path, keep_float_nodes: Sequence[str], keep_float_ops: Sequence[str]) -> None:
    """Raise :class:`EdgematteError` unless every kept node and op type of ``path`` computes in float."""
    ops = _tflite_ops(path)
    by_output = {op["outputs"][0]["name"]: op for op in ops if op["outputs"]}
    for name in keep_float_nodes:
        op = by_output.get(name)
        if op is None:
            raise EdgematteError(f"keep-float node {name!r} is not the output of any op in the model")
        if op["outputs"][0]["dtype"] != "float32":
            raise EdgematteError(f"keep-float node {name!r} ({op['op']}) was quantized anyway "
                                 f"(its output is {op['outputs'][0]['dtype']})")
    for op_type in keep_float_ops:
        matching = [op for op in ops if op["op"] == op_type]
        if not matching:
            present = sorted({op["op"] for op in ops} - {"QUANTIZE", "DEQUANTIZE"})
            raise EdgematteError(f"keep-float op type {op_type!r} is not in the model (it has {', '.join(present)})")
        quantized = [op for op in matching if op["outputs"][0]["dtype"] != "float32"]
        if quantized:
            raise EdgematteError(f"keep-float op type {op_type!r}: {len(quantized)} of {len(matching)} ops were "
                                 f"quantized anyway (e.g. {quantized[0]['outputs'][0]['name']!r})")


def _saved_model_hash(saved_model_dir: Path) -> str:
    """sha256 over every file of a SavedModel (relative path and content), in path order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in saved_model_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(saved_model_dir).as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()


def _calibration_key(saved_model_dir: Path, calibration: np.ndarray, activation_ranges: str) -> dict:
    return {"saved_model_sha256": _saved_model_hash(saved_model_dir),
            "calibration_sha256": hashlib.sha256(repr(calibration.shape).encode() + calibration.tobytes()).hexdigest(),
            "activation_ranges": activation_ranges}


def _stack_calibration(calib_batches) -> np.ndarray:
    calibration = np.stack([np.asarray(b, dtype=np.float32) for b in calib_batches])
    if calibration.shape[0] < 1 or not np.isfinite(calibration).all():
        raise EdgematteError(
            f"calibration data must be finite float32 [K, *input_shape], got shape {calibration.shape}"
        )
    return calibration


def _run_int8_jobs(saved_model_dir, calib_batches, jobs: Sequence[dict], calibrated_model=None,
                   untie_ratio: Optional[float] = DEFAULT_UNTIE_RATIO,
                   activation_ranges: str = DEFAULT_ACTIVATION_RANGES, log_path=None,
                   timeout_s: float = QUANTIZE_TIMEOUT_S, fail_soft: bool = False) -> Tuple[list, dict]:
    """Run TensorFlow quantization jobs in one subprocess, sharing one calibration.

    Each job is a dict with ``kind``:

    - ``"full_integer"``: ``out`` (path), ``io_dtype``, ``keep_float_nodes``, ``keep_float_ops`` (see
      :func:`quantize_int8`), optionally ``check_float_nodes`` (the kept nodes that must come out
      float; default all: MLIR may still quantize a denylisted scale-preserving op such as an
      AVERAGE_POOL_2D fed by the model input); the result is ``out``.
    - ``"dynamic_range"``: ``out``; int8 weights, float activations, from the SavedModel itself.
    - ``"layer_errors"``: ``batches`` (float32 ``[K, *input_shape]``), ``keep_float_nodes``,
      ``keep_float_ops``; TensorFlow's QuantizationDebugger runs the int8 model with a float
      reference beside every quantized op (each fed the same quantized input) on the batches. The
      result is one dict per quantized tensor: ``tensor_name``, ``op``, ``tensor_index``,
      ``scale``, ``zero_point``, ``num_elements``, ``mean_error``, ``stddev``, ``max_abs_error``,
      ``mean_squared_error`` (float units), ``float_variance`` (of the float reference output),
      ``rmse_steps`` (root mean squared error / scale: about 0.29 is pure rounding) and ``sqnr_db``
      (10 log10 of float variance over squared error; ``inf`` when there is no error).

    ``calibrated_model``, ``calib_batches``, ``untie_ratio`` and ``activation_ranges``: as in
    :func:`quantize_int8` (the batches are needed only when a calibration has to run; ranges and
    untying apply to the full-integer and layer-error jobs). Every ``.tflite`` written is loaded and run in LiteRT and checked for its
    kept-float names before it is published (atomically).

    Returns ``(results, info)``: one result per job, in order, and ``{"calibrated": "reused" |
    "calibrated", "untied": [{"tensor", "concatenation", "range", "concatenation_range"}, ...],
    "errors": {job index: message}}`` (``untied``: the concatenation inputs given their own scale).
    Raises :class:`EdgematteError` (one line, naming a kept log) on any failure; with ``fail_soft``
    a job that fails on its own gives ``None`` and its message in ``errors`` instead.
    """
    import json

    jobs = [dict(job) for job in jobs]
    for job in jobs:
        if job.get("kind") not in INT8_JOB_KINDS:
            raise EdgematteError(f"unknown quantization job kind {job.get('kind')!r} (known: {', '.join(INT8_JOB_KINDS)})")
        if job["kind"] == "full_integer" and job.get("io_dtype", "float32") not in INT8_IO_DTYPES:
            raise EdgematteError(f"io_dtype must be one of {', '.join(INT8_IO_DTYPES)}, got {job['io_dtype']!r}")
    if activation_ranges not in ACTIVATION_RANGES:
        raise EdgematteError(f"activation_ranges must be one of {', '.join(ACTIVATION_RANGES)}, "
                             f"got {activation_ranges!r}")
    saved_model_dir = Path(saved_model_dir)
    needs_calibrated = any(job["kind"] != "dynamic_range" for job in jobs)
    calibration = _stack_calibration(calib_batches) if calib_batches is not None else None

    reuse = False
    if needs_calibrated and calibrated_model is not None and Path(calibrated_model).is_file():
        key_file = Path(str(calibrated_model) + _CALIBRATION_KEY_SUFFIX)
        key = json.loads(key_file.read_text()) if key_file.is_file() else None
        if calibration is None:
            if key is not None and key.get("activation_ranges") != activation_ranges:
                raise EdgematteError(f"{calibrated_model}: calibrated with {key.get('activation_ranges')!r} "
                                     f"activation ranges, {activation_ranges!r} asked (give calibration data)")
            reuse = True
        elif key is not None and (saved_model_dir / "saved_model.pb").is_file():
            reuse = key == _calibration_key(saved_model_dir, calibration, activation_ranges)
    must_calibrate = needs_calibrated and not reuse
    if (must_calibrate or any(job["kind"] == "dynamic_range" for job in jobs)) and \
            not (saved_model_dir / "saved_model.pb").is_file():
        raise EdgematteError(f"{saved_model_dir}: not a TensorFlow SavedModel (no saved_model.pb)")
    if must_calibrate and calibration is None:
        raise EdgematteError(f"{calibrated_model or saved_model_dir}: no calibrated model to reuse and no "
                             "calibration data given")

    with tempfile.TemporaryDirectory(prefix="edgematte-int8-") as workdir:
        workdir = Path(workdir)
        plan = {"saved_model_dir": str(saved_model_dir.resolve()), "untie_ratio": untie_ratio,
                "untied_out": "untied.json", "jobs": []}
        if must_calibrate:
            np.save(workdir / "calibration.npy", calibration)
            plan["calibration_npy"] = "calibration.npy"
            plan["calibrated_out"] = "calibrated.tflite"
            plan["activation_ranges"] = activation_ranges
        elif needs_calibrated:
            plan["calibrated_in"] = str(Path(calibrated_model).resolve())
        for index, job in enumerate(jobs):
            entry = {"kind": job["kind"], "io_dtype": job.get("io_dtype", "float32"),
                     "keep_float_nodes": list(job.get("keep_float_nodes", ())),
                     "keep_float_ops": list(job.get("keep_float_ops", ())),
                     "produced": f"job{index}" + (".json" if job["kind"] == "layer_errors" else ".tflite"),
                     "error": f"job{index}.error"}
            entry["check_float_nodes"] = list(job.get("check_float_nodes", entry["keep_float_nodes"]))
            if job["kind"] == "layer_errors":
                np.save(workdir / f"job{index}_batches.npy", _stack_calibration(job["batches"]))
                entry["batches_npy"] = f"job{index}_batches.npy"
            plan["jobs"].append(entry)
        (workdir / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
        argv = [sys.executable, "-c",
                "import sys; from edgematte.converter.tflite import _int8_worker; _int8_worker(sys.argv[1])",
                "plan.json"]
        raw_log = workdir / "quantize.log"
        # the worker is this module: make it importable even when edgematte is not installed
        returncode = _run_logged(argv, workdir, raw_log, timeout_s, "TFLite int8 quantization",
                                 extra_pythonpath=Path(__file__).resolve().parents[2])
        log_text = clean_log(raw_log.read_text(encoding="utf-8", errors="replace"))
        results = []
        info = {"calibrated": "calibrated" if must_calibrate else "reused", "untied": [], "errors": {}}
        try:
            if returncode != 0:
                raise EdgematteError(f"exited with {returncode}: {last_error_line(log_text)}")
            if (workdir / plan["untied_out"]).is_file():
                info["untied"] = json.loads((workdir / plan["untied_out"]).read_text(encoding="utf-8"))
            for index, (job, entry) in enumerate(zip(jobs, plan["jobs"])):
                try:
                    results.append(_collect_int8_job(workdir, job, entry, log_text))
                except EdgematteError as e:
                    if not fail_soft:
                        raise
                    info["errors"][index] = str(e)
                    results.append(None)
        except EdgematteError as e:
            kept = _keep_log(log_text, Path(log_path) if log_path else None, "edgematte-int8-")
            raise EdgematteError(f"{saved_model_dir}: int8 quantization failed: {e} (log: {kept})") from None
        if must_calibrate and calibrated_model is not None:
            with atomic_path(calibrated_model, suffix=".tflite") as tmp:
                shutil.copyfile(workdir / plan["calibrated_out"], tmp)
            with atomic_path(str(calibrated_model) + _CALIBRATION_KEY_SUFFIX) as tmp:
                tmp.write_text(json.dumps(_calibration_key(saved_model_dir, calibration, activation_ranges)),
                               encoding="utf-8")
        for index, (job, result) in enumerate(zip(jobs, results)):
            if job["kind"] != "layer_errors" and result is not None:
                with atomic_path(job["out"], suffix=".tflite") as tmp:
                    shutil.copyfile(result, tmp)
                results[index] = Path(job["out"])
        if log_path:
            _keep_log(log_text, Path(log_path), "")
    return results, info


def _collect_int8_job(workdir: Path, job: dict, entry: dict, log_text: str):
    """One job's checked result from the worker's folder (see :func:`_run_int8_jobs`)."""
    import json

    error_file = workdir / entry["error"]
    if error_file.is_file():
        raise EdgematteError(error_file.read_text(encoding="utf-8").strip())
    produced = workdir / entry["produced"]
    if not produced.is_file() or produced.stat().st_size == 0:
        raise EdgematteError(f"no {job['kind']} result written: {last_error_line(log_text)}")
    if job["kind"] == "layer_errors":
        return json.loads(produced.read_text(encoding="utf-8"))
    _probe_tflite(produced)
    _check_kept_float(produced, entry["check_float_nodes"], entry["keep_float_ops"])
    return produced


# ---------------------------------------------------------------------------------------------
# The subprocess side (imports TensorFlow)


def _int8_worker(plan_path: str) -> None:
    """Run the jobs of ``plan.json`` (written by :func:`_run_int8_jobs`) in this process."""
    import json
    import traceback

    plan = json.loads(Path(plan_path).read_text(encoding="utf-8"))
    calibrated = None
    if "calibrated_in" in plan:
        calibrated = Path(plan["calibrated_in"]).read_bytes()
    elif "calibration_npy" in plan:
        calibration = np.load(plan["calibration_npy"])
        calibrated = _calibrate_in_this_process(plan["saved_model_dir"], calibration)
        if plan["activation_ranges"] == "mse":
            calibrated = _mse_ranges_in_this_process(calibrated, calibration[:RANGE_HISTOGRAM_IMAGES])
        Path(plan["calibrated_out"]).write_bytes(calibrated)
    if calibrated is not None and plan["untie_ratio"] is not None:
        calibrated, untied = _untie_concatenation_scales(calibrated, float(plan["untie_ratio"]))
        Path(plan["untied_out"]).write_text(json.dumps(untied), encoding="utf-8")
    for job in plan["jobs"]:
        try:
            if job["kind"] == "full_integer":
                result = _mlir_quantize(calibrated, job["io_dtype"], job["keep_float_nodes"], job["keep_float_ops"])
                Path(job["produced"]).write_bytes(result)
            elif job["kind"] == "dynamic_range":
                Path(job["produced"]).write_bytes(_dynamic_range_in_this_process(plan["saved_model_dir"]))
            else:
                errors = _layer_errors_in_this_process(calibrated, np.load(job["batches_npy"]),
                                                       job["keep_float_nodes"], job["keep_float_ops"])
                Path(job["produced"]).write_text(json.dumps(errors), encoding="utf-8")
        except Exception as e:  # one job's failure (e.g. MLIR refusing a denylist) must not hide the others'
            message = " ".join(str(e).split()) or type(e).__name__
            Path(job["error"]).write_text(f"{type(e).__name__}: {message[:400]}", encoding="utf-8")
            print(f"job {job['produced']} failed:", file=sys.stderr)
            traceback.print_exc()


def _calibrate_in_this_process(saved_model_dir: str, calibration: np.ndarray) -> bytes:
    """The calibrated model: float TFLite with every activation's min/max over ``calibration``."""
    import tensorflow as tf

    def representative_dataset():
        for batch in calibration:
            yield [batch]

    signature = tf.saved_model.load(saved_model_dir).signatures["serving_default"]
    (input_spec,) = signature.structured_input_signature[1].values()
    expected = tuple(input_spec.shape)
    if tuple(calibration.shape[1:]) != expected:
        raise ValueError(
            f"calibration batches have shape {list(calibration.shape[1:])} but the SavedModel input "
            f"{input_spec.name!r} is {list(expected)} (the converted model's layout)"
        )
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter._experimental_calibrate_only = True  # stop after calibration; _mlir_quantize does the rest
    return converter.convert()


def _mse_ranges_in_this_process(calibrated: bytes, batches: np.ndarray) -> bytes:
    """The calibrated model with each recorded activation range replaced by its MSE-optimal sub-range.

    The float model runs on ``batches`` with every tensor kept (builtin kernels: a delegate would
    hide its intermediate tensors); each ranged tensor's values are histogrammed over its recorded
    ``[min, max]`` (:data:`RANGE_HISTOGRAM_BINS` bins) and :func:`_mse_optimal_range` picks the range.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    from ..runtime.backends.litert import _import_interpreter

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    graph = model.subgraphs[0]
    ranged = {}
    for index, tensor in enumerate(graph.tensors):
        quantization = tensor.quantization
        if quantization is not None and quantization.min is not None and len(quantization.min) == 1:
            low, high = float(quantization.min[0]), float(quantization.max[0])
            if high > low:
                ranged[index] = (low, high)
    interpreter_class, resolver, _ = _import_interpreter()
    interpreter = interpreter_class(model_content=bytes(calibrated), experimental_preserve_all_tensors=True,
                                    experimental_op_resolver_type=resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    histograms = {index: np.zeros(RANGE_HISTOGRAM_BINS, np.int64) for index in ranged}
    for batch in batches:
        interpreter.set_tensor(input_index, np.ascontiguousarray(batch, dtype=np.float32))
        interpreter.invoke()
        for index, (low, high) in ranged.items():
            histograms[index] += np.histogram(interpreter.get_tensor(index), RANGE_HISTOGRAM_BINS, (low, high))[0]
    for index, (low, high) in ranged.items():
        new_low, new_high = _mse_optimal_range(histograms[index], low, high)
        graph.tensors[index].quantization.min = [new_low]
        graph.tensors[index].quantization.max = [new_high]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _mse_optimal_range(histogram: np.ndarray, low: float, high: float, levels: int = 255,
                      candidates: int = 64) -> Tuple[float, float]:
    """The ``[a, b]`` within ``[low, high]`` minimising the expected int8 error of values so distributed.

    ``histogram``: counts over ``len(histogram)`` equal bins spanning ``[low, high]`` (values taken
    at the bin centres). The error of a range is the squared clipping error of the values outside
    it plus ``step**2 / 12`` (uniform rounding, ``step = (b - a) / levels``) for those inside.
    Candidate ends are ``candidates`` bin edges from the extreme down to an eighth of the way to
    zero on each side; zero always stays inside the range (it must be exact in int8). A range
    that cannot be improved is returned as is.
    """
    counts = np.asarray(histogram, dtype=np.float64)
    total = counts.sum()
    if total <= 0 or high <= low:
        return float(low), float(high)
    p = counts / total
    edges = np.linspace(low, high, len(counts) + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    # prefix sums of p, p*c, p*c^2: the clipping error of any cut in O(1)
    s0, s1, s2 = (np.concatenate([[0.0], np.cumsum(p * centres ** k)]) for k in (0, 1, 2))

    def cuts(end: float) -> np.ndarray:
        if end == 0.0:
            return np.array([0.0])
        return np.linspace(end, end / 8.0, candidates)

    uppers = cuts(max(high, 0.0))
    lowers = cuts(min(low, 0.0))
    # bins entirely above an upper cut u are clipped to u (index of the first such bin)
    upper_index = np.clip(np.searchsorted(centres, uppers, side="right"), 0, len(p))
    lower_index = np.clip(np.searchsorted(centres, lowers, side="left"), 0, len(p))
    above0, above1, above2 = (s[-1] - s[upper_index] for s in (s0, s1, s2))
    below0, below1, below2 = (s[lower_index] for s in (s0, s1, s2))
    clip_high = above2 - 2 * uppers * above1 + uppers ** 2 * above0
    clip_low = below2 - 2 * lowers * below1 + lowers ** 2 * below0
    inside = 1.0 - below0[:, None] - above0[None, :]
    step = (uppers[None, :] - lowers[:, None]) / levels
    error = clip_low[:, None] + clip_high[None, :] + step ** 2 / 12.0 * inside
    best_low, best_high = np.unravel_index(np.argmin(error), error.shape)
    return float(lowers[best_low]), float(uppers[best_high])


def _untie_concatenation_scales(calibrated: bytes, ratio: float) -> Tuple[bytes, List[dict]]:
    """Give narrow CONCATENATION inputs their own int8 scale (see the comment above :func:`quantize_int8`).

    In the calibrated (float) model, each concatenation input whose recorded range (max - min) is at
    least ``ratio`` times narrower than the concatenation output's is routed through ``MUL(x, 1.0)``,
    a new tensor named ``<input>/requantize`` with the input's recorded range. The float model
    computes exactly the same; MLIR quantizes the identity into a requantization. Constant inputs
    are left alone. Returns the new calibrated model and one record per routed input.
    """
    import copy

    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    graph = model.subgraphs[0]

    def opcode_indices(builtin: int) -> List[int]:
        # one entry per op version: a model can hold several for the same builtin
        return [index for index, code in enumerate(model.operatorCodes)
                if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin]

    def recorded_range(tensor_index: int):
        quantization = graph.tensors[tensor_index].quantization
        if quantization is None or quantization.min is None or len(quantization.min) != 1:
            return None
        return float(quantization.min[0]), float(quantization.max[0])

    def add_tensor(tensor, data: Optional[bytes] = None) -> int:
        buffer = schema.BufferT()
        if data is not None:
            buffer.data = np.frombuffer(data, np.uint8)
        model.buffers.append(buffer)
        tensor.buffer = len(model.buffers) - 1
        graph.tensors.append(tensor)
        return len(graph.tensors) - 1

    def mul_opcode() -> int:
        existing = opcode_indices(schema.BuiltinOperator.MUL)
        if existing:
            return existing[0]
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.MUL
        code.version = 1
        model.operatorCodes.append(code)
        return len(model.operatorCodes) - 1

    concatenations = set(opcode_indices(schema.BuiltinOperator.CONCATENATION))
    if not concatenations:
        return calibrated, []
    untied, operators = [], []
    for op in graph.operators:
        output_range = recorded_range(op.outputs[0]) if op.opcodeIndex in concatenations else None
        if output_range is not None and output_range[1] > output_range[0]:
            inputs = list(op.inputs)
            for position, tensor_index in enumerate(inputs):
                input_range = recorded_range(tensor_index)
                if input_range is None or (input_range[1] - input_range[0]) * ratio > output_range[1] - output_range[0]:
                    continue
                name = graph.tensors[tensor_index].name.decode()
                routed = copy.deepcopy(graph.tensors[tensor_index])  # same shape, type and recorded range
                routed.name = (name + UNTIE_SUFFIX).encode()
                routed_index = add_tensor(routed)
                one = schema.TensorT()
                one.shape, one.type = np.array([], np.int32), schema.TensorType.FLOAT32
                one.name = (name + UNTIE_SUFFIX + "/one").encode()
                one_index = add_tensor(one, np.float32(1.0).tobytes())
                identity = schema.OperatorT()
                identity.opcodeIndex = mul_opcode()
                identity.inputs, identity.outputs = [tensor_index, one_index], [routed_index]
                identity.builtinOptionsType = schema.BuiltinOptions.MulOptions
                identity.builtinOptions = schema.MulOptionsT()
                operators.append(identity)
                inputs[position] = routed_index
                untied.append({"tensor": name, "concatenation": graph.tensors[op.outputs[0]].name.decode(),
                               "range": list(input_range), "concatenation_range": list(output_range)})
            op.inputs = inputs
        operators.append(op)
    graph.operators = operators
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), untied


def _mlir_quantize(calibrated: bytes, io_dtype: str, keep_float_nodes: Sequence[str] = (),
                   keep_float_ops: Sequence[str] = (), numeric_verify: bool = False) -> bytes:
    """The int8 model from a calibrated one, as ``converter.convert()`` would quantize it."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as tf_convert

    io_type = {"float32": tf.float32, "int8": tf.int8}[io_dtype]
    return tf_convert.mlir_quantize(calibrated, input_data_type=io_type, output_data_type=io_type,
                                    enable_numeric_verify=numeric_verify,
                                    denylisted_nodes=list(keep_float_nodes) or None,
                                    denylisted_ops=list(keep_float_ops) or None)


def _dynamic_range_in_this_process(saved_model_dir: str) -> bytes:
    """Dynamic-range model: int8 weights, float activations (no calibration data)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def _layer_errors_in_this_process(calibrated: bytes, batches: np.ndarray, keep_float_nodes: Sequence[str],
                                  keep_float_ops: Sequence[str]) -> List[dict]:
    """Per-tensor quantization error from TensorFlow's QuantizationDebugger (see :func:`_run_int8_jobs`)."""
    import csv
    import io
    import math

    import tensorflow as tf

    debug_model = _mlir_quantize(calibrated, "float32", keep_float_nodes, keep_float_ops, numeric_verify=True)

    def float_variance(float_values, quantized_values, scale, zero_point):
        return float(np.var(np.asarray(float_values, dtype=np.float64)))

    def dataset():
        for batch in batches:
            yield [batch]

    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_direct_compare_metrics={"float_variance": float_variance})
    debugger = tf.lite.experimental.QuantizationDebugger(quant_debug_model_content=debug_model,
                                                         debug_dataset=dataset, debug_options=options)
    debugger.run()
    table = io.StringIO()
    debugger.layer_statistics_dump(table)  # the public way to get names, op types and scales per tensor
    rows = []
    for row in csv.DictReader(io.StringIO(table.getvalue())):
        scale, mse = float(row["scale"]), float(row["mean_squared_error"])
        variance = float(row["float_variance"])
        rows.append({
            "tensor_name": row["tensor_name"], "op": row["op_name"], "tensor_index": int(row["tensor_idx"]),
            "scale": scale, "zero_point": int(row["zero_point"]),
            "num_elements": int(float(row["num_elements"])), "mean_error": float(row["mean_error"]),
            "stddev": float(row["stddev"]), "max_abs_error": float(row["max_abs_error"]),
            "mean_squared_error": mse, "float_variance": variance,
            "rmse_steps": math.sqrt(mse) / scale if scale > 0 else float("nan"),
            "sqnr_db": 10.0 * math.log10(variance / mse) if mse > 0 and variance > 0 else
            (float("inf") if mse == 0 else float("-inf")),
        })
    return rows
