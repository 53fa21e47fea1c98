"""Running quantization jobs: one worker subprocess per call (TensorFlow never loads in the caller), one
calibration shared by its jobs, and every result checked before it is published.
"""

import json
import shutil
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from ...converter.tflite import keep_log, probe_tflite
from ...converter.tflite_repairs import repair_tflite_file
from ...core.errors import EdgematteError
from ...core.fsutil import atomic_path
from ...core.tools import clean_log, last_error_line, run_package_worker
from . import calibration as calibration_cache
from .calibration import save_calibration, stack_calibration
from .jobs import JOB_TYPES, FullIntegerJob, Int8Job, LayerErrorsJob, PlannedJob, WorkerPlan
from .ops import check_kept_float
from .ranges import ACTIVATION_RANGES, DEFAULT_ACTIVATION_RANGES
from .untie import DEFAULT_UNTIE_RATIO

QUANTIZE_TIMEOUT_S = 3600
_WORKER_CODE = "import sys; from edgematte.quant.tflite.worker import main; main(sys.argv[1])"
# the worker is this package: make it importable even when edgematte is not installed


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
    of the first :data:`~edgematte.quant.tflite.ranges.RANGE_HISTOGRAM_IMAGES` calibration tensors;
    see :mod:`edgematte.quant.tflite.ranges`).

    ``untie_ratio``: a CONCATENATION input whose calibrated range is at least this many times
    narrower than the concatenation's output gets its own scale (a requantize in front of the
    concatenation, see :mod:`edgematte.quant.tflite.untie`); ``None`` keeps TensorFlow's shared scales.

    Runs TensorFlow in a subprocess; the result must load and run in LiteRT and honour the kept
    names before it is written (atomically) to ``out_path``. Returns ``out_path``.
    """
    job = FullIntegerJob(out=out_path, io_dtype=io_dtype, keep_float_nodes=tuple(keep_float_nodes),
                         keep_float_ops=tuple(keep_float_ops))
    (written,), _ = run_int8_jobs(saved_model_dir, calib_batches, [job], calibrated_model=calibrated_model,
                                  untie_ratio=untie_ratio, activation_ranges=activation_ranges,
                                  log_path=log_path, timeout_s=timeout_s)
    return written


def run_int8_jobs(saved_model_dir, calib_batches, jobs: Sequence[Int8Job], calibrated_model=None,
                  untie_ratio: Optional[float] = DEFAULT_UNTIE_RATIO,
                  activation_ranges: str = DEFAULT_ACTIVATION_RANGES, log_path=None,
                  timeout_s: float = QUANTIZE_TIMEOUT_S, fail_soft: bool = False) -> Tuple[list, dict]:
    """Run TensorFlow quantization jobs in one subprocess, sharing one calibration.

    ``jobs``: :class:`~edgematte.quant.tflite.jobs.FullIntegerJob` (result: its ``out`` path),
    :class:`~edgematte.quant.tflite.jobs.DynamicRangeJob`, :class:`~edgematte.quant.tflite.jobs.FloatTwinJob`
    (result: its ``out`` path) and
    :class:`~edgematte.quant.tflite.jobs.LayerErrorsJob` (result: one dict per quantized tensor).

    ``calibrated_model``, ``calib_batches``, ``untie_ratio`` and ``activation_ranges``: as in
    :func:`quantize_int8` (the batches are needed only when a calibration has to run; ranges and
    untying apply to the full-integer and layer-error jobs). Every ``.tflite`` written gets the ``tflite`` repairs
    (proven bit for bit, :mod:`edgematte.converter.tflite_repairs`), is loaded and run in LiteRT and checked for its
    kept-float names before it is published (atomically).

    Returns ``(results, info)``: one result per job, in order, and ``{"calibrated": "reused" |
    "calibrated", "untied": [{"tensor", "concatenation", "range", "concatenation_range"}, ...],
    "errors": {job index: message}}`` (``untied``: the concatenation inputs given their own scale).
    Raises :class:`EdgematteError` (one line, naming a kept log) on any failure; with ``fail_soft``
    a job that fails on its own gives ``None`` and its message in ``errors`` instead.
    """
    jobs = _checked_jobs(jobs, activation_ranges)
    saved_model_dir = Path(saved_model_dir)
    needs_calibrated = any(job.needs_calibrated for job in jobs)
    calibration = stack_calibration(calib_batches) if calib_batches is not None else None
    must_calibrate = needs_calibrated and not calibration_cache.reusable(calibrated_model, saved_model_dir,
                                                                          calibration, activation_ranges)
    if (must_calibrate or any(not job.needs_calibrated for job in jobs)) and \
            not (saved_model_dir / "saved_model.pb").is_file():
        raise EdgematteError(f"{saved_model_dir}: not a TensorFlow SavedModel (no saved_model.pb)")
    if must_calibrate and calibration is None:
        raise EdgematteError(f"{calibrated_model or saved_model_dir}: no calibrated model to reuse and no "
                             "calibration data given")

    with tempfile.TemporaryDirectory(prefix="edgematte-int8-") as workdir:
        workdir = Path(workdir)
        plan = _write_plan(workdir, saved_model_dir, jobs, untie_ratio,
                           calibration=calibration if must_calibrate else None, activation_ranges=activation_ranges,
                           calibrated_in=calibrated_model if needs_calibrated and not must_calibrate else None)
        returncode, log_text = _run_worker(workdir, timeout_s)
        info = {"calibrated": "calibrated" if must_calibrate else "reused", "untied": [], "errors": {}}
        try:
            results = _collect(workdir, plan, jobs, returncode, log_text, info, fail_soft)
        except EdgematteError as e:
            kept = keep_log(log_text, Path(log_path) if log_path else None, "edgematte-int8-")
            raise EdgematteError(f"{saved_model_dir}: int8 quantization failed: {e} (log: {kept})") from None
        if must_calibrate and calibrated_model is not None:
            with atomic_path(calibrated_model, suffix=".tflite") as tmp:
                shutil.copyfile(workdir / plan.calibrated_out, tmp)
            calibration_cache.write_key(calibrated_model, saved_model_dir, calibration, activation_ranges)
        results = _publish(jobs, results)
        if log_path:
            keep_log(log_text, Path(log_path), "")
    return results, info


def _checked_jobs(jobs: Sequence[Int8Job], activation_ranges: str) -> List[Int8Job]:
    jobs = list(jobs)
    for job in jobs:
        if not isinstance(job, JOB_TYPES):
            raise EdgematteError(f"unknown quantization job {job!r} "
                                 f"(known: {', '.join(t.__name__ for t in JOB_TYPES)})")
    if activation_ranges not in ACTIVATION_RANGES:
        raise EdgematteError(f"activation_ranges must be one of {', '.join(ACTIVATION_RANGES)}, "
                             f"got {activation_ranges!r}")
    return jobs


def _write_plan(workdir: Path, saved_model_dir: Path, jobs: Sequence[Int8Job], untie_ratio: Optional[float],
                calibration, activation_ranges: str, calibrated_in) -> WorkerPlan:
    """``plan.json`` and the arrays it names, in ``workdir``.

    ``calibration``: given when the worker must calibrate; ``calibrated_in``: the cached calibrated
    model to use instead (neither: the jobs need no calibrated model).
    """
    plan = WorkerPlan(saved_model_dir=str(saved_model_dir.resolve()), untie_ratio=untie_ratio)
    if calibration is not None:
        plan.calibration_npy = save_calibration(calibration, workdir)
        plan.calibrated_out = "calibrated.tflite"
        plan.activation_ranges = activation_ranges
    elif calibrated_in is not None:
        plan.calibrated_in = str(Path(calibrated_in).resolve())
    plan.jobs = [job.planned(index, workdir) for index, job in enumerate(jobs)]
    plan.write(workdir / "plan.json")
    return plan


def _run_worker(workdir: Path, timeout_s: float) -> Tuple[int, str]:
    """Run the worker on ``workdir/plan.json``; returns its exit code (-1 on a timeout) and its log."""
    result = run_package_worker(_WORKER_CODE, ["plan.json"], what="TFLite int8 quantization", timeout_s=timeout_s,
                                cwd=workdir, log_file=workdir / "quantize.log")
    return result.returncode, clean_log(result.output)


def _collect(workdir: Path, plan: WorkerPlan, jobs: Sequence[Int8Job], returncode: int, log_text: str,
             info: dict, fail_soft: bool) -> list:
    """Every job's checked result (None for a failed one with ``fail_soft``); fills ``info``."""
    if returncode != 0:
        raise EdgematteError(f"exited with {returncode}: {last_error_line(log_text)}")
    if (workdir / plan.untied_out).is_file():
        info["untied"] = json.loads((workdir / plan.untied_out).read_text(encoding="utf-8"))
    results = []
    for index, (job, planned) in enumerate(zip(jobs, plan.jobs)):
        try:
            results.append(_collect_job(workdir, job, planned, log_text))
        except EdgematteError as e:
            if not fail_soft:
                raise
            info["errors"][index] = str(e)
            results.append(None)
    return results


def _collect_job(workdir: Path, job: Int8Job, planned: PlannedJob, log_text: str):
    """One job's checked result from the worker's folder."""
    error_file = workdir / planned.error
    if error_file.is_file():
        raise EdgematteError(error_file.read_text(encoding="utf-8").strip())
    produced = workdir / planned.produced
    if not produced.is_file() or produced.stat().st_size == 0:
        raise EdgematteError(f"no {job.kind} result written: {last_error_line(log_text)}")
    if isinstance(job, LayerErrorsJob):
        return json.loads(produced.read_text(encoding="utf-8"))
    repair_tflite_file(produced, where=f"{job.out.name} ({job.kind})")  # as every .tflite published: proven exact
    probe_tflite(produced)
    if isinstance(job, FullIntegerJob):
        check_kept_float(produced, job.must_be_float, job.keep_float_ops)
    return produced


def _publish(jobs: Sequence[Int8Job], results: list) -> list:
    """Each written model copied (atomically) to its job's ``out``; the results with those paths."""
    published = list(results)
    for index, (job, result) in enumerate(zip(jobs, results)):
        if not isinstance(job, LayerErrorsJob) and result is not None:
            with atomic_path(job.out, suffix=".tflite") as tmp:
                shutil.copyfile(result, tmp)
            published[index] = job.out
    return published
