"""The model side of the arrays (Java twin: ``Tensors``): padding, layout, the alpha plane of an output.

All float32: :func:`pad_bottom_right` h x w x C -> model_h x model_w x C; :func:`to_layout` h x w x 3 ->
[1, 3, h, w] or [1, h, w, 3]; :func:`alpha_plane` [1, 1, h, w], [1, h, w, 1], [1, h, w] or [h, w] -> h x w
(values as the model gave them).
"""

import numpy as np

from .sizes import HW


def pad_bottom_right(hwc: np.ndarray, model_hw: HW, value: float) -> np.ndarray:
    """float32 model_h x model_w x C: ``hwc`` at the top-left, ``value`` elsewhere (``hwc`` itself, not a copy,
    when it is float32 and already fills the model size: a video frame at the model's own size)."""
    if hwc.shape[:2] == tuple(model_hw) and hwc.dtype == np.float32:
        return hwc
    out = np.full((model_hw[0], model_hw[1], hwc.shape[2]), value, np.float32)
    out[: hwc.shape[0], : hwc.shape[1]] = hwc
    return out


def to_layout(hwc: np.ndarray, layout: str) -> np.ndarray:
    """float32 h x w x 3 -> contiguous [1, 3, h, w] ("nchw") or [1, h, w, 3] ("nhwc")."""
    if layout == "nchw":
        return np.ascontiguousarray(hwc.transpose(2, 0, 1)[None], dtype=np.float32)
    return np.ascontiguousarray(hwc[None], dtype=np.float32)


def alpha_plane(model_output: np.ndarray, model_hw: HW) -> np.ndarray:
    """float32 h x w from a model output shaped [1, 1, h, w], [1, h, w, 1], [1, h, w] or [h, w]."""
    out = np.asarray(model_output)
    h, w = model_hw
    if out.shape == (1, 1, h, w):
        plane = out[0, 0]
    elif out.shape == (1, h, w, 1):
        plane = out[0, :, :, 0]
    elif out.shape == (1, h, w):
        plane = out[0]
    elif out.shape == (h, w):
        plane = out
    else:
        raise ValueError(f"model output shape {out.shape} does not hold one {h}x{w} alpha "
                         f"([1,1,{h},{w}] or [1,{h},{w},1] expected)")
    return np.ascontiguousarray(plane, dtype=np.float32)
