"""The ``Profile`` base class (Java twin: the ``Profile`` interface) and the argument checks profiles share.

A profile maps an RGB uint8 H x W x 3 photo to the model's float32 input tensor ([1, 3, h, w] or
[1, h, w, 3]) and the model's output back to a float32 H x W alpha in [0, 1] at the photo's size; it
knows nothing of runtimes.
"""

from typing import Optional

import numpy as np

from edgematte.core.errors import EdgematteError

from .background import Background
from .compositing import alpha_to_uint8_round_half_up, composite
from .opencv_resize import resize_opencv_linear
from .sizes import HW
from .state import PreprocessState


def _check_image(rgb: np.ndarray) -> None:
    """Raise ValueError unless ``rgb`` is a uint8 H x W x 3 array with H, W >= 1."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 \
            or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"image must be a uint8 HxWx3 RGB array, got {getattr(rgb, 'dtype', type(rgb))} "
                         f"{getattr(rgb, 'shape', '')}")


def _fixed_size(input_hw, profile: str) -> HW:
    """``input_hw`` as an ``HW`` of ints >= 1; None, -1 or 0 sides (a dynamic model) raise EdgematteError."""
    if input_hw is None or len(input_hw) != 2 or any(d is None or int(d) <= 0 for d in input_hw):
        raise EdgematteError(f"profile {profile!r} needs a model with a fixed input size, got {input_hw}; "
                             f"use profile 'paddleseg' for dynamic-size models")
    return int(input_hw[0]), int(input_hw[1])


class Profile:
    """Base class. Subclasses implement :meth:`preprocess_steps` and :meth:`postprocess_steps`."""

    name = "base"

    def describe(self) -> dict:
        """JSON-ready statement of every choice (goes into the manifest)."""
        raise NotImplementedError

    def preprocess_steps(self, rgb: np.ndarray, input_hw: Optional[HW] = None, layout: str = "nchw") -> dict:
        """Named intermediates in order: at least ``resized`` (uint8 RGB), ``normalized`` (float32
        HWC), ``tensor`` (the model input) and ``state`` (:class:`PreprocessState`)."""
        raise NotImplementedError

    def postprocess_steps(self, model_output: np.ndarray, state: PreprocessState) -> dict:
        """Named intermediates in order, ending with ``alpha`` (float32 at the original size)."""
        raise NotImplementedError

    def preprocess(self, rgb: np.ndarray, input_hw: Optional[HW] = None, layout: str = "nchw"):
        """RGB uint8 H x W x 3 -> (float32 tensor [1,3,h,w] or [1,h,w,3], PreprocessState)."""
        steps = self.preprocess_steps(rgb, input_hw, layout)
        return steps["tensor"], steps["state"]

    def postprocess(self, model_output: np.ndarray, state: PreprocessState) -> np.ndarray:
        """Model output [1,1,h,w] or [1,h,w,1] -> alpha float32 H x W in [0, 1] at the original size."""
        return self.postprocess_steps(model_output, state)["alpha"]

    def alpha_to_uint8(self, alpha: np.ndarray) -> np.ndarray:
        """The 8-bit alpha this deployment saves (default: round half up)."""
        return alpha_to_uint8_round_half_up(alpha)

    def resize_rgb(self, image: np.ndarray, dst_hw: HW) -> np.ndarray:
        """How this deployment resizes a background image to the photo's size."""
        return resize_opencv_linear(image, dst_hw)

    def composite(self, rgb: np.ndarray, alpha: np.ndarray, background: Background) -> np.ndarray:
        """:func:`composite` with this profile's background resize."""
        return composite(rgb, alpha, background, self.resize_rgb)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"
