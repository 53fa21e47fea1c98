"""The INT8 stage of ``edgematte convert --int8``: calibrate, quantize for each target, measure, hold a budget.

Every INT8 artefact is evaluated against the fp32 reference on images disjoint from the calibration set,
in the matting metrics (:func:`edgematte.quant.metrics.matting_numerics`) at the original image size,
after the deployment profile's own post-processing: the numbers a user of the artefact would see.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from .. import console
from ..errors import EdgematteError
from .calibration import calibration_tensors, split_calibration_evaluation
from .metrics import matting_numerics

DEFAULT_BUDGET_MAD = 0.02
ALGOS = ("avg", "abs_max", "hist", "mse", "KL")


@dataclass
class Int8Options:
    calib: Optional[str] = None
    calib_count: Optional[int] = None
    algo: str = "avg"
    budget_mad: float = DEFAULT_BUDGET_MAD
    keep_float: Sequence[str] = ()
    dynamic_range: bool = True


@dataclass
class EvaluationSet:
    """Held-out images with their fp32 reference alphas (original size) and model inputs per layout."""

    names: List[str]
    inputs: dict  # layout -> list of tensors
    states: list
    fp32_alphas: List[np.ndarray]
    profile: object = None
    calibration: dict = field(default_factory=dict)  # layout -> [K, ...] tensors

    def numerics(self, outputs: Sequence[np.ndarray]) -> dict:
        """Matting numerics of a quantized artefact's raw outputs against the fp32 reference."""
        alphas = [self.profile.postprocess(o, s) for o, s in zip(outputs, self.states)]
        return matting_numerics(zip(alphas, self.fp32_alphas))


def prepare(profile, input_hw, reference_backend, options: Int8Options) -> tuple:
    """(EvaluationSet, split summary): calibration tensors in both layouts, evaluation references."""
    split = split_calibration_evaluation(folder=options.calib, calib_count=options.calib_count)
    hw = tuple(input_hw)
    evaluation = EvaluationSet(names=list(split.evaluation_names), inputs={}, states=[], fp32_alphas=[],
                               profile=profile)
    for layout in ("nchw", "nhwc"):
        evaluation.calibration[layout] = calibration_tensors(split.calibration, profile.preprocess, hw, layout,
                                                             names=split.calibration_names)
        evaluation.inputs[layout] = []
    for rgb in split.evaluation:
        for layout in ("nchw", "nhwc"):
            tensor, state = profile.preprocess(rgb, hw, layout=layout)
            evaluation.inputs[layout].append(tensor)
        evaluation.states.append(state)
        reference = reference_backend.run(evaluation.inputs["nchw"][-1])
        evaluation.fp32_alphas.append(profile.postprocess(reference, state))
    return evaluation, split.as_dict()


def paddle_lite_int8(frozen_dir, work: Path, out: Path, targets: Sequence[str], evaluation: EvaluationSet,
                     options: Int8Options, step: Callable) -> List[dict]:
    """Paddle PTQ -> int8 .nb per target. Returns records: path, target, numerics (x86 measured; arm/opencl
    inherit the x86 figures of the .nb opt built from the same quantized program), ptq info."""
    from ..converter.paddle_lite import optimize
    from ..runtime.backends.paddle_lite import PaddleLiteBackend
    from .paddle_ptq import quantize_paddle_model

    with step(f"Paddle PTQ ({options.algo}, per-channel weights, {len(evaluation.calibration['nchw'])} images)"):
        ptq = quantize_paddle_model(frozen_dir, work / "ptq", evaluation.calibration["nchw"], algo=options.algo,
                                    skip_tensors=tuple(options.keep_float))
    records = []
    x86_numerics = None
    for target in sorted(set(targets) | {"x86"}, key=lambda t: ("x86", "arm", "opencl").index(t)):
        path = out / f"model_{target}_int8.nb"
        with step(f"Paddle Lite opt -> {path.name}"):
            optimize(ptq.model.model.parent, path, target)
        if target == "x86":
            with step(f"evaluate {path.name} on {len(evaluation.names)} held-out images"):
                # A fresh process per artefact would isolate Lite's int8 crashes; the PTQ workaround
                # (depthwise convs without bias kept float) is what makes this run at all.
                backend = PaddleLiteBackend(path)
                outputs = [backend.run(x) for x in evaluation.inputs["nchw"]]
                x86_numerics = evaluation.numerics(outputs)
                del backend
            if "x86" not in targets:
                path.unlink()
                continue
            records.append({"path": path, "target": target, "numerics": x86_numerics, "runs_on_host": True,
                            "outputs": outputs})
        else:
            records.append({"path": path, "target": target, "numerics": x86_numerics, "runs_on_host": False,
                            "outputs": None})
    for r in records:
        r["ptq"] = {k: v for k, v in ptq.as_dict().items() if k not in ("model", "params", "source")}
    return records


def check_budget(numerics: dict, budget: float) -> dict:
    return {"budget_mad": budget, "within_budget": numerics["mad"] <= budget}


def warn_over_budget(path, numerics, budget):
    console.warn(f"{path}: MAD {numerics['mad']:.4f} against fp32 exceeds the budget {budget} "
                 f"(see the report for the figures)")


def validate(options: Int8Options) -> None:
    if options.algo not in ALGOS:
        raise EdgematteError(f"--algo {options.algo}: choose one of {', '.join(ALGOS)}")
    if not (0 < options.budget_mad < 1):
        raise EdgematteError(f"--budget-mad {options.budget_mad}: expected a mean abs alpha difference in (0, 1)")
