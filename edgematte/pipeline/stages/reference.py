"""Stage 1: the fixed-shape Paddle model and the checked reference every artefact is judged by.

The reference is Paddle Inference on the fixed-shape program with oneDNN's faulty fuse pass removed
(:mod:`edgematte.runtime.backends.paddle_inference`); it is itself checked against Paddle's plain CPU
kernels on the parity photos, and a conversion whose reference disagrees beyond the model's bound stops.
"""

import time
from pathlib import Path
from typing import List

from ...core import parity as parity_lib
from ...core.errors import EdgematteError
from ...core.manifest import Artefact
from ...runtime.model_io import FeedPlan
from ..context import Context
from ..parity_cases import parity_cases

NAME = "reference"


def applies(ctx: Context) -> bool:
    return True


def run(ctx: Context) -> List[Artefact]:
    from ...converter.freeze import freeze_input_shape
    from ...runtime.backends.paddle_inference import PaddleInferenceBackend

    manifest, shape = ctx.manifest, ctx.manifest.model.input_shape
    with ctx.step(f"fix input shape to {shape}"):
        # The fixed-shape Paddle model is the reference; it ships in OUT so `verify` and `bench` can rerun it.
        ctx.frozen = freeze_input_shape([ctx.source.pdmodel, ctx.source.pdiparams], ctx.out / "reference", shape,
                                        constants=ctx.options.constants)
        manifest.reference.model_dir = "reference"
        manifest.reference.record_files(ctx.out / "reference")
        if ctx.frozen.folded.changed:  # PaddleSeg's exports compute sizes from shapes; now constants
            manifest.reference.extra["folded_shape_computations"] = ctx.frozen.folded.as_dict()
        if ctx.frozen.inlined:
            manifest.reference.extra["inlined_branches"] = ctx.frozen.inlined
        io = ctx.frozen.io
        manifest.model.input_name = io.image.name
        manifest.model.output_name = io.outputs[0].name
        if len(io.inputs) > 1 or len(io.outputs) > 1:  # one image in, alpha out needs no roles
            manifest.model.inputs, manifest.model.outputs = io.manifest_entries()

    ctx.cases = parity_cases(ctx.profile, ctx.photos, manifest.model.input_roles(), ctx.input_hw)

    with ctx.step("reference: Paddle Inference, checked against its plain CPU kernels"):
        reference = PaddleInferenceBackend(ctx.frozen.files.model, threads=ctx.options.threads)
        ctx.reference = ctx.run_cases(reference, "nchw", "the reference")
    with ctx.step("float noise: the reference against a float64 evaluation of the same program"):
        _measure_float_noise(ctx)
    bound = ctx.bounds["fp32"]
    with ctx.step("reference check: Paddle's plain CPU kernels"):
        plain = PaddleInferenceBackend(ctx.frozen.files.model, threads=ctx.options.threads, use_onednn=False)
        check = parity_lib.compare(ctx.run_cases(plain, "nchw", "the reference"), ctx.reference,
                                   "Paddle Inference without oneDNN", bound=bound)
        manifest.reference.checks.append(
            {"against": "Paddle Inference with oneDNN disabled (independent CPU kernels)",
             "max_abs": check.max_abs, "mean_abs": check.mean_abs, "frac_over_bound": check.frac_over_bound,
             "images": check.images}
        )
        if not parity_lib.within(check, bound, ctx.boundary_pixel_share):
            raise EdgematteError(
                f"{ctx.source.origin}: the reference disagrees with Paddle's plain CPU kernels (max abs "
                f"{check.max_abs:.2e} > {bound} on {check.frac_over_bound:.3%} of pixels); refusing to certify "
                "artefacts against it"
            )
        del plain
    ctx.reference_backend = reference
    return []


def _measure_float_noise(ctx: Context) -> None:
    """The reference's own float32 error against a float64 copy of its program, on the parity cases, and the
    fp32 bound every artefact gets from it (:func:`~edgematte.converter.float64_program.derived_bound`).
    A zoo model's stated bound (hard decisions: argmax) is kept when it is looser."""
    import tempfile

    from ...converter.float64_program import Float64Model, derived_bound, float64_copy
    from ...runtime.model_io import alphas

    files, info = ctx.frozen.files, ctx.frozen.info
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="float64-", dir=ctx.work) as tmp:
        model = Float64Model(float64_copy(files, Path(tmp) / "float64"), ctx.options.threads, source=files.model)

        def run(arrays):
            return model.run(dict(zip(info.feed_names, arrays)))

        plan = FeedPlan.of(ctx.manifest.model.input_roles(), ctx.manifest.model.output_roles(), info.feed_names,
                           info.fetch_names, "nchw", "the float64 copy")
        truth = alphas(plan, run, ctx.cases)
    noise = parity_lib.compare(ctx.reference, truth, "float64 evaluation of the same program")
    stated = ctx.bounds["fp32"] if ctx.boundary_pixel_share else 0.0  # a zoo model's bound for hard decisions
    ctx.bounds["fp32"] = max(derived_bound(noise.max_abs), stated)
    ctx.manifest.reference.extra["float_noise"] = {
        "against": "a float64 copy of the fixed-shape program (Paddle Inference, plain CPU kernels, no IR passes)",
        "max_abs": noise.max_abs, "mean_abs": noise.mean_abs, "images": noise.images,
        "fp32_bound": ctx.bounds["fp32"],
        "rule": "fp32 bound = min(2.5e-3, max(1e-4, 4 x max abs noise)); a zoo model's stated bound for hard "
                "decisions is kept when looser",
        "seconds": round(time.perf_counter() - start, 3)}
