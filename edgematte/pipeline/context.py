"""What the conversion stages share: the options, the typed manifest being written, the parity inputs, the
checked reference's outputs and the first-image alphas for the report.

``Context.record`` is the one way an artefact enters the manifest: its parity figures against the
reference, the bound it is judged by, and its raw output on the first parity photo (saved beside it, so a
runtime can prove it computes the same). For a model with hard decisions (argmax) whose decision points the
reference stage could route to the alpha, ``Context.decisions`` holds how close the reference came to flipping
each pixel, and every float comparison excuses the near-ties (:mod:`edgematte.core.decision_parity`).
"""

import contextlib
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..converter.freeze import FrozenModel
from ..core import console, decision_parity
from ..core import parity as parity_lib
from ..core.manifest import Artefact, Manifest
from ..quant.int8 import EvaluationSet, Int8Options
from ..runtime.backends.base import Backend
from ..runtime.backends.base import tensor_entries as backend_tensor_entries
from ..runtime.model_io import FeedPlan, alphas
from ..runtime.profiles import Profile
from ..zoo.source import ModelSource

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
    pretrained: bool = False  # the official checkpoint from the cache (fetched when missing)
    width: float = 1.0
    strict: bool = True
    keep_work: bool = False
    int8: Optional[Int8Options] = None  # also build INT8 artefacts
    constants: Optional[Dict[str, float]] = None  # scalar inputs frozen into the model (RVM's downsample_ratio)
    alpha_only: bool = False  # only the alpha and state outputs stay (converter.prune_outputs)


@dataclass
class Int8State:
    """The INT8 stages' shared inputs: the held-out evaluation set and its fp32 reference outputs."""

    evaluation: EvaluationSet
    reference: List[np.ndarray]
    x86_parity: Optional[parity_lib.Parity] = None  # the x86 int8 .nb's, inherited by the arm one


@dataclass
class Decisions:
    """The reference's hard decisions (argmax) and how close it came to flipping them on the parity images.

    ``margins``: per step of every parity case (aligned with ``Context.reference``), the (N, H, W) float64 map
    of each alpha pixel's smallest top-1 minus top-2 score margin over every decision it depends on
    (:func:`~edgematte.core.decision_parity.combined_margins`); ``noise``: max abs score difference between the
    reference's two kernel sets (oneDNN, plain CPU); ``tolerance``: the margin at or below which a pixel is
    excused (:func:`~edgematte.core.decision_parity.margin_tolerance` of ``noise``); ``points``: a small
    summary of each decision point for the manifest; ``max_excused_share``: the verdict's cap on excused pixels.
    """

    margins: List[np.ndarray]
    noise: float
    tolerance: float
    points: List[dict]
    max_excused_share: float = decision_parity.MAX_EXCUSED_SHARE

    def compare(self, outputs: Sequence[np.ndarray], references: Sequence[np.ndarray], bound: float,
                compared_to: str = "reference") -> decision_parity.DecisionParity:
        """Decision-aware figures of ``outputs`` against ``references`` (one alpha per parity step each)."""
        return decision_parity.decision_aware_compare(outputs, references, self.margins, self.noise, bound,
                                                      compared_to=compared_to)

    def within(self, parity: decision_parity.DecisionParity, bound: float) -> bool:
        return decision_parity.within(parity, bound, self.max_excused_share)


@dataclass
class DecisionAwareParity(parity_lib.Parity):
    """:class:`~edgematte.core.parity.Parity` (every figure over all pixels) plus the decision-aware figures its
    verdict is taken from (``decision``: excused pixels, their share, ``max_abs_kept``), as ``decisions`` in
    the manifest's parity record."""

    decision: Optional[decision_parity.DecisionParity] = None

    @classmethod
    def of(cls, parity: parity_lib.Parity, decision: decision_parity.DecisionParity) -> "DecisionAwareParity":
        return cls(**{f.name: getattr(parity, f.name) for f in fields(parity_lib.Parity)}, decision=decision)

    def to_dict(self) -> dict:
        record = {f.name: getattr(self, f.name) for f in fields(parity_lib.Parity)}
        if self.decision is not None:
            record["decisions"] = self.decision.to_dict()
        return record


@dataclass
class Context:
    """One conversion in progress. ``out`` is the temporary folder that becomes OUT, ``work`` scratch inside it."""

    options: ConvertOptions
    out: Path
    work: Path
    manifest: Manifest
    formats: List[str]
    source: Optional[ModelSource] = None
    frozen: Optional[FrozenModel] = None  # the fixed-shape reference program (stage 1)
    profile: Optional[Profile] = None
    # The parity cases (runtime.model_io): per photo, the steps (one, or a clip for a recurrent model), each
    # mapping the fed inputs that are not states (image, trimap) to NCHW float32 tensors.
    cases: List[List[Dict[str, np.ndarray]]] = field(default_factory=list)
    photos: Dict[str, np.ndarray] = field(default_factory=dict)
    reference: List[np.ndarray] = field(default_factory=list)  # the reference's alpha at every step of every case
    reference_backend: Optional[Backend] = None
    alphas: Dict[str, np.ndarray] = field(default_factory=dict)  # artefact path -> first image's output
    bounds: Dict[str, float] = field(default_factory=lambda: dict(PARITY_BOUNDS))
    # The zoo's blunt rule for hard decisions (ModelSpec.boundary_pixel_share): only where ``decisions`` is None.
    boundary_pixel_share: float = 0.0
    decisions: Optional[Decisions] = None  # the reference stage's decision-aware rule, when it applies
    fp16: bool = True
    onnx_path: Optional[Path] = None  # the exported ONNX graph in work: what onnx2tf and the int8 quantizer read
    saved_model: Optional[Path] = None  # onnx2tf's SavedModel, kept for TFLite INT8
    int8: Optional[Int8State] = None

    @property
    def input_hw(self):
        return self.manifest.model.input_hw

    @contextlib.contextmanager
    def step(self, name: str):
        """A timed, numbered step: announced, then recorded in the manifest's ``steps``."""
        console.info(f"[{len(self.manifest.steps) + 1}] {name} ...")
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        self.manifest.steps.append({"name": name, "seconds": round(seconds, 3)})
        console.info(f"    {name}: {seconds:.1f} s")

    def feed_plan(self, backend: Backend, layout: str, what: str, tensors: Optional[dict] = None) -> FeedPlan:
        """How ``backend``'s model is fed by the manifest's roles (its tensors matched by name). ``tensors``:
        the converter's ``{"inputs": [...], "outputs": [...]}`` entries, whose ``layout`` is per tensor."""
        layouts = {k: [entry.get("layout") or layout for entry in v] for k, v in (tensors or {}).items()}
        return FeedPlan.of(self.manifest.model.input_roles(), self.manifest.model.output_roles(),
                           [s.name for s in backend.inputs], [s.name for s in backend.outputs], layout, what,
                           layouts.get("inputs"), layouts.get("outputs"))

    def run_cases(self, backend: Backend, layout: str, what: str, tensors: Optional[dict] = None) -> List[np.ndarray]:
        """``backend``'s alpha at every step of every parity case (states carried for a recurrent model)."""
        return alphas(self.feed_plan(backend, layout, what, tensors), backend.run_feeds, self.cases)

    def compare(self, outputs: Sequence[np.ndarray], precision: str = "fp32",
                compared_to: str = "reference") -> parity_lib.Parity:
        """Parity of ``outputs`` (one alpha per parity step) against the reference, at ``precision``'s bound; a
        :class:`DecisionAwareParity` when the model's decisions are wired (``decisions``)."""
        bound = self.bounds.get(precision)
        parity = parity_lib.compare(outputs, self.reference, compared_to, bound=bound)
        if self.decisions is None or bound is None:
            return parity
        return DecisionAwareParity.of(parity, self.decisions.compare(outputs, self.reference, bound, compared_to))

    def within(self, parity: parity_lib.Parity, bound: float) -> bool:
        """The verdict on ``parity`` at ``bound``: the decision-aware rule when ``parity`` carries its figures,
        else max abs within ``bound`` (or the zoo's boundary-pixel share, :func:`~edgematte.core.parity.within`)."""
        decision = getattr(parity, "decision", None)
        if decision is not None and self.decisions is not None:
            return self.decisions.within(decision, bound)
        return parity_lib.within(parity, bound, self.boundary_pixel_share)

    def record(self, path: Path, results: Optional[List[np.ndarray]], parity: parity_lib.Parity, *,
               bound: Optional[float], **entry) -> Artefact:
        """Add the file ``path`` to the manifest; ``results`` are its outputs on the parity images (None: not
        run here), ``entry`` the :class:`Artefact` fields (format, target, precision, runtime, layout, inputs,
        outputs, profile, extra)."""
        record = parity.to_dict()
        if bound is not None and parity.max_abs is not None:
            record["bound"] = bound
            record["within_bound"] = self.within(parity, bound)
        if results:
            saved = self.out / "parity" / f"{path.name}.npy"
            saved.parent.mkdir(exist_ok=True)
            np.save(saved, results[0])
            record["first_image_output"] = str(saved.relative_to(self.out))
        artefact = Artefact.of_file(self.out, path, parity=record, **entry)
        self.manifest.artefacts.append(artefact)
        if results:
            self.alphas[artefact.path] = results[0]
        return artefact

    def add_repairs(self, applied: Optional[Sequence[dict]], artefact: str) -> None:
        """List the graph repairs a tool wrapper applied (``applied_repairs``) in the manifest, once per repair
        and artefact."""
        for repair in applied or []:
            self.manifest.repairs.append(dict(repair, artefact=artefact))

    def fp32_size(self, fmt: str, target: str) -> Optional[int]:
        """Size of the fp32 artefact of ``fmt``/``target`` already recorded (INT8 sizes are shown against it)."""
        for a in self.manifest.artefacts:
            if a.format == fmt and a.target == target and a.precision == "fp32":
                return a.size_bytes
        return None


def tensor_entries(specs, layouts: Optional[Sequence[dict]] = None) -> List[dict]:
    """Backend tensor specs as manifest entries; ``layouts`` (converter info per tensor) adds ``layout``."""
    entries = backend_tensor_entries(specs)
    for entry, extra in zip(entries, layouts or []):
        entry["layout"] = extra.get("layout")
    return entries

