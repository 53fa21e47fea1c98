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
from .average_pool_depthwise import average_pools_as_depthwise
from .calibration import calibrate, calibration_head, load_calibration
from .channel_mean_convolution import channel_means_as_convolutions
from .jobs import DynamicRangeJob, FloatTwinJob, FullIntegerJob, LayerErrorsJob, PlannedJob, WorkerPlan
from .layer_errors import layer_errors
from .quantize import dynamic_range_model, float_model, mlir_quantize
from .ranges import RANGE_HISTOGRAM_IMAGES, mse_ranges
from .untie import SAME_SCALE_OPS, SAME_SCALE_REFUSAL, untie_concatenation_scales


def main(plan_path: str) -> None:
    """Run the jobs of ``plan_path`` (written by :func:`edgematte.quant.tflite.runner.run_int8_jobs`)."""
    plan = WorkerPlan.read(plan_path)
    base = _calibrated_model(plan)
    calibrated = _untied(plan, base, ())
    retried = False
    for job in plan.jobs:
        try:
            try:
                _run_job(plan, job, calibrated)
            except RuntimeError as e:
                # MLIR folded a MUL identity into the same-scale op before it (RVM at 720x1280: a pooled image
                # level concatenated at several scales): untie with convolution identities there, once, and retry
                if SAME_SCALE_REFUSAL not in str(e) or plan.untie_ratio is None or retried:
                    raise
                retried = True
                calibrated = _untied(plan, base, SAME_SCALE_OPS)
                _run_job(plan, job, calibrated)
        except Exception as e:  # one job's failure (e.g. MLIR refusing a denylist) must not hide the others'
            message = " ".join(str(e).split()) or type(e).__name__
            Path(job.error).write_text(f"{type(e).__name__}: {message[:400]}", encoding="utf-8")
            print(f"job {job.produced} failed:", file=sys.stderr)
            traceback.print_exc()


def _untied(plan: WorkerPlan, calibrated: Optional[bytes], conv_identity_after) -> Optional[bytes]:
    """``calibrated`` with its narrow concatenation inputs untied (listed in ``untied_out``), when the plan says so."""
    if calibrated is None or plan.untie_ratio is None:
        return calibrated
    calibrated, untied = untie_concatenation_scales(calibrated, float(plan.untie_ratio), conv_identity_after)
    Path(plan.untied_out).write_text(json.dumps(untied), encoding="utf-8")
    return calibrated


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
        result, _ = average_pools_as_depthwise(result)  # XNNPACK runs int8 pools only as convolutions
        result, _ = channel_means_as_convolutions(result)  # and int8 channel means faster as convolutions
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
