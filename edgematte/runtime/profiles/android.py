"""The ``android`` profile: this project's Android app (Java twin: ``AndroidProfile``, bit for bit).

RGB uint8 H x W x 3 -> letterbox inside the model input (:func:`.fixed_point_resize.resize_uint8_fixed`)
-> the model's normalization -> pad bottom/right with 0.0 -> float32 [1, 3, h, w] or [1, h, w, 3]
(in [-1, 1] for the default mean = std = 0.5). Post: crop, float32 fixed-point bilinear to the photo
size, clamp: float32 H x W in [0, 1].

Normalization is the only thing a model's deploy.yaml transforms change here (see
:func:`.normalization.model_normalization`): the geometry is the app's, so resizes in the transforms
are ignored. Without transforms it is ``(v - 127.5f) / 127.5f`` (``ANDROID_CONSTANTS``).
"""

from typing import Optional, Sequence

import numpy as np

from .base import Profile, _check_image, _fixed_size
from .constants import ANDROID_CONSTANTS, AndroidConstants
from .fixed_point_resize import resize_float32_bilinear, resize_uint8_fixed
from .layout import _check_layout
from .normalization import (
    ModelNormalization,
    describe_normalization,
    fixed_step_rule,
    model_normalization,
    normalize,
)
from .sizes import letterbox_size
from .state import PreprocessState
from .tensors import alpha_plane, pad_bottom_right, to_layout


class AndroidProfile(Profile):
    """This project's Android app; the Java twin reproduces every step from ``ANDROID_CONSTANTS``.

    ``transforms``: the model's deploy.yaml list (a manifest's ``model.transforms``); only its
    Normalize is used. None (or empty): ``constants.normalize_offset / 255`` and
    ``normalize_divisor / 255`` (0.5, 0.5). ``normalization_rule``: "exact" when 255 * mean and
    255 * std are float32 numbers (0.5/0.5, 0/1), else "paddleseg", "none" without Normalize; ``table``:
    float32 [256, 3] (:func:`.normalization.normalization_table`).
    """

    name = "android"

    def __init__(self, constants: AndroidConstants = ANDROID_CONSTANTS,
                 transforms: Optional[Sequence[dict]] = None):
        self.constants = constants
        default = ModelNormalization((constants.normalize_offset / 255.0,) * 3,
                                     (constants.normalize_divisor / 255.0,) * 3)
        self.normalization = model_normalization(transforms, default)
        self.normalization_rule = fixed_step_rule(self.normalization, prefer_exact=True)
        self.table = self.normalization.table(self.normalization_rule)

    def describe(self) -> dict:
        c = self.constants
        return {
            "profile": self.name,
            "reference": "edgematte Android app; pure-Java twin in android_demo/core, proven by golden vectors",
            "channel_order": "RGB",
            "input_size": "fixed (the model's)",
            "resize": {
                "geometry": "letterbox: fit inside (h, w) keeping aspect; scale = min(h/H, w/W) compared exactly "
                            "in integers; bound side = box side, other = round_half_up(side * scale) = "
                            "(2*side*h + H) // (2*H), at least 1",
                "prefilter": f"downscale by k = min(H//h, W//w) >= {c.box_min_factor}: sum k x k blocks (int64, "
                             "trailing partial blocks dropped, sample geometry still exact)",
                "kernel": f"bilinear, half-pixel centres, positions and weights in {c.fraction_bits}-bit fixed point "
                          "rounded half up; int64 accumulation; one final round half up",
            },
            "normalize": {**describe_normalization(self.normalization, self.normalization_rule),
                          "from": "the model's deploy.yaml Normalize (manifest model.transforms; no transforms: "
                                  "the constants' normalize_offset / normalize_divisor); its resizes are ignored"},
            "padding": {"where": "bottom/right", "value": c.pad_value, "when": "after normalization",
                        "note": "the same 0.0 whatever the normalization (pixel 255 * mean; raw: pixel 0)"},
            "layout": "HWC -> CHW (NCHW), or NHWC when the model wants it",
            "postprocess": "crop the top-left resized region; float32 bilinear to the original size with the same "
                           "fixed-point positions (w1 = frac/2048, w0 = 1 - w1; horizontal then vertical; "
                           "a0*w0 + a1*w1 rounded to float32 per operation); clamp to [0, 1]",
            "alpha_range": "[0, 1] (clamped)",
            "alpha_8bit": "(int)(alpha * 255f + 0.5f)",
            "composite": "(int)(f * a + b * (1f - a) + 0.5f) in float32; image background resized with the same "
                         "fixed-point resize",
            "constants": c.as_dict(),
        }

    def preprocess_steps(self, rgb, input_hw=None, layout="nchw"):
        _check_image(rgb)
        _check_layout(layout)
        model_hw = _fixed_size(input_hw, self.name)
        resized_hw = letterbox_size(rgb.shape[:2], model_hw)
        steps = {"resized": resize_uint8_fixed(rgb, resized_hw, True, self.constants)}
        steps["normalized"] = normalize(steps["resized"], self.table)
        steps["padded"] = pad_bottom_right(steps["normalized"], model_hw, self.constants.pad_value)
        steps["tensor"] = to_layout(steps["padded"], layout)
        steps["state"] = PreprocessState(self.name, rgb.shape[:2], model_hw, resized_hw, resized_hw, layout)
        return steps

    def postprocess_steps(self, model_output, state):
        alpha = alpha_plane(model_output, state.model_hw)
        cropped = np.ascontiguousarray(alpha[: state.crop_hw[0], : state.crop_hw[1]])
        resized = resize_float32_bilinear(cropped, state.original_hw, self.constants)
        # Bilinear weights are convex and exact, so a plane inside [0, 1] (no NaN, no -0.0) resizes
        # to values inside [0, 1]: the clamp would change nothing, and "alpha" is "resized" itself.
        inside = not np.signbit(cropped).any() and cropped.max() <= 1
        clamped = resized if inside else np.clip(resized, np.float32(0), np.float32(1))
        return {"output": alpha, "cropped": cropped, "resized": resized, "alpha": clamped}

    def resize_rgb(self, image, dst_hw):
        return resize_uint8_fixed(image, dst_hw, True, self.constants)
