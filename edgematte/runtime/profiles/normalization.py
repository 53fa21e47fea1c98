"""uint8 -> float32 normalization through per-value tables (Java twin: ``Normalization``).

:func:`normalization_table` gives a float32 [256, 3] table (one column per channel) that keeps each
deployment's exact float expression; :func:`normalize` maps a uint8 H x W x 3 image through it to a
float32 H x W x 3 array (in [-1, 1] for mean = std = 0.5).
"""

from typing import Sequence

import cv2
import numpy as np


def normalization_table(rule: str, mean: Sequence[float] = (0.5, 0.5, 0.5),
                        std: Sequence[float] = (0.5, 0.5, 0.5)) -> np.ndarray:
    """float32 [256, 3]: the normalized value of each uint8 ``v`` per channel, by ``rule``.

    A per-value table keeps each deployment's exact float expression (they differ in the last bit):

    - ``"paddleseg"``: PaddleSeg ``normalize``: ``x = float32(v) / 255`` in float32, then
      ``x -= mean``, ``x /= std`` with float64 constants, stored to float32 after each step. The
      PaddleSeg Android demo's Java ``(float)((v / 255 - 0.5) / 0.5)`` gives the same bits.
    - ``"fastdeploy"``: FastDeploy ``Normalize`` via ``convertTo``: ``float32(v * a + b)`` with
      ``a = float32((1 / 255) / std)``, ``b = float32(-mean / std)`` (mean/std parsed as float32)
      and one rounding (the fused multiply-add of OpenCV's AVX2/NEON paths; exact in float64 here).
    - ``"exact"``: ``(v - 255 * mean) / (255 * std)`` in float32; both constants must be exact
      float32 (127.5 is), so the result is the float32 nearest the true value (``android``).
    """
    values = np.arange(256, dtype=np.float32)[:, None]
    mean64 = np.asarray(mean, np.float64)[None, :]
    std64 = np.asarray(std, np.float64)[None, :]
    if rule == "paddleseg":
        x = values / np.float32(255.0)
        x = (x.astype(np.float64) - mean64).astype(np.float32)
        x = (x.astype(np.float64) / std64).astype(np.float32)
    elif rule == "fastdeploy":
        mean_f = mean64.astype(np.float32).astype(np.float64)
        std_f = std64.astype(np.float32).astype(np.float64)
        scale = ((1.0 / 255.0) / std_f).astype(np.float32).astype(np.float64)
        shift = (-mean_f / std_f).astype(np.float32).astype(np.float64)
        x = (values.astype(np.float64) * scale + shift).astype(np.float32)
    elif rule == "exact":
        offset, divisor = 255.0 * mean64, 255.0 * std64
        if (offset.astype(np.float32) != offset).any() or (divisor.astype(np.float32) != divisor).any():
            raise ValueError(f"rule 'exact' needs 255*mean and 255*std exact in float32, got {mean}, {std}")
        x = (values - offset.astype(np.float32)) / divisor.astype(np.float32)
    else:
        raise ValueError(f"unknown normalization rule {rule!r}")
    return np.ascontiguousarray(np.broadcast_to(x, (256, 3)), dtype=np.float32)


def normalize(rgb: np.ndarray, table: np.ndarray) -> np.ndarray:
    """float32 H x W x 3: ``table[rgb[..., c], c]`` (see :func:`normalization_table`).

    OpenCV's per-channel look-up (a copy of table entries, so exact) is several times faster than
    numpy's fancy indexing.
    """
    return cv2.LUT(np.ascontiguousarray(rgb, np.uint8), np.ascontiguousarray(table, np.float32).reshape(256, 1, 3))
