"""What both INT8 stages need, prepared once: the calibration and held-out evaluation sets with their fp32
reference outputs, the fp32 latencies INT8 choices are weighed against, and the manifest's ``int8`` summary;
and the one way an INT8 artefact is recorded (parity on held-out photos, matting numerics, budget verdict)."""

from pathlib import Path
from typing import List, Optional

import numpy as np

from ..core import console
from ..core import parity as parity_lib
from ..core.errors import EdgematteError
from ..core.manifest import Artefact
from .context import Context, Int8State

HELD_OUT = "reference (fp32), held-out images"


def int8_state(ctx: Context) -> Int8State:
    """The shared INT8 inputs, prepared by whichever INT8 stage runs first."""
    if ctx.int8 is not None:
        return ctx.int8
    extra_inputs = [r["name"] for r in ctx.manifest.model.input_roles() if r["role"] not in ("image", "constant")]
    if extra_inputs:  # calibration and evaluation feed one image tensor today
        raise EdgematteError(f"{ctx.source.origin}: INT8 for a model with inputs beside the image "
                             f"({', '.join(extra_inputs)}) is not supported yet; convert it without --int8")
    from ..quant.int8 import prepare

    opts = ctx.options.int8
    with ctx.step("INT8: calibration and evaluation sets"):
        evaluation, split = prepare(ctx.profile, ctx.input_hw, ctx.reference_backend, opts)
        reference = [ctx.reference_backend.run(x) for x in evaluation.inputs["nchw"]]
    ctx.int8 = Int8State(evaluation=evaluation, reference=reference)
    ctx.manifest.extra["int8"] = {
        "algo": opts.algo, "budget_mad": opts.budget_mad, "keep_float": list(opts.keep_float),
        "calibration": split, "evaluation_images": evaluation.names,
        "fp32_latency_ms": _fp32_latencies(ctx, evaluation, opts.latency_runs),
        "latency_threads": ctx.options.threads}
    return ctx.int8


def _fp32_latencies(ctx: Context, evaluation, runs: int) -> dict:
    """Median ms of the fp32 artefacts the INT8 choices are weighed against: ``{"tflite", "nb_x86"}``, each
    only when that artefact was built (measured like the INT8 tries: in-process, a held-out photo)."""
    from ..core.timing import median_latency_ms
    from ..runtime.backends import open_backend

    if runs <= 0:
        return {}
    candidates = {"tflite": ("litert", ctx.out / "model_fp32.tflite", ctx.options.layout),
                  "nb_x86": ("paddle_lite", ctx.out / "model_x86.nb", "nchw")}
    latencies = {}
    for key, (runtime, path, layout) in candidates.items():
        if path.exists():
            with ctx.step(f"fp32 latency of {path.name} (median of {runs})"):
                backend = open_backend(runtime, path, threads=ctx.options.threads)
                latencies[key] = median_latency_ms(backend, evaluation.inputs[layout][0], runs=runs)
    return latencies


def record_int8(ctx: Context, path: Path, outputs: Optional[List[np.ndarray]], numerics: dict, *, format: str,
                target: str, precision: str, runtime: str, layout: str, runs_on_host: bool, extra: dict,
                io: Optional[dict] = None) -> Artefact:
    """An INT8 artefact: parity on the held-out images plus its matting numerics and budget verdict."""
    from ..quant.int8 import check_budget

    state, budget = ctx.int8, ctx.options.int8.budget_mad
    if runs_on_host:
        parity = parity_lib.compare(outputs, state.reference, HELD_OUT)
    else:
        parity = parity_lib.inherited(state.x86_parity, f"an {target} .nb cannot run on this x86 host: figures are "
                                      "those of the x86 int8 .nb optimized by opt from the same quantized program")
    fp32_size = ctx.fp32_size(format, target if format == "nb" else "any")
    numerics = dict(numerics, **check_budget(numerics, budget))
    entry_extra = dict(extra, numerics=numerics,
                       size_ratio_vs_fp32=round(path.stat().st_size / fp32_size, 4) if fp32_size else None)
    io = io or {"inputs": [], "outputs": []}
    artefact = ctx.record(path, outputs, parity, bound=None, format=format, target=target, precision=precision,
                          runtime=runtime, layout=layout, inputs=io["inputs"], outputs=io["outputs"],
                          profile=ctx.profile.name, extra=entry_extra)
    if not numerics["within_budget"]:
        console.warn(f"{path.name}: MAD {numerics['mad']:.4f} against fp32 exceeds --budget-mad {budget}")
    return artefact
