"""8-bit alpha and compositing (Java twin: ``Compositing``).

- :func:`alpha_to_uint8_round_half_up`: float alpha H x W (clipped to [0, 1]) -> uint8 H x W, 0..255.
- :func:`composite`: a uint8 H x W x 3 photo over a background (:mod:`.background`) with a float H x W
  alpha -> uint8 H x W x 3, in float32 rounded half up.

Java's ``Compositing.blurredBackground`` is :func:`.background.blurred_background` here, next to the other
backgrounds (``background_image`` renders it and :func:`composite` calls ``background_image``).
"""

from typing import Callable

import cv2
import numpy as np

from .background import Background, background_image
from .constants import ANDROID_CONSTANTS
from .fixed_point_resize import _row_blocks
from .opencv_resize import resize_opencv_linear
from .sizes import HW


def alpha_to_uint8_round_half_up(alpha: np.ndarray) -> np.ndarray:
    """uint8 ``floor(alpha * 255f + 0.5f)`` in float32, alpha clipped to [0, 1] first."""
    scaled = np.clip(np.asarray(alpha, np.float32), 0, 1)
    scaled *= np.float32(ANDROID_CONSTANTS.alpha_scale)
    scaled += np.float32(0.5)
    return scaled.astype(np.uint8)  # truncation is the floor here: every value is >= 0.5


def composite(rgb: np.ndarray, alpha: np.ndarray, background: Background,
              resize: Callable[[np.ndarray, HW], np.ndarray] = resize_opencv_linear) -> np.ndarray:
    """uint8 H x W x 3: the photo over a new background.

    ``rgb`` uint8 H x W x 3; ``alpha`` float H x W (clipped to [0, 1]); ``background`` an RGB uint8
    image of any size (resized with ``resize``; profiles pass their own), an ``(r, g, b)`` colour, or
    ``"blur"`` (:func:`blurred_background`). Per channel, in float32 with every product and sum
    rounded to float32 in this order (Java: ``(int)(f * a + b * (1f - a) + 0.5f)``)::

        out = floor(f * a + b * (1 - a) + 0.5)        (round half up; stays within 0..255)
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image must be uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
    alpha = np.asarray(alpha)
    if alpha.shape != rgb.shape[:2] or alpha.dtype.kind != "f":
        raise ValueError(f"alpha must be float HxW matching the image {rgb.shape[:2]}, got {alpha.dtype} {alpha.shape}")
    bg = background_image(rgb, background, resize)
    out = np.empty(rgb.shape, np.uint8)
    for block in _row_blocks(rgb.shape[0], rgb.shape[1] * 3):
        # alpha repeated per channel, so every operation below is a plain element-wise one
        a = cv2.cvtColor(np.clip(alpha[block].astype(np.float32), 0, 1), cv2.COLOR_GRAY2RGB)
        blend = rgb[block].astype(np.float32, order="C")
        blend *= a
        np.subtract(np.float32(1), a, out=a)
        behind = bg[block].astype(np.float32, order="C")  # "C": a colour background is a broadcast view
        behind *= a
        blend += behind
        blend += np.float32(0.5)
        out[block] = blend  # the cast truncates: the floor, as every value lies in [0.5, 256)
    return out
