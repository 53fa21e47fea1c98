"""The INT8 stage of ``edgematte convert --int8``: calibrate, quantize for each target, measure, hold a budget.

Every INT8 artefact is evaluated against the fp32 reference on images disjoint from the calibration set,
in the matting metrics (:func:`edgematte.core.metrics.matting_numerics`) at the original image size,
after the deployment profile's own post-processing: the numbers a user of the artefact would see.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core import console
from ..core.errors import EdgematteError
from ..core.metrics import alpha_difference_stats, matting_numerics
from .calibration import calibration_tensors, split_calibration_evaluation

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
    latency_runs: int = 10  # per fallback choice, so the report can weigh MAD against speed; 0 = off


@dataclass
class EvaluationSet:
    """Held-out images with their fp32 reference alphas (original size) and model inputs per layout.

    A recurrent model (RVM) is evaluated on clips instead (:func:`prepare_clips`): ``cases`` holds one clip per
    held-out photo (its steps' non-state inputs, NCHW), and every per-image list (``states``,
    ``fp32_alphas``, ``fp32_outputs``) has one entry per frame of every clip, clip after clip. An artefact runs
    each clip from zero states with its own states fed back (:meth:`run`), as a deployed app would.
    ``calibration["nchw"]`` then holds one dict per calibration step: every fed input, the image with the
    states the fp32 reference produced at that step of its calibration clip.
    """

    names: List[str]
    inputs: dict  # layout -> list of tensors
    states: list
    fp32_alphas: List[np.ndarray]
    profile: object = None
    calibration: dict = field(default_factory=dict)  # layout -> [K, ...] tensors
    cases: Optional[List[List[Dict[str, np.ndarray]]]] = None  # recurrent: held-out clips (non-state inputs)
    input_roles: List[dict] = field(default_factory=list)
    output_roles: List[dict] = field(default_factory=list)
    fp32_outputs: List[np.ndarray] = field(default_factory=list)  # recurrent: the reference's raw alpha per frame

    @property
    def recurrent(self) -> bool:
        return self.cases is not None

    def numerics(self, outputs: Sequence[np.ndarray]) -> dict:
        """Matting numerics of a quantized artefact's raw outputs against the fp32 reference; for clips also
        ``eval_clips``, ``clip_frames`` and ``frames`` (per frame: clip, frame index, ``mad``, ``max_abs``)."""
        alphas = [self.profile.postprocess(o, s) for o, s in zip(outputs, self.states)]
        numerics = matting_numerics(zip(alphas, self.fp32_alphas))
        if self.recurrent:
            labels = [(name, index) for name, steps in zip(self.names, self.cases) for index in range(len(steps))]
            frames = []
            for (name, index), alpha, reference in zip(labels, alphas, self.fp32_alphas):
                stats = alpha_difference_stats(alpha, reference)
                frames.append({"clip": name, "frame": index, "mad": stats["mad"], "max_abs": stats["max_abs"]})
            numerics.update(eval_clips=len(self.cases), clip_frames=[len(steps) for steps in self.cases],
                            frames=frames)
        return numerics

    def plan(self, backend, layout: str = "nchw", layouts: Optional[Tuple[List[str], List[str]]] = None):
        """How ``backend`` is fed by the model's roles (:class:`~edgematte.runtime.model_io.FeedPlan`);
        ``layouts``: its (input, output) layouts per tensor, in its order, where they differ from ``layout``."""
        from ..runtime.model_io import FeedPlan

        return FeedPlan.of(self.input_roles, self.output_roles, [s.name for s in backend.inputs],
                           [s.name for s in backend.outputs], layout, str(getattr(backend, "path", "the model")),
                           *(layouts or (None, None)))

    def run(self, backend, layout: str = "nchw", layouts: Optional[Tuple[List[str], List[str]]] = None
            ) -> List[np.ndarray]:
        """``backend``'s raw alpha on every evaluation image, or on every frame of every clip (each clip from zero
        states, the artefact's own states fed back)."""
        if not self.recurrent:
            return [backend.run(x) for x in self.inputs[layout]]
        from ..runtime.model_io import alphas

        return alphas(self.plan(backend, layout, layouts), backend.run_feeds, self.cases)

    def latency_ms(self, backend, layout: str = "nchw", runs: int = 10,
                   layouts: Optional[Tuple[List[str], List[str]]] = None) -> float:
        """Median ms of one call of ``backend`` on the first evaluation image (a recurrent model: its first clip's
        first frame with zero states)."""
        from ..core.timing import feeds_latency_ms, median_latency_ms

        if not self.recurrent:
            return median_latency_ms(backend, self.inputs[layout][0], runs=runs)
        plan = self.plan(backend, layout, layouts)
        return feeds_latency_ms(backend, plan.feeds(self.cases[0][0], plan.zero_states()), runs=runs)


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


def prepare_clips(profile, input_hw, reference_backend, reference_plan, options: Int8Options, make_cases,
                  input_roles: Sequence[dict], output_roles: Sequence[dict]) -> tuple:
    """(EvaluationSet, split summary) for a recurrent model: calibration and evaluation on short clips.

    ``make_cases(photos: {name: RGB}) -> clips`` builds one clip per photo (the conversion's own parity clips,
    :func:`edgematte.pipeline.parity_cases.parity_cases`). The fp32 reference (``reference_backend`` fed by
    ``reference_plan``, NCHW) runs every clip from zero states, its states fed back: each step of a calibration
    clip gives one calibration sample (the frame with the states the reference had at that step), each frame of
    an evaluation clip its reference alpha. The held-out clips are made from photos disjoint from the
    calibration ones, as for one-frame models."""
    split = split_calibration_evaluation(folder=options.calib, calib_count=options.calib_count)
    hw = tuple(input_hw)
    image = next(r["name"] for r in input_roles if r["role"] == "image")

    def reference_steps(clip):
        states = reference_plan.zero_states()
        for step in clip:
            feeds = {**step, **states}
            outputs = reference_backend.run_feeds(reference_plan.feeds(step, states))
            states = {**states, **reference_plan.next_states(outputs)}
            yield feeds, outputs[reference_plan.alpha_index]

    calibration_clips = make_cases(dict(zip(split.calibration_names, split.calibration)))
    samples = [feeds for clip in calibration_clips for feeds, _ in reference_steps(clip)]
    evaluation = EvaluationSet(names=list(split.evaluation_names), inputs={"nchw": []}, states=[], fp32_alphas=[],
                               profile=profile, calibration={"nchw": samples},
                               cases=make_cases(dict(zip(split.evaluation_names, split.evaluation))),
                               input_roles=list(input_roles), output_roles=list(output_roles))
    for rgb, clip in zip(split.evaluation, evaluation.cases):
        state = profile.preprocess(rgb, hw, layout="nchw")[1]  # every frame of a clip has the photo's geometry
        for feeds, alpha in reference_steps(clip):
            evaluation.inputs["nchw"].append(feeds[image])
            evaluation.states.append(state)
            evaluation.fp32_outputs.append(alpha)
            evaluation.fp32_alphas.append(profile.postprocess(alpha, state))
    summary = dict(split.as_dict(), clip_frames=len(calibration_clips[0]), calibration_samples=len(samples),
                   evaluation_frames=len(evaluation.fp32_alphas))
    return evaluation, summary


def lite_fallback_ladder(frozen_dir, keep_float: Sequence[str]) -> List[dict]:
    """Float fallbacks to try, in order, when the Lite int8 model misses the budget.

    Paddle PTQ calibrates afresh for every try (about a minute at 512x512), so the ladder is short and
    general: the user's choice (plus the depthwise workaround PTQ always applies), then every conv whose
    output Lite cannot fold into a bias (residual-branch and head convs; on PP-MattingV2 the most
    sensitive: 0.0189 -> 0.0177 MAD), then also the convs that read the image.
    """
    from .paddle_ptq import convs_without_bias, weights_of_convs_reading_input

    user = set(keep_float)
    no_bias = user | {c.weight for c in convs_without_bias(frozen_dir)}
    return [{"label": "user's --keep-float" if user else "none beyond the Lite x86 workaround", "skip": sorted(user)},
            {"label": "+ convs without a foldable bias", "skip": sorted(no_bias)},
            {"label": "+ convs reading the image",
             "skip": sorted(no_bias | set(weights_of_convs_reading_input(frozen_dir)))}]


def paddle_lite_int8(frozen_dir, work: Path, out: Path, targets: Sequence[str], evaluation: EvaluationSet,
                     options: Int8Options, step: Callable, threads: int = 2) -> tuple:
    """Paddle PTQ -> int8 .nb per target, walking :func:`lite_fallback_ladder` until the x86 .nb meets the
    budget (else keeping the most accurate try). Returns (records, x86 outputs); each record: path, target,
    numerics (x86 measured; arm/opencl inherit the figures of the x86 .nb opt built from the same quantized
    program), outputs, ``kernels`` (:func:`~edgematte.runtime.backends.paddle_lite.nb_kernel_census`),
    ``repairs`` (the Paddle program repairs applied to what opt read), ``tensor_specs`` (the x86 .nb's
    (inputs, outputs): one quantized program for every target) and ``ptq`` (settings, kept_float, history
    of the tries: MAD, size and, with ``options.latency_runs``, the x86 .nb's median latency in ms on ``threads``
    threads)."""
    from ..converter.paddle_lite import optimize
    from ..runtime.backends.paddle_lite import PaddleLiteBackend
    from .paddle_ptq import quantize_paddle_model

    tries, history = [], []
    for index, rung in enumerate(lite_fallback_ladder(frozen_dir, options.keep_float)):
        if history and rung["skip"] == history[-1]["requested_float"]:
            continue  # nothing new to keep float on this model
        with step(f"Paddle PTQ ({options.algo}, per-channel, {len(evaluation.calibration['nchw'])} "
                  f"{'clip steps' if evaluation.recurrent else 'images'}; float: {rung['label']})"):
            ptq = quantize_paddle_model(frozen_dir, work / f"ptq{index}", evaluation.calibration["nchw"],
                                        algo=options.algo, skip_tensors=tuple(rung["skip"]))
        probe = work / f"ptq{index}_x86_int8.nb"
        with step("Paddle Lite opt x86 int8 + evaluate on the held-out " +
                  ("clips (own states fed back)" if evaluation.recurrent else "images")):
            opt_info = optimize(ptq.model.model.parent, probe, "x86")
            backend = PaddleLiteBackend(probe, threads=threads)
            outputs = evaluation.run(backend, "nchw")
            numerics = evaluation.numerics(outputs)
            latency = (evaluation.latency_ms(backend, "nchw", runs=options.latency_runs)
                       if options.latency_runs > 0 else None)
            specs = (list(backend.inputs), list(backend.outputs))  # Lite declares shapes once it has run
            del backend
        tries.append((ptq, probe, outputs, numerics, opt_info, specs))
        history.append({"step": rung["label"], "requested_float": rung["skip"], "kept_float": list(ptq.skip_tensors),
                        "mad": numerics["mad"], "size_bytes": probe.stat().st_size, "latency_ms": latency})
        if numerics["mad"] <= options.budget_mad:
            break
        console.warn(f"Lite int8, float {rung['label']}: MAD {numerics['mad']:.4f} > budget {options.budget_mad}")
    met = [t for t in tries if t[3]["mad"] <= options.budget_mad]
    ptq, probe, outputs, numerics, opt_info, specs = met[0] if met else min(tries, key=lambda t: t[3]["mad"])
    info = {k: v for k, v in ptq.as_dict().items() if k not in ("model", "params", "source")}
    chosen = history[next(i for i, t in enumerate(tries) if t[0] is ptq)]
    info.update(kept_float=list(ptq.skip_tensors), history=history, latency_ms=chosen["latency_ms"])
    records = _target_records(ptq.model.model.parent, probe, opt_info, out, "int8", targets, numerics, outputs, specs,
                              step, "ptq", info)
    return records, outputs


def paddle_lite_weight_int8(frozen_dir, work: Path, out: Path, targets: Sequence[str], evaluation: EvaluationSet,
                            options: Int8Options, step: Callable, threads: int = 2) -> tuple:
    """Weights-only INT8 ``.nb`` per target (:mod:`edgematte.quant.paddle_weight_int8`): int8 conv weights that
    Paddle Lite makes float again at load, for models whose full int8 misses the budget.

    Every conv weight is int8 except the user's ``--keep-float`` ones. If the x86 ``.nb`` misses the budget on
    the held-out images (clips), each weight's rounding is measured alone (everything else float) in Paddle's static
    executor (:class:`~edgematte.quant.paddle_weight_int8.SimulatedWeights`, the same arithmetic as the ``.nb``
    up to float noise), ranked by what it costs, and the shortest head of that ranking kept float that meets the
    budget is found by bisection on real x86 ``.nb`` files (:func:`edgematte.quant.budget.search_prefix`).
    Returns (records, x86 outputs) as :func:`paddle_lite_int8` (``weights`` in place of ``ptq``: settings, kept
    float, ranking, history).
    """
    from ..converter.paddle_lite import optimize
    from ..runtime.backends.paddle_lite import PaddleLiteBackend
    from . import budget as budget_search
    from .paddle_weight_int8 import SimulatedWeights, quantizable_weight_ops, write_weight_int8_model

    weight_ops = quantizable_weight_ops(frozen_dir)
    user = tuple(sorted(set(options.keep_float) & {w.weight for w in weight_ops}))
    tries = {}

    def build(kept: Tuple[str, ...]) -> Path:
        index = len(tries)
        model = write_weight_int8_model(frozen_dir, work / f"weights_int8_{index}", keep_float=sorted(set(kept)))
        probe = work / f"weights_int8_{index}_x86.nb"
        opt_info = optimize(model.model.model.parent, probe, "x86")
        tries[probe] = (model, opt_info)
        return probe

    loaded = {}  # the probe evaluate() loaded, timed by latency() on the same predictor

    def evaluate(probe: Path) -> dict:
        backend = loaded[probe] = PaddleLiteBackend(probe, threads=threads)
        outputs = evaluation.run(backend, "nchw")
        tries[probe] += (outputs, (list(backend.inputs), list(backend.outputs)))
        return dict(evaluation.numerics(outputs))

    def latency(probe: Path) -> float:
        return evaluation.latency_ms(loaded[probe], "nchw", runs=options.latency_runs)

    def candidate(kept: Tuple[str, ...]) -> dict:
        probe = build(tuple(user) + tuple(kept))
        try:
            measured = budget_search.measure_candidate(evaluate, probe,
                                                       latency if options.latency_runs > 0 else None)
        finally:
            loaded.pop(probe, None)
        return dict(measured, probe=probe)

    what = "clips (own states fed back)" if evaluation.recurrent else "images"
    with step(f"Paddle Lite weights-only int8 ({len(weight_ops) - len(user)} conv weights int8) + evaluate on the "
              f"held-out {what}"):
        start = candidate(())
    ranking, history, chosen = [], [dict(start, step=0, added=None, kept_float_nodes=[])], start
    if start["mad"] > options.budget_mad:
        console.warn(f"Lite weights-only int8: MAD {start['mad']:.4f} > budget {options.budget_mad}; ranking the "
                     f"{len(weight_ops) - len(user)} conv weights by what their rounding costs alone")
        groups = [budget_search.LayerGroup(anchor=w.weight, anchor_op=w.op_type, nodes=(w.weight,),
                                           op_types=(w.op_type,), macs=w.macs) for w in weight_ops
                  if w.weight not in user]
        with step(f"rank {len(groups)} conv weights (Paddle static executor, weights rounded one at a time)"):
            simulated = SimulatedWeights(frozen_dir, threads=threads)

            def measure_alone(node_sets):
                mads = []
                for nodes in node_sets:
                    simulated.use(nodes)
                    mads.append(evaluation.numerics(evaluation.run(simulated, "nchw"))["mad"])
                return mads

            ranked = budget_search.rank_by_cost(groups, measure_alone)
            del simulated
        with step("bisect the costliest weights kept float on x86 .nb files"):
            result = budget_search.search_prefix(start, ranked, options.budget_mad, candidate)
        ranking, history = result.ranking, result.history
        chosen = next(h for h in history if h["kept_float_nodes"] == result.kept_float_nodes)
    model, opt_info, outputs, specs = tries[chosen["probe"]]
    info = dict(model.as_dict(), user_keep_float=list(user), ranking=ranking, latency_ms=chosen.get("latency_ms"),
                history=[{k: h.get(k) for k in ("step", "added", "kept_float_nodes", "mad", "size_bytes",
                                                "latency_ms")} for h in history])
    records = _target_records(model.model.model.parent, chosen["probe"], opt_info, out, "int8_weights", targets,
                              chosen["numerics"], outputs, specs, step, "weights", info)
    return records, outputs


def _target_records(model_dir, x86_probe: Path, x86_opt_info, out: Path, suffix: str, targets: Sequence[str],
                    numerics: dict, outputs, specs, step: Callable, info_key: str, info: dict) -> List[dict]:
    """One record per Lite target of the chosen quantized program ``model_dir``: the measured x86 probe becomes
    ``model_x86_<suffix>.nb`` (when x86 is a target), opt writes the others; all carry the x86 figures."""
    from ..converter.paddle_lite import optimize
    from ..runtime.backends.paddle_lite import nb_kernel_census

    records = []
    for target in sorted(set(targets) | {"x86"}, key=lambda t: ("x86", "arm", "opencl").index(t)):
        path = out / f"model_{target}_{suffix}.nb"
        if target == "x86":
            if "x86" not in targets:
                continue
            x86_probe.replace(path)
            opt_info = x86_opt_info
        else:
            with step(f"Paddle Lite opt -> {path.name}"):
                opt_info = optimize(model_dir, path, target)
        host = target == "x86"
        records.append({"path": path, "target": target, "numerics": numerics, "runs_on_host": host,
                        "outputs": outputs if host else None, "kernels": nb_kernel_census(path),
                        "repairs": opt_info.as_dict().get("applied_repairs", []), "tensor_specs": specs,
                        info_key: info if host else dict(info, latency_ms=None)})  # x86 timings say nothing of ARM
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
