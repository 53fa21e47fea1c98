"""How far one alpha matte is from another: difference statistics and the four matting metrics.

This is the one implementation of SAD, MSE, Grad and Conn in edgematte. The definitions follow the
Deep Image Matting evaluation code (Xu et al. 2017, ``DIM_evaluation_code``; the metrics of Rhemann
et al.'s alphamatting.com benchmark) as PaddleSeg's ``ppmatting/metrics/metric.py`` also follows them.
With ``pred`` and ``ref`` alphas in [0, 1] (float64 H x W) and the evaluation region R (the unknown
band ``trimap == 128`` when a trimap is given, else every pixel):

- **SAD** = sum over R of ``|pred - ref|``, divided by 1000.
- **MSE** = mean over R of ``(pred - ref)**2`` (no /1000; 0 when R is empty).
- **Grad** = sum over R of ``(|G(pred')| - |G(ref')|)**2``, divided by 1000, where ``a'`` is ``a``
  min-max normalised to [0, 1] (MATLAB's ``mat2gray``; a constant matte becomes all zeros) and ``G``
  the gradient by first-derivative-of-Gaussian filters with sigma 1.4: ``hx[i, j] = g(i) * g'(j)``
  for ``i, j`` in ``-h..h``, ``h = ceil(sigma * sqrt(-2 ln(sqrt(2 pi) sigma 0.01)))`` (4 for 1.4,
  a 9 x 9 kernel), scaled to unit L2 norm, ``hy = hx.T``; image borders replicated.
- **Conn** = sum over R of ``|phi(pred) - phi(ref)|``, divided by 1000. For thresholds
  ``t_k = k / 10`` (k = 1..10), ``L_k`` is the largest 4-connected component of
  ``(pred >= t_k) & (ref >= t_k)``; each pixel's level ``l`` is ``t_(k-1)`` for the first ``k`` whose
  ``L_k`` does not contain it (1 if every ``L_k`` does). ``phi(a) = 1 - d * [d >= 0.15]`` with
  ``d = a - l``.

With a trimap, ``pred`` is first set to 0 where ``trimap == 0`` and to 1 where ``trimap == 255``
(as both reference implementations do). Departures from PaddleSeg's code, all below its float32
noise: everything runs in float64, and the Conn thresholds are ``k / 10`` rather than
``numpy.arange(0, 1.1, 0.1)`` (whose 0.30000000000000004 would treat an alpha of exactly 0.3 as
below 0.3).

:func:`alpha_difference_stats` gives the deployment-facing numbers (MAD, max, share of pixels off
by more than 8/255) and :func:`matting_numerics` all of them over an evaluation set.
"""

from typing import Dict, Iterable, Optional, Sequence, Tuple

import cv2
import numpy as np

GRAD_SIGMA = 1.4
CONN_STEP = 0.1
CONN_MIN_DIFFERENCE = 0.15
CONN_CONNECTIVITY = 4
OFF_BY_THRESHOLD = 8.0 / 255.0
# Two 8-bit alphas exactly 8 levels apart differ by 8/255 give or take a rounding step of float64;
# they must not count as "more than 8/255" by that accident.
_OFF_BY_TIE_TOLERANCE = 1e-9
METRIC_SCALE = 1000.0
# How far outside [0, 1] an input may stray (rounding of a dequantized int8 output) before it is
# taken for a mistake, e.g. an 8-bit alpha in 0..255 passed where a float alpha belongs.
RANGE_TOLERANCE = 0.01

TRIMAP_BACKGROUND, TRIMAP_UNKNOWN, TRIMAP_FOREGROUND = 0, 128, 255


def as_alpha(alpha, name: str = "alpha") -> np.ndarray:
    """A float alpha (H x W, 1 x H x W or 1 x 1 x H x W, values in [0, 1]) as float64 H x W.

    Values within :data:`RANGE_TOLERANCE` outside [0, 1] are clipped; anything else (NaN, an 8-bit
    0..255 alpha, a multi-channel array) raises ``ValueError``. Use :func:`alpha_from_uint8` for
    8-bit alphas.
    """
    array = np.asarray(alpha)
    if array.dtype.kind != "f":
        raise ValueError(f"{name}: expected a float alpha in [0, 1], got {array.dtype} "
                         "(8-bit alphas go through alpha_from_uint8)")
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"{name}: expected one H x W alpha (leading axes of size 1 allowed), got shape "
                         f"{np.shape(alpha)}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: alpha has NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise ValueError(f"{name}: alpha values span [{low:.4g}, {high:.4g}], outside [0, 1] "
                         "(8-bit alphas go through alpha_from_uint8)")
    return np.clip(array, 0.0, 1.0)


def alpha_from_uint8(alpha) -> np.ndarray:
    """An 8-bit alpha (uint8 0..255, any of the shapes :func:`as_alpha` takes) as float64 H x W ``/ 255``."""
    array = np.asarray(alpha)
    if array.dtype != np.uint8:
        raise ValueError(f"alpha_from_uint8: expected uint8, got {array.dtype}")
    return as_alpha(array.astype(np.float64) / 255.0)


def _pair(pred, ref, trimap=None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pred, ref, region): alphas as float64 H x W, region bool H x W; pred fixed in known trimap areas."""
    pred, ref = as_alpha(pred, "pred"), as_alpha(ref, "ref")
    if pred.shape != ref.shape:
        raise ValueError(f"pred {pred.shape} and ref {ref.shape} differ in size")
    if trimap is None:
        return pred, ref, np.ones(pred.shape, dtype=bool)
    trimap = np.asarray(trimap)
    while trimap.ndim > 2 and trimap.shape[0] == 1:
        trimap = trimap[0]
    if trimap.shape != pred.shape:
        raise ValueError(f"trimap {trimap.shape} and alphas {pred.shape} differ in size")
    pred = pred.copy()
    pred[trimap == TRIMAP_BACKGROUND] = 0.0
    pred[trimap == TRIMAP_FOREGROUND] = 1.0
    return pred, ref, trimap == TRIMAP_UNKNOWN


def sad(pred, ref, trimap=None) -> float:
    """Sum of absolute differences over the evaluation region, / 1000 (see the module doc)."""
    pred, ref, region = _pair(pred, ref, trimap)
    return float(np.abs(pred - ref)[region].sum() / METRIC_SCALE)


def mse(pred, ref, trimap=None) -> float:
    """Mean squared difference over the evaluation region (0 for an empty region)."""
    pred, ref, region = _pair(pred, ref, trimap)
    count = int(region.sum())
    return float(((pred - ref) ** 2)[region].sum() / count) if count else 0.0


def gaussian_derivative_kernels(sigma: float = GRAD_SIGMA, epsilon: float = 1e-2) -> Tuple[np.ndarray, np.ndarray]:
    """(hx, hy): the unit-L2-norm (2h+1) x (2h+1) derivative-of-Gaussian kernels of the Grad metric.

    ``hx[i, j] = g(i - h) * g'(j - h)`` differentiates along x (columns); ``hy = hx.T``.
    """
    half = int(np.ceil(sigma * np.sqrt(-2.0 * np.log(np.sqrt(2.0 * np.pi) * sigma * epsilon))))
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-offsets ** 2 / (2.0 * sigma ** 2)) / (sigma * np.sqrt(2.0 * np.pi))
    dgauss = -offsets * gauss / sigma ** 2
    hx = np.outer(gauss, dgauss)
    hx /= np.sqrt((hx ** 2).sum())
    return hx, np.ascontiguousarray(hx.T)


def _minmax_normalized(alpha: np.ndarray) -> np.ndarray:
    low, high = alpha.min(), alpha.max()
    return (alpha - low) / (high - low) if high > low else np.zeros_like(alpha)


def gradient_magnitude(alpha: np.ndarray, sigma: float = GRAD_SIGMA) -> np.ndarray:
    """``|G(alpha)|`` float64 H x W: derivative-of-Gaussian gradient magnitude, borders replicated."""
    hx, hy = gaussian_derivative_kernels(sigma)
    gx = cv2.filter2D(alpha, cv2.CV_64F, hx, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.filter2D(alpha, cv2.CV_64F, hy, borderType=cv2.BORDER_REPLICATE)
    return np.sqrt(gx ** 2 + gy ** 2)


def grad(pred, ref, trimap=None, sigma: float = GRAD_SIGMA) -> float:
    """Gradient error: squared difference of gradient magnitudes of the min-max normalised alphas, / 1000."""
    pred, ref, region = _pair(pred, ref, trimap)
    difference = gradient_magnitude(_minmax_normalized(pred), sigma) \
        - gradient_magnitude(_minmax_normalized(ref), sigma)
    return float((difference ** 2)[region].sum() / METRIC_SCALE)


def _largest_component(mask: np.ndarray, connectivity: int) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=connectivity)
    if count <= 1:  # label 0 is the background; nothing above the threshold
        return np.zeros(mask.shape, dtype=bool)
    # ties go to the lowest label, the first component in raster order
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == largest


def conn(pred, ref, trimap=None, step: float = CONN_STEP, connectivity: int = CONN_CONNECTIVITY) -> float:
    """Connectivity error (see the module doc for the definition), / 1000."""
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    pred, ref, region = _pair(pred, ref, trimap)
    levels = int(round(1.0 / step))
    if levels < 1 or abs(levels * step - 1.0) > 1e-9:
        raise ValueError(f"step must divide 1 into whole levels, got {step}")
    level = np.full(pred.shape, -1.0)
    for k in range(1, levels + 1):
        connected = _largest_component((pred >= k / levels) & (ref >= k / levels), connectivity)
        level[(level < 0) & ~connected] = (k - 1) / levels
    level[level < 0] = 1.0

    def phi(alpha):
        d = alpha - level
        return 1.0 - d * (d >= CONN_MIN_DIFFERENCE)

    return float(np.abs(phi(pred) - phi(ref))[region].sum() / METRIC_SCALE)


def alpha_difference_stats(pred, ref) -> Dict[str, float]:
    """``{mad, max_abs, frac_over_8_255}`` of ``|pred - ref|`` over every pixel.

    ``mad`` is the mean absolute difference, ``max_abs`` the largest, ``frac_over_8_255`` the share of
    pixels (0..1) whose difference exceeds 8/255 (two 8-bit alphas more than 8 levels apart).
    """
    pred, ref, _ = _pair(pred, ref)
    difference = np.abs(pred - ref)
    return {
        "mad": float(difference.mean()),
        "max_abs": float(difference.max()),
        "frac_over_8_255": float((difference > OFF_BY_THRESHOLD + _OFF_BY_TIE_TOLERANCE).mean()),
    }


def matting_numerics(pairs: Iterable[Tuple[np.ndarray, np.ndarray]],
                     trimaps: Optional[Sequence[Optional[np.ndarray]]] = None) -> Dict[str, float]:
    """Every number for an evaluation set of ``(pred, ref)`` alpha pairs (e.g. INT8 output, fp32 output).

    Returns ``{mad, max_abs, frac_over_8_255, sad, mse, grad, conn, eval_images}``. ``mad`` and
    ``frac_over_8_255`` pool every pixel of every pair (total / total pixels), ``max_abs`` is the
    largest over all pairs; ``sad``, ``mse``, ``grad`` and ``conn`` are the mean over pairs of each
    pair's value (the usual way matting benchmarks report them). ``trimaps`` (one per pair, or None)
    restricts the four matting metrics to the unknown band; the difference statistics always cover
    every pixel. An empty ``pairs`` raises ``ValueError``.
    """
    total_abs = total_over = total_pixels = 0.0
    max_abs = 0.0
    per_image = {"sad": [], "mse": [], "grad": [], "conn": []}
    count = 0
    for index, (pred, ref) in enumerate(pairs):  # one pair at a time: a long video is never held whole
        if trimaps is not None and index >= len(trimaps):
            raise ValueError(f"more pairs than the {len(trimaps)} trimaps")
        count += 1
        trimap = trimaps[index] if trimaps is not None else None
        stats = alpha_difference_stats(pred, ref)
        pixels = np.size(ref)
        total_abs += stats["mad"] * pixels
        total_over += stats["frac_over_8_255"] * pixels
        total_pixels += pixels
        max_abs = max(max_abs, stats["max_abs"])
        for name, metric in (("sad", sad), ("mse", mse), ("grad", grad), ("conn", conn)):
            per_image[name].append(metric(pred, ref, trimap))
    if count == 0:
        raise ValueError("matting_numerics needs at least one (pred, ref) pair")
    if trimaps is not None and len(trimaps) != count:
        raise ValueError(f"{len(trimaps)} trimaps for {count} pairs")
    return {
        "mad": total_abs / total_pixels,
        "max_abs": max_abs,
        "frac_over_8_255": total_over / total_pixels,
        **{name: float(np.mean(values)) for name, values in per_image.items()},
        "eval_images": count,
    }
