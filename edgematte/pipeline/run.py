"""``edgematte convert``: check the request, open the model, run the stages in order, write OUT atomically.

source -> fixed-shape copy -> checked reference -> Paddle Lite .nb per target, ONNX (paddle2onnx + exact
repairs), TFLite (onnx2tf) -> INT8 (Lite, TFLite, ONNX QDQ) -> parity of each artefact on real photos ->
``manifest.json`` + ``report.md``. Everything is built in a temporary sibling of OUT and swapped in only when
complete, so a failure never leaves half an output or replaces a good one; an error raised meanwhile names OUT,
not that temporary folder (:func:`_errors_name`). Options are checked before any work (:func:`validate_options`:
formats, targets, width, input shape, thread count).
"""

import contextlib
import math
import os
import shutil
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np

from ..core import console
from ..core import parity as parity_lib
from ..core.errors import EdgematteError
from ..core.fsutil import atomic_dir
from ..core.manifest import Manifest, ModelInfo, ReferenceInfo, is_conversion_folder
from ..core.signals import reassert_signal_policy
from ..core.threads import resolve_threads
from ..runtime.profiles import profile_class, profile_for_model
from ..zoo.export import check_input_shape, validate_input_shape, validate_width
from ..zoo.source import ModelSource, check_weight_sources, open_model_source
from .context import FORMATS, LITE_TARGETS, PARITY_BOUNDS, Context, ConvertOptions
from .stages import STAGES

REFERENCE_DESCRIPTION = ("Paddle Inference (CPU, oneDNN with reshape_transpose_matmul_mkldnn_fuse_pass deleted: the "
                         "default config miscomputes PP-MattingV2)")


def validate_options(options: ConvertOptions) -> List[str]:
    """The formats to build, in stage order; a one-line error for anything unknown or out of range (width,
    input shape, threads), before any work."""
    unknown = set(options.formats) - set(FORMATS)
    if unknown:
        raise EdgematteError(f"--to: unknown format(s) {', '.join(sorted(unknown))} (choose from {', '.join(FORMATS)})")
    bad_targets = set(options.lite_targets) - set(LITE_TARGETS)
    if bad_targets:
        raise EdgematteError(f"--lite-targets: unknown target(s) {', '.join(sorted(bad_targets))} "
                             f"(choose from {', '.join(LITE_TARGETS)})")
    if options.int8 is not None:
        from ..quant.int8 import validate as validate_int8

        validate_int8(options.int8)
        if "onnx" in options.formats:  # ONNX Runtime's calibration has no counterpart of every --algo
            from ..quant.onnx_int8 import calibration_settings

            calibration_settings(options.int8.algo)
    if options.layout not in ("nhwc", "nchw"):
        raise EdgematteError(f"--layout: {options.layout!r} is not nhwc or nchw")
    profile_class(options.profile)  # an unknown name fails before any work
    check_weight_sources(options.pretrained, options.weights, options.seed)
    validate_width(options.width)
    if options.input_shape:
        check_input_shape(options.input_shape)  # the model's own rules (multiples of 32) once it is open
    resolve_threads(options.threads, "--threads")  # the backends clamp again; each count is warned about once
    for name, value in (options.constants or {}).items():
        if not math.isfinite(value):
            raise EdgematteError(f"--constant {name}={value}: not a finite number")
    ratio = (options.constants or {}).get("downsample_ratio")
    if ratio is not None and not 0 < ratio <= 1:
        raise EdgematteError(f"--downsample-ratio {ratio}: must be in (0, 1] (the frame is scaled by it)")
    return [f for f in FORMATS if f in options.formats]


def resolve_input_shape(source: ModelSource, requested: Optional[Sequence[int]]) -> List[int]:
    """The fixed input shape: ``--input-shape``, else deploy.yaml's if fully fixed, else the native size."""
    spec = source.spec
    if requested:
        shape = [int(d) for d in requested]
        if spec is not None:
            return validate_input_shape(spec, shape)
        return check_input_shape(shape)
    if source.input_shape and all(d is not None for d in source.input_shape):
        return check_input_shape(source.input_shape, f"{source.origin}: its deploy.yaml input_shape")
    if spec is None:
        raise EdgematteError(
            f"{source.origin}: the input shape is dynamic and the architecture unknown; give --input-shape N C H W"
        )
    return [1, 3, *spec.native_hw]


def _context(source: ModelSource, options: ConvertOptions, formats: List[str], tmp: Path, work: Path) -> Context:
    """The manifest header and the per-model rules (bounds, fp16) for ``source``."""
    shape = resolve_input_shape(source, options.input_shape)
    transforms = source.transforms or (source.spec.transforms if source.spec else None)
    model = ModelInfo(name=source.spec.name if source.spec else Path(source.origin).stem, input_shape=shape,
                      origin=source.origin, source_sha256=source.sha256, declared_input_shape=source.input_shape,
                      transforms=source.transforms)
    manifest = Manifest.new(model, ReferenceInfo(backend="paddle_inference", description=REFERENCE_DESCRIPTION),
                            out_dir=tmp)
    ctx = Context(options=options, out=tmp, work=work, manifest=manifest, formats=formats, source=source,
                  profile=profile_for_model(options.profile, transforms))
    ctx.fp16 = options.fp16
    if ctx.fp16 is None:
        ctx.fp16 = source.spec.default_fp16 if source.spec is not None else True
        if not ctx.fp16 and "tflite" in formats:
            manifest.extra["fp16_skipped"] = source.spec.fp16_note
            console.info(f"no fp16 TFLite by default for {source.spec.name}: {source.spec.fp16_note}")
    if source.spec is not None and source.spec.fp32_parity_bound > PARITY_BOUNDS["fp32"]:
        # The zoo's rule for a model with hard decisions. It is the fallback: when the reference stage can route
        # every decision to the alpha, it replaces both with the decision-aware rule (reference.decisions).
        ctx.bounds["fp32"] = source.spec.fp32_parity_bound
        ctx.boundary_pixel_share = source.spec.boundary_pixel_share
        manifest.reference.extra["bound_note"] = source.spec.parity_note
    # For `verify`, which applies this share (it does not apply reference.decisions yet), even when the conversion
    # itself judged by the decision-aware rule.
    manifest.reference.extra["boundary_pixel_share"] = ctx.boundary_pixel_share
    ctx.photos = options.images or _default_photos()
    manifest.extra["parity_images"] = list(ctx.photos)
    manifest.extra["profile"] = ctx.profile.describe()
    return ctx


def convert(model: str, out, options: ConvertOptions = ConvertOptions()) -> Manifest:
    """Convert ``model`` into ``out``; return the manifest. Raises EdgematteError on any failed check."""
    formats = validate_options(options)
    out = Path(out)
    inputs = [p for p in (model, options.weights, options.int8 and options.int8.calib) if p and Path(p).exists()]
    with atomic_dir(out, inputs=inputs, recognise=is_conversion_folder, what="conversion folder") as tmp, \
            _errors_name(out, tmp):
        work = tmp / ".work"
        work.mkdir()
        source = open_model_source(model, work, weights=options.weights, seed=options.seed, width=options.width,
                                   pretrained=options.pretrained)
        ctx = _context(source, options, formats, tmp, work)
        for stage in STAGES:
            reassert_signal_policy()  # importing paddle replaced it: a SIGTERM must still clean up
            if stage.applies(ctx):
                stage.run(ctx)
        _finish(ctx)
        if not options.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    ctx.manifest.dir = out
    return ctx.manifest


@contextlib.contextmanager
def _errors_name(out: Path, tmp: Path) -> Iterator[None]:
    """The one place a conversion's errors are mapped: an :class:`EdgematteError` raised while OUT is built
    in its temporary sibling (``.OUT.edgematte-PID-START.xxxx``) names OUT instead of that folder, which the
    user never named and which is gone by the time the message is printed."""
    try:
        yield
    except EdgematteError as error:
        message = str(error)
        for form in sorted({str(tmp.resolve()), os.path.abspath(tmp), str(tmp)}, key=len, reverse=True):
            message = message.replace(form, str(out))
        if message != str(error):
            error.args = (message,)
        raise


def _finish(ctx: Context) -> None:
    """Report and manifest; with ``strict``, fail when an artefact missed its parity bound."""
    from .report import write_conversion_report

    manifest = ctx.manifest
    preview = ctx.profile.preprocess_steps(next(iter(ctx.photos.values())), ctx.input_hw)["resized"]
    write_conversion_report(ctx.out, manifest, preview, parity_lib.as_nchw_alpha(ctx.reference[0])[0, 0],
                 {p: parity_lib.as_nchw_alpha(a)[0, 0] for p, a in ctx.alphas.items()})
    manifest.write(ctx.out)
    failures = [a for a in manifest.artefacts if a.parity.within_bound is False]
    if failures and ctx.options.strict:
        worst = ", ".join(f"{a.path} max abs {a.parity.max_abs:.2e} > {a.parity.bound}" for a in failures)
        raise EdgematteError(f"{ctx.source.origin}: artefacts failed their parity bound: {worst}")


def _default_photos() -> Dict[str, np.ndarray]:
    from ..core.samples import parity_photo_names, sample_photos

    return sample_photos(parity_photo_names())
