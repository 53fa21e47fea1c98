"""``edgematte quant eval``: the matting metrics of any artefact on a user's dataset.

Against fp32 (the reference ``edgematte verify`` uses: the manifest's Paddle model where paddle is
installed, else an fp32 artefact standing in, said in the result) and, given ``gt``, against ground-truth
alpha mattes: files below ``gt`` with the same relative path as the image (any image extension), e.g.
PPM-100's ``image/`` and ``alpha/`` folders. Files below ``data`` that are no usable image are skipped with a
warning labelled ``evaluation:`` (the reader is calibration's, :func:`.calibration.load_calibration_images`).
A clip (a video, or a folder of frames taken as one) adds dtSSD and MESSDdt (:mod:`edgematte.core.temporal_metrics`).
"""

from pathlib import Path
from typing import Optional

import numpy as np

from ..core.errors import EdgematteError
from ..core.manifest import Manifest
from ..core.metrics import alpha_from_uint8, matting_numerics
from ..core.temporal_metrics import TemporalAccumulator
from ..runtime.imageio import read_image_and_alpha, shown_name
from ..runtime.matter import Matter, select_artefact
from ..runtime.verify import load_sequence_frames
from ..runtime.video import video_frames
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


def evaluate_artefact(manifest_path, artefact: Optional[str], data, gt_dir=None, threads=None,
                      sequence: bool = False) -> dict:
    """Numerics of ``artefact`` against fp32 and, with ``gt_dir``, ground truth.

    ``data``: a folder of images, each matted on its own (a recurrent model from zero states); with
    ``sequence`` the frames of one clip, files in one folder ordered by the number in their names
    (:func:`~edgematte.runtime.verify.load_sequence_frames`), or a video file (always one clip). A clip runs from
    zero states with each frame's states fed to the next (artefact and reference alike) and adds the temporal
    figures (:mod:`edgematte.core.temporal_metrics`): ``temporal_vs_fp32`` (and ``temporal_vs_ground_truth``).
    A video that decodes fewer frames than it declares is an error, never a shorter evaluation."""
    manifest = Manifest.read(manifest_path)
    entry = select_artefact(manifest, artefact)
    matter = Matter.from_manifest(manifest, artefact=entry.path, threads=threads)
    reference, reference_name = fp32_matter(manifest, entry.profile or "android", threads)
    data = Path(data)
    if data.is_file():
        if gt_dir is not None:
            raise EdgematteError(f"{shown_name(data)}: --gt takes the ground truth of a folder of frames; give the "
                                 "video's frames as a folder of images with --sequence")
        frames, names, skipped = video_frames(data), None, []
        sequence = True
    elif sequence:  # one clip's frames, by the number in their names, as verify and device verify take them
        clip = load_sequence_frames(data)
        frames, names, skipped = list(clip.values()), list(clip), []
    else:
        images, report = load_calibration_images(data, minimum=1, purpose="evaluation", option="--data")
        frames, names, skipped = images, report.used, report.as_dict()["skipped"]
    truths = _truths(Path(gt_dir), names) if gt_dir is not None else None
    temporal = {"vs_fp32": TemporalAccumulator(), "vs_ground_truth": TemporalAccumulator()}
    predicted_vs_truth = []
    count = 0

    def pairs():
        nonlocal count
        matter.reset()
        reference.reset()
        for index, rgb in enumerate(frames):
            if not sequence:  # each photo on its own: a recurrent model starts from zero states every time
                matter.reset()
                reference.reset()
            alpha, fp32 = matter(rgb), reference(rgb)
            count += 1
            if truths is not None:
                truth = truths[index]
                if truth.shape != alpha.shape:
                    raise EdgematteError(shown_name(f"{gt_dir}: ground truth for {names[index]} is {truth.shape[1]}x"
                                                    f"{truth.shape[0]}, the image is {alpha.shape[1]}x"
                                                    f"{alpha.shape[0]}"))
                predicted_vs_truth.append((alpha, truth))
                if sequence:
                    temporal["vs_ground_truth"].add(alpha, truth)
            if sequence:
                temporal["vs_fp32"].add(alpha, fp32)
            yield alpha, fp32

    vs_fp32 = dict(matting_numerics(pairs()), reference=reference_name)
    result = {"artefact": entry.path, "precision": entry.precision, "images": count, "skipped": skipped,
              "sequence": sequence, "vs_fp32": vs_fp32}
    if truths is not None:
        result["vs_ground_truth"] = matting_numerics(predicted_vs_truth)
    if sequence:
        result["temporal_vs_fp32"] = temporal["vs_fp32"].result()
        if truths is not None:
            result["temporal_vs_ground_truth"] = temporal["vs_ground_truth"].result()
    return result


def _truths(gt_dir: Path, names) -> list:
    return [_ground_truth(gt_dir, name) for name in names]
