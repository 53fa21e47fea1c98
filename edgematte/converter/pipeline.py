"""``edgematte convert``: order the conversion steps, check every artefact, write OUT atomically.

source -> fixed-shape copy -> checked reference (Paddle Inference, oneDNN fix) -> Paddle Lite .nb per
target, ONNX (paddle2onnx + exact repairs), TFLite (onnx2tf) -> parity of each artefact on real photos
-> ``manifest.json`` + ``report.md``. Everything is built in a temporary sibling of OUT and swapped in
only when complete, so a failure never leaves half an output or replaces a good one.
"""

import contextlib
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..core import console
from ..core.errors import EdgematteError
from ..core.fsutil import atomic_dir
from ..runtime.profiles import get_profile, profile_for_model
from ..zoo.export import validate_input_shape
from ..zoo.source import ModelSource, open_model_source
from ..core import parity as parity_lib
from ..core.manifest import artefact_entry, new_manifest, write_manifest

FORMATS = ("lite", "onnx", "tflite")
LITE_TARGETS = ("arm", "x86", "opencl")
# Bounds a float artefact must meet against the reference (max abs alpha difference); a zoo model may
# loosen the fp32 bound (ModelSpec.fp32_parity_bound says why).
PARITY_BOUNDS = {"fp32": 1e-4, "fp16": 5e-3}
DEFAULT_PROFILE = "android"


@dataclass
class ConvertOptions:
    """What ``edgematte convert`` was asked for."""

    formats: Sequence[str] = FORMATS
    lite_targets: Sequence[str] = ("arm", "x86")
    input_shape: Optional[Sequence[int]] = None
    fp16: Optional[bool] = None  # None: the model's default (ModelSpec.default_fp16)
    layout: str = "nhwc"
    profile: str = DEFAULT_PROFILE
    images: Optional[Dict[str, np.ndarray]] = None
    threads: int = 2
    weights: Optional[str] = None
    seed: Optional[int] = None
    width: float = 1.0
    strict: bool = True
    keep_work: bool = False
    int8: Optional[object] = None  # an edgematte.quant.int8.Int8Options: also build INT8 artefacts


@dataclass
class _Run:
    out: Path
    manifest: dict
    inputs: Dict[str, List[np.ndarray]] = field(default_factory=dict)  # layout -> tensors
    reference: List[np.ndarray] = field(default_factory=list)
    alphas: Dict[str, np.ndarray] = field(default_factory=dict)  # artefact path -> first image's alpha
    bounds: Dict[str, float] = field(default_factory=lambda: dict(PARITY_BOUNDS))
    reference_backend: object = None
    boundary_pixel_share: float = 0.0
    fp16: bool = True
    int8_reference: List[np.ndarray] = field(default_factory=list)  # fp32 reference outputs, held-out images
    int8_x86_parity: Optional[parity_lib.Parity] = None
    saved_model: Optional[Path] = None  # onnx2tf's SavedModel, kept for TFLite INT8

    @contextlib.contextmanager
    def step(self, name: str):
        console.info(f"[{len(self.manifest['steps']) + 1}] {name} ...")
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        self.manifest["steps"].append({"name": name, "seconds": round(seconds, 3)})
        console.info(f"    {name}: {seconds:.1f} s")


def resolve_input_shape(source: ModelSource, requested: Optional[Sequence[int]]) -> List[int]:
    """The fixed input shape: ``--input-shape``, else deploy.yaml's if fully fixed, else the native size."""
    spec = source.spec
    if requested:
        shape = [int(d) for d in requested]
        if spec is not None:
            return validate_input_shape(spec, shape)
        if len(shape) != 4 or shape[1] != 3 or min(shape) < 1:
            raise EdgematteError(f"--input-shape {' '.join(map(str, shape))}: expected N 3 H W with positive sizes")
        return shape
    if source.input_shape and all(d is not None for d in source.input_shape):
        return list(source.input_shape)
    if spec is None:
        raise EdgematteError(
            f"{source.origin}: the input shape is dynamic and the architecture unknown; give --input-shape N C H W"
        )
    return [1, 3, *spec.native_hw]


def _spec_list(specs, layouts=None) -> list:
    """Backend tensor specs as manifest entries; ``layouts`` (converter info per tensor) adds ``layout``."""
    entries = [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype, "quant": list(s.quant) if s.quant else None}
               for s in specs]
    for entry, extra in zip(entries, layouts or []):
        entry["layout"] = extra.get("layout")
    return entries


def _run_backend(backend, tensors) -> List[np.ndarray]:
    return [backend.run(x) for x in tensors]


def convert(model: str, out, options: ConvertOptions = ConvertOptions()) -> dict:
    """Convert ``model`` into ``out``; return the manifest. Raises EdgematteError on any failed check."""
    from ..runtime.backends.paddle_inference import PaddleInferenceBackend
    from .program import freeze_input_shape

    formats = [f for f in FORMATS if f in options.formats]
    unknown = set(options.formats) - set(FORMATS)
    if unknown:
        raise EdgematteError(f"--to: unknown format(s) {', '.join(sorted(unknown))} (choose from {', '.join(FORMATS)})")
    bad_targets = set(options.lite_targets) - set(LITE_TARGETS)
    if bad_targets:
        raise EdgematteError(f"--lite-targets: unknown target(s) {', '.join(sorted(bad_targets))} (choose from {', '.join(LITE_TARGETS)})")
    if options.int8 is not None:
        from ..quant.int8 import validate as validate_int8

        validate_int8(options.int8)
    if options.layout not in ("nhwc", "nchw"):
        raise EdgematteError(f"--layout: {options.layout!r} is not nhwc or nchw")
    get_profile(options.profile)  # an unknown name fails before any work
    out = Path(out)

    with atomic_dir(out) as tmp:
        work = tmp / ".work"
        work.mkdir()
        source = open_model_source(model, work, weights=options.weights, seed=options.seed, width=options.width)
        shape = resolve_input_shape(source, options.input_shape)
        transforms = source.transforms or (source.spec.transforms if source.spec else None)
        profile = profile_for_model(options.profile, transforms)
        name = source.spec.name if source.spec else Path(source.origin).stem
        manifest = new_manifest(
            model={
                "name": name,
                "origin": source.origin,
                "source_sha256": source.sha256,
                "input_shape": shape,
                "declared_input_shape": source.input_shape,
                "transforms": source.transforms,
            },
            reference={
                "backend": "paddle_inference",
                "description": "Paddle Inference (CPU, oneDNN with reshape_transpose_matmul_mkldnn_fuse_pass "
                "deleted: the default config miscomputes PP-MattingV2)",
                "checks": [],
            },
        )
        run = _Run(out=tmp, manifest=manifest)
        run.fp16 = options.fp16
        if run.fp16 is None:
            run.fp16 = source.spec.default_fp16 if source.spec is not None else True
            if not run.fp16 and "tflite" in formats:
                manifest["fp16_skipped"] = source.spec.fp16_note
                console.info(f"no fp16 TFLite by default for {source.spec.name}: {source.spec.fp16_note}")
        if source.spec is not None and source.spec.fp32_parity_bound > PARITY_BOUNDS["fp32"]:
            run.bounds["fp32"] = source.spec.fp32_parity_bound
            run.boundary_pixel_share = source.spec.boundary_pixel_share
            manifest["reference"]["bound_note"] = source.spec.parity_note

        with run.step(f"fix input shape to {shape}"):
            # The fixed-shape Paddle model is the reference; it ships in OUT so `verify` and `bench` can rerun it.
            frozen = freeze_input_shape([source.pdmodel, source.pdiparams], tmp / "reference", shape)
            manifest["reference"]["model_dir"] = "reference"
            manifest["model"]["input_name"] = frozen.info.feeds[0].name
            manifest["model"]["output_name"] = frozen.info.fetch_names[0]

        photos = options.images or _default_photos()
        manifest["parity_images"] = list(photos)
        manifest["profile"] = profile.describe()
        hw = (shape[2], shape[3])
        for layout in ("nchw", "nhwc"):
            run.inputs[layout] = [profile.preprocess(rgb, hw, layout=layout)[0] for rgb in photos.values()]
        preview = profile.preprocess_steps(next(iter(photos.values())), hw)["resized"]

        with run.step("reference: Paddle Inference, checked against its plain CPU kernels"):
            reference = PaddleInferenceBackend(frozen.files.model, threads=options.threads)
            run.reference = _run_backend(reference, run.inputs["nchw"])
            plain = PaddleInferenceBackend(frozen.files.model, threads=options.threads, use_onednn=False)
            check = parity_lib.compare(_run_backend(plain, run.inputs["nchw"]), run.reference,
                                       "Paddle Inference without oneDNN", bound=run.bounds["fp32"])
            manifest["reference"]["checks"].append(
                {"against": "Paddle Inference with oneDNN disabled (independent CPU kernels)",
                 "max_abs": check.max_abs, "mean_abs": check.mean_abs, "frac_over_bound": check.frac_over_bound,
                 "images": check.images}
            )
            if not parity_lib.within(check, run.bounds["fp32"], run.boundary_pixel_share):
                raise EdgematteError(
                    f"{source.origin}: the reference disagrees with Paddle's plain CPU kernels "
                    f"(max abs {check.max_abs:.2e} > {run.bounds['fp32']} on {check.frac_over_bound:.3%} of pixels); refusing to certify artefacts against it"
                )
            del plain
        run.reference_backend = reference

        if "lite" in formats:
            _convert_lite(run, frozen, options, profile.name)
        onnx_path = None
        if "onnx" in formats or "tflite" in formats:
            onnx_path = _convert_onnx(run, frozen, options, profile.name, keep="onnx" in formats)
        if "tflite" in formats:
            _convert_tflite(run, onnx_path, options, profile.name, work)
        if "onnx" not in formats and onnx_path is not None:
            onnx_path.unlink()
        if options.int8 is not None:
            _convert_int8(run, frozen, options, profile, shape, formats, work)

        from .report import write_report

        write_report(tmp, manifest, preview, parity_lib.as_nchw_alpha(run.reference[0])[0, 0],
                     {p: parity_lib.as_nchw_alpha(a)[0, 0] for p, a in run.alphas.items()})
        write_manifest(tmp, manifest)
        failures = [a for a in manifest["artefacts"] if a["parity"].get("within_bound") is False]
        if failures and options.strict:
            worst = ", ".join(f"{a['path']} max abs {a['parity']['max_abs']:.2e} > {a['parity']['bound']}" for a in failures)
            raise EdgematteError(f"{source.origin}: artefacts failed their parity bound: {worst}")
        if not options.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    manifest["_dir"] = str(out)
    return manifest


def _default_photos() -> Dict[str, np.ndarray]:
    from ..core.samples import parity_photo_names, sample_photos

    return sample_photos(parity_photo_names())


def _record(run: _Run, path: Path, results: Optional[List[np.ndarray]], parity: parity_lib.Parity, *,
            bound: Optional[float], **entry) -> dict:
    """Add an artefact to the manifest; ``results`` are its outputs on the parity images (None: not run)."""
    record = parity.to_dict()
    if bound is not None and parity.max_abs is not None:
        record["bound"] = bound
        record["within_bound"] = parity_lib.within(parity, bound, run.boundary_pixel_share)
    if results:
        # The raw output on the first parity image, so a runtime can prove it computes the same.
        saved = run.out / "parity" / f"{path.name}.npy"
        saved.parent.mkdir(exist_ok=True)
        np.save(saved, results[0])
        record["first_image_output"] = str(saved.relative_to(run.out))
    artefact = artefact_entry(run.out, path, parity=record, **entry)
    run.manifest["artefacts"].append(artefact)
    if results:
        run.alphas[artefact["path"]] = results[0]
    return artefact


def _convert_lite(run: _Run, frozen, options: ConvertOptions, profile: str) -> None:
    from ..runtime.backends.paddle_lite import PaddleLiteBackend
    from .paddle_lite import optimize

    x86_parity = None
    targets = sorted(set(options.lite_targets), key=lambda t: ("x86", "arm", "opencl").index(t))
    if "x86" not in targets:
        targets.insert(0, "x86")  # the host-runnable twin every arm/opencl .nb is judged by
        host_only = True
    else:
        host_only = False
    for target in targets:
        path = run.out / f"model_{target}.nb"
        with run.step(f"Paddle Lite opt -> {path.name}"):
            info = optimize(frozen.files.model.parent, path, target)
        common = dict(format="nb", target=target, precision="fp32", runtime="paddle_lite", layout="nchw",
                      profile=profile, extra={"opt": {k: v for k, v in info.as_dict().items() if k in ("relu6_patched", "kernel_targets", "opt_seconds")}})
        if target == "x86":
            with run.step(f"parity {path.name} (Paddle Lite x86)"):
                backend = PaddleLiteBackend(path)
                outputs = _run_backend(backend, run.inputs["nchw"])
                x86_parity = parity_lib.compare(outputs, run.reference, "reference", bound=run.bounds["fp32"])
                io = dict(inputs=_spec_list(backend.inputs), outputs=_spec_list(backend.outputs))
                del backend
            if host_only:
                path.unlink()
                continue
            _record(run, path, outputs, x86_parity, bound=run.bounds["fp32"], **io, **common)
        else:
            inherited = parity_lib.inherited(
                x86_parity, f"an {target} .nb cannot run on this x86 host: figures are those of the x86 .nb "
                "optimized by opt from the same program"
            )
            _record(run, path, None, inherited, bound=None, inputs=io["inputs"], outputs=io["outputs"], **common)


def _convert_onnx(run: _Run, frozen, options: ConvertOptions, profile: str, keep: bool) -> Path:
    from ..runtime.backends.onnxruntime import OnnxRuntimeBackend
    from .onnx import export_onnx

    path = run.out / "model.onnx"
    with run.step("paddle2onnx + exact repairs + onnxsim -> model.onnx"):
        info = export_onnx(frozen.files.model.parent, path)
    if keep:
        with run.step("parity model.onnx (ONNX Runtime)"):
            backend = OnnxRuntimeBackend(path, threads=options.threads)
            outputs = _run_backend(backend, run.inputs["nchw"])
            parity = parity_lib.compare(outputs, run.reference, "reference", bound=run.bounds["fp32"])
        _record(run, path, outputs, parity, bound=run.bounds["fp32"], format="onnx", target="any",
                precision="fp32", runtime="onnxruntime", layout="nchw", inputs=_spec_list(backend.inputs),
                outputs=_spec_list(backend.outputs), profile=profile,
                extra={"onnx": {k: info[k] for k in ("opset", "repairs", "normalizations", "normalization_check", "simplify")}})
    return path


def _convert_tflite(run: _Run, onnx_path: Path, options: ConvertOptions, profile: str, work: Path) -> None:
    from ..runtime.backends.litert import LiteRTBackend
    from .tflite import convert_to_tflite

    with run.step(f"onnx2tf -> TFLite ({options.layout})"):
        if options.int8 is not None:
            run.saved_model = work / "saved_model"
        # No log_path: on failure onnx2tf's log is kept outside OUT (which is discarded) and named in the error.
        info = convert_to_tflite(onnx_path, run.out, layout=options.layout, fp16=run.fp16,
                                 saved_model_dir=run.saved_model)
    summary = {k: v for k, v in info.items() if k in ("onnx_sha256", "onnx2tf_version", "tensorflow_version", "wall_time_s")}
    for item in info["files"].values():
        path = Path(item["path"])
        with run.step(f"parity {path.name} (LiteRT)"):
            backend = LiteRTBackend(path, threads=options.threads)
            outputs = _run_backend(backend, run.inputs[options.layout])
            parity = parity_lib.compare(outputs, run.reference, "reference", bound=run.bounds.get(item["precision"]))
        _record(run, path, outputs, parity, bound=run.bounds.get(item["precision"]), format="tflite",
                target="any", precision=item["precision"], runtime="litert", layout=options.layout,
                inputs=_spec_list(backend.inputs, item["inputs"]), outputs=_spec_list(backend.outputs, item["outputs"]),
                profile=profile, extra={"onnx2tf": summary})


def _fp32_size(run: _Run, fmt: str, target: str) -> Optional[int]:
    for a in run.manifest["artefacts"]:
        if a["format"] == fmt and a["target"] == target and a["precision"] == "fp32":
            return a["size_bytes"]
    return None


def _record_int8(run: _Run, path: Path, outputs, numerics: dict, budget: float, *, fmt: str,
                 target: str, precision: str, runtime: str, layout: str, profile: str, runs_on_host: bool,
                 extra: dict, io=None) -> dict:
    """An INT8 artefact: parity on the held-out images plus its matting numerics and budget verdict."""
    from ..quant.int8 import check_budget

    if runs_on_host:
        parity = parity_lib.compare(outputs, run.int8_reference, "reference (fp32), held-out images")
    else:
        parity = parity_lib.inherited(run.int8_x86_parity, f"an {target} .nb cannot run on this x86 host: figures are "
                                      "those of the x86 int8 .nb optimized by opt from the same quantized program")
    fp32_size = _fp32_size(run, fmt, target if fmt == "nb" else "any")
    numerics = dict(numerics, **check_budget(numerics, budget))
    entry_extra = dict(extra, numerics=numerics,
                       size_ratio_vs_fp32=round(path.stat().st_size / fp32_size, 4) if fp32_size else None)
    io = io or {"inputs": [], "outputs": []}
    artefact = _record(run, path, outputs, parity, bound=None, format=fmt, target=target, precision=precision,
                       runtime=runtime, layout=layout, inputs=io["inputs"], outputs=io["outputs"], profile=profile,
                       extra=entry_extra)
    if not numerics["within_budget"]:
        console.warn(f"{path.name}: MAD {numerics['mad']:.4f} against fp32 exceeds --budget-mad {budget}")
    return artefact


def _convert_int8(run: _Run, frozen, options: ConvertOptions, profile, shape, formats, work: Path) -> None:
    from ..quant import int8 as int8_lib

    opts = options.int8
    with run.step("INT8: calibration and evaluation sets"):
        evaluation, split = int8_lib.prepare(profile, (shape[2], shape[3]), run.reference_backend, opts)
        run.int8_reference = [run.reference_backend.run(x) for x in evaluation.inputs["nchw"]]
    run.manifest["int8"] = {"algo": opts.algo, "budget_mad": opts.budget_mad, "keep_float": list(opts.keep_float),
                            "calibration": split, "evaluation_images": evaluation.names,
                            "fp32_latency_ms": _fp32_latencies(run, evaluation, options, opts.latency_runs),
                            "latency_threads": options.threads}
    if "lite" in formats:
        records, x86_outputs = int8_lib.paddle_lite_int8(frozen.files.model.parent, work, run.out, options.lite_targets,
                                                         evaluation, opts, run.step, threads=options.threads)
        run.int8_x86_parity = parity_lib.compare(x86_outputs, run.int8_reference, "reference (fp32), held-out images")
        for r in records:
            _record_int8(run, r["path"], r["outputs"], r["numerics"], opts.budget_mad, fmt="nb",
                         target=r["target"], precision="int8", runtime="paddle_lite", layout="nchw",
                         profile=profile.name, runs_on_host=r["runs_on_host"],
                         extra={"quantization": r["ptq"], "kernels": r["kernels"]})
    if "tflite" in formats and run.saved_model is not None:
        _convert_tflite_int8(run, evaluation, options, profile)


def _fp32_latencies(run: _Run, evaluation, options: ConvertOptions, runs: int) -> dict:
    """Median ms of the fp32 artefacts the INT8 choices are weighed against: ``{"tflite", "nb_x86"}``, each
    only when that artefact was built (measured like the INT8 tries: in-process, a held-out photo)."""
    from ..core.timing import median_latency_ms
    from ..runtime.backends import open_backend

    if runs <= 0:
        return {}
    candidates = {"tflite": ("litert", run.out / "model_fp32.tflite", options.layout),
                  "nb_x86": ("paddle_lite", run.out / "model_x86.nb", "nchw")}
    latencies = {}
    for key, (runtime, path, layout) in candidates.items():
        if path.exists():
            with run.step(f"fp32 latency of {path.name} (median of {runs})"):
                backend = open_backend(runtime, path, threads=options.threads)
                latencies[key] = median_latency_ms(backend, evaluation.inputs[layout][0], runs=runs)
    return latencies


def _convert_tflite_int8(run: _Run, evaluation, options: ConvertOptions, profile) -> None:
    from ..quant.tflite_int8 import build_tflite_int8
    from ..runtime.backends.litert import LiteRTBackend
    from ..runtime.matter import Matter

    hw = tuple(run.manifest["model"]["input_shape"][2:])
    measured = {}

    def evaluate(path):
        matter = Matter(LiteRTBackend(path, threads=options.threads), profile, layout=options.layout, input_hw=hw)
        outputs = [matter.run_tensor(x) for x in evaluation.inputs[options.layout]]
        measured[str(path)] = (outputs, matter)
        return evaluation.numerics(outputs)

    with run.step("TFLite INT8 (full integer, float and int8 I/O; dynamic range) with the accuracy budget"):
        records = build_tflite_int8(run.saved_model, evaluation.calibration["nhwc" if options.layout == "nhwc" else "nchw"],
                                    run.out, evaluate, budget_mad=options.int8.budget_mad,
                                    keep_float=tuple(options.int8.keep_float), dynamic_range=options.int8.dynamic_range,
                                    latency_runs=options.int8.latency_runs, threads=options.threads)
    for r in records:
        path = Path(r["path"])
        outputs, matter = measured.get(str(path)) or (None, None)
        if outputs is None:
            numerics = evaluate(path)
            outputs, matter = measured[str(path)]
        else:
            numerics = r["numerics"]
        io = {"inputs": _spec_list([matter.input_spec]), "outputs": _spec_list([matter.output_spec])}
        _record_int8(run, path, outputs, numerics, options.int8.budget_mad, fmt="tflite", target="any",
                     precision=r["precision"], runtime="litert", layout=options.layout, profile=profile.name,
                     runs_on_host=True, io=io,
                     extra={"quantization": {k: v for k, v in r.items() if k not in ("path", "numerics", "precision")}})
