"""Tensor layouts (Java twin: ``Layout``): "nchw" is [1, 3, h, w] (Paddle Lite), "nhwc" [1, h, w, 3] (TFLite).

The conversion itself is :func:`.tensors.to_layout` (Java: ``Tensors.toLayout``).
"""


LAYOUTS = ("nchw", "nhwc")


def _check_layout(layout: str) -> None:
    """Raise ValueError unless ``layout`` is one of ``LAYOUTS``."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
