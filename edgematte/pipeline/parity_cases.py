"""The inputs every artefact of a conversion is run on: one case per parity photo.

A case is a list of steps (:mod:`edgematte.runtime.model_io`); each step maps the model's fed inputs that
are not recurrent states to NCHW float32 tensors:

- the **image** is the photo through the conversion's profile (the deployment's pre-processing);
- a **trimap** (DIM) is a fixed synthetic one in the model's input space
  (:func:`edgematte.runtime.trimap.synthetic_trimap`);
- a **recurrent** model (RVM) runs a short clip per photo: :data:`CLIP_FRAMES` frames, the photo shifted
  right by :data:`CLIP_SHIFT_PX` more pixels each frame (edge pixels repeated), so the states it carries
  change from frame to frame.
"""

from typing import Dict, List, Sequence

import numpy as np

from ..runtime.trimap import synthetic_trimap

CLIP_FRAMES = 3
CLIP_SHIFT_PX = 6


def shifted(rgb: np.ndarray, dx: int) -> np.ndarray:
    """uint8 H x W x 3: ``rgb`` moved right by ``dx`` pixels, the left edge column repeated."""
    if dx <= 0:
        return rgb
    dx = min(dx, rgb.shape[1] - 1)
    return np.concatenate([np.repeat(rgb[:, :1], dx, axis=1), rgb[:, :-dx]], axis=1)


def parity_cases(profile, photos: Dict[str, np.ndarray], input_roles: Sequence[dict], input_hw
                 ) -> List[List[Dict[str, np.ndarray]]]:
    """One case per photo for a model whose inputs have ``input_roles`` (``ModelInfo.input_roles``)."""
    roles = {r["role"]: r["name"] for r in input_roles}
    frames = CLIP_FRAMES if "state" in roles else 1
    trimap = synthetic_trimap(input_hw) if "trimap" in roles else None
    cases = []
    for rgb in photos.values():
        steps = []
        for frame in range(frames):
            step = {roles["image"]: profile.preprocess(shifted(rgb, frame * CLIP_SHIFT_PX), input_hw,
                                                       layout="nchw")[0]}
            if trimap is not None:
                step[roles["trimap"]] = trimap
            steps.append(step)
        cases.append(steps)
    return cases
