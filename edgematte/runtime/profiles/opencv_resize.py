"""OpenCV's linear resize as PaddleSeg's and FastDeploy's deployments call it (no Java twin).

The Android profiles resize with :mod:`.fixed_point_resize` instead, which Java reproduces bit for bit.
"""

import cv2
import numpy as np

from .sizes import HW


def resize_opencv_linear(image: np.ndarray, dst_hw: HW) -> np.ndarray:
    """``cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)``: any dtype, same channels."""
    return cv2.resize(image, (dst_hw[1], dst_hw[0]), interpolation=cv2.INTER_LINEAR)
