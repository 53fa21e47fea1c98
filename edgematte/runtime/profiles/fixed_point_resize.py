"""The ``android`` profile's exact resizes (Java twin: ``FixedPointResize``).

- :func:`resize_uint8_fixed`: uint8 H x W (x C) -> uint8 h x w (x C), 0..255. Integer bilinear with
  fixed-point positions and weights (``fraction_bits`` of ``ANDROID_CONSTANTS``), after an integer
  ``k x k`` box pre-reduction on downscales by ``box_min_factor`` or more; exact until one final round
  half up.
- :func:`resize_float32_bilinear`: float32 H x W -> float32 h x w with the same positions; each product
  and sum rounded to float32 (Java float arithmetic, no fused multiply-add); a convex blend, so the
  output stays within the input's range.

:func:`box_factor`, :func:`bilinear_taps` and :func:`box_sums` are the integer geometry both use (int64
tap tables; block sums in uint16/int32).
"""

import functools
from typing import Optional

import cv2
import numpy as np

from .constants import ANDROID_CONSTANTS, AndroidConstants
from .sizes import HW


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
    if tuple(image.shape[:2]) == tuple(dst_hw):
        # Same size: every tap is (j, j + 1, frac 0) and the box factor is 1, so each output is
        # (s[j] * one * one + d // 2) // d = s[j] exactly; the copy gives those bits without the passes.
        return image.astype(np.uint8, copy=True)
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
    if tuple(plane.shape) == tuple(dst_hw):
        return _same_size_float32(plane)
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


def _same_size_float32(plane: np.ndarray) -> np.ndarray:
    """:func:`resize_float32_bilinear` of an H x W float32 plane to its own size, bit for bit, in two passes.

    At the same size every tap is ``(j, min(j + 1, n - 1), frac 0)``, so ``w0 = 1`` and ``w1 = 0`` and each
    pass computes ``a0 * 1 + a1 * 0`` in float32: ``a0`` plus a signed zero, or NaN where the neighbour
    ``a1`` is infinite or NaN. Computing that (rather than copying) keeps the bits of the general path,
    including ``-0.0 + 0.0 = 0.0``. A finite plane without sign bits (an alpha in [0, 1]) adds only +0.0 to
    values that are not -0.0, which changes nothing: it is copied.
    """
    if np.isfinite(plane).all() and not np.signbit(plane).any():
        return plane.copy()
    zero = np.float32(0)
    across = plane.copy()
    across[:, :-1] += plane[:, 1:] * zero
    across[:, -1] += plane[:, -1] * zero
    out = across.copy()
    out[:-1] += across[1:] * zero
    out[-1] += across[-1] * zero
    return out
