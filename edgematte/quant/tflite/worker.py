"""The quantization worker: the subprocess that imports TensorFlow and runs a :class:`WorkerPlan`.

Started by :mod:`edgematte.quant.tflite.runner` as
``python -c "...from edgematte.quant.tflite.worker import main; main(sys.argv[1])" plan.json`` in the
work folder (its cwd). One job's failure is written to the job's error file and the next job still
runs; what the worker leaves is checked by the runner, never trusted.
"""

import json
import sys
import traceback
from pathlib import Path
from typing import Optional

import numpy as np

from ...converter.saved_model_tflite import rename_outputs
from .calibration import calibrate, calibration_head, load_calibration
from .jobs import DynamicRangeJob, FloatTwinJob, FullIntegerJob, LayerErrorsJob, PlannedJob, WorkerPlan
from .layer_errors import layer_errors
from .quantize import dynamic_range_model, float_model, mlir_quantize
from .ranges import RANGE_HISTOGRAM_IMAGES, SAME_SCALE_REFUSAL, mse_ranges, unify_same_scale_ranges
from .untie import untie_concatenation_scales


def main(plan_path: str) -> None:
    """Run the jobs of ``plan_path`` (written by :func:`edgematte.quant.tflite.runner.run_int8_jobs`)."""
    plan = WorkerPlan.read(plan_path)
    calibrated = _calibrated_model(plan)
    if calibrated is not None and plan.untie_ratio is not None:
        calibrated, untied = untie_concatenation_scales(calibrated, float(plan.untie_ratio))
        Path(plan.untied_out).write_text(json.dumps(untied), encoding="utf-8")
    for job in plan.jobs:
        try:
            try:
                _run_job(plan, job, calibrated)
            except Exception as e:  # TF refused ranges that disagree across same-scale ops: unify them, once
                if SAME_SCALE_REFUSAL not in str(e) or job.kind != FullIntegerJob.kind or plan.unified_out is None:
                    raise
                calibrated, unified = unify_same_scale_ranges(calibrated)
                Path(plan.unified_out).write_text(json.dumps(unified), encoding="utf-8")
                plan.unified_out = None  # the model is unified now: a second refusal is the job's failure
                _run_job(plan, job, calibrated)
        except Exception as e:  # one job's failure (e.g. MLIR refusing a denylist) must not hide the others'
            message = " ".join(str(e).split()) or type(e).__name__
            Path(job.error).write_text(f"{type(e).__name__}: {message[:400]}", encoding="utf-8")
            print(f"job {job.produced} failed:", file=sys.stderr)
            traceback.print_exc()


def _calibrated_model(plan: WorkerPlan) -> Optional[bytes]:
    """The cached calibrated model, or a new one (also written to ``calibrated_out``), or None."""
    if plan.calibrated_in is not None:
        return Path(plan.calibrated_in).read_bytes()
    if plan.calibration_npy is None:
        return None
    calibration = load_calibration(plan.calibration_npy)
    calibrated = calibrate(plan.saved_model_dir, calibration)
    if plan.activation_ranges == "mse":
        calibrated = mse_ranges(calibrated, calibration_head(calibration, RANGE_HISTOGRAM_IMAGES))
    Path(plan.calibrated_out).write_bytes(calibrated)
    return calibrated


def _run_job(plan: WorkerPlan, job: PlannedJob, calibrated: Optional[bytes]) -> None:
    if job.kind == FullIntegerJob.kind:
        result = mlir_quantize(calibrated, job.io_dtype, job.keep_float_nodes, job.keep_float_ops)
        Path(job.produced).write_bytes(rename_outputs(result, job.output_names))
    elif job.kind == DynamicRangeJob.kind:
        Path(job.produced).write_bytes(rename_outputs(dynamic_range_model(plan.saved_model_dir), job.output_names))
    elif job.kind == FloatTwinJob.kind:
        Path(job.produced).write_bytes(rename_outputs(float_model(plan.saved_model_dir), job.output_names))
    elif job.kind == LayerErrorsJob.kind:
        errors = layer_errors(calibrated, np.load(job.batches_npy), job.keep_float_nodes, job.keep_float_ops)
        Path(job.produced).write_text(json.dumps(errors), encoding="utf-8")
    else:
        raise ValueError(f"unknown job kind {job.kind!r}")
