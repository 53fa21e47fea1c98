"""The ``paddleseg`` profile: PaddleSeg's Python deploy (no Java twin).

RGB uint8 H x W x 3 -> one cv2 linear resize per deploy.yaml transform (LimitShort, ResizeByShort,
ResizeToIntMult) -> Normalize -> float32 [1, 3, h, w] or [1, h, w, 3] at the size the transforms give.
The alpha returns through each recorded size in reverse order: float32 H x W, not clamped.
"""

import numpy as np

from edgematte.core.errors import EdgematteError

from .base import _check_image
from .layout import _check_layout
from .normalization import normalize
from .opencv_resize import resize_opencv_linear
from .sizes import int_mult_size, limit_short_size, resize_short_size
from .state import PreprocessState
from .tensors import alpha_plane, to_layout
from .transforms import _TransformsProfile


class PaddleSegProfile(_TransformsProfile):
    """PaddleSeg Python deploy (``Matting/deploy/python/infer.py`` + ppmatting transforms)."""

    name = "paddleseg"

    def describe(self) -> dict:
        return {
            "profile": self.name,
            "reference": "PaddleSeg Matting/deploy/python/infer.py with deploy.yaml transforms",
            "transforms": [dict(t) for t in self.transforms],
            "channel_order": "RGB",
            "input_size": "variable: the transforms decide it; a fixed-size model must match it exactly",
            "resize": {
                "kernel": "cv2.resize INTER_LINEAR on the uint8 RGB image, one call per transform",
                "LimitShort": "only if short side > max_short (or < min_short): side = int(round(side * "
                              "target / short)) (Python round, half to even)",
                "ResizeByShort": "always: side = int(round(side * short_size / short))",
                "ResizeToIntMult": "always: side = side - side % mult_int (rounds down; aspect may change)",
            },
            "normalize": self._describe_normalize("x = float32(v) / 255; x -= mean; x /= std "
                                                  "(float64 constants, stored float32 after each step)"),
            "padding": None,
            "layout": "HWC -> CHW (NCHW), or NHWC when the model wants it",
            "postprocess": "undo each recorded resize in reverse order, one cv2.resize INTER_LINEAR step per "
                           "transform (to the size the transform started from), on the float32 alpha",
            "alpha_range": "[0, 1], no clamp, no threshold",
            "alpha_8bit": "(alpha * 255).astype(uint8): truncated",
            "composite_background_resize": "cv2.resize INTER_LINEAR",
        }

    def preprocess_steps(self, rgb, input_hw=None, layout="nchw"):
        _check_image(rgb)
        _check_layout(layout)
        steps = {}
        image = rgb
        log = []
        for transform in self.transforms:
            kind = transform["type"]
            if kind == "Normalize":
                continue
            size = image.shape[:2]
            log.append((kind, size))
            if kind == "LimitShort":
                target = limit_short_size(size, transform["max_short"], transform["min_short"])
            elif kind == "ResizeByShort":
                target = resize_short_size(size, transform["short_size"])
            else:
                target = int_mult_size(size, transform["mult_int"])
            if min(target) < 1:
                raise EdgematteError(f"profile 'paddleseg': a {size[0]}x{size[1]} image is too small for {kind} "
                                     f"({transform}); it would become {target[0]}x{target[1]}")
            if kind != "LimitShort" or target != size:
                image = resize_opencv_linear(image, target)
            steps[f"after_{kind}"] = image
        model_hw = image.shape[:2]
        if input_hw is not None and all(d is not None and int(d) > 0 for d in input_hw) \
                and tuple(int(d) for d in input_hw) != model_hw:
            raise EdgematteError(
                f"profile 'paddleseg' resizes a {rgb.shape[0]}x{rgb.shape[1]} image to {model_hw[0]}x{model_hw[1]}, "
                f"but the model input is fixed at {input_hw[0]}x{input_hw[1]}; use profile 'fastdeploy' or "
                f"'android' with a fixed-size model, or export the model with a dynamic input shape")
        steps["resized"] = image
        steps["normalized"] = normalize(image, self.table)
        steps["tensor"] = to_layout(steps["normalized"], layout)
        steps["state"] = PreprocessState(self.name, rgb.shape[:2], model_hw, model_hw, model_hw, layout, tuple(log))
        return steps

    def postprocess_steps(self, model_output, state):
        alpha = alpha_plane(model_output, state.model_hw)
        steps = {"output": alpha}
        for kind, size in reversed(state.resize_log):
            alpha = resize_opencv_linear(alpha, size)
            steps[f"undo_{kind}"] = alpha
        steps["alpha"] = alpha
        return steps

    def alpha_to_uint8(self, alpha):
        return (np.clip(np.asarray(alpha, np.float32), 0, 1) * 255).astype(np.uint8)
