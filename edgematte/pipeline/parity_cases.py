"""The inputs every artefact of a conversion is run on: one case per parity photo.

A case is a list of steps (:mod:`edgematte.runtime.model_io`); each step maps the model's fed inputs that
are not recurrent states to NCHW float32 tensors:

- the **image** is the photo through the conversion's profile (the deployment's pre-processing);
- a **trimap** (DIM) is a fixed synthetic one in the model's input space: an ellipse of foreground (255)
  inside a band of unknown (128) on background (0), the 0 / 128 / 255 float values PaddleSeg feeds. Parity
  needs the same trimap for every artefact, not a true one;
- a **recurrent** model (RVM) runs a short clip per photo: :data:`CLIP_FRAMES` frames, the photo shifted
  right by :data:`CLIP_SHIFT_PX` more pixels each frame (edge pixels repeated), so the states it carries
  change from frame to frame.
"""

from typing import Dict, List, Sequence

import numpy as np

CLIP_FRAMES = 3
CLIP_SHIFT_PX = 6
TRIMAP_VALUES = (0.0, 128.0, 255.0)  # background, unknown, foreground


def synthetic_trimap(hw) -> np.ndarray:
    """float32 [1, 1, h, w] with values in :data:`TRIMAP_VALUES`: foreground inside the centred ellipse of
    semi-axes (0.3 h, 0.22 w), unknown out to (0.42 h, 0.34 w), background beyond."""
    h, w = hw
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0

    def inside(ry, rx):
        return ((y - cy) / max(ry * h, 1.0)) ** 2 + ((x - cx) / max(rx * w, 1.0)) ** 2 <= 1.0

    trimap = np.full((h, w), TRIMAP_VALUES[0], np.float32)
    trimap[inside(0.42, 0.34)] = TRIMAP_VALUES[1]
    trimap[inside(0.30, 0.22)] = TRIMAP_VALUES[2]
    return trimap[None, None]


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
