"""Size rules: the (height, width) each deployment's resize produces, computed from the sizes alone.

Sizes are ``HW`` tuples of Python ints (Java twin: ``Size``, an immutable (height, width) pair of ints >= 1).
:func:`letterbox_size` is the ``android`` rule (Java: ``FixedPointResize.letterboxSize``). PaddleSeg's
(:func:`limit_short_size`, :func:`resize_short_size`, :func:`int_mult_size`) and FastDeploy's
(:func:`fastdeploy_scale`, :func:`fastdeploy_crop_size`, with C's :func:`c_round`) have no Java twin.
"""

import math
from typing import Optional, Tuple

HW = Tuple[int, int]


def letterbox_size(src_hw: HW, box_hw: HW) -> HW:
    """Size of ``src_hw`` scaled to fit inside ``box_hw`` keeping aspect (the ``android`` rule).

    ``scale = min(h / H, w / W)`` compared exactly as integers (``h * W <= w * H``); the bound
    side equals the box, the other is ``round_half_up(side * scale)`` = ``(2 * side * h + H) //
    (2 * H)``, at least 1.
    """
    src_h, src_w = src_hw
    box_h, box_w = box_hw
    if box_h * src_w <= box_w * src_h:
        return box_h, max(1, min(box_w, (2 * src_w * box_h + src_h) // (2 * src_h)))
    return max(1, min(box_h, (2 * src_h * box_w + src_w) // (2 * src_w))), box_w


def limit_short_size(src_hw: HW, max_short: Optional[int] = None, min_short: Optional[int] = None) -> HW:
    """PaddleSeg ``LimitShort``: the size after it (its resize uses :func:`resize_short_size`)."""
    short = min(src_hw)
    target = short
    if max_short and short > max_short:
        target = max_short
    elif min_short and short < min_short:
        target = min_short
    return src_hw if target == short else resize_short_size(src_hw, target)


def resize_short_size(src_hw: HW, short_size: int) -> HW:
    """PaddleSeg ``resize_short``: ``int(round(side * (short_size / short)))`` per side.

    Python's ``round`` (half to even) on the float64 product, exactly as PaddleSeg computes it.
    """
    scale = float(short_size) / float(min(src_hw))
    return int(round(src_hw[0] * scale)), int(round(src_hw[1] * scale))


def int_mult_size(src_hw: HW, mult_int: int) -> HW:
    """PaddleSeg ``ResizeToIntMult``: each side rounded DOWN to a multiple (``side - side % m``)."""
    return src_hw[0] - src_hw[0] % mult_int, src_hw[1] - src_hw[1] % mult_int


def c_round(x: float) -> int:
    """C/C++ ``round`` for x >= 0: halves away from zero (not Python's half-to-even)."""
    whole = math.floor(x)
    return int(whole) + (1 if x - whole >= 0.5 else 0)


def fastdeploy_scale(src_hw: HW, target_short: int, box_hw: HW) -> float:
    """FastDeploy ``ResizeByShort::GenerateScale`` with ``max_hw``: all in float64.

    ``scale = min(target_short / short_side, box_h / H, box_w / W)``.
    """
    scale = float(target_short) / float(min(src_hw))
    return min(scale, float(box_hw[0]) / float(src_hw[0]), float(box_hw[1]) / float(src_hw[1]))


def fastdeploy_crop_size(original_hw: HW, model_hw: HW) -> HW:
    """The region FastDeploy's ``PPMatting::Postprocess`` crops: ``round(min(h/H, w/W) * side)``.

    Computed from the sizes alone (C ``round``), not from the size the resize produced.
    """
    scale = min(model_hw[0] / original_hw[0], model_hw[1] / original_hw[1])
    return c_round(scale * original_hw[0]), c_round(scale * original_hw[1])
