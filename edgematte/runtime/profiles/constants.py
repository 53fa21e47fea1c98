"""The numbers of the ``android`` profile (Java twin: ``AndroidConstants`` in android_demo/core).

Change them only together with Java: the golden vectors pin both sides to the same values.
"""

import dataclasses
from dataclasses import dataclass
from typing import Tuple


@dataclass(frozen=True)
class AndroidConstants:
    """Every number the ``android`` profile (and ``composite``/``blurred_background``) depends on.

    - Sample positions and bilinear weights are fixed point with ``fraction_bits`` fractional bits
      (``one = 2**fraction_bits`` = 2048 is weight 1.0); all integer arithmetic is exact in int64
      (Java ``long``), so it has no rounding except the stated final ``round half up``.
    - A downscale by ``box_min_factor`` or more first sums ``k x k`` pixel blocks (integer box
      pre-reduction, ``k = min(H // h, W // w)``) so phone photos do not alias.
    - ``normalize``: the default normalization, for a model whose transforms are unknown:
      ``(v - normalize_offset) / normalize_divisor`` in float32; the subtraction is exact, so the
      result is the float32 nearest to ``(v / 255 - 0.5) / 0.5``. A model's deploy.yaml Normalize
      replaces it (``AndroidProfile(transforms=...)``); these constants then stay as recorded.
    - Padding (bottom/right) holds ``pad_value`` after normalization, whatever the normalization
      (= pixel value 255 * mean: 127.5 by default, 0 for mean 0; raw input: pixel 0).
    - ``alpha8 = (int)(alpha * 255f + 0.5f)``; composite ``(int)(f * a + b * (1f - a) + 0.5f)``.
    - ``blur`` background: fit inside ``blur_grid`` x ``blur_grid`` with the fixed-point resize,
      convolve with the binomial ``blur_kernel`` (sum 256 per axis, edges clamped, round half up
      after both axes), scale back up with the fixed-point resize.
    """

    fraction_bits: int = 11
    box_min_factor: int = 2
    normalize_offset: float = 127.5
    normalize_divisor: float = 127.5
    pad_value: float = 0.0
    alpha_scale: float = 255.0
    blur_grid: int = 32
    blur_kernel: Tuple[int, ...] = (1, 8, 28, 56, 70, 56, 28, 8, 1)

    @property
    def one(self) -> int:
        return 1 << self.fraction_bits

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


ANDROID_CONSTANTS = AndroidConstants()
