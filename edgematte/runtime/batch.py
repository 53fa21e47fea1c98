"""``edgematte matte``: images, folders and videos through one :class:`~edgematte.runtime.matter.Matter`.

Inputs are files or folders. A folder is walked recursively (sorted, symbolic links to folders not
followed) and its files keep their path relative to the folder under the output folder; a file
given directly goes straight into the output folder. A file is a video when its name ends in one
of :data:`~edgematte.runtime.video.VIDEO_SUFFIXES` (see :mod:`edgematte.runtime.video`), else it is
read as an image by content (:func:`~edgematte.runtime.imageio.read_image_and_alpha`: JPEG, PNG,
WebP, BMP, TIFF, PNM; EXIF rotation, gray, 16-bit and CMYK handled there).

Outputs for ``IN/sub/photo.jpg`` (``OUT/sub/photo_*``):

- ``alpha``: ``photo_alpha.png``, 8-bit gray, the profile's ``alpha_to_uint8``.
- ``rgba``: ``photo_rgba.png``, the photo's colours (or the estimated foreground) with that alpha.
- ``composite``: ``photo_composite.jpg`` for a JPEG input, ``photo_composite.png`` otherwise: the
  photo over the background (:func:`parse_background`), blended by the profile's ``composite``.

A file that has its own alpha channel (an RGBA or gray+alpha PNG) is matted on its colour channels
as stored, and the saved alpha is the model's alpha *multiplied* by the file's alpha, so what was
transparent stays transparent.

Every output is written atomically; the output folder is created (or refused, in one line) before any
input is read. A file that cannot be read or matted is reported and skipped (a FIFO, a device or a
socket among the inputs too: they are refused without being opened for reading); the run goes on, and
:class:`BatchReport` lists every failure with its one-line reason, file names shown by
:func:`~edgematte.runtime.imageio.shown_name` (the command exits non-zero when any failed).
"""

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from ..core import console
from ..core.errors import EdgematteError
from ..core.userfiles import check_user_file
from .imageio import (
    SUPPORTED_FORMATS,
    files_below,
    read_file_head,
    read_image,
    read_image_and_alpha,
    shown_name,
    sniff_format,
    write_image,
)
from .profiles import Background, Profile
from .video import VIDEO_SUFFIXES, matte_video, run_overlapped

OUTPUT_KINDS = ("alpha", "rgba", "composite")

NAMED_COLOURS: Dict[str, Tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
}
"""Colour names ``--background`` accepts (RGB)."""

_SNIFF_BYTES = 32


# ----------------------------------------------------------------------------------------------
# Options
# ----------------------------------------------------------------------------------------------


def parse_background(text: str, option: str = "--background") -> Background:
    """A background from its command-line text: ``"blur"``, a colour, or an image file.

    Colours: ``#00ff00``, ``#0f0``, ``0,255,0`` (RGB, 0..255) or a name in :data:`NAMED_COLOURS`;
    they give an ``(r, g, b)`` tuple. Anything else must be a readable image, returned as RGB uint8
    H x W x 3 (resized to each photo by the profile). Errors name ``option``; an empty or blank text is one.
    """
    value = text.strip()
    if not value:
        raise EdgematteError(f"{option} {text!r}: empty; give an image file, a colour (#00ff00, 0,255,0 or one of "
                             f"{', '.join(NAMED_COLOURS)}) or 'blur'")
    lowered = value.lower()
    if lowered == "blur":
        return "blur"
    if lowered in NAMED_COLOURS:
        return NAMED_COLOURS[lowered]
    if lowered.startswith("#"):
        digits = lowered[1:]
        if len(digits) == 3:
            digits = "".join(d * 2 for d in digits)
        if len(digits) == 6 and all(c in "0123456789abcdef" for c in digits):
            return tuple(int(digits[i:i + 2], 16) for i in (0, 2, 4))
        raise EdgematteError(f"{option} {text!r}: a hex colour needs 3 or 6 hex digits, like #00ff00")
    parts = value.split(",")
    if len(parts) == 3 and all(p.strip().lstrip("-").isdigit() for p in parts):
        colour = tuple(int(p) for p in parts)
        if not all(0 <= c <= 255 for c in colour):
            raise EdgematteError(f"{option} {text!r}: colour values must be 0..255")
        return colour
    path = Path(value)
    if not path.exists():
        raise EdgematteError(f"{option} {text!r}: not 'blur', a colour (#00ff00, 0,255,0 or one of "
                             f"{', '.join(NAMED_COLOURS)}) or an existing image file")
    try:
        return read_image(path)
    except EdgematteError as error:
        raise EdgematteError(f"{option}: {error}") from None


def parse_save(text: Union[str, Sequence[str]], option: str = "--save") -> Tuple[str, ...]:
    """``"alpha,rgba"`` (or a list) -> ``("alpha", "rgba")`` in :data:`OUTPUT_KINDS` order; errors name ``option``."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in OUTPUT_KINDS]
    if unknown or not names:
        raise EdgematteError(f"{option} {','.join(names) or repr(text)}: choose one or more of "
                             f"{','.join(OUTPUT_KINDS)}")
    return tuple(kind for kind in OUTPUT_KINDS if kind in names)


# ----------------------------------------------------------------------------------------------
# Foreground estimation (optional dependency)
# ----------------------------------------------------------------------------------------------


def _pymatting_foreground() -> Callable:
    try:
        from pymatting import estimate_foreground_ml
    except ImportError:
        raise EdgematteError("--fg-estimate needs the pymatting package (pip install pymatting; it brings numba)") \
            from None
    return estimate_foreground_ml


def estimate_foreground(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3: the foreground colours behind a matte, by pymatting's multilevel ML method.

    ``rgb`` uint8 H x W x 3, ``alpha`` float H x W in [0, 1]. Germer et al.'s fast multi-level
    foreground estimation (``pymatting.estimate_foreground_ml``, default parameters) removes the old
    background's colour from semi-transparent hair and edges; the result is rounded to 8 bits.
    """
    estimate = _pymatting_foreground()
    foreground = estimate(rgb.astype(np.float64) / 255.0, np.clip(alpha, 0, 1).astype(np.float64))
    return np.clip(np.rint(np.asarray(foreground) * 255.0), 0, 255).astype(np.uint8)


class FrameRenderer:
    """One photo or frame and its alpha -> the requested outputs, in the profile's arithmetic.

    A background image is resized to each frame size once and kept (videos reuse it every frame).
    """

    def __init__(self, profile: Profile, kinds: Sequence[str], background: Optional[Background] = None,
                 fg_estimate: bool = False):
        self.profile = profile
        self.kinds = tuple(kinds)
        self.background = background
        self.fg_estimate = fg_estimate
        self._resized_backgrounds: Dict[Tuple[int, int], np.ndarray] = {}

    def _background_for(self, hw: Tuple[int, int]) -> Background:
        if not isinstance(self.background, np.ndarray) or self.background.shape[:2] == hw:
            return self.background
        if hw not in self._resized_backgrounds:
            if len(self._resized_backgrounds) > 8:  # a folder of many sizes: do not hoard memory
                self._resized_backgrounds.clear()
            self._resized_backgrounds[hw] = self.profile.resize_rgb(self.background, hw)
        return self._resized_backgrounds[hw]

    def __call__(self, rgb: np.ndarray, alpha: np.ndarray) -> Dict[str, np.ndarray]:
        """``{kind: uint8 image}``: ``alpha`` H x W, ``rgba`` H x W x 4, ``composite`` H x W x 3."""
        rendered = {}
        alpha8 = self.profile.alpha_to_uint8(alpha)
        if "alpha" in self.kinds:
            rendered["alpha"] = alpha8
        needs_colour = "rgba" in self.kinds or "composite" in self.kinds
        foreground = estimate_foreground(rgb, alpha) if (self.fg_estimate and needs_colour) else rgb
        if "rgba" in self.kinds:
            rendered["rgba"] = np.dstack((foreground, alpha8))
        if "composite" in self.kinds:
            rendered["composite"] = self.profile.composite(foreground, alpha, self._background_for(rgb.shape[:2]))
        return rendered


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


@dataclass
class ItemResult:
    """One input file: what was written, or why not.

    ``seconds`` is the sum of its stage times (stages of different files overlap in time);
    ``timings`` the per-stage seconds (``read_s``, ``pre_s``, ``model_s``, ``post_s``, ``write_s``;
    summed over frames for a video).
    """

    input: str
    kind: str
    outputs: List[str] = field(default_factory=list)
    error: Optional[str] = None
    frames: int = 0
    seconds: float = 0.0
    timings: Dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict:
        return {"input": self.input, "kind": self.kind, "ok": self.ok, "outputs": list(self.outputs),
                "error": self.error, "frames": self.frames, "seconds": round(self.seconds, 4),
                "timings": {k: round(v, 4) for k, v in self.timings.items()}}


@dataclass
class BatchReport:
    """Everything ``matte_inputs`` did; ``frames_per_second`` is frames (images count one) / wall time."""

    out_dir: str
    items: List[ItemResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def done(self) -> int:
        return sum(item.ok for item in self.items)

    @property
    def failed(self) -> int:
        return len(self.items) - self.done

    @property
    def failures(self) -> List[Tuple[str, str]]:
        """``(input, one-line reason)`` of every file that failed, in input order."""
        return [(item.input, item.error) for item in self.items if not item.ok]

    @property
    def frames(self) -> int:
        return sum(item.frames for item in self.items if item.ok)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """0 when every input was matted, 1 when any failed (or there was nothing to matte)."""
        return 0 if self.items and not self.failed else 1

    def summary(self) -> str:
        text = (f"matted {self.done} of {len(self.items)} inputs ({self.frames} frames, "
                f"{self.frames_per_second:.1f} frames/s) into {self.out_dir}")
        if self.failed:
            text += f"; {self.failed} failed"
        return text

    def as_dict(self) -> dict:
        return {"out_dir": self.out_dir, "done": self.done, "failed": self.failed, "frames": self.frames,
                "seconds": round(self.seconds, 4), "frames_per_second": round(self.frames_per_second, 3),
                "failures": [{"input": i, "error": e} for i, e in self.failures],
                "items": [item.as_dict() for item in self.items]}


# ----------------------------------------------------------------------------------------------
# Collecting inputs
# ----------------------------------------------------------------------------------------------


def _is_under(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def collect_inputs(inputs: Sequence[str], out_dir) -> List[Tuple[Path, Path, str]]:
    """``(file, output stem, kind)`` for every input file, folders expanded, in order.

    ``kind`` is ``"video"`` by name (:data:`VIDEO_SUFFIXES`), ``"missing"`` for a path that does not
    exist, else ``"image"``. Files under ``out_dir`` are left out (re-running into a subfolder of
    the input does not matte earlier results).
    """
    out_dir = Path(out_dir)
    found = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            for file in files_below(path):
                if _is_under(file, out_dir):
                    continue
                relative = file.relative_to(path)
                found.append((file, out_dir / relative.parent / file.stem, _kind_by_name(file)))
        elif path.exists():
            found.append((path, out_dir / path.stem, _kind_by_name(path)))
        else:
            found.append((path, out_dir / path.stem, "missing"))
    return found


def _kind_by_name(path: Path) -> str:
    return "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"


def _check_is_image(path: Path) -> None:
    """Refuse a non-empty file that is no image by its first bytes, without reading all of it (and a FIFO,
    a device or a folder without reading it at all)."""
    head = read_file_head(path, _SNIFF_BYTES)
    if head and sniff_format(head) is None:
        raise EdgematteError(f"{shown_name(path)}: neither a supported image ({', '.join(SUPPORTED_FORMATS)}) "
                             f"nor a video ({', '.join(VIDEO_SUFFIXES)})")


# ----------------------------------------------------------------------------------------------
# Matting
# ----------------------------------------------------------------------------------------------

# Per-file problems a batch reports and skips; anything else is a bug and stops the run.
_SKIPPABLE = (EdgematteError, OSError, MemoryError, cv2.error)


def _reason(error: BaseException) -> str:
    """One line: :class:`EdgematteError` messages name the file already; others are said by type."""
    if isinstance(error, EdgematteError):
        return shown_name(error)
    if isinstance(error, MemoryError):
        return "out of memory"
    if isinstance(error, cv2.error):
        return f"OpenCV failed: {shown_name(str(error).strip().splitlines()[-1])}"
    return shown_name(f"{type(error).__name__}: {error}")


@dataclass
class _ImageJob:
    item: ItemResult
    source: Path
    out_stem: Path
    rgb: Optional[np.ndarray] = None
    file_alpha: Optional[np.ndarray] = None
    tensor: Optional[np.ndarray] = None
    trimap: Optional[np.ndarray] = None  # the model-input trimap, for a model that takes one
    state: object = None
    output: Optional[np.ndarray] = None
    alpha: Optional[np.ndarray] = None


def _composite_suffix(source: Path) -> str:
    return ".jpg" if sniff_format(read_file_head(source, _SNIFF_BYTES)) == "JPEG" else ".png"


def _matte_images(jobs: List[_ImageJob], matter, render: FrameRenderer, overlapped: bool,
                  trimap: Optional[np.ndarray] = None) -> None:
    """Matte image jobs through the three-stage pipeline; results and errors land in each job's item.
    ``trimap``: uint8, the one image's, for a model that takes one. Each image is a recurrent model's first
    frame (its states start at zero)."""

    def timed(job: _ImageJob, name: str, step: Callable) -> None:
        if job.item.error is not None:
            return
        t0 = time.perf_counter()
        try:
            step()
        except _SKIPPABLE as error:
            job.item.error = _reason(error)
        job.item.timings[name] = time.perf_counter() - t0

    def read(job: _ImageJob) -> None:
        _check_is_image(job.source)
        job.rgb, job.file_alpha = read_image_and_alpha(job.source)

    def preprocess(job: _ImageJob) -> None:
        job.tensor, job.state = matter.model_input(job.rgb)
        if trimap is not None:
            job.trimap = matter.trimap_input(trimap, job.rgb.shape[:2])

    def run_model(job: _ImageJob) -> None:
        matter.reset()
        job.output = matter.run_tensor(job.tensor, job.trimap)
        job.tensor = job.trimap = None

    def write(job: _ImageJob) -> None:
        # The alpha is ready here (post_s); rendering and encoding count as write_s.
        rendered = render(job.rgb, job.alpha)
        for kind, image in rendered.items():
            suffix = _composite_suffix(job.source) if kind == "composite" else ".png"
            target = job.out_stem.parent / f"{job.out_stem.name}_{kind}{suffix}"
            write_image(target, image)
            job.item.outputs.append(str(target))

    def postprocess(job: _ImageJob) -> None:
        alpha = matter.profile.postprocess(job.output, job.state)
        if job.file_alpha is not None:
            alpha = alpha * (job.file_alpha.astype(np.float32) / np.float32(255))
        job.alpha = alpha

    def prepare(job: _ImageJob) -> _ImageJob:
        timed(job, "read_s", lambda: read(job))
        timed(job, "pre_s", lambda: preprocess(job))
        return job

    def infer(job: _ImageJob) -> _ImageJob:
        timed(job, "model_s", lambda: run_model(job))
        return job

    with console.progress(length=len(jobs), label="matting") as bar:
        start = time.perf_counter()
        finished = {"count": 0}

        def finish(job: _ImageJob) -> None:
            timed(job, "post_s", lambda: postprocess(job))
            timed(job, "write_s", lambda: write(job))
            job.item.seconds = sum(job.item.timings.values())
            job.item.frames = 1 if job.item.ok else 0
            job.rgb = job.file_alpha = job.output = job.alpha = None
            finished["count"] += 1
            bar.label = f"matting {finished['count'] / (time.perf_counter() - start):.1f} images/s"
            bar.update(1)

        # One image in each queue: photos can be 100 megapixels; overlap matters, depth does not.
        run_overlapped(jobs, prepare, infer, finish, overlapped=overlapped, depth=1)


def matte_inputs(inputs: Sequence[str], out_dir, matter, background: Union[None, str, Background] = None,
                 save: Optional[Sequence[str]] = None, fg_estimate: bool = False,
                 overlapped: bool = False, trimap: Optional[str] = None, keep_audio: bool = True) -> BatchReport:
    """Matte images, folders (recursively, keeping relative paths) and videos into ``out_dir``.

    ``matter``: a :class:`~edgematte.runtime.matter.Matter` (one interpreter for every file).
    ``background``: ``"blur"``, a colour or an image (text is parsed by :func:`parse_background`).
    ``save``: any of ``alpha``, ``rgba``, ``composite`` (a list or ``"alpha,rgba"``); default
    ``alpha``, plus ``composite`` when a background is given. ``composite`` needs a background.
    ``fg_estimate``: estimate foreground colours (pymatting) for ``rgba`` and ``composite``.
    ``overlapped``: decode/pre, model and post/encode in three threads (measured no faster on two
    shared cores, so off by default; see :mod:`edgematte.runtime.video`).
    ``trimap``: a trimap image (0 / 128 / 255 grey, the photo's size) for a model that takes one (DIM), with
    exactly one image input. A recurrent model (RVM) mattes each image as a clip's first frame and carries
    its states through each video. ``keep_audio=False``: video outputs get no audio track.

    Output names are described in the module doc. Returns a :class:`BatchReport`; a file that fails
    is reported there and skipped (``report.exit_code`` is then 1). Option errors raise
    :class:`EdgematteError` before any file is read.
    """
    if isinstance(background, str) and background != "blur":
        background = parse_background(background)
    if save is None:
        kinds = ("alpha", "composite") if background is not None else ("alpha",)
    else:
        kinds = parse_save(save)
    if "composite" in kinds and background is None:
        raise EdgematteError("--save composite needs --background (an image, a colour such as #00ff00, or blur)")
    if fg_estimate:
        _pymatting_foreground()  # fail once, up front, when pymatting is missing
    trimap_image = _read_trimap(trimap, inputs, matter)
    out_dir = Path(out_dir)
    _make_output_folder(out_dir)
    render = FrameRenderer(matter.profile, kinds, background, fg_estimate)

    start = time.perf_counter()
    report = BatchReport(out_dir=str(out_dir))
    image_jobs: List[_ImageJob] = []
    videos: List[Tuple[ItemResult, Path, Path]] = []
    claimed: Dict[Path, str] = {}
    for source, out_stem, kind in collect_inputs(inputs, out_dir):
        item = ItemResult(input=str(source), kind=kind)
        report.items.append(item)
        if kind == "missing":
            item.error = f"{shown_name(source)}: no such file or folder"
        elif out_stem in claimed:
            item.error = (f"{shown_name(source)}: its outputs {shown_name(out_stem)}_* would overwrite those of "
                          f"{shown_name(claimed[out_stem])}; rename one")
        else:
            claimed[out_stem] = str(source)
            if kind == "video":
                videos.append((item, source, out_stem))
            else:
                image_jobs.append(_ImageJob(item, source, out_stem))

    if image_jobs:
        _matte_images(image_jobs, matter, render, overlapped, trimap_image)
    for item, source, out_stem in videos:
        if matter.takes_trimap:
            item.error = f"{shown_name(source)}: the model takes a trimap per image, so it cannot matte a video"
            continue
        matter.reset()  # each video is a clip of its own
        try:
            check_user_file(source, "video")  # a FIFO or a device named like a video is refused, never opened
            result = matte_video(source, out_stem, matter, render, kinds, overlapped=overlapped,
                                 keep_audio=keep_audio)
        except _SKIPPABLE as error:
            item.error = _reason(error)
            continue
        item.outputs = [str(p) for p in result.outputs]
        item.frames = result.frames
        item.timings = result.timings
        item.seconds = sum(result.timings.values())
    report.seconds = time.perf_counter() - start
    for source, reason in report.failures:
        console.warn(shown_name(reason))  # every reason is one line, whoever wrote it (video errors too)
    return report


def _read_trimap(trimap: Optional[str], inputs: Sequence[str], matter) -> Optional[np.ndarray]:
    """The uint8 H x W trimap ``--trimap`` names (its first channel), checked against the model and the inputs
    before any work."""
    if trimap is None:
        if matter.takes_trimap:
            raise EdgematteError("the model takes a trimap with the image: give --trimap FILE (with one image)")
        return None
    if not matter.takes_trimap:
        raise EdgematteError(f"--trimap {shown_name(trimap)}: the model takes no trimap")
    if len(inputs) != 1 or not Path(inputs[0]).is_file():
        raise EdgematteError("--trimap goes with exactly one image input")
    return read_image(trimap)[..., 0]


def _make_output_folder(out_dir: Path) -> None:
    """Create ``out_dir`` (and its parents) before any file is read: a place no output can go is one line
    naming it, not the same failure once per input."""
    name = shown_name(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise EdgematteError(f"{name}: the output must be a folder, and this is a file")
    blocker = next((p for p in out_dir.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise EdgematteError(f"{shown_name(blocker)}: is a file, not a folder, so the output folder cannot be "
                             "written in it")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise EdgematteError(f"{name}: cannot create the output folder ({error.strerror or error})") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise EdgematteError(f"{name}: the output folder is not writable")
