"""Trimaps for models that take one (DIM): the user's, brought to the model input, and a synthetic one.

A trimap marks each pixel background (0), unknown (128) or foreground (255); PaddleSeg feeds these values as
float32, unnormalized, in a one-channel tensor the image's size. :func:`trimap_tensor` gives it the image's
geometry under any profile: the trimap goes through the profile's own resize as a grey image (the uint8
``resized`` step every profile has), each value then snaps to the nearest of the three levels (a resized edge
between background and foreground becomes unknown, never a new level), and the padding the image gets
(bottom/right, to the model's size) is background.
"""

import numpy as np

from ..core.errors import EdgematteError

LEVELS = (0.0, 128.0, 255.0)  # background, unknown, foreground


def snap_to_levels(values: np.ndarray) -> np.ndarray:
    """float32 array of the same shape: each value replaced by the nearest of :data:`LEVELS`."""
    levels = np.asarray(LEVELS, np.float32)
    index = np.abs(np.asarray(values, np.float32)[..., None] - levels).argmin(axis=-1)
    return levels[index]


def trimap_tensor(profile, trimap: np.ndarray, image_hw, input_hw) -> np.ndarray:
    """float32 [1, 1, h, w] (the model input's size, values in :data:`LEVELS`) from a uint8 H x W trimap (or
    H x W x C, first channel) of the photo's size ``image_hw``, placed as ``profile`` places the photo."""
    trimap = np.asarray(trimap)
    if trimap.ndim == 3:
        trimap = trimap[..., 0]
    if trimap.dtype != np.uint8 or trimap.ndim != 2:
        raise EdgematteError(f"a trimap must be a uint8 grey image, got {trimap.dtype} of shape {trimap.shape}")
    if tuple(trimap.shape) != tuple(image_hw):
        raise EdgematteError(f"the trimap is {trimap.shape[1]}x{trimap.shape[0]}, the photo "
                             f"{image_hw[1]}x{image_hw[0]}: they must have the same size")
    steps = profile.preprocess_steps(np.repeat(trimap[..., None], 3, axis=2), input_hw)
    resized = snap_to_levels(steps["resized"][..., 0])
    model_hw = steps["state"].model_hw
    placed = np.full(model_hw, LEVELS[0], np.float32)
    placed[: resized.shape[0], : resized.shape[1]] = resized
    return placed[None, None]


def synthetic_trimap(hw) -> np.ndarray:
    """float32 [1, 1, h, w] with values in :data:`LEVELS`: foreground inside the centred ellipse of semi-axes
    (0.3 h, 0.22 w), unknown out to (0.42 h, 0.34 w), background beyond. Parity and verification need the same
    trimap for every artefact, not a true one."""
    h, w = hw
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0

    def inside(ry, rx):
        return ((y - cy) / max(ry * h, 1.0)) ** 2 + ((x - cx) / max(rx * w, 1.0)) ** 2 <= 1.0

    trimap = np.full((h, w), LEVELS[0], np.float32)
    trimap[inside(0.42, 0.34)] = LEVELS[1]
    trimap[inside(0.30, 0.22)] = LEVELS[2]
    return trimap[None, None]
