"""Pre- and post-processing profiles: an RGB photo in, the model's input tensor out, and back to alpha.

A profile reproduces, number for number, what one deployment does around the model. It knows nothing
of runtimes: ``Matter`` joins a profile to a backend. Four profiles exist (see ``PROFILES``):

``paddleseg``
    PaddleSeg's Python deploy (``deploy.yaml`` transforms: LimitShort / ResizeByShort /
    ResizeToIntMult / Normalize). Every resize is ``cv2.resize(..., INTER_LINEAR)`` on the uint8
    image; the alpha returns through each recorded size in reverse order, one step at a time.
    The input size varies with the image, so a fixed-size model fits only when the sizes agree.
``fastdeploy``
    FastDeploy's PPMatting with a fixed input shape: aspect-preserving resize bounded by the input
    size, Normalize, pad bottom/right with 0 *after* normalization; post crops the top-left region
    and resizes it linearly to the original size.
``android``
    This project's Android app. Every step is integer or single-rounding float32 arithmetic so the
    pure-Java twin reproduces it bit for bit; every constant lives in ``ANDROID_CONSTANTS``.
``paddleseg-android``
    The legacy PaddleSeg Android demo: fixed-size scaling ignoring aspect, min-max stretch of the
    output to 0..255 (not a clamp), bilinear scaling back.

Arrays: images are ``uint8`` H x W x 3 in RGB order; alphas are ``float32`` H x W in [0, 1];
tensors are ``float32`` [1, 3, h, w] ("nchw") or [1, h, w, 3] ("nhwc").
"""

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from edgematte.core.errors import EdgematteError

HW = Tuple[int, int]
LAYOUTS = ("nchw", "nhwc")


# ----------------------------------------------------------------------------------------------
# The constants the Java twin mirrors (android_demo/core). Change them only together with Java.
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AndroidConstants:
    """Every number the ``android`` profile (and ``composite``/``blurred_background``) depends on.

    - Sample positions and bilinear weights are fixed point with ``fraction_bits`` fractional bits
      (``one = 2**fraction_bits`` = 2048 is weight 1.0); all integer arithmetic is exact in int64
      (Java ``long``), so it has no rounding except the stated final ``round half up``.
    - A downscale by ``box_min_factor`` or more first sums ``k x k`` pixel blocks (integer box
      pre-reduction, ``k = min(H // h, W // w)``) so phone photos do not alias.
    - ``normalize``: ``(v - normalize_offset) / normalize_divisor`` in float32; the subtraction is
      exact, so the result is the float32 nearest to ``(v / 255 - 0.5) / 0.5``.
    - Padding (bottom/right) holds ``pad_value`` after normalization (= pixel value 127.5).
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


# ----------------------------------------------------------------------------------------------
# Sizes
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Resizing
# ----------------------------------------------------------------------------------------------


def resize_opencv_linear(image: np.ndarray, dst_hw: HW) -> np.ndarray:
    """``cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)``: any dtype, same channels."""
    return cv2.resize(image, (dst_hw[1], dst_hw[0]), interpolation=cv2.INTER_LINEAR)


def box_factor(src_hw: HW, dst_hw: HW, constants: AndroidConstants = ANDROID_CONSTANTS) -> int:
    """Integer box pre-reduction factor ``k = min(H // h, W // w)`` when it is at least 2, else 1."""
    k = min(src_hw[0] // dst_hw[0], src_hw[1] // dst_hw[1])
    return k if k >= constants.box_min_factor else 1


def bilinear_taps(src_len: int, dst_len: int, box: int = 1, constants: AndroidConstants = ANDROID_CONSTANTS):
    """Fixed-point sample positions for one axis: ``(i0, i1, frac)`` int64 arrays of ``dst_len``.

    Source samples are the ``n = src_len // box`` box-reduced pixels (``box = 1``: the pixels). With
    half-pixel centres the position of output ``j`` on that grid is
    ``x = ((2j + 1) * src_len - box * dst_len) / (2 * box * dst_len)``, which keeps the geometry of
    the full ``src_len`` even when ``src_len`` is not a multiple of ``box``. In integers::

        num  = max(0, (2j + 1) * src_len - box * dst_len)
        pos  = min((num * one + box * dst_len) // (2 * box * dst_len), (n - 1) * one)   # round half up
        i0   = pos >> fraction_bits;  frac = pos & (one - 1);  i1 = min(i0 + 1, n - 1)

    The output is ``(s[i0] * (one - frac) + s[i1] * frac) / one``.
    """
    one = constants.one
    n = src_len // box
    j = np.arange(dst_len, dtype=np.int64)
    span = box * dst_len
    num = np.maximum((2 * j + 1) * src_len - span, 0)
    pos = np.minimum((num * one + span) // (2 * span), (n - 1) * one)
    i0 = pos >> constants.fraction_bits
    frac = pos & (one - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    return i0, i1, frac


@functools.lru_cache(maxsize=64)
def _cached_taps(src_len: int, dst_len: int, box: int, constants: AndroidConstants):
    """:func:`bilinear_taps` with ``intp`` indices (what ``np.take`` wants), read-only, cached per size.

    A video or a folder of same-size photos asks for the same few tables on every frame.
    """
    i0, i1, frac = bilinear_taps(src_len, dst_len, box, constants)
    taps = (i0.astype(np.intp), i1.astype(np.intp), frac)
    for table in taps:
        table.flags.writeable = False
    return taps


def _row_blocks(rows: int, row_elems: int, budget: int = 1 << 18):
    """Slices over output rows holding about ``budget`` elements each.

    Bounds temporary memory for any image size; the default keeps a block's temporaries in cache.
    """
    step = max(1, budget // max(1, row_elems))
    for start in range(0, rows, step):
        yield slice(start, min(rows, start + step))


_OPENCV_TRANSPOSABLE = (np.uint8, np.uint16, np.int32, np.float32, np.float64)


def _transpose(matrix: np.ndarray) -> np.ndarray:
    """Contiguous transpose of a 2-D array (OpenCV's is a plain copy, so exact, and several times
    faster than numpy's for the dtypes it knows).

    The resizes keep images as 2-D (rows, width * channels) matrices: transposed, a column of pixels
    becomes ``channels`` contiguous rows, so the horizontal pass gathers whole rows.
    """
    if matrix.dtype.type in _OPENCV_TRANSPOSABLE:
        return cv2.transpose(matrix)
    return np.ascontiguousarray(matrix.T)


def _blend_rows(rows: np.ndarray, first: np.ndarray, second: np.ndarray, first_weight: np.ndarray,
                second_weight: np.ndarray, dtype, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``rows[first] * first_weight + rows[second] * second_weight`` in ``dtype``: one 2-tap pass.

    ``first``/``second``: intp row indices; weights broadcast against the gathered rows (one weight
    per row: shape (n, 1) or (n, 1, 1)). Each product and the sum are rounded once in ``dtype``
    (exact for integers that fit; float32 as in Java, no fused multiply-add). ``out``: a contiguous
    array of ``rows``' dtype (then ``dtype`` must be that dtype) that receives the result.
    """
    # mode="clip" (the indices are valid anyway) lets numpy skip its bounds-check buffering.
    if out is None:
        acc = np.take(rows, first, axis=0, mode="clip").astype(dtype, copy=False)
    else:
        acc = np.take(rows, first, axis=0, out=out, mode="clip")
    acc *= first_weight
    other = np.take(rows, second, axis=0, mode="clip").astype(dtype, copy=False)
    other *= second_weight
    acc += other
    return acc


def box_sums(image: np.ndarray, box: int, rows: np.ndarray) -> np.ndarray:
    """Exact integer sums of ``box x box`` blocks of an H x W x C uint8 image, column by column.

    Returns ``(W // box) x C x len(rows)``: for each block column, each channel, the sums down the
    block rows ``rows`` (sorted rows of the reduced grid; block row ``r`` covers image rows
    ``r*box .. r*box+box-1``). Trailing columns that do not fill a block are left out
    (:func:`bilinear_taps` still uses the full size, so the geometry stays exact). Columns come first
    because the horizontal resize pass then gathers whole rows. dtype: ``uint8`` for ``box = 1``,
    ``uint16`` while ``box*box*255`` fits, else ``int32`` (exact to box 2900).
    """
    height, width, channels = len(rows), image.shape[1] // box * box, image.shape[2]
    dtype = np.uint16 if box * box * 255 < 2**16 else np.int32
    contiguous = int(rows[-1]) - int(rows[0]) + 1 == len(rows)

    def image_rows(offset):
        # A strided view when the rows are consecutive (no copy), else a gather.
        if contiguous:
            return image[int(rows[0]) * box + offset:(int(rows[-1]) + 1) * box:box, :width]
        return image[rows * box + offset, :width]

    vertical = image_rows(0)
    if box > 1:
        vertical = vertical.astype(dtype)
    for offset in range(1, box):
        vertical += image_rows(offset)
    columns = _transpose(vertical.reshape(height, width * channels)).reshape(width, channels, height)
    if box == 1:
        return columns
    sums = columns[0::box].copy()
    for offset in range(1, box):
        sums += columns[offset::box]
    return sums


def resize_uint8_fixed(image: np.ndarray, dst_hw: HW, prefilter: bool = True,
                       constants: AndroidConstants = ANDROID_CONSTANTS) -> np.ndarray:
    """Exact integer bilinear resize of a uint8 H x W (x C) image to ``dst_hw`` (the Java twin's).

    With ``prefilter`` a downscale by a factor >= 2 first sums ``k x k`` blocks
    (:func:`box_factor`, :func:`box_sums`); the bilinear step then samples those sums with
    :func:`bilinear_taps`. Every value is an exact integer until one final rounding::

        acc = sum_y wy * sum_x wx * blocksum        (weights sum to one**2 per output pixel)
        out = (acc + d // 2) // d,   d = k * k * one * one                         (round half up)

    Being exact, the order of the sums is free: horizontal pass on the source rows the output
    needs, then vertical, in int32 while it fits, then float64 (integers below 2**53 are exact and
    the final quotient is far from the next integer: ``floor(fl(N / d)) == N // d`` for d < 2**44),
    else int64.
    """
    squeeze = image.ndim == 2
    src = image[:, :, None] if squeeze else image
    src_hw, channels = src.shape[:2], src.shape[2]
    box = box_factor(src_hw, dst_hw, constants) if prefilter else 1
    ty0, ty1, fy = _cached_taps(src_hw[0], dst_hw[0], box, constants)
    tx0, tx1, fx = _cached_taps(src_hw[1], dst_hw[1], box, constants)
    one = constants.one
    denominator = box * box * one * one
    largest = 255 * denominator + denominator // 2
    # Horizontal: box sums times one weight; int32 up to box 64.
    row_type = np.int32 if box * box * 255 * one < 2**31 else np.int64
    acc_type = (np.int32 if largest < 2**31 else np.float64 if largest < 2**53 and denominator < 2**44
                else np.int64)
    needed = np.union1d(ty0, ty1)
    columns = box_sums(src, box, needed)  # (W // box) x C x len(needed)
    across = _blend_rows(columns, tx0, tx1, (one - fx).astype(row_type)[:, None, None],
                         fx.astype(row_type)[:, None, None], row_type)  # w x C x len(needed)
    rows = _transpose(across.reshape(dst_hw[1] * channels, len(needed))).reshape(len(needed), dst_hw[1], channels)
    top, bottom = np.searchsorted(needed, ty0), np.searchsorted(needed, ty1)
    wy0, wy1 = (one - fy).astype(acc_type)[:, None, None], fy.astype(acc_type)[:, None, None]
    out = np.empty((dst_hw[0], dst_hw[1], channels), np.uint8)
    for block in _row_blocks(dst_hw[0], dst_hw[1] * channels):
        acc = _blend_rows(rows, top[block], bottom[block], wy0[block], wy1[block], acc_type)
        acc += denominator // 2
        if acc_type is np.float64:
            acc /= denominator
        elif denominator & (denominator - 1) == 0:
            acc >>= denominator.bit_length() - 1
        else:
            acc //= denominator
        out[block] = acc  # float64 -> uint8 truncates: the floor of a non-negative quotient
    return out[:, :, 0] if squeeze else out


def resize_float32_bilinear(plane: np.ndarray, dst_hw: HW,
                            constants: AndroidConstants = ANDROID_CONSTANTS) -> np.ndarray:
    """Bilinear resize of a float32 H x W plane with the positions of :func:`bilinear_taps`.

    Weights ``w1 = frac * 2**-fraction_bits`` and ``w0 = 1 - w1`` are exact float32; horizontal
    pass ``r = a0 * w0 + a1 * w1`` then vertical ``out = r0 * w0 + r1 * w1``, each product and sum
    rounded to float32 (Java: ``a0 * w0 + a1 * w1`` on floats, no fused multiply-add).
    """
    plane = np.asarray(plane, np.float32)
    ty0, ty1, fy = _cached_taps(plane.shape[0], dst_hw[0], 1, constants)
    tx0, tx1, fx = _cached_taps(plane.shape[1], dst_hw[1], 1, constants)
    unit = np.float32(1.0 / constants.one)
    wx1 = fx.astype(np.float32) * unit
    wx0 = np.float32(1) - wx1
    wy1 = (fy.astype(np.float32) * unit)[:, None]
    wy0 = np.float32(1) - wy1
    columns = _transpose(plane)
    rows = _transpose(_blend_rows(columns, tx0, tx1, wx0[:, None], wx1[:, None], np.float32))
    out = np.empty(dst_hw, np.float32)
    for block in _row_blocks(dst_hw[0], dst_hw[1]):
        _blend_rows(rows, ty0[block], ty1[block], wy0[block], wy1[block], np.float32, out=out[block])
    return out


# ----------------------------------------------------------------------------------------------
# Normalization, layout, model output
# ----------------------------------------------------------------------------------------------


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


def pad_bottom_right(hwc: np.ndarray, model_hw: HW, value: float) -> np.ndarray:
    """float32 model_h x model_w x C: ``hwc`` at the top-left, ``value`` elsewhere."""
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


def stretch_to_uint8(plane: np.ndarray) -> np.ndarray:
    """The PaddleSeg Android demo's min-max stretch (``floatArrayToBitmap``), in float32.

    ``(byte)(((v - min) / (max - min + 1e-11f)) * 255)``: truncated toward zero, not clamped.
    """
    plane = np.asarray(plane, np.float32)
    low, high = plane.min(), plane.max()
    delta = (high - low) + np.float32(1e-11)
    return (((plane - low) / delta) * np.float32(255)).astype(np.uint8)


def alpha_to_uint8_round_half_up(alpha: np.ndarray) -> np.ndarray:
    """uint8 ``floor(alpha * 255f + 0.5f)`` in float32, alpha clipped to [0, 1] first."""
    scaled = np.clip(np.asarray(alpha, np.float32), 0, 1)
    scaled *= np.float32(ANDROID_CONSTANTS.alpha_scale)
    scaled += np.float32(0.5)
    return scaled.astype(np.uint8)  # truncation is the floor here: every value is >= 0.5


# ----------------------------------------------------------------------------------------------
# Background replacement
# ----------------------------------------------------------------------------------------------

Background = Union[np.ndarray, Tuple[int, int, int], str]


def blurred_background(rgb: np.ndarray, constants: AndroidConstants = ANDROID_CONSTANTS) -> np.ndarray:
    """A strong, Gaussian-like blur of ``rgb`` (uint8 H x W x 3), exact in integers.

    Shrink to fit ``blur_grid`` x ``blur_grid`` (:func:`letterbox_size`, :func:`resize_uint8_fixed`
    with box pre-reduction), convolve with the separable binomial ``blur_kernel`` (edge pixels
    repeated; ``(acc + 2**15) >> 16`` after both axes), enlarge back with
    :func:`resize_uint8_fixed`. The blur radius is a fixed fraction of the image (sigma about
    4% of the long side) and costs the same at any resolution.
    """
    small_hw = letterbox_size(rgb.shape[:2], (constants.blur_grid, constants.blur_grid))
    small = resize_uint8_fixed(rgb, small_hw, True, constants).astype(np.int64)
    kernel = np.asarray(constants.blur_kernel, np.int64)
    radius = len(kernel) // 2
    total = int(kernel.sum()) ** 2

    def along(axis_len):
        return [np.clip(np.arange(axis_len) + t - radius, 0, axis_len - 1) for t in range(len(kernel))]

    across = sum(kernel[t] * small[:, idx] for t, idx in enumerate(along(small_hw[1])))
    down = sum(kernel[t] * across[idx] for t, idx in enumerate(along(small_hw[0])))
    smooth = ((down + total // 2) // total).astype(np.uint8)
    return resize_uint8_fixed(smooth, rgb.shape[:2], True, constants)


def background_image(rgb: np.ndarray, background: Background,
                     resize: Callable[[np.ndarray, HW], np.ndarray] = resize_opencv_linear) -> np.ndarray:
    """uint8 H x W x 3 background for ``rgb``: an image resized by ``resize``, a colour, or "blur"."""
    size = rgb.shape[:2]
    if isinstance(background, str):
        if background != "blur":
            raise ValueError(f"background must be an RGB image, an (r, g, b) colour or 'blur', got {background!r}")
        return blurred_background(rgb)
    if isinstance(background, np.ndarray):
        if background.dtype != np.uint8 or background.ndim != 3 or background.shape[2] != 3:
            raise ValueError(f"background image must be uint8 HxWx3, got {background.dtype} {background.shape}")
        return background if background.shape[:2] == size else resize(background, size)
    colour = tuple(int(c) for c in background)
    if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
        raise ValueError(f"background colour must be three values in 0..255, got {background!r}")
    # One real row repeated by a zero stride: numpy then walks whole rows (not 3-byte pixels).
    row = np.tile(np.asarray(colour, np.uint8), size[1]).reshape(size[1], 3)
    return np.broadcast_to(row, (size[0], size[1], 3))


def composite(rgb: np.ndarray, alpha: np.ndarray, background: Background,
              resize: Callable[[np.ndarray, HW], np.ndarray] = resize_opencv_linear) -> np.ndarray:
    """uint8 H x W x 3: the photo over a new background.

    ``rgb`` uint8 H x W x 3; ``alpha`` float H x W (clipped to [0, 1]); ``background`` an RGB uint8
    image of any size (resized with ``resize``; profiles pass their own), an ``(r, g, b)`` colour, or
    ``"blur"`` (:func:`blurred_background`). Per channel, in float32 with every product and sum
    rounded to float32 in this order (Java: ``(int)(f * a + b * (1f - a) + 0.5f)``)::

        out = floor(f * a + b * (1 - a) + 0.5)        (round half up; stays within 0..255)
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image must be uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
    alpha = np.asarray(alpha)
    if alpha.shape != rgb.shape[:2] or alpha.dtype.kind != "f":
        raise ValueError(f"alpha must be float HxW matching the image {rgb.shape[:2]}, got {alpha.dtype} {alpha.shape}")
    bg = background_image(rgb, background, resize)
    out = np.empty(rgb.shape, np.uint8)
    for block in _row_blocks(rgb.shape[0], rgb.shape[1] * 3):
        # alpha repeated per channel, so every operation below is a plain element-wise one
        a = cv2.cvtColor(np.clip(alpha[block].astype(np.float32), 0, 1), cv2.COLOR_GRAY2RGB)
        blend = rgb[block].astype(np.float32, order="C")
        blend *= a
        np.subtract(np.float32(1), a, out=a)
        behind = bg[block].astype(np.float32, order="C")  # "C": a colour background is a broadcast view
        behind *= a
        blend += behind
        blend += np.float32(0.5)
        out[block] = blend  # the cast truncates: the floor, as every value lies in [0.5, 256)
    return out


# ----------------------------------------------------------------------------------------------
# Profiles
# ----------------------------------------------------------------------------------------------


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


def _check_image(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 \
            or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"image must be a uint8 HxWx3 RGB array, got {getattr(rgb, 'dtype', type(rgb))} "
                         f"{getattr(rgb, 'shape', '')}")


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def _fixed_size(input_hw, profile: str) -> HW:
    if input_hw is None or len(input_hw) != 2 or any(d is None or int(d) <= 0 for d in input_hw):
        raise EdgematteError(f"profile {profile!r} needs a model with a fixed input size, got {input_hw}; "
                             f"use profile 'paddleseg' for dynamic-size models")
    return int(input_hw[0]), int(input_hw[1])


class Profile:
    """Base class. Subclasses implement :meth:`preprocess_steps` and :meth:`postprocess_steps`."""

    name = "base"

    def describe(self) -> dict:
        """JSON-ready statement of every choice (goes into the manifest)."""
        raise NotImplementedError

    def preprocess_steps(self, rgb: np.ndarray, input_hw: Optional[HW] = None, layout: str = "nchw") -> dict:
        """Named intermediates in order: at least ``resized`` (uint8 RGB), ``normalized`` (float32
        HWC), ``tensor`` (the model input) and ``state`` (:class:`PreprocessState`)."""
        raise NotImplementedError

    def postprocess_steps(self, model_output: np.ndarray, state: PreprocessState) -> dict:
        """Named intermediates in order, ending with ``alpha`` (float32 at the original size)."""
        raise NotImplementedError

    def preprocess(self, rgb: np.ndarray, input_hw: Optional[HW] = None, layout: str = "nchw"):
        """RGB uint8 H x W x 3 -> (float32 tensor [1,3,h,w] or [1,h,w,3], PreprocessState)."""
        steps = self.preprocess_steps(rgb, input_hw, layout)
        return steps["tensor"], steps["state"]

    def postprocess(self, model_output: np.ndarray, state: PreprocessState) -> np.ndarray:
        """Model output [1,1,h,w] or [1,h,w,1] -> alpha float32 H x W in [0, 1] at the original size."""
        return self.postprocess_steps(model_output, state)["alpha"]

    def alpha_to_uint8(self, alpha: np.ndarray) -> np.ndarray:
        """The 8-bit alpha this deployment saves (default: round half up)."""
        return alpha_to_uint8_round_half_up(alpha)

    def resize_rgb(self, image: np.ndarray, dst_hw: HW) -> np.ndarray:
        """How this deployment resizes a background image to the photo's size."""
        return resize_opencv_linear(image, dst_hw)

    def composite(self, rgb: np.ndarray, alpha: np.ndarray, background: Background) -> np.ndarray:
        """:func:`composite` with this profile's background resize."""
        return composite(rgb, alpha, background, self.resize_rgb)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


# --- deploy.yaml transforms -------------------------------------------------------------------

PPMATTINGV2_TRANSFORMS = (
    {"type": "LimitShort", "max_short": 512},
    {"type": "ResizeToIntMult", "mult_int": 32},
    {"type": "Normalize", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
)
HUMANMATTING_TRANSFORMS = (
    {"type": "ResizeByShort", "short_size": 2048},
    {"type": "ResizeToIntMult", "mult_int": 128},
    {"type": "Normalize", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
)
_RESIZES = ("LimitShort", "ResizeByShort", "ResizeToIntMult")


def _positive_int(transform: dict, key: str, default=None, optional=False):
    value = transform.get(key, default)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise EdgematteError(f"deploy.yaml transform {transform.get('type')}: {key} must be a positive integer, "
                             f"got {value!r}")
    return value


def parse_transforms(transforms: Sequence[dict]) -> Tuple[dict, ...]:
    """Validate a deploy.yaml ``Deploy.transforms`` list; returns normalized dicts.

    Supported: LimitShort(max_short, min_short), ResizeByShort(short_size), ResizeToIntMult(mult_int,
    default 32), Normalize(mean, std, default 0.5), LoadImages (reading is done already; only
    ``to_rgb: true`` is accepted). Normalize must come after every resize.
    """
    parsed = []
    normalized = False
    for transform in transforms:
        if not isinstance(transform, dict) or "type" not in transform:
            raise EdgematteError(f"deploy.yaml transform must be a mapping with a 'type', got {transform!r}")
        kind = transform["type"]
        if kind == "LoadImages":
            if transform.get("to_rgb", True) is not True:
                raise EdgematteError("deploy.yaml transform LoadImages with to_rgb: false (BGR input) is not supported")
            continue
        if kind in _RESIZES and normalized:
            raise EdgematteError(f"deploy.yaml transform {kind} after Normalize is not supported")
        if kind == "LimitShort":
            parsed.append({"type": kind, "max_short": _positive_int(transform, "max_short", optional=True),
                           "min_short": _positive_int(transform, "min_short", optional=True)})
        elif kind == "ResizeByShort":
            parsed.append({"type": kind, "short_size": _positive_int(transform, "short_size")})
        elif kind == "ResizeToIntMult":
            parsed.append({"type": kind, "mult_int": _positive_int(transform, "mult_int", 32)})
        elif kind == "Normalize":
            mean = [float(v) for v in transform.get("mean", (0.5, 0.5, 0.5))]
            std = [float(v) for v in transform.get("std", (0.5, 0.5, 0.5))]
            if len(mean) != 3 or len(std) != 3 or not all(s != 0 for s in std):
                raise EdgematteError(f"deploy.yaml transform Normalize: need 3 means and 3 non-zero stds, "
                                     f"got mean={mean} std={std}")
            parsed.append({"type": kind, "mean": mean, "std": std})
            normalized = True
        else:
            raise EdgematteError(f"deploy.yaml transform {kind!r} is not supported (supported: LoadImages, "
                                 f"LimitShort, ResizeByShort, ResizeToIntMult, Normalize)")
    return tuple(parsed)


def _normalize_of(transforms: Sequence[dict]) -> Optional[dict]:
    return next((t for t in transforms if t["type"] == "Normalize"), None)


class _TransformsProfile(Profile):
    """Shared by the two profiles driven by a deploy.yaml transforms list."""

    normalization_rule = "paddleseg"

    def __init__(self, transforms: Sequence[dict] = PPMATTINGV2_TRANSFORMS):
        self.transforms = parse_transforms(transforms)
        norm = _normalize_of(self.transforms)
        # Without Normalize the references feed raw 0..255 values as float32.
        self.table = (normalization_table(self.normalization_rule, norm["mean"], norm["std"]) if norm
                      else np.repeat(np.arange(256, dtype=np.float32)[:, None], 3, axis=1))

    @classmethod
    def from_transforms(cls, transforms: Sequence[dict]):
        """Build from a deploy.yaml ``Deploy.transforms`` list of dicts."""
        return cls(transforms)

    def _describe_normalize(self, expression: str) -> dict:
        norm = _normalize_of(self.transforms)
        if norm is None:
            return {"expression": "float32(v) (no Normalize transform)"}
        return {"mean": norm["mean"], "std": norm["std"], "expression": expression}


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

    def __init__(self, transforms: Sequence[dict] = PPMATTINGV2_TRANSFORMS):
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


class AndroidProfile(Profile):
    """This project's Android app; the Java twin reproduces every step from ``ANDROID_CONSTANTS``."""

    name = "android"

    def __init__(self, constants: AndroidConstants = ANDROID_CONSTANTS):
        self.constants = constants
        self.table = normalization_table("exact", [constants.normalize_offset / 255.0] * 3,
                                         [constants.normalize_divisor / 255.0] * 3)

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
            "normalize": {"mean": [c.normalize_offset / 255.0] * 3, "std": [c.normalize_divisor / 255.0] * 3,
                          "expression": f"(v - {c.normalize_offset}f) / {c.normalize_divisor}f in float32"},
            "padding": {"where": "bottom/right", "value": c.pad_value, "when": "after normalization"},
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


class PaddleSegAndroidProfile(Profile):
    """The legacy PaddleSeg Android matting demo (Paddle Lite 2.8, MODNet at 256x256).

    ``Bitmap.createScaledBitmap(filter=true)`` is Skia's bilinear filter; here it is approximated by
    :func:`resize_uint8_fixed` without box pre-reduction (Skia's rounding differs by a gray level,
    and like Skia it aliases on strong downscales).
    """

    name = "paddleseg-android"

    def __init__(self):
        self.table = normalization_table("paddleseg")

    def describe(self) -> dict:
        return {
            "profile": self.name,
            "reference": "PaddleSeg Matting/deploy/human_matting_android_demo (Predictor, Preprocess, Visualize)",
            "channel_order": "RGB",
            "input_size": "fixed (the model's)",
            "resize": {"geometry": "stretch to (h, w), aspect ratio ignored",
                       "kernel": "createScaledBitmap(filter=true) approximated by edgematte's fixed-point bilinear "
                                 "(half-pixel centres, no box pre-reduction)"},
            "normalize": {"mean": [0.5] * 3, "std": [0.5] * 3,
                          "expression": "(float)((v / 255f - 0.5) / 0.5) (Java; same bits as PaddleSeg's numpy)"},
            "padding": None,
            "layout": "planar NCHW (NHWC when the model wants it)",
            "postprocess": "min-max stretch: (byte)(((v - min) / (max - min + 1e-11f)) * 255) truncated; the gray "
                           "bitmap scaled bilinearly (fixed-point, no box) to the original size; alpha = a8 / 255f",
            "alpha_range": "[0, 1] by construction (stretch, never clamp)",
            "alpha_8bit": "the stretched, scaled 8-bit value itself",
            "composite": "edgematte rounds half up; the demo truncates (int)(F*a/255 + B*(1 - a/255))",
        }

    def preprocess_steps(self, rgb, input_hw=None, layout="nchw"):
        _check_image(rgb)
        _check_layout(layout)
        model_hw = _fixed_size(input_hw, self.name)
        steps = {"resized": resize_uint8_fixed(rgb, model_hw, prefilter=False)}
        steps["normalized"] = normalize(steps["resized"], self.table)
        steps["tensor"] = to_layout(steps["normalized"], layout)
        steps["state"] = PreprocessState(self.name, rgb.shape[:2], model_hw, model_hw, model_hw, layout)
        return steps

    def postprocess_steps(self, model_output, state):
        alpha = alpha_plane(model_output, state.model_hw)
        stretched = stretch_to_uint8(alpha)
        scaled = resize_uint8_fixed(stretched, state.original_hw, prefilter=False)
        # A float32 look-up of v / 255f per gray level: the same correctly rounded quotients.
        unit_levels = (np.arange(256, dtype=np.float32) / np.float32(255)).reshape(256, 1)
        return {"output": alpha, "stretched": stretched, "scaled": scaled, "alpha": cv2.LUT(scaled, unit_levels)}

    def resize_rgb(self, image, dst_hw):
        return resize_uint8_fixed(image, dst_hw, prefilter=False)


PROFILES: Dict[str, Profile] = {
    profile.name: profile
    for profile in (PaddleSegProfile(), FastDeployProfile(), AndroidProfile(), PaddleSegAndroidProfile())
}


def get_profile(name: str, transforms: Optional[Sequence[dict]] = None) -> Profile:
    """The profile called ``name``; ``transforms`` (deploy.yaml list) configures paddleseg/fastdeploy.

    Without ``transforms`` those two use PP-MattingV2's (LimitShort 512, ResizeToIntMult 32,
    Normalize 0.5/0.5).
    """
    if name not in PROFILES:
        raise EdgematteError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    if transforms is None:
        return PROFILES[name]
    profile_class = type(PROFILES[name])
    if not issubclass(profile_class, _TransformsProfile):
        raise EdgematteError(f"profile {name!r} has fixed steps; deploy.yaml transforms apply only to "
                             f"'paddleseg' and 'fastdeploy'")
    return profile_class.from_transforms(transforms)


def profile_for_model(name: str, transforms: Optional[Sequence[dict]] = None) -> Profile:
    """The profile ``name`` for a model whose deploy.yaml lists ``transforms``.

    The transforms configure the profiles that read them (paddleseg, fastdeploy); the others have
    fixed steps and ignore them.
    """
    reads_transforms = name in PROFILES and isinstance(PROFILES[name], _TransformsProfile)
    return get_profile(name, transforms if (transforms and reads_transforms) else None)
