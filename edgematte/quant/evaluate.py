"""``edgematte quant eval``: the matting metrics of any artefact on a user's dataset.

Against fp32 (the reference ``edgematte verify`` uses: the manifest's Paddle model where paddle is
installed, else an fp32 artefact standing in, said in the result) and, given ``gt``, against ground-truth
alpha mattes: files below ``gt`` with the same relative path as the image (any image extension), e.g.
PPM-100's ``image/`` and ``alpha/`` folders. Files below ``data`` that are no usable image are skipped with a
warning labelled ``evaluation:`` (the reader is calibration's, :func:`.calibration.load_calibration_images`).
"""

from pathlib import Path
from typing import Optional

import numpy as np

from ..core.errors import EdgematteError
from ..core.manifest import Manifest
from ..core.metrics import alpha_from_uint8, matting_numerics
from ..runtime.imageio import read_image_and_alpha, shown_name
from ..runtime.matter import Matter, select_artefact
from .calibration import load_calibration_images


def fp32_matter(manifest_dir, profile: str, threads=None):
    """(Matter, description) for the fp32 reference of a conversion, as ``verify`` chooses it."""
    from ..runtime.verify import Reference

    manifest = manifest_dir if isinstance(manifest_dir, Manifest) else Manifest.read(manifest_dir)
    reference = Reference(manifest, {}, threads)
    return reference.matter(profile), reference.description


def _ground_truth(gt_dir: Path, name: str) -> np.ndarray:
    stem = Path(name).with_suffix("")
    matches = sorted((gt_dir / stem.parent).glob(stem.name + ".*"))
    if not matches:
        raise EdgematteError(shown_name(f"{gt_dir / stem}.*: no ground-truth alpha for image {name}"))
    rgb, alpha = read_image_and_alpha(matches[0])
    gray = alpha if alpha is not None else rgb[:, :, 0]
    return alpha_from_uint8(gray)


def evaluate_artefact(manifest_path, artefact: Optional[str], data_dir, gt_dir=None, threads=None) -> dict:
    """Numerics of ``artefact`` on the images below ``data_dir`` against fp32 and, with ``gt_dir``, ground truth."""
    manifest = Manifest.read(manifest_path)
    entry = select_artefact(manifest, artefact)
    matter = Matter.from_manifest(manifest, artefact=entry.path, threads=threads)
    reference, reference_name = fp32_matter(manifest, entry.profile or "android", threads)
    images, report = load_calibration_images(data_dir, minimum=1, purpose="evaluation", option="--data")
    predicted = [matter(rgb) for rgb in images]
    result = {"artefact": entry.path, "precision": entry.precision, "images": len(images),
              "skipped": report.as_dict()["skipped"],
              "vs_fp32": dict(matting_numerics(zip(predicted, (reference(rgb) for rgb in images))),
                              reference=reference_name)}
    if gt_dir is not None:
        truths = []
        for name, alpha in zip(report.used, predicted):
            truth = _ground_truth(Path(gt_dir), name)
            if truth.shape != alpha.shape:
                raise EdgematteError(shown_name(f"{gt_dir}: ground truth for {name} is {truth.shape[1]}x"
                                                f"{truth.shape[0]}, the image is {alpha.shape[1]}x{alpha.shape[0]}"))
            truths.append(truth)
        result["vs_ground_truth"] = matting_numerics(zip(predicted, truths))
    return result
