"""Stage 1: the fixed-shape Paddle model and the checked reference every artefact is judged by.

The reference is Paddle Inference on the fixed-shape program with oneDNN's faulty fuse pass removed
(:mod:`edgematte.runtime.backends.paddle_inference`); it is itself checked against Paddle's plain CPU
kernels on the parity photos, and a conversion whose reference disagrees beyond the model's bound stops.

A model with hard decisions (``arg_max`` reaching the alpha: PP-Matting, PP-HumanMatting) gets the
decision-aware rule (:func:`_wire_decisions`): the reference is then the program with its class scores as extra
fetches (``reference/scores/``, shipped for ``verify``), run once under each kernel set; the scores' difference
is the score noise, and every alpha pixel whose decision margin is within a few times that noise is excused from
the bound (in the reference check, the float-noise measurement and every float artefact's parity).
Where a decision point cannot be routed to the alpha, the zoo's boundary-pixel rule
(``ModelSpec.boundary_pixel_share``) stays the fallback.
"""

import collections
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ...core import decision_parity
from ...core import parity as parity_lib
from ...core.errors import EdgematteError
from ...core.fsutil import sha256_file
from ...core.manifest import Artefact
from ...runtime.model_io import FeedPlan
from ..context import PARITY_BOUNDS, Context, Decisions
from ..parity_cases import parity_cases

NAME = "reference"
# Where the reference program with its decision scores fetched goes, inside OUT/reference.
SCORES_DIR = "scores"
# The decision figures the reference check records (the rest are in its entry already or in reference.decisions).
_CHECK_DECISION_KEYS = ("max_abs_kept", "excused_pixels", "excused_share", "over_bound", "over_bound_excused",
                        "min_margin")
DECISION_RULE = ("an alpha pixel whose decision margin (top-1 minus top-2 class score of every argmax it depends "
                 "on, carried along the program's route to the alpha) is <= margin_tolerance = max(2 x 2 x "
                 "score_noise, 1e-6) is excused; every other pixel must be within the bound, and at most "
                 "max_excused_share of the pixels may be beyond the bound by an excuse")


def applies(ctx: Context) -> bool:
    return True


def run(ctx: Context) -> List[Artefact]:
    from ...converter.freeze import freeze_input_shape
    from ...runtime.backends.paddle_inference import PaddleInferenceBackend

    manifest, shape = ctx.manifest, ctx.manifest.model.input_shape
    with ctx.step(f"fix input shape to {shape}"):
        # The fixed-shape Paddle model is the reference; it ships in OUT so `verify` and `bench` can rerun it.
        ctx.frozen = freeze_input_shape([ctx.source.pdmodel, ctx.source.pdiparams], ctx.out / "reference", shape,
                                        constants=ctx.options.constants, alpha_only=ctx.options.alpha_only)
        manifest.reference.model_dir = "reference"
        manifest.reference.record_files(ctx.out / "reference")
        if ctx.frozen.folded.changed:  # PaddleSeg's exports compute sizes from shapes; now constants
            manifest.reference.extra["folded_shape_computations"] = ctx.frozen.folded.as_dict()
        if ctx.frozen.inlined:
            manifest.reference.extra["inlined_branches"] = ctx.frozen.inlined
        if ctx.options.alpha_only:  # what --alpha-only took out of the program (nothing, for an alpha-only model)
            manifest.reference.extra["dropped_outputs"] = {
                "outputs": [o.as_dict() for o in ctx.frozen.dropped_outputs],
                "ops": dict(collections.Counter(ctx.frozen.dropped_ops))}
        io = ctx.frozen.io
        manifest.model.input_name = io.image.name
        manifest.model.output_name = io.outputs[0].name
        if len(io.inputs) > 1 or len(io.outputs) > 1:  # one image in, alpha out needs no roles
            manifest.model.inputs, manifest.model.outputs = io.manifest_entries()

    ctx.cases = parity_cases(ctx.profile, ctx.photos, manifest.model.input_roles(), ctx.input_hw)
    points = _routed_decision_points(ctx)
    files, scores = ctx.frozen.files, ()
    if points:  # the reference itself fetches the scores: one run gives the alpha and the margins
        files, scores = _scores_program(ctx)

    with ctx.step("reference: Paddle Inference, and Paddle's plain CPU kernels to check it"
                  + (" (with the class scores)" if points else "")):
        start = time.perf_counter()
        reference = PaddleInferenceBackend((files.model, files.params), threads=ctx.options.threads)
        plain = PaddleInferenceBackend((files.model, files.params), threads=ctx.options.threads, use_onednn=False)
        if points:
            runs = {onednn: _run_named(backend, ctx.cases) for onednn, backend in ((True, reference), (False, plain))}
            alpha = manifest.model.output_name
            ctx.reference, checked = [r[alpha] for r in runs[True]], [r[alpha] for r in runs[False]]
        else:
            ctx.reference = ctx.run_cases(reference, "nchw", "the reference")
            checked = ctx.run_cases(plain, "nchw", "the reference")
        del plain
    if points:
        _wire_decisions(ctx, points, runs, scores, time.perf_counter() - start)
    with ctx.step("float noise: the reference against a float64 evaluation of the same program"):
        _measure_float_noise(ctx)
    _check_reference(ctx, checked)
    ctx.reference_backend = reference
    return []


def _check_reference(ctx: Context, checked: List[np.ndarray]) -> None:
    """Hold the reference to the fp32 bound against Paddle's plain CPU kernels (``checked``: their alphas on the
    parity cases); a reference that misses it certifies nothing and the conversion stops."""
    bound = ctx.bounds["fp32"]
    check = ctx.compare(checked, "fp32", "Paddle Inference without oneDNN")
    entry = {"against": "Paddle Inference with oneDNN disabled (independent CPU kernels)",
             "max_abs": check.max_abs, "mean_abs": check.mean_abs, "frac_over_bound": check.frac_over_bound,
             "images": check.images}
    decision = getattr(check, "decision", None)
    if decision is not None:
        entry["decisions"] = {k: v for k, v in decision.to_dict().items() if k in _CHECK_DECISION_KEYS}
    ctx.manifest.reference.checks.append(entry)
    if not ctx.within(check, bound):
        kept = (f"; {decision.max_abs_kept:.2e} on the pixels whose decision is no near-tie, "
                f"{decision.excused_share:.2%} excused" if decision else "")
        raise EdgematteError(
            f"{ctx.source.origin}: the reference disagrees with Paddle's plain CPU kernels (max abs "
            f"{check.max_abs:.2e}{kept} > {bound} on {check.frac_over_bound:.3%} of pixels); refusing to "
            "certify artefacts against it"
        )


def _routed_decision_points(ctx: Context) -> list:
    """The frozen program's hard decisions (argmax reaching the alpha) when every one routes to the alpha and the
    model has no recurrent state: the decision-aware rule applies. Otherwise ``[]``, and what was found (if
    anything) is recorded in ``reference.decisions`` with the fallback rule."""
    from ...converter.decision_logits import decision_points
    from ...converter.program import parse_program

    points = decision_points(parse_program(ctx.frozen.info.program_bytes, str(ctx.frozen.files.model)))
    if not points:
        return []
    unrouted = [p.route_problem for p in points if p.route is None]
    if unrouted or ctx.frozen.io.recurrent:
        why = "; ".join(unrouted) or "the model carries recurrent state (the scores are fetched for one-frame models)"
        fallback = (f"the zoo's boundary-pixel share {ctx.boundary_pixel_share:g}" if ctx.boundary_pixel_share
                    else "none: max abs within the bound on every pixel")
        ctx.manifest.reference.extra["decisions"] = {"points": [_point_summary(p) for p in points], "wired": False,
                                                     "why": why, "rule": f"fallback: {fallback}"}
        return []
    return points


def _scores_program(ctx: Context):
    """Write the reference program with the decision points' scores as extra fetches next to it (``reference/
    scores/``; it reads the reference's params file) and return its files and the scores' names. The conversion
    and ``verify`` run it as the reference: the extra fetches change no arithmetic (checked against the float64
    copy and the plain kernels like any reference)."""
    from ...converter.decision_logits import with_logits

    files, names = with_logits(ctx.frozen.files, ctx.out / "reference" / SCORES_DIR)
    ctx.manifest.reference.extra["scores_program"] = {
        "path": files.model.relative_to(ctx.out / "reference").as_posix(), "sha256": sha256_file(files.model),
        "params": files.params.name, "fetches": list(names)}
    return files, names


def _wire_decisions(ctx: Context, points, runs: Dict[bool, List[Dict[str, np.ndarray]]], names, seconds: float) -> None:
    """Set ``ctx.decisions`` from the reference's scores under oneDNN and plain CPU kernels (``runs``: every output
    by name per parity step): the score noise is their max abs difference; each parity step's margins are the
    oneDNN scores' margins, carried to the alpha along each point's route. The decision-aware rule then replaces
    the zoo's bound and boundary-pixel share; ``reference.decisions`` records it."""
    noise = decision_parity.score_noise([r[n] for r in runs[True] for n in names],
                                        [r[n] for r in runs[False] for n in names])
    margins = []
    for run, reference in zip(runs[True], ctx.reference):
        alpha_hw = parity_lib.as_nchw_alpha(reference).shape[-2:]
        margins.append(decision_parity.combined_margins(
            [decision_parity.decision_margins(run[p.logits], alpha_hw, p.route, p.axis) for p in points]))
    ctx.decisions = Decisions(margins=margins, noise=noise, tolerance=decision_parity.margin_tolerance(noise),
                              points=[_point_summary(p) for p in points])
    replaced = None
    if ctx.boundary_pixel_share or ctx.bounds["fp32"] != PARITY_BOUNDS["fp32"]:
        # The zoo's stated bound and share were its blunt answer to the same flips: not applied on top.
        replaced = {"fp32_parity_bound": ctx.bounds["fp32"], "boundary_pixel_share": ctx.boundary_pixel_share,
                    "bound_note": ctx.manifest.reference.extra.pop("bound_note", None)}
        ctx.bounds["fp32"], ctx.boundary_pixel_share = PARITY_BOUNDS["fp32"], 0.0
    d = ctx.decisions
    ctx.manifest.reference.extra["decisions"] = {
        "points": d.points, "wired": True, "score_noise": d.noise, "margin_tolerance": d.tolerance,
        "safety": decision_parity.SAFETY, "max_excused_share": d.max_excused_share,
        "reference_excused_share": float(np.mean([(m <= d.tolerance).mean() for m in d.margins])),
        "min_margin": _finite(min(m.min() for m in d.margins)),
        "against": "the reference's class scores under Paddle Inference oneDNN and plain CPU kernels",
        "rule": DECISION_RULE, "replaces": replaced, "seconds": round(seconds, 3)}


def _finite(value) -> Optional[float]:
    return float(value) if np.isfinite(value) else None  # +inf (no decision reaches the alpha) is not JSON


def _point_summary(point) -> dict:
    """A decision point for the manifest: its scores and class axis, the spatial ops of its route (``route``, to
    read) and the route itself (``steps``, what ``verify`` carries the margins along)."""
    return {"logits": point.logits, "logits_shape": list(point.logits_shape), "op_index": point.op_index,
            "axis": point.axis,
            "route": None if point.route is None else [s.get("type", s["op"]) for s in point.route[1:]
                                                        if s["op"] != "pointwise"],
            "steps": None if point.route is None else [dict(s) for s in point.route],
            "route_problem": point.route_problem}


def _run_named(backend, cases) -> List[Dict[str, np.ndarray]]:
    """Every output of ``backend`` by name, per step of every case (a one-frame model: inputs fed by name)."""
    inputs, outputs = [s.name for s in backend.inputs], [s.name for s in backend.outputs]
    return [dict(zip(outputs, backend.run_feeds([step[n] for n in inputs]))) for steps in cases for step in steps]


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
    record = {"against": "a float64 copy of the fixed-shape program (Paddle Inference, plain CPU kernels, no IR "
                         "passes)", "max_abs": noise.max_abs, "mean_abs": noise.mean_abs, "images": noise.images}
    if ctx.decisions is not None:
        # A decision the float64 copy takes the other way moves the alpha by up to 1 there: no float noise. The
        # bound derives from the pixels whose decisions are no near-tie.
        kept = ctx.decisions.compare(ctx.reference, truth, np.inf, "float64 evaluation of the same program")
        record.update(max_abs=kept.max_abs_kept, max_abs_all_pixels=noise.max_abs,
                      excused_pixels=kept.excused_pixels, excused_share=kept.excused_share)
    stated = ctx.bounds["fp32"] if ctx.boundary_pixel_share else 0.0  # the zoo's bound for unrouted decisions
    ctx.bounds["fp32"] = max(derived_bound(record["max_abs"]), stated)
    ctx.manifest.reference.extra["float_noise"] = dict(
        record, fp32_bound=ctx.bounds["fp32"],
        rule="fp32 bound = min(2.5e-3, max(1e-4, 4 x max abs noise)); with decisions wired the noise is over the "
             "pixels whose decision is no near-tie (reference.decisions); else a zoo model's stated bound for hard "
             "decisions is kept when looser",
        seconds=round(time.perf_counter() - start, 3))
