"""The ``fastdeploy`` profile: FastDeploy's PPMatting with a fixed input shape (no Java twin).

RGB uint8 H x W x 3 -> aspect-preserving cv2 resize bounded by the model input -> Normalize -> pad
bottom/right with 0.0 -> float32 [1, 3, h, w] or [1, h, w, 3]. Post: crop the top-left region of the
output, cv2 linear resize to the photo: float32 H x W, not clamped.
"""

from typing import Sequence

import cv2
import numpy as np

from edgematte.core.errors import EdgematteError

from .base import _check_image, _fixed_size
from .layout import _check_layout
from .normalization import normalize
from .opencv_resize import resize_opencv_linear
from .sizes import c_round, fastdeploy_crop_size, fastdeploy_scale
from .state import PreprocessState
from .tensors import alpha_plane, pad_bottom_right, to_layout
from .transforms import _RESIZES, _TransformsProfile


class FastDeployProfile(_TransformsProfile):
    """FastDeploy ``vision::matting::PPMatting`` with a fixed input shape (develop branch).

    Reading of FastDeploy: ``BuildPreprocessPipelineFromConfig`` turns LimitShort into
    ``ResizeByShort(max_short, max_hw=input size)``, ResizeToIntMult into another
    ``ResizeByShort`` with the last target, ResizeByShort(short_size) into one with short_size;
    then Normalize, Cast float, ``PadToSize`` with 0.0 bottom/right, HWC2CHW. ``ResizeByShort``
    computes ``scale = min(target / short, h / H, w / W)`` in float64 and, when ``|scale - 1| >=
    1e-6``, calls ``cv::resize(im, Size(), scale, scale, INTER_LINEAR)`` (OpenCV rounds the size
    half to even and maps pixels with that exact scale). The second resize is normally a no-op.
    """

    name = "fastdeploy"
    normalization_rule = "fastdeploy"

    def __init__(self, transforms: Sequence[dict]):
        super().__init__(transforms)
        self.resize_targets = []
        target = None
        for transform in self.transforms:
            if transform["type"] == "LimitShort":
                if transform["max_short"] is None:
                    raise EdgematteError("profile 'fastdeploy': LimitShort without max_short has no target size")
                target = transform["max_short"]
            elif transform["type"] == "ResizeByShort":
                target = transform["short_size"]
            elif transform["type"] == "ResizeToIntMult" and target is None:
                raise EdgematteError("profile 'fastdeploy': ResizeToIntMult needs a LimitShort or ResizeByShort "
                                     "before it (FastDeploy reuses that target size)")
            if transform["type"] in _RESIZES:
                self.resize_targets.append((transform["type"], target))

    def describe(self) -> dict:
        return {
            "profile": self.name,
            "reference": "FastDeploy vision/matting/ppmatting (fixed input shape) + processors",
            "transforms": [dict(t) for t in self.transforms],
            "channel_order": "RGB",
            "input_size": "fixed (the model's)",
            "resize": {
                "steps": [f"{kind} -> ResizeByShort(target={target}, max_hw=input size)"
                          for kind, target in self.resize_targets],
                "scale": "min(target / short_side, h / H, w / W) in float64",
                "size": "cv::resize with fx = fy = scale: side = cvRound(side * scale) (half to even)",
                "kernel": "cv2.INTER_LINEAR on uint8; skipped when |scale - 1| < 1e-6",
            },
            "normalize": self._describe_normalize("float32(v * a + b), a = float32((1/255)/std), "
                                                  "b = float32(-mean/std), one rounding (FMA)"),
            "padding": {"where": "bottom/right", "value": 0.0, "when": "after normalization"},
            "layout": "HWC -> CHW (NCHW), or NHWC when the model wants it",
            "postprocess": "crop top-left round(min(h/H, w/W) * side) (C round, half away from zero) of the "
                           "alpha, cv2.resize INTER_LINEAR to the original size",
            "alpha_range": "as the model gives it, no clamp",
            "alpha_8bit": "round half to even (cv::saturate_cast)",
            "composite_background_resize": "cv2.resize INTER_LINEAR",
        }

    def preprocess_steps(self, rgb, input_hw=None, layout="nchw"):
        _check_image(rgb)
        _check_layout(layout)
        model_hw = _fixed_size(input_hw, self.name)
        steps = {}
        image = rgb
        for kind, target in self.resize_targets:
            size = image.shape[:2]
            scale = fastdeploy_scale(size, target, model_hw)
            if abs(scale - 1.0) >= 1e-6:
                image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
            else:
                target_hw = (c_round(scale * size[0]), c_round(scale * size[1]))
                if target_hw != size:
                    image = resize_opencv_linear(image, target_hw)
            steps[f"after_{kind}"] = image
        resized_hw = image.shape[:2]
        if resized_hw[0] > model_hw[0] or resized_hw[1] > model_hw[1]:
            raise EdgematteError(f"profile 'fastdeploy': a {rgb.shape[0]}x{rgb.shape[1]} image resizes to "
                                 f"{resized_hw[0]}x{resized_hw[1]}, larger than the model input "
                                 f"{model_hw[0]}x{model_hw[1]} (FastDeploy's PadToSize fails the same way)")
        steps["resized"] = image
        steps["normalized"] = normalize(image, self.table)
        steps["padded"] = pad_bottom_right(steps["normalized"], model_hw, 0.0)
        steps["tensor"] = to_layout(steps["padded"], layout)
        crop_hw = fastdeploy_crop_size(rgb.shape[:2], model_hw)
        steps["state"] = PreprocessState(self.name, rgb.shape[:2], model_hw, resized_hw, crop_hw, layout)
        return steps

    def postprocess_steps(self, model_output, state):
        alpha = alpha_plane(model_output, state.model_hw)
        cropped = np.ascontiguousarray(alpha[: state.crop_hw[0], : state.crop_hw[1]])
        return {"output": alpha, "cropped": cropped, "alpha": resize_opencv_linear(cropped, state.original_hw)}

    def alpha_to_uint8(self, alpha):
        return np.rint(np.clip(np.asarray(alpha, np.float32), 0, 1) * np.float32(255)).astype(np.uint8)
