"""Calibration and evaluation images for INT8 quantization, and their tensors.

Two sources:

- a folder of photos (``--calib DIR``): every file below it, recursively, read with
  :func:`edgematte.runtime.imageio.read_image` (JPEG, PNG, WebP, BMP, TIFF, PNM; content sniffed, not
  trusted by extension). Files that are not images (a FIFO or a device too, never opened for reading),
  are corrupt, too small or exact duplicates of an earlier file are skipped with a one-line warning
  labelled by the folder's purpose (``calibration``; ``quant eval --data`` says ``evaluation``) and
  counted in :class:`CalibrationReport`; too few usable images is an :class:`EdgematteError` that says
  how many are needed.
- the built-in set (no ``--calib``): the bundled sample photos (:mod:`edgematte.core.samples`) plus seeded,
  deterministic augmentations of them (flip, rotation by a few degrees, scale, crop,
  brightness/contrast), so the demo quantizes offline.

:func:`split_calibration_evaluation` gives disjoint calibration and evaluation sets: an evaluation
image is never used for calibration, and with the built-in set whole source photos are held out
(no augmentation of a held-out photo is calibrated on, no augmentation of a calibration photo is
evaluated on).

Images of any size are fine: the deployment profile's ``preprocess`` (passed in, e.g.
``edgematte.runtime.profiles.get_profile(name).preprocess``) letterboxes or resizes them to the
model's input. Tensors handed over directly (:func:`check_calibration_tensors`,
:func:`load_calibration_array`) must have exactly the model's input shape.
"""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..core.console import warn
from ..core.errors import EdgematteError
from ..core.samples import SAMPLE_PHOTOS, sample_photos
from ..runtime.imageio import files_below, read_file_head, read_image, shown_name, sniff_format

MIN_CALIBRATION_IMAGES = 8
"""Fewest calibration images accepted: below this the per-tensor ranges follow single photos."""
DEFAULT_CALIBRATION_COUNT = 32
DEFAULT_EVALUATION_COUNT = 4
MIN_IMAGE_SIDE = 16
"""Images with a side shorter than this carry no usable statistics for a 512-pixel model."""
BUILTIN_EVALUATION_PHOTOS = ("astronaut", "coffee")
"""Sample photos held out of the built-in calibration set: the portrait and one plain scene."""
BUILTIN_SOURCE = "built-in sample photos"

_MAX_SKIP_WARNINGS = 10
_SNIFF_BYTES = 32


@dataclass
class CalibrationReport:
    """What was read from a calibration source.

    ``used`` are the images taken, in order (paths relative to ``source`` for a folder, or
    built-in names such as ``chelsea~aug3``); ``skipped`` the files refused, with the reason;
    ``not_read`` the files left unopened because enough images were found already.
    """

    source: str
    used: List[str] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    not_read: int = 0

    @property
    def used_count(self) -> int:
        return len(self.used)

    @property
    def skipped_count(self) -> int:
        return len(self.skipped)

    def summary(self) -> str:
        """One line: counts and the first skip reason."""
        text = f"{self.used_count} images used from {self.source}"
        if self.skipped:
            name, reason = self.skipped[0]
            text += f", {self.skipped_count} files skipped (e.g. {name}: {reason})"
        if self.not_read:
            text += f", {self.not_read} files not read (enough images already)"
        return shown_name(text)

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "used": list(self.used),
            "used_count": self.used_count,
            "skipped": [{"file": name, "reason": reason} for name, reason in self.skipped],
            "skipped_count": self.skipped_count,
            "not_read": self.not_read,
        }


# ----------------------------------------------------------------------------- folders
def _read_usable_image(path: Path) -> np.ndarray:
    """RGB uint8 H x W x 3, or EdgematteError with the reason to skip ``path`` (a FIFO or a device is refused
    without being read: :func:`edgematte.runtime.imageio.read_file_head`)."""
    name = shown_name(path)
    head = read_file_head(path, _SNIFF_BYTES)
    if not head:
        raise EdgematteError(f"{name}: empty file (0 bytes), not an image")
    # sniff first so a large non-image file (a video, an archive) is never read whole
    if sniff_format(head) is None:
        raise EdgematteError(f"{name}: not an image (no JPEG, PNG, WebP, BMP, TIFF or PNM header)")
    rgb = read_image(path)
    if min(rgb.shape[:2]) < MIN_IMAGE_SIDE:
        raise EdgematteError(f"{name}: image is {rgb.shape[1]}x{rgb.shape[0]}, smaller than "
                             f"{MIN_IMAGE_SIDE} pixels on a side")
    return rgb


def _reason(error: EdgematteError, path: Path) -> str:
    """The message of a per-file error without its leading ``path: `` (one line: names are escaped)."""
    text = shown_name(error)
    prefix = f"{shown_name(path)}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def load_calibration_images(folder, limit: Optional[int] = None, minimum: int = MIN_CALIBRATION_IMAGES,
                            seed: Optional[int] = None, purpose: str = "calibration",
                            option: str = "--calib") -> Tuple[List[np.ndarray], CalibrationReport]:
    """Read the photos below ``folder``: ``(list of RGB uint8 H x W x 3, CalibrationReport)``.

    Files are taken in sorted path order, or in a seeded random order when ``seed`` is given (so a
    ``limit`` does not favour one sub-folder). Reading stops at ``limit`` usable images. Every
    skipped file is warned about (the first few by name) and counted. Fewer than ``minimum`` usable
    images raises :class:`EdgematteError` ("found 3 usable images in DIR, need at least 8").

    ``purpose`` labels the warnings ("calibration: skipping ...") and ``option`` names the folder's option in
    errors: the same reader serves ``quant eval --data`` ("evaluation") and ``convert --images`` ("parity").
    """
    folder = Path(folder)
    if not folder.exists():
        raise EdgematteError(f"{shown_name(folder)}: {purpose} folder not found")
    if not folder.is_dir():
        raise EdgematteError(f"{shown_name(folder)}: {option} needs a folder of images, this is a file")
    paths = files_below(folder)
    if seed is not None:
        paths = [paths[i] for i in np.random.RandomState(seed).permutation(len(paths))]
    report = CalibrationReport(str(folder))
    images: List[np.ndarray] = []
    first_seen = {}
    for index, path in enumerate(paths):
        if limit is not None and len(images) >= limit:
            report.not_read = len(paths) - index
            break
        name = path.relative_to(folder).as_posix()
        try:
            rgb = _read_usable_image(path)
        except EdgematteError as e:
            report.skipped.append((name, _reason(e, path)))
            continue
        digest = hashlib.sha256(repr(rgb.shape).encode() + rgb.tobytes()).hexdigest()
        if digest in first_seen:  # a copy would sit in both the calibration and the evaluation set
            report.skipped.append((name, f"same pixels as {first_seen[digest]}"))
            continue
        first_seen[digest] = name
        images.append(rgb)
        report.used.append(name)
    for name, reason in report.skipped[:_MAX_SKIP_WARNINGS]:
        warn(shown_name(f"{purpose}: skipping {folder / name}: {reason}"))
    if report.skipped_count > _MAX_SKIP_WARNINGS:
        warn(shown_name(f"{purpose}: skipped {report.skipped_count - _MAX_SKIP_WARNINGS} more files in {folder}"))
    if len(images) < minimum:
        raise _too_few(report, minimum, f"{minimum}")
    return images, report


def _too_few(report: CalibrationReport, minimum: int, needed: str) -> EdgematteError:
    """The error for a folder with fewer than ``minimum`` usable images (``needed`` explains the number)."""
    if report.skipped:
        name, reason = report.skipped[0]
        detail = f"; {report.skipped_count} files skipped, e.g. {name}: {reason}"
    else:
        detail = "; the folder has no files" if report.used_count == 0 and not report.not_read else ""
    return EdgematteError(shown_name(f"found {report.used_count} usable images in {report.source}, need at least "
                                     f"{needed}{detail}"))


# ----------------------------------------------------------------------------- built-in set
def _augmented(rgb: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    """One deterministic variation of ``rgb`` (uint8 H x W x 3) drawn from ``rng``.

    Horizontal flip (half the time), rotation by -8..8 degrees with scale 0.85..1.2 about the centre
    (reflected borders), a crop keeping 60..100 % of each side, then contrast 0.75..1.25 about the
    mean and brightness -25..25 levels. Resizing here is augmentation, not model pre-processing.
    """
    image = rgb[:, ::-1] if rng.rand() < 0.5 else rgb
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), rng.uniform(-8, 8), rng.uniform(0.85, 1.2))
    image = cv2.warpAffine(np.ascontiguousarray(image), matrix, (width, height), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT_101)
    crop_h = max(MIN_IMAGE_SIDE, int(round(height * rng.uniform(0.6, 1.0))))
    crop_w = max(MIN_IMAGE_SIDE, int(round(width * rng.uniform(0.6, 1.0))))
    top = rng.randint(0, height - crop_h + 1)
    left = rng.randint(0, width - crop_w + 1)
    image = image[top:top + crop_h, left:left + crop_w].astype(np.float32)
    contrast, brightness = rng.uniform(0.75, 1.25), rng.uniform(-25, 25)
    mean = image.mean()
    image = (image - mean) * contrast + mean + brightness
    return np.ascontiguousarray(np.clip(np.rint(image), 0, 255).astype(np.uint8))


def _builtin_set(count: int, photo_names: Sequence[str], seed: int) -> Tuple[List[np.ndarray], List[str]]:
    """``count`` images cycling over ``photo_names``: each photo itself first, then its variations.

    Variation ``v`` of the ``i``-th sample photo depends only on (seed, i, v), so a smaller count is
    a prefix of a larger one and holding photos out never changes the others' variations.
    """
    photos = sample_photos(list(photo_names))
    all_names = [name for name, _ in SAMPLE_PHOTOS]
    images, names = [], []
    for k in range(count):
        name = photo_names[k % len(photo_names)]
        variant = k // len(photo_names)
        if variant == 0:
            images.append(photos[name])
            names.append(name)
        else:
            rng = np.random.RandomState([seed, all_names.index(name), variant])
            images.append(_augmented(photos[name], rng))
            names.append(f"{name}~aug{variant}")
    return images, names


def _check_photo_names(names: Sequence[str]) -> List[str]:
    known = [name for name, _ in SAMPLE_PHOTOS]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise EdgematteError(f"unknown sample photos {unknown or '(none given)'} (known: {', '.join(known)})")
    return list(names)


def builtin_calibration_images(count: int = DEFAULT_CALIBRATION_COUNT, photos: Optional[Sequence[str]] = None,
                               seed: int = 0) -> List[np.ndarray]:
    """``count`` RGB uint8 images from the bundled photos (default: all) and their seeded variations."""
    names = _check_photo_names(photos if photos is not None else [name for name, _ in SAMPLE_PHOTOS])
    if count < 1:
        raise EdgematteError(f"--calib-count {count}: must be at least 1")
    return _builtin_set(count, names, seed)[0]


# ----------------------------------------------------------------------------- the split
@dataclass
class CalibrationSplit:
    """Disjoint RGB uint8 image sets: ``calibration`` to quantize with, ``evaluation`` to measure on."""

    calibration: List[np.ndarray]
    evaluation: List[np.ndarray]
    calibration_names: List[str]
    evaluation_names: List[str]
    report: CalibrationReport

    def as_dict(self) -> dict:
        return {
            "calibration_count": len(self.calibration),
            "evaluation_count": len(self.evaluation),
            "calibration": list(self.calibration_names),
            "evaluation": list(self.evaluation_names),
            "source": self.report.as_dict(),
        }


def split_calibration_evaluation(folder=None, calib_count: Optional[int] = None,
                                 eval_count: int = DEFAULT_EVALUATION_COUNT, seed: int = 0,
                                 evaluation_photos: Sequence[str] = BUILTIN_EVALUATION_PHOTOS) -> CalibrationSplit:
    """Calibration and evaluation images that share no photo.

    ``folder`` given: its files in a seeded random order; the first ``eval_count`` usable images
    are the evaluation set, the next ``calib_count`` (default :data:`DEFAULT_CALIBRATION_COUNT`; fewer
    if the folder has fewer) the calibration set; identical files count once. Too few usable images raises
    :class:`EdgematteError` naming how many were found and how many are needed.

    ``folder`` None: the built-in set. ``evaluation_photos`` (whole sample photos) and their
    variations give the evaluation images; the other sample photos and their variations give
    ``calib_count`` calibration images.
    """
    if calib_count is None:
        calib_count = DEFAULT_CALIBRATION_COUNT
    if calib_count < MIN_CALIBRATION_IMAGES:
        raise EdgematteError(f"--calib-count {calib_count}: need at least {MIN_CALIBRATION_IMAGES} calibration images")
    if eval_count < 1:
        raise EdgematteError(f"evaluation count {eval_count}: need at least 1 evaluation image")
    if folder is not None:
        images, report = load_calibration_images(folder, limit=eval_count + calib_count, minimum=0, seed=seed)
        minimum = eval_count + MIN_CALIBRATION_IMAGES
        if len(images) < minimum:
            raise _too_few(report, minimum, f"{minimum} ({MIN_CALIBRATION_IMAGES} to calibrate with and "
                                            f"{eval_count} held out to evaluate on)")
        return CalibrationSplit(images[eval_count:], images[:eval_count], report.used[eval_count:],
                                report.used[:eval_count], report)
    held_out = _check_photo_names(evaluation_photos)
    calibration_photos = [name for name, _ in SAMPLE_PHOTOS if name not in held_out]
    if not calibration_photos:
        raise EdgematteError("every sample photo is held out for evaluation; none is left to calibrate with")
    calibration, calibration_names = _builtin_set(calib_count, calibration_photos, seed)
    evaluation, evaluation_names = _builtin_set(eval_count, held_out, seed)
    report = CalibrationReport(BUILTIN_SOURCE, used=calibration_names + evaluation_names)
    return CalibrationSplit(calibration, evaluation, calibration_names, evaluation_names, report)


# ----------------------------------------------------------------------------- tensors
Preprocess = Callable[..., Tuple[np.ndarray, object]]


def calibration_tensors(images: Sequence[np.ndarray], preprocess: Preprocess, input_hw: Tuple[int, int],
                        layout: str = "nchw", names: Optional[Sequence[str]] = None) -> np.ndarray:
    """The model inputs for ``images``: float32 ``[K, *tensor shape]`` (e.g. ``[K, 1, 3, h, w]``).

    ``preprocess(rgb, input_hw, layout) -> (tensor, state)`` is the deployment profile's own (e.g.
    ``get_profile("fastdeploy").preprocess``): calibration sees exactly what the deployed model sees.
    A profile that cannot fit an image to ``input_hw`` raises; the error names the image.
    """
    if not len(images):
        raise EdgematteError("no calibration images to pre-process")
    tensors = []
    for index, rgb in enumerate(images):
        label = names[index] if names is not None else f"#{index}"
        try:
            tensor, _state = preprocess(rgb, tuple(input_hw), layout)
        except EdgematteError as e:
            raise EdgematteError(f"calibration image {label}: {e}") from e
        tensor = np.asarray(tensor, dtype=np.float32)
        if tensors and tensor.shape != tensors[0].shape:
            raise EdgematteError(f"calibration image {label}: pre-processing gave {list(tensor.shape)}, "
                                 f"the first image gave {list(tensors[0].shape)}")
        tensors.append(tensor)
    return np.stack(tensors)


def check_calibration_tensors(tensors, input_shape: Sequence[Optional[int]],
                              source: str = "calibration data") -> List[np.ndarray]:
    """Calibration tensors as a list of float32 arrays, each exactly of the model's ``input_shape``.

    ``tensors``: float ``[K, *input_shape]`` or a sequence of K arrays of ``input_shape``;
    ``input_shape`` may hold -1 or None for dynamic dimensions. A wrong rank or size, a non-float
    dtype (raw uint8 pixels instead of pre-processed tensors), NaN or infinity, or no tensors at all
    raises :class:`EdgematteError` naming ``source`` and the first offending tensor.
    """
    declared = [None if d is None or int(d) < 0 else int(d) for d in input_shape]
    items = list(tensors) if not isinstance(tensors, np.ndarray) else [tensors[i] for i in range(len(tensors))]
    if not items:
        raise EdgematteError(f"{source}: no calibration tensors")
    checked = []
    for index, tensor in enumerate(items):
        array = np.asarray(tensor)
        where = f"{source}: tensor {index} of {len(items)}"
        if array.dtype.kind != "f":
            raise EdgematteError(f"{where} is {array.dtype}; expected float pre-processed tensors")
        fits = array.ndim == len(declared) and all(d is None or d == n for d, n in zip(declared, array.shape))
        if not fits:
            shown = ["?" if d is None else d for d in declared]
            raise EdgematteError(f"{where} has shape {list(array.shape)}; the model input is {shown}")
        if not np.isfinite(array).all():
            raise EdgematteError(f"{where} has NaN or infinite values")
        checked.append(np.ascontiguousarray(array, dtype=np.float32))
    return checked


def load_calibration_array(path, input_shape: Sequence[Optional[int]]) -> List[np.ndarray]:
    """Pre-processed calibration tensors from a ``.npy`` file holding float ``[K, *input_shape]``."""
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise EdgematteError(f"{path}: not a readable .npy array ({e})") from e
    if not isinstance(array, np.ndarray):
        array.close()
        raise EdgematteError(f"{path}: expected one .npy array, found an .npz archive")
    if array.ndim != len(input_shape) + 1:
        raise EdgematteError(f"{path}: array has shape {list(array.shape)}; expected [K, "
                             f"{', '.join('?' if d is None or int(d) < 0 else str(d) for d in input_shape)}]")
    return check_calibration_tensors(array, input_shape, source=str(path))
