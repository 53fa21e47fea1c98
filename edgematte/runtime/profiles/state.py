"""The sizes pre-processing chose, handed to post-processing (Java twin: ``PreprocessState``).

Every size is an ``HW`` (height, width) tuple of Python ints; ``layout`` is "nchw" or "nhwc".
"""

import dataclasses
from dataclasses import dataclass
from typing import Tuple

from .sizes import HW


@dataclass(frozen=True)
class PreprocessState:
    """What postprocess needs to bring the model's alpha back to the photo.

    ``model_hw``: spatial size of the tensor fed to the model. ``resized_hw``: the image inside it
    (top-left; the rest is padding). ``crop_hw``: the region of the output that postprocess maps
    back (equals ``resized_hw`` except where a reference computes it differently, see fastdeploy).
    ``resize_log``: (transform type, size before it) in application order (paddleseg only).
    """

    profile: str
    original_hw: HW
    model_hw: HW
    resized_hw: HW
    crop_hw: HW
    layout: str
    resize_log: Tuple[Tuple[str, HW], ...] = ()

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
