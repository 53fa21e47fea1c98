"""What replaces the photo's background (Java twin: ``Background``): an image, a colour, or the photo blurred.

:func:`background_image` renders any of them as uint8 H x W x 3 for a uint8 H x W x 3 photo (Java:
``Background.render``); :func:`blurred_background` is the exact integer "blur" (Java:
``Compositing.blurredBackground``).
"""

from typing import Callable, Tuple, Union

import numpy as np

from .constants import ANDROID_CONSTANTS, AndroidConstants
from .fixed_point_resize import resize_uint8_fixed
from .opencv_resize import resize_opencv_linear
from .sizes import HW, letterbox_size

Background = Union[np.ndarray, Tuple[int, int, int], str]


def blurred_background(rgb: np.ndarray, constants: AndroidConstants = ANDROID_CONSTANTS) -> np.ndarray:
    """A strong, Gaussian-like blur of ``rgb`` (uint8 H x W x 3), exact in integers.

    Shrink to fit ``blur_grid`` x ``blur_grid`` (:func:`letterbox_size`, :func:`resize_uint8_fixed`
    with box pre-reduction), convolve with the separable binomial ``blur_kernel`` (edge pixels
    repeated; ``(acc + 2**15) >> 16`` after both axes), enlarge back with
    :func:`resize_uint8_fixed`. The blur radius is a fixed fraction of the image (sigma about
    4% of the long side) and costs the same at any resolution.
    """
    small_hw = letterbox_size(rgb.shape[:2], (constants.blur_grid, constants.blur_grid))
    small = resize_uint8_fixed(rgb, small_hw, True, constants).astype(np.int64)
    kernel = np.asarray(constants.blur_kernel, np.int64)
    radius = len(kernel) // 2
    total = int(kernel.sum()) ** 2

    def along(axis_len):
        return [np.clip(np.arange(axis_len) + t - radius, 0, axis_len - 1) for t in range(len(kernel))]

    across = sum(kernel[t] * small[:, idx] for t, idx in enumerate(along(small_hw[1])))
    down = sum(kernel[t] * across[idx] for t, idx in enumerate(along(small_hw[0])))
    smooth = ((down + total // 2) // total).astype(np.uint8)
    return resize_uint8_fixed(smooth, rgb.shape[:2], True, constants)


def background_image(rgb: np.ndarray, background: Background,
                     resize: Callable[[np.ndarray, HW], np.ndarray] = resize_opencv_linear) -> np.ndarray:
    """uint8 H x W x 3 background for ``rgb``: an image resized by ``resize``, a colour, or "blur"."""
    size = rgb.shape[:2]
    if isinstance(background, str):
        if background != "blur":
            raise ValueError(f"background must be an RGB image, an (r, g, b) colour or 'blur', got {background!r}")
        return blurred_background(rgb)
    if isinstance(background, np.ndarray):
        if background.dtype != np.uint8 or background.ndim != 3 or background.shape[2] != 3:
            raise ValueError(f"background image must be uint8 HxWx3, got {background.dtype} {background.shape}")
        return background if background.shape[:2] == size else resize(background, size)
    colour = tuple(int(c) for c in background)
    if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
        raise ValueError(f"background colour must be three values in 0..255, got {background!r}")
    # One real row repeated by a zero stride: numpy then walks whole rows (not 3-byte pixels).
    row = np.tile(np.asarray(colour, np.uint8), size[1]).reshape(size[1], 3)
    return np.broadcast_to(row, (size[0], size[1], 3))
