"""Stage 1: the fixed-shape Paddle model and the checked reference every artefact is judged by.

The reference is Paddle Inference on the fixed-shape program with oneDNN's faulty fuse pass removed
(:mod:`edgematte.runtime.backends.paddle_inference`); it is itself checked against Paddle's plain CPU
kernels on the parity photos, and a conversion whose reference disagrees beyond the model's bound stops.
"""

from typing import List

from ...core import parity as parity_lib
from ...core.errors import EdgematteError
from ...core.manifest import Artefact
from ..context import Context, run_all

NAME = "reference"


def applies(ctx: Context) -> bool:
    return True


def run(ctx: Context) -> List[Artefact]:
    from ...converter.program import freeze_input_shape
    from ...runtime.backends.paddle_inference import PaddleInferenceBackend

    manifest, shape = ctx.manifest, ctx.manifest.model.input_shape
    with ctx.step(f"fix input shape to {shape}"):
        # The fixed-shape Paddle model is the reference; it ships in OUT so `verify` and `bench` can rerun it.
        ctx.frozen = freeze_input_shape([ctx.source.pdmodel, ctx.source.pdiparams], ctx.out / "reference", shape)
        manifest.reference.model_dir = "reference"
        manifest.reference.record_files(ctx.out / "reference")
        if ctx.frozen.folded.changed:  # PaddleSeg's exports compute sizes from shapes; now constants
            manifest.reference.extra["folded_shape_computations"] = ctx.frozen.folded.as_dict()
        manifest.model.input_name = ctx.frozen.info.feeds[0].name
        manifest.model.output_name = ctx.frozen.info.fetch_names[0]

    for layout in ("nchw", "nhwc"):
        ctx.inputs[layout] = [ctx.profile.preprocess(rgb, ctx.input_hw, layout=layout)[0]
                              for rgb in ctx.photos.values()]

    bound = ctx.bounds["fp32"]
    with ctx.step("reference: Paddle Inference, checked against its plain CPU kernels"):
        reference = PaddleInferenceBackend(ctx.frozen.files.model, threads=ctx.options.threads)
        ctx.reference = run_all(reference, ctx.inputs["nchw"])
        plain = PaddleInferenceBackend(ctx.frozen.files.model, threads=ctx.options.threads, use_onednn=False)
        check = parity_lib.compare(run_all(plain, ctx.inputs["nchw"]), ctx.reference,
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
