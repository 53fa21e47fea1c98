"""``edgematte verify``: run every artefact of a manifest that this host can run, through the same
deployment profile as the app, and compare its alphas with the reference's on real photos.

The reference, in order of preference:

1. **Paddle Inference on the frozen model**, when the manifest records one in ``reference.model_dir``
   (a folder relative to the manifest holding ``model.pdmodel`` + ``model.pdiparams``, the fixed-shape
   program the converter checked everything against) and paddlepaddle is installed. When
   ``reference.files`` maps those file names to sha256 digests, they are checked first.
2. Otherwise a **stand-in**: the manifest's fp32 ONNX artefact (else its fp32 TFLite, else its x86
   ``.nb``), itself within its recorded parity bound of the Paddle reference. The report names it and
   the stand-in is not compared with itself (its checksum is still checked).

For each artefact and image: ``max_abs`` and ``mean_abs`` of ``|alpha - reference alpha|`` (float
alphas in [0, 1] at the photo's size, after the profile's post-processing) and ``sad`` (sum of
``|alpha - reference alpha|`` / 1000, :func:`edgematte.core.metrics.sad`); per artefact the same
pooled over all images (:func:`edgematte.core.parity.compare`). An artefact passes when its file
still has the manifest's sha256 and its figures are within its :class:`Threshold`:

- a float artefact with a recorded ``parity.bound`` (fp32 1e-4, fp16 5e-3 by default): the
  converter's own rule, :func:`edgematte.core.parity.within`: ``max_abs <= bound``, or, for a
  model with hard decisions (the zoo's ``boundary_pixel_share``, e.g. PP-HumanMatting's argmax), at
  most that share of pixels beyond the bound with a float-exact mean. With a stand-in reference the
  bound grows by the stand-in's own recorded ``parity.max_abs`` (both are within their bounds of the
  same Paddle reference, so they may differ by the sum);
- a float artefact of a model whose hard decisions the converter wired (``reference.decisions``, with the
  reference program fetching the class scores): the decision-aware rule of :mod:`.verify_decisions`, the
  near-tie pixels carried through the profile's post-processing to the photo excused and every other pixel
  held to the bound;
- an int8 artefact: ``mean_abs <=`` its recorded ``numerics.budget_mad`` (the ``--budget-mad`` it was
  built under; measured there on held-out photos, here on the verify photos);
- anything else: :data:`DEFAULT_UNBOUNDED_THRESHOLD`.

The post-processing (bilinear resizing, clamping) is a weighted average with weights summing to one,
so it never enlarges a difference of the model outputs the bound was measured on.
"""

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

from ..core import parity as parity_lib
from ..core.errors import EdgematteError
from ..core.fsutil import sha256_file
from ..core.manifest import MANIFEST_NAME, Artefact, Manifest, this_platform
from ..core.temporal_metrics import temporal_numerics
from .imageio import files_below, numbered_frames, read_image
from .matter import Matter
from .model_io import FeedPlan
from .profiles import profile_for_model
from .trimap import synthetic_trimap
from .verify_decisions import RecordedDecisions, reference_run
from .video import video_frames


@dataclass(frozen=True)
class Threshold:
    """Largest accepted ``max_abs`` and ``mean_abs`` of the alpha difference (``None``: not checked).

    ``boundary_pixel_share``: the share of pixels that may exceed ``max_abs`` while the mean stays
    float-exact (:func:`edgematte.core.parity.within`; 0 for continuous models).
    """

    max_abs: Optional[float] = None
    mean_abs: Optional[float] = None
    boundary_pixel_share: float = 0.0

    def exceeded(self, parity: "parity_lib.Parity") -> Optional[str]:
        """A one-line reason when ``parity`` (pooled figures, ``frac_over_bound`` against
        ``max_abs``) is over a limit, else ``None``."""
        if self.max_abs is not None and not parity_lib.within(parity, self.max_abs, self.boundary_pixel_share):
            allowance = (f" on more than {self.boundary_pixel_share:.2%} of pixels or with mean abs above "
                         f"{parity_lib.FLOAT_EXACT_MEAN:g}" if self.boundary_pixel_share else "")
            return f"max abs {parity.max_abs:.3g} > {self.max_abs:.3g}{allowance}"
        if self.mean_abs is not None and parity.mean_abs > self.mean_abs:
            return f"mean abs {parity.mean_abs:.3g} > {self.mean_abs:.3g}"
        return None


DEFAULT_UNBOUNDED_THRESHOLD = Threshold(max_abs=None, mean_abs=0.02)
"""For artefacts with neither a parity bound nor an int8 budget: mean abs difference at most 0.02
(about five 8-bit levels; the default ``--budget-mad`` of ``edgematte convert --int8``), max not
checked. A chosen default, not a measured one: pass ``thresholds`` to tighten it."""

STAND_IN_PREFERENCE = (("onnx", "fp32"), ("tflite", "fp32"), ("nb", "fp32"))
"""Artefacts that may stand in for the Paddle reference, best first (only host-runnable x86/any ones)."""


@dataclass
class ImageComparison:
    """One image: its name, size (h, w) and the alpha difference figures."""

    image: str
    size: Tuple[int, int]
    max_abs: float
    mean_abs: float
    sad: float


@dataclass
class ArtefactVerification:
    """One artefact's outcome: ``status`` is ``pass``, ``fail``, ``skipped`` or ``reference``."""

    path: str
    format: str
    precision: str
    status: str
    reason: Optional[str] = None
    threshold: Optional[Threshold] = None
    threshold_source: Optional[str] = None
    sha256_ok: Optional[bool] = None
    max_abs: Optional[float] = None
    mean_abs: Optional[float] = None
    frac_over_bound: Optional[float] = None
    sad_mean: Optional[float] = None
    decisions: Optional[dict] = None  # the decision-aware figures (excused pixels...), when the rule applies
    temporal: Optional[dict] = None  # a clip's dtSSD and MESSDdt against the reference (verify --sequence)
    seconds: float = 0.0
    images: List[ImageComparison] = field(default_factory=list)

    def as_dict(self) -> dict:
        record = asdict(self)
        record["threshold"] = asdict(self.threshold) if self.threshold else None
        record["images"] = [asdict(i) for i in self.images]
        return record


@dataclass
class VerifyReport:
    """Everything ``verify_manifest`` found. ``passed``: every artefact it ran passed, and it ran one."""

    manifest: str
    reference: dict
    images: List[str] = field(default_factory=list)
    skipped_images: List[Tuple[str, str]] = field(default_factory=list)
    artefacts: List[ArtefactVerification] = field(default_factory=list)
    sequence: bool = False  # the images are one clip's frames, in order

    @property
    def verified(self) -> List[ArtefactVerification]:
        return [a for a in self.artefacts if a.status in ("pass", "fail")]

    @property
    def passed(self) -> bool:
        return bool(self.verified) and not any(a.status == "fail" for a in self.artefacts)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def summary_lines(self) -> List[str]:
        """Human-readable lines: the reference, one line per artefact, the verdict."""
        what = "frames of one clip, states carried" if self.sequence else "images"
        lines = [f"reference: {self.reference['description']} on {len(self.images)} {what}"]
        if self.reference.get("note"):
            lines.append(f"  note: {self.reference['note']}")
        for a in self.artefacts:
            if a.status in ("pass", "fail"):
                figures = f"max abs {a.max_abs:.2e}  mean abs {a.mean_abs:.2e}  SAD {a.sad_mean:.3g}" \
                    if a.max_abs is not None else ""
                if a.decisions:  # max abs is over every pixel, near-ties included; the verdict is on the rest
                    figures += f"  max abs off near-ties {a.decisions['max_abs_kept']:.2e}"
                if a.temporal and a.temporal.get("dtssd") is not None:
                    figures += f"  dtSSD {a.temporal['dtssd']:.2e}  MESSDdt {a.temporal['messddt']:.2e}"
                limit = f"  (limit: {a.threshold_source})" if a.threshold_source else ""
                lines.append(f"  {a.status.upper():<4} {a.path:<24} {figures}{limit}"
                             + (f"  -- {a.reason}" if a.reason else ""))
            else:
                lines.append(f"  {a.status:<4} {a.path:<24} {a.reason or ''}")
        for name, reason in self.skipped_images:
            lines.append(f"  image skipped: {reason}")
        verdict = "PASS" if self.passed else "FAIL"
        lines.append(f"{verdict}: {sum(a.status == 'pass' for a in self.artefacts)} passed, "
                     f"{sum(a.status == 'fail' for a in self.artefacts)} failed, "
                     f"{sum(a.status == 'skipped' for a in self.artefacts)} skipped")
        return lines

    def as_dict(self) -> dict:
        return {"manifest": self.manifest, "passed": self.passed, "reference": dict(self.reference),
                "images": list(self.images), "sequence": self.sequence,
                "skipped_images": [{"image": n, "reason": r} for n, r in self.skipped_images],
                "artefacts": [a.as_dict() for a in self.artefacts]}


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------


def load_verify_images(images_dir=None) -> Tuple[Dict[str, np.ndarray], List[Tuple[str, str]]]:
    """``({name: RGB uint8 H x W x 3}, [(file, reason skipped)])``.

    Default: the bundled parity photos (:func:`edgematte.core.samples.parity_photo_names`). A folder is
    read recursively (unreadable files are skipped with their reason); a single image file is taken
    alone. No readable image at all raises :class:`EdgematteError`.
    """
    if images_dir is None:
        from ..core.samples import parity_photo_names, sample_photos

        return sample_photos(parity_photo_names()), []

    root = Path(images_dir)
    if not root.exists():
        raise EdgematteError(f"--images {root}: no such file or folder")
    files = files_below(root) if root.is_dir() else [root]
    images, skipped = {}, []
    for path in files:
        try:
            images[str(path.relative_to(root)) if root.is_dir() else path.name] = read_image(path)
        except EdgematteError as error:
            skipped.append((str(path), str(error)))
    if not images:
        raise EdgematteError(f"--images {root}: no readable image found ({len(skipped)} files skipped)")
    return images, skipped


def load_sequence_frames(folder) -> Dict[str, np.ndarray]:
    """``{file name: RGB uint8 H x W x 3}`` of a clip's frames, in frame order (:func:`.imageio.numbered_frames`:
    by the number in the file name, no gap, none twice). Every frame must read and have the first one's size;
    otherwise a one-line :class:`EdgematteError` naming the file."""
    frames = {}
    for _, path in numbered_frames(folder):
        rgb = read_image(path)
        if frames:
            first_name, first = next(iter(frames.items()))
            if rgb.shape != first.shape:
                raise EdgematteError(f"{path}: frame is {rgb.shape[1]}x{rgb.shape[0]}, the first frame {first_name} "
                                     f"is {first.shape[1]}x{first.shape[0]} (a clip's frames share one size)")
        frames[path.name] = rgb
    return frames


def load_clip(path) -> Dict[str, np.ndarray]:
    """``{name: RGB uint8 H x W x 3}`` of one clip, in frame order: a folder of numbered frames
    (:func:`load_sequence_frames`) or a video file (``frame_000000``... by decoding order; a truncated video is a
    one-line error). Every frame is held in memory (720p: 2.7 MB a frame)."""
    path = Path(path)
    if path.is_dir():
        return load_sequence_frames(path)
    return {f"frame_{index:06d}": rgb for index, rgb in enumerate(video_frames(path))}


# ----------------------------------------------------------------------------------------------
# The reference
# ----------------------------------------------------------------------------------------------


class Reference:
    """Reference alphas per profile name, computed once per image: each photo on its own (:func:`matte_one`), or
    with ``sequence`` the images as one clip's frames in their order (:func:`matte_sequence`)."""

    def __init__(self, manifest: Manifest, images: Dict[str, np.ndarray], threads: Optional[int],
                 sequence: bool = False):
        self.manifest = manifest
        self.images = images
        self.threads = threads
        self.sequence = sequence
        self.stand_in: Optional[Artefact] = None  # the artefact used as reference, if any
        self.slack = 0.0                      # its recorded error against the Paddle reference
        self._alphas: Dict[str, List[np.ndarray]] = {}
        self._excused: Dict[str, List[np.ndarray]] = {}
        self.decisions: Optional[RecordedDecisions] = None  # the decision-aware rule, with a Paddle reference
        self._open = None
        note = None
        recorded = manifest.reference.model_dir
        if recorded:
            note = self._try_paddle(manifest.reference_dir(check=False))
        if self._open is None:
            self._use_stand_in(note)
        else:
            self.description = f"Paddle Inference on {recorded} (the frozen reference model" + \
                (", its class scores fetched for the near-tie rule)" if self.decisions is not None else ")")
            self.note = note

    def _try_paddle(self, model_dir: Path) -> Optional[str]:
        """Set up Paddle Inference on ``model_dir``; returns why not (a note) when it cannot be used."""
        try:
            import paddle.inference  # noqa: F401
        except ImportError:
            return f"the manifest records a Paddle reference ({model_dir}) but paddlepaddle is not installed"
        self.manifest.reference_dir()  # each file the manifest hashes is unchanged, or the changed one is named
        from .backends.paddle_inference import PaddleInferenceBackend

        model = self.manifest.model
        decisions = RecordedDecisions.of(self.manifest)
        scores = self.manifest.reference_scores_program() if decisions is not None else None
        backend = PaddleInferenceBackend(scores or model_dir, threads=self.threads)
        plan = FeedPlan.for_reference(model, backend)
        self.decisions = decisions if scores is not None else None
        self._open = lambda profile: Matter(backend, profile_for_model(profile, model.transforms), layout="nchw",
                                            input_hw=model.input_hw, plan=plan)
        self.kind = "paddle_inference"
        self.path = str(model_dir.relative_to(self.manifest.dir))
        return None

    def _use_stand_in(self, note: Optional[str]) -> None:
        runnable = [e for e in self.manifest.artefacts_for(this_platform()) if e.runs_on_host]
        for fmt, precision in STAND_IN_PREFERENCE:
            entry = next((e for e in runnable if e.format == fmt and e.precision == precision), None)
            if entry is not None:
                break
        else:
            raise EdgematteError(f"{self.manifest.origin}: no reference to verify against (no reference.model_dir "
                                 f"and no fp32 ONNX, TFLite or x86 .nb artefact)")
        self.stand_in = entry
        self.slack = float(entry.parity.max_abs or 0.0)
        self.kind = "stand_in"
        self.path = entry.path
        self.description = (f"{entry.path} as a stand-in for Paddle Inference (recorded max abs "
                            f"{self.slack:.2e} from it)")
        self.note = note or "the manifest records no reference.model_dir, so the fp32 artefact stands in"
        if RecordedDecisions.of(self.manifest) is not None:  # the scores need the Paddle reference
            self.note += ("; the model's near-tie decisions cannot be told without Paddle's reference, so every "
                          "pixel is held to the bound")
        self._open = lambda profile: Matter.from_manifest(self.manifest, artefact=entry.path,
                                                          threads=self.threads, profile=profile)

    def matter(self, profile: str) -> Matter:
        """A Matter running the reference through ``profile``."""
        return self._open(profile)

    def alphas(self, profile: str) -> List[np.ndarray]:
        """The reference's float32 alpha of every image through ``profile``; EdgematteError if it cannot run."""
        if profile not in self._alphas:
            try:
                matter = self._open(profile)
                if self.decisions is None:
                    self._alphas[profile] = (matte_sequence(matter, self.images.values()) if self.sequence else
                                             [matte_one(matter, rgb) for rgb in self.images.values()])
                else:
                    runs = []
                    matter.reset()
                    for rgb in self.images.values():
                        if not self.sequence:
                            matter.reset()
                        runs.append(reference_run(matter, rgb, verification_trimap(matter, rgb), self.decisions))
                    self._alphas[profile] = [alpha for alpha, _ in runs]
                    self._excused[profile] = [excused for _, excused in runs]
            except (EdgematteError, RuntimeError, ValueError) as error:
                raise EdgematteError(f"reference {self.path}: cannot run it, so nothing can be verified ({error})") \
                    from None
        return self._alphas[profile]

    def excused(self, profile: str) -> Optional[List[np.ndarray]]:
        """Per image, the (H, W) bool mask of photo pixels a near-tie decision of the reference reaches through
        ``profile`` (:mod:`.verify_decisions`); ``None`` without the decision-aware rule."""
        self.alphas(profile)
        return self._excused.get(profile)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "path": self.path, "description": self.description, "note": self.note,
                "recorded_max_abs": self.slack if self.stand_in is not None else None,
                "decision_aware": self.decisions is not None}


# ----------------------------------------------------------------------------------------------
# Verification
# ----------------------------------------------------------------------------------------------


def verification_trimap(matter: Matter, rgb: np.ndarray) -> Optional[np.ndarray]:
    """The trimap verification feeds a model that takes one: the synthetic one at the photo's size."""
    return synthetic_trimap(rgb.shape[:2])[0, 0].astype(np.uint8) if matter.takes_trimap else None


def matte_one(matter: Matter, rgb: np.ndarray) -> np.ndarray:
    """One photo as verification runs it, the same for the reference and every artefact: a recurrent model's
    first frame (zero states), a model that takes a trimap the synthetic one at the photo's size."""
    matter.reset()
    return matter(rgb, trimap=verification_trimap(matter, rgb))


def matte_sequence(matter: Matter, frames: Iterable[np.ndarray]) -> List[np.ndarray]:
    """One clip's frames (RGB uint8 H x W x 3, in order) as verification runs them: ``matter.reset()`` once, then
    each frame fed the states the previous one returned (a model that takes a trimap: the synthetic one per frame).
    Returns each frame's float32 H x W alpha in [0, 1]."""
    matter.reset()
    return [matter(rgb, trimap=verification_trimap(matter, rgb)) for rgb in frames]


def boundary_pixel_share(manifest: Manifest, default: float = 0.0) -> float:
    """The share of boundary pixels a float artefact of this model may flip: ``reference.boundary_pixel_share``
    as the converter recorded it; ``default`` for manifests written before it was recorded (the caller may know
    the model's rule from the zoo)."""
    recorded = manifest.reference.extra.get("boundary_pixel_share")
    return default if recorded is None else float(recorded)


def threshold_for(entry: Artefact, thresholds: Optional[Mapping[str, Threshold]], slack: float,
                  share: float) -> Tuple[Threshold, str]:
    """The threshold for ``entry`` and a short statement of where it comes from."""
    for key in (entry.path, entry.name, entry.precision, "*"):
        if thresholds and key in thresholds:
            return thresholds[key], f"given for {key!r}"
    bound = entry.parity.bound
    if bound is not None and entry.precision in ("fp32", "fp16"):
        source = f"parity bound {bound:g}" + (f" + stand-in's {slack:.2e}" if slack else "") \
            + (f", {share:.2%} boundary pixels" if share else "")
        return Threshold(max_abs=bound + slack, boundary_pixel_share=share), source
    budget = (entry.numerics or {}).get("budget_mad")
    if budget is not None:
        return Threshold(mean_abs=float(budget)), f"int8 budget mean abs {budget:g}"
    return DEFAULT_UNBOUNDED_THRESHOLD, f"default mean abs {DEFAULT_UNBOUNDED_THRESHOLD.mean_abs:g}"


def compare_alpha(name: str, alpha: np.ndarray, reference: np.ndarray) -> ImageComparison:
    """Max/mean abs difference and SAD of two HxW float alphas in [0, 1] (same shape) for image ``name``."""
    from ..core.metrics import alpha_difference_stats, sad

    stats = alpha_difference_stats(alpha, reference)  # ValueError for NaN or a non-[0, 1] alpha
    return ImageComparison(image=name, size=tuple(reference.shape[:2]), max_abs=stats["max_abs"],
                           mean_abs=stats["mad"], sad=sad(alpha, reference))


def _verify_artefact(manifest: Manifest, entry: Artefact, reference: Reference, images: Dict[str, np.ndarray],
                     thresholds, threads, share: float) -> ArtefactVerification:
    result = ArtefactVerification(path=entry.path, format=entry.format, precision=entry.precision,
                                  status="skipped")
    path = manifest.file(entry, check=False)  # a changed artefact is a failure in the report, not an error
    if not path.is_file():
        result.status, result.reason = "fail", f"{path}: missing"
        return result
    result.sha256_ok = sha256_file(path) == entry.sha256
    if not result.sha256_ok:  # not the file the converter checked: it is not run (it may be anything)
        result.status = "fail"
        result.reason = f"{path}: changed since conversion (sha256 differs from the manifest), so it was not run"
        return result
    if entry is reference.stand_in:
        result.status, result.reason = "reference", "used as the reference, not compared with itself"
        return result
    if not entry.runs_on_host:
        result.reason = entry.parity.reason or "does not run on this host"
        return result
    start = time.perf_counter()
    try:
        matter = Matter.from_manifest(manifest, artefact=entry.path, threads=threads, profile=entry.profile)
    except EdgematteError as error:
        # The unchanged file loaded by the converter: what is missing is on this host (a runtime).
        result.reason = f"cannot run here: {error}"
        return result
    result.threshold, result.threshold_source = threshold_for(entry, thresholds, reference.slack, share)
    references = reference.alphas(entry.profile or "android")
    alphas = []
    try:
        if reference.sequence:
            alphas = matte_sequence(matter, images.values())
        for index, ((name, rgb), ref_alpha) in enumerate(zip(images.items(), references)):
            if not reference.sequence:
                alphas.append(matte_one(matter, rgb))
            result.images.append(compare_alpha(name, alphas[index], ref_alpha))
        if reference.sequence:
            temporal = temporal_numerics(zip(alphas, references))
            result.temporal = {k: temporal[k] for k in ("frame_pairs", "dtssd", "messddt")}
    except (EdgematteError, ValueError, RuntimeError) as error:
        result.status, result.reason = "fail", f"{path}: {error}"
        return result
    finally:
        result.seconds = time.perf_counter() - start
    pooled = parity_lib.compare(alphas, references, reference.path, bound=result.threshold.max_abs)
    result.max_abs, result.mean_abs, result.frac_over_bound = pooled.max_abs, pooled.mean_abs, pooled.frac_over_bound
    result.sad_mean = float(np.mean([c.sad for c in result.images]))
    excused = reference.excused(entry.profile or "android")
    if excused is not None and result.threshold.max_abs is not None:
        over = _decision_verdict(result, reference.decisions, alphas, references, excused, reference.path)
    else:
        over = result.threshold.exceeded(pooled)
    result.status = "fail" if over else "pass"
    result.reason = over or None
    return result


def _decision_verdict(result: ArtefactVerification, rule: RecordedDecisions, alphas, references, excused,
                      compared_to: str) -> Optional[str]:
    """The decision-aware verdict (a one-line reason when it fails): every pixel no near-tie reaches within the
    threshold's max abs, at most the recorded share beyond it by an excuse, and the mean within its limit."""
    bound = result.threshold.max_abs
    figures = rule.compare(alphas, references, excused, bound, compared_to)
    result.decisions = {k: v for k, v in figures.to_dict().items()
                        if k in ("max_abs_kept", "excused_pixels", "excused_share", "over_bound",
                                 "over_bound_excused", "margin_tolerance")}
    result.threshold_source += (f", {figures.excused_pixels} near-tie pixel(s) excused "
                                f"({figures.excused_share:.3%}, cap {rule.max_excused_share:.0%})")
    if not rule.within(figures, bound):
        return (f"max abs {figures.max_abs_kept:.3g} > {bound:.3g} on the pixels whose decision is no near-tie"
                if figures.max_abs_kept > bound else
                f"{figures.over_bound_excused} pixels beyond the bound by an excuse, more than "
                f"{rule.max_excused_share:.0%} of {figures.pixels}")
    mean_limit = result.threshold.mean_abs
    if mean_limit is not None and figures.mean_abs > mean_limit:
        return f"mean abs {figures.mean_abs:.3g} > {mean_limit:.3g}"
    return None


def verify_manifest(manifest_path, images_dir=None, thresholds: Optional[Mapping[str, Threshold]] = None,
                    threads: Optional[int] = None, default_boundary_share: float = 0.0,
                    sequence=None) -> VerifyReport:
    """Verify every host-runnable artefact of a conversion against the reference.

    ``manifest_path``: ``OUT/manifest.json``, ``OUT`` or a read :class:`Manifest`. ``images_dir``: a folder
    (recursive) or one image; default the bundled parity photos. ``thresholds``: ``{key: Threshold}`` where ``key`` is
    an artefact's path or file name, a precision (``fp32``, ``fp16``, ``int8``) or ``"*"``; others
    get the defaults of the module doc. ``threads``: interpreter threads.

    Returns a :class:`VerifyReport` (``exit_code`` 1 when any artefact failed or none could run;
    ``as_dict()`` for ``--json``). Raises :class:`EdgematteError` when the manifest, the images or
    every possible reference is unusable. ``default_boundary_share``: see :func:`boundary_pixel_share`.
    ``sequence``: instead of photos, one clip (:func:`load_clip`: a folder of numbered frames or a video), run in
    order with a recurrent model's states carried (reference and artefacts alike); each frame is held to the same
    limits, and each artefact adds the clip's dtSSD and MESSDdt against the reference
    (:mod:`edgematte.core.temporal_metrics`).
    """
    manifest = manifest_path if isinstance(manifest_path, Manifest) else Manifest.read(manifest_path)
    if sequence is not None and images_dir is not None:
        raise EdgematteError("give photos (--images) or one clip (--sequence), not both")
    if sequence is not None:
        images, skipped_images = load_clip(sequence), []
    else:
        images, skipped_images = load_verify_images(images_dir)
    reference = Reference(manifest, images, threads, sequence=sequence is not None)
    share = boundary_pixel_share(manifest, default_boundary_share)
    report = VerifyReport(manifest=str(manifest.dir / MANIFEST_NAME), reference=reference.as_dict(),
                          images=list(images), skipped_images=skipped_images, sequence=sequence is not None)
    for entry in manifest.artefacts:
        report.artefacts.append(_verify_artefact(manifest, entry, reference, images, thresholds, threads, share))
    return report
