"""What every INT8 stage needs, prepared once: the calibration and held-out evaluation sets with their fp32
reference outputs, the fp32 latencies INT8 choices are weighed against, and the manifest's ``int8`` summary;
and the one way an INT8 artefact is recorded (parity on held-out photos, matting numerics, budget verdict)."""

from pathlib import Path
from typing import Callable, Iterable, List, Optional

import numpy as np

from ..core import console
from ..core import parity as parity_lib
from ..core.errors import EdgematteError
from ..core.manifest import Artefact
from .context import Context, Int8State
from .parity_cases import CLIP_SHIFT_PX, parity_cases

HELD_OUT = "reference (fp32), held-out images"


def int8_state(ctx: Context) -> Int8State:
    """The shared INT8 inputs, prepared by whichever INT8 stage runs first."""
    if ctx.int8 is not None:
        return ctx.int8
    roles = ctx.manifest.model.input_roles()
    extra_inputs = [r["name"] for r in roles if r["role"] not in ("image", "constant", "state")]
    if extra_inputs:  # calibration and evaluation feed the image and recurrent states only
        raise EdgematteError(f"{ctx.source.origin}: INT8 for a model with inputs beside the image "
                             f"({', '.join(extra_inputs)}) is not supported yet; convert it without --int8")
    from ..quant.int8 import prepare, prepare_clips

    opts = ctx.options.int8
    if ctx.manifest.model.recurrent:
        with ctx.step("INT8: calibration and evaluation clips (the fp32 reference's states at every step)"):
            plan = ctx.feed_plan(ctx.reference_backend, "nchw", "the reference")
            evaluation, split = prepare_clips(
                ctx.profile, ctx.input_hw, ctx.reference_backend, plan, opts,
                lambda photos: parity_cases(ctx.profile, photos, roles, ctx.input_hw), roles,
                ctx.manifest.model.output_roles())
            reference = evaluation.fp32_outputs
    else:
        with ctx.step("INT8: calibration and evaluation sets"):
            evaluation, split = prepare(ctx.profile, ctx.input_hw, ctx.reference_backend, opts)
            reference = [ctx.reference_backend.run(x) for x in evaluation.inputs["nchw"]]
    ctx.int8 = Int8State(evaluation=evaluation, reference=reference)
    ctx.manifest.extra["int8"] = {
        "algo": opts.algo, "budget_mad": opts.budget_mad, "keep_float": list(opts.keep_float),
        "calibration": split, "evaluation_images": evaluation.names,
        "fp32_latency_ms": _fp32_latencies(ctx, evaluation, opts.latency_runs),
        "latency_threads": ctx.options.threads}
    if evaluation.recurrent:
        ctx.manifest.extra["int8"]["clips"] = {
            "frames": split["clip_frames"], "shift_px": CLIP_SHIFT_PX,
            "calibration_samples": split["calibration_samples"], "evaluation_frames": split["evaluation_frames"],
            "how": "one clip per photo (the photo shifted right by shift_px more pixels each frame); calibration "
                   "samples are the clip steps with the states the fp32 reference carried; every INT8 artefact runs "
                   "each held-out clip from zero states with its own states fed back, against the fp32 reference "
                   "over all frames"}
    return ctx.int8


def built_or_skipped(ctx: Context, build: Callable[[], List[Artefact]], target: str,
                     file_names: Iterable[str]) -> List[Artefact]:
    """``build()``'s INT8 artefacts. For a recurrent model a tool's refusal is no failure of the conversion: the
    files among ``file_names`` that it left in OUT unrecorded are removed, :func:`skip_target` says why, and no
    artefact is returned. A per-frame model's failure is the conversion's."""
    if not int8_state(ctx).evaluation.recurrent:
        return build()
    try:
        return build()
    except Exception as error:  # noqa: BLE001 - a tool's limit on a recurrent model must not fail the conversion
        recorded = {a.path for a in ctx.manifest.artefacts}
        for name in file_names:
            if (ctx.out / name).exists() and name not in recorded:
                (ctx.out / name).unlink()
        skip_target(ctx, target, error)
        return []


def skip_target(ctx: Context, target: str, error: Exception) -> None:
    """A recurrent model's INT8 target the tools cannot build: one line in the manifest (``int8.skipped``) and on
    the console; the conversion and the other INT8 target go on."""
    text = " ".join(str(error).split()) or type(error).__name__
    note = f"{target} INT8 not built for this multi-input (recurrent) model: {text[:300]}"
    ctx.manifest.extra.setdefault("int8", {}).setdefault("skipped", {})[target] = note
    console.warn(note)


def tflite_layouts(ctx: Context) -> Optional[dict]:
    """``{"inputs": {name: layout}, "outputs": {...}}`` of the fp32 TFLite artefact's tensors as the converter
    recorded them (onnx2tf moves the channels of some tensors only), or None without one."""
    for a in ctx.manifest.artefacts:
        if a.format == "tflite" and a.precision == "fp32":
            return {key: {t.name: t.extra.get("layout") or a.layout for t in tensors}
                    for key, tensors in (("inputs", a.inputs), ("outputs", a.outputs))}
    return None


def _fp32_latencies(ctx: Context, evaluation, runs: int) -> dict:
    """Median ms of the fp32 artefacts the INT8 choices are weighed against: ``{"tflite", "nb_x86", "onnx"}``,
    each only when that artefact was built (measured like the INT8 tries: in-process, a held-out photo)."""
    from ..core.timing import median_latency_ms
    from ..runtime.backends import open_backend

    if runs <= 0:
        return {}
    candidates = {"tflite": ("litert", ctx.out / "model_fp32.tflite", ctx.options.layout),
                  "nb_x86": ("paddle_lite", ctx.out / "model_x86.nb", "nchw")}
    if "onnx" in ctx.formats:  # model.onnx is also TFLite's bridge: an artefact only when ONNX was asked for
        candidates["onnx"] = ("onnxruntime", ctx.out / "model.onnx", "nchw")
    latencies = {}
    for key, (runtime, path, layout) in candidates.items():
        if path.exists():
            with ctx.step(f"fp32 latency of {path.name} (median of {runs})"):
                backend = open_backend(runtime, path, threads=ctx.options.threads)
                if evaluation.recurrent:
                    layouts = tensor_layouts(tflite_layouts(ctx), backend, layout) if runtime == "litert" else None
                    latencies[key] = evaluation.latency_ms(backend, layout, runs=runs, layouts=layouts)
                else:
                    latencies[key] = median_latency_ms(backend, evaluation.inputs[layout][0], runs=runs)
    return latencies


def tensor_layouts(recorded: Optional[dict], backend, layout: str):
    """(input layouts, output layouts) of ``backend``'s tensors in its order, from ``recorded``
    (:func:`tflite_layouts`: another file of the same conversion, matched by name), else ``layout``."""
    from ..runtime.model_io import match_tensors

    if not recorded:
        return None
    result = []
    for key, specs in (("inputs", backend.inputs), ("outputs", backend.outputs)):
        names = list(recorded[key])
        order = match_tensors(names, [s.name for s in specs], f"{backend.path} {key}")
        result.append([recorded[key][names[i]] or layout for i in order])
    return tuple(result)


def record_int8(ctx: Context, path: Path, outputs: Optional[List[np.ndarray]], numerics: dict, *, format: str,
                target: str, precision: str, runtime: str, layout: str, runs_on_host: bool, extra: dict,
                io: Optional[dict] = None, host_parity=None) -> Artefact:
    """An INT8 artefact: parity on the held-out images plus its matting numerics and budget verdict. An artefact
    that cannot run here inherits ``host_parity`` (default: the x86 int8 ``.nb``'s, ``ctx.int8.x86_parity``)."""
    from ..quant.int8 import check_budget

    state, budget = ctx.int8, ctx.options.int8.budget_mad
    if runs_on_host:
        parity = parity_lib.compare(outputs, state.reference, HELD_OUT)
    else:
        parity = parity_lib.inherited(host_parity or state.x86_parity,
                                      f"an {target} .nb cannot run on this x86 host: figures are those of the x86 "
                                      "int8 .nb optimized by opt from the same quantized program")
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
