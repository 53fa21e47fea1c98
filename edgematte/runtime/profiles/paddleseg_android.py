"""The ``paddleseg-android`` profile: the legacy PaddleSeg Android demo (Java twin: ``PaddleSegAndroidProfile``).

RGB uint8 H x W x 3 -> stretched to the model size (aspect ignored; fixed-point bilinear, no box) ->
PaddleSeg normalization -> float32 [1, 3, h, w] or [1, h, w, 3] (in [-1, 1] for the default mean = std
= 0.5). Post: min-max stretch of the output to uint8 (:func:`stretch_to_uint8`, Java ``stretchToUint8``),
bilinear back to the photo size, ``/ 255f``: float32 H x W in [0, 1].

The mean/std come from the model's deploy.yaml Normalize (:func:`.normalization.model_normalization`;
0.5/0.5, the demo's, without transforms); the geometry stays the demo's, so resizes there are ignored.
"""

from typing import Optional, Sequence

import cv2
import numpy as np

from .base import Profile, _check_image, _fixed_size
from .fixed_point_resize import resize_uint8_fixed
from .layout import _check_layout
from .normalization import (
    DEFAULT_NORMALIZATION,
    describe_normalization,
    fixed_step_rule,
    model_normalization,
    normalize,
)
from .state import PreprocessState
from .tensors import alpha_plane, to_layout


def stretch_to_uint8(plane: np.ndarray) -> np.ndarray:
    """The PaddleSeg Android demo's min-max stretch (``floatArrayToBitmap``), in float32.

    ``(byte)(((v - min) / (max - min + 1e-11f)) * 255)``: truncated toward zero, not clamped.
    """
    plane = np.asarray(plane, np.float32)
    low, high = plane.min(), plane.max()
    delta = (high - low) + np.float32(1e-11)
    return (((plane - low) / delta) * np.float32(255)).astype(np.uint8)


class PaddleSegAndroidProfile(Profile):
    """The legacy PaddleSeg Android matting demo (Paddle Lite 2.8, MODNet at 256x256).

    ``Bitmap.createScaledBitmap(filter=true)`` is Skia's bilinear filter; here it is approximated by
    :func:`resize_uint8_fixed` without box pre-reduction (Skia's rounding differs by a gray level,
    and like Skia it aliases on strong downscales).

    ``transforms``: the model's deploy.yaml list; only its Normalize is used (None or empty: the
    demo's 0.5/0.5). ``normalization_rule``: always the demo's "paddleseg" expression, "none" without
    Normalize; ``table``: float32 [256, 3].
    """

    name = "paddleseg-android"

    def __init__(self, transforms: Optional[Sequence[dict]] = None):
        self.normalization = model_normalization(transforms)
        self.normalization_rule = fixed_step_rule(self.normalization, prefer_exact=False)
        self.table = self.normalization.table(self.normalization_rule)

    def describe(self) -> dict:
        return {
            "profile": self.name,
            "reference": "PaddleSeg Matting/deploy/human_matting_android_demo (Predictor, Preprocess, Visualize)",
            "channel_order": "RGB",
            "input_size": "fixed (the model's)",
            "resize": {"geometry": "stretch to (h, w), aspect ratio ignored",
                       "kernel": "createScaledBitmap(filter=true) approximated by edgematte's fixed-point bilinear "
                                 "(half-pixel centres, no box pre-reduction)"},
            "normalize": self._describe_normalize(),
            "padding": None,
            "layout": "planar NCHW (NHWC when the model wants it)",
            "postprocess": "min-max stretch: (byte)(((v - min) / (max - min + 1e-11f)) * 255) truncated; the gray "
                           "bitmap scaled bilinearly (fixed-point, no box) to the original size; alpha = a8 / 255f",
            "alpha_range": "[0, 1] by construction (stretch, never clamp)",
            "alpha_8bit": "the stretched, scaled 8-bit value itself",
            "composite": "edgematte rounds half up; the demo truncates (int)(F*a/255 + B*(1 - a/255))",
        }

    def _describe_normalize(self) -> dict:
        entry = describe_normalization(self.normalization, self.normalization_rule)
        if self.normalization == DEFAULT_NORMALIZATION:
            # The demo's own line; the same bits as the two-rounding rule for 0.5 (tested).
            entry["expression"] = "(float)((v / 255f - 0.5) / 0.5) (Java; same bits as PaddleSeg's numpy)"
        entry["from"] = ("the model's deploy.yaml Normalize (manifest model.transforms; no transforms: the demo's "
                         "0.5/0.5); its resizes are ignored")
        return entry

    def preprocess_steps(self, rgb, input_hw=None, layout="nchw"):
        _check_image(rgb)
        _check_layout(layout)
        model_hw = _fixed_size(input_hw, self.name)
        steps = {"resized": resize_uint8_fixed(rgb, model_hw, prefilter=False)}
        steps["normalized"] = normalize(steps["resized"], self.table)
        steps["tensor"] = to_layout(steps["normalized"], layout)
        steps["state"] = PreprocessState(self.name, rgb.shape[:2], model_hw, model_hw, model_hw, layout)
        return steps

    def postprocess_steps(self, model_output, state):
        alpha = alpha_plane(model_output, state.model_hw)
        stretched = stretch_to_uint8(alpha)
        scaled = resize_uint8_fixed(stretched, state.original_hw, prefilter=False)
        # A float32 look-up of v / 255f per gray level: the same correctly rounded quotients.
        unit_levels = (np.arange(256, dtype=np.float32) / np.float32(255)).reshape(256, 1)
        return {"output": alpha, "stretched": stretched, "scaled": scaled, "alpha": cv2.LUT(scaled, unit_levels)}

    def resize_rgb(self, image, dst_hw):
        return resize_uint8_fixed(image, dst_hw, prefilter=False)
