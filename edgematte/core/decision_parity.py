"""Decision-aware parity: excuse alpha pixels whose hard decision the reference itself made within float noise.

PP-Matting and PP-HumanMatting compute ``index = argmax(scores, axis=1)`` and build the alpha from
``index == k`` masks. Where the reference's top-1 and top-2 scores are closer than the float noise of a
kernel set, another (correct) kernel set may pick the other class and move the alpha by up to 1 there.
Instead of a blunt "some share of pixels may be off" rule, this module measures, per output pixel, how
close the reference came to the other decision, and excuses only the pixels that a near-tie can reach.

The pieces, all on plain numpy arrays (core knows nothing of Paddle; the program analysis lives in
:mod:`edgematte.converter.decision_logits`):

* :func:`top2_margin`: top-1 minus top-2 score per position of the scores tensor (N, C, h, w).
* :func:`decision_margins`: those margins carried onto the alpha's pixels (N, H, W). With a **route** (the
  spatial ops between the decision and the alpha, from ``DecisionPoint.route``) every step maps margins
  by the minimum over the positions it reads (a conv's window, an interpolation's taps, a pad's source),
  so an output pixel gets the smallest margin of every decision it depends on. Without a route the
  decision is assumed to reach the alpha directly or through one interpolation.
* :func:`margin_tolerance`: the excuse threshold derived from measured score noise (rule in its docstring).
* :func:`decision_aware_compare` / :func:`within`: the figures and the verdict.
"""

from dataclasses import asdict, dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .errors import EdgematteError

# The step kinds of a route (see decision_margins); each step is a dict with "op", "output", "hw" and,
# except "source", "inputs".
ROUTE_STEPS = ("source", "pointwise", "pad", "window", "resample", "global")

# margin_tolerance = max(2 * SAFETY * noise, FLOOR). 2: each of the two competing scores may move by the noise.
# SAFETY: the artefact's kernels (XNNPACK, ONNX Runtime, an ARM build) are not the two kernel sets measured;
# allow each up to SAFETY times the measured noise. (Seeded PP-Matting, oneDNN vs plain kernels: flips seen at
# margins up to 0.98x the max score noise, so 2 * noise is just enough for those two; SAFETY 2 doubles it.)
# FLOOR: float32 resolution of scores of order 1 (softmax probabilities, logits of a few units) when the two
# measured kernel sets happen to agree exactly.
SAFETY = 2.0
FLOOR = 1e-6
# The largest share of alpha pixels a verdict may let beyond the bound by excusing them (within()'s
# max_excused_share in the conversion). The
# tolerance is a few times the score noise, so only near-ties are excused, which is little (seeded official
# programs, 4 photos: PP-Matting at 256x256 0.034%, PP-HumanMatting at 128x128 none), though a near-tie at low
# resolution spreads over the footprint of the upsampling and convs after it. A share near the cap means the
# scores are noisy everywhere, and the alpha would no longer be judged at all.
MAX_EXCUSED_SHARE = 0.10


# ------------------------------------------------------------------------------------------ margins
def top2_margin(scores: np.ndarray, axis: int = 1) -> np.ndarray:
    """Top-1 minus top-2 of ``scores`` along ``axis``: float64, >= 0, the class axis removed.

    ``scores`` is (N, C, h, w) (any float dtype); the result is (N, h, w). With one class the decision
    cannot flip: the margin is +inf. NaN scores give a margin of 0 (always excusable, never trusted).
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim < 2:
        raise EdgematteError(f"decision scores of shape {list(s.shape)}: expected (N, C, h, w)")
    s = np.moveaxis(s, axis, -1)
    if s.shape[-1] < 2:
        return np.full(s.shape[:-1], np.inf)
    top = np.partition(s, -2, axis=-1)
    margin = top[..., -1] - top[..., -2]
    return np.where(np.isnan(margin), 0.0, margin)


def _taps(in_size: int, out_size: int, method: str, align_corners: bool, align_mode: int) -> np.ndarray:
    """(out_size, k) source indices an interpolation reads per output index (Paddle's coordinate rules).

    Paddle: align_corners -> src = dst * (in-1)/(out-1); else align_mode 0 (half pixel) -> src = (dst+0.5)
    * in/out - 0.5 clamped at 0; align_mode 1 or nearest -> src = dst * in/out. Bilinear reads floor and
    floor+1; nearest floor (or round) is taken as floor and floor+1 too, so float rounding of the ratio
    in another kernel set cannot reach a position outside the footprint; bicubic reads floor-1..floor+2.
    """
    dst = np.arange(out_size, dtype=np.float64)
    if align_corners:
        src = dst * ((in_size - 1) / (out_size - 1) if out_size > 1 else 0.0)
    elif method != "nearest" and align_mode == 0:
        src = np.maximum((dst + 0.5) * (in_size / out_size) - 0.5, 0.0)
    else:
        src = dst * (in_size / out_size)
    base = np.floor(src).astype(np.int64)
    offsets = np.array([-1, 0, 1, 2] if method == "bicubic" else [0, 1])
    return np.clip(base[:, None] + offsets[None, :], 0, in_size - 1)


def _resample_min(m: np.ndarray, out_hw, method="bilinear", align_corners=False, align_mode=0) -> np.ndarray:
    """(N, H, W): per output pixel, the minimum of ``m`` (N, h, w) over the positions the interpolation reads."""
    rows = _taps(m.shape[1], out_hw[0], method, align_corners, align_mode)
    cols = _taps(m.shape[2], out_hw[1], method, align_corners, align_mode)
    by_rows = m[:, rows, :].min(axis=2)  # (N, H, k, w) -> (N, H, w)
    return by_rows[:, :, cols].min(axis=3)  # (N, H, W, k) -> (N, H, W)


def _window_min(m: np.ndarray, step: dict) -> np.ndarray:
    """A conv/pool window step: minimum over each (dilated, strided) window of ``m`` padded with +inf."""
    t, b, left, r = step["pads"]
    (kh, kw), (sh, sw), (dh, dw) = step["kernel"], step["stride"], step["dilation"]
    padded = np.pad(m, ((0, 0), (t, b), (left, r)), constant_values=np.inf)
    span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if padded.shape[1] < span_h or padded.shape[2] < span_w:
        raise EdgematteError(f"decision route: a {kh}x{kw} window does not fit a {list(m.shape[1:])} map")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (span_h, span_w), axis=(1, 2))
    return windows[:, ::sh, ::sw, ::dh, ::dw].min(axis=(3, 4))


def _pad(m: np.ndarray, step: dict) -> np.ndarray:
    """A pad step: constant padding reads no decision (+inf); reflect/edge/wrap padding copies margins."""
    t, b, left, r = step["pads"]
    widths = ((0, 0), (t, b), (left, r))
    if step.get("mode", "constant") == "constant":
        return np.pad(m, widths, constant_values=np.inf)
    return np.pad(m, widths, mode=step["mode"])


def _broadcast(m: np.ndarray, hw, name: str) -> np.ndarray:
    if m.shape[1:] == tuple(hw):
        return m
    if m.shape[1:] == (1, 1):
        return np.broadcast_to(m, (m.shape[0], *hw))
    raise EdgematteError(f"decision route: map '{name}' of size {list(m.shape[1:])} meets size {list(hw)}")


def _apply_step(maps: Dict[str, np.ndarray], step: dict) -> np.ndarray:
    op, hw = step["op"], tuple(step["hw"])
    inputs = [maps[name] for name in step["inputs"]]
    if op == "pointwise":
        return np.minimum.reduce([_broadcast(m, hw, n) for m, n in zip(inputs, step["inputs"])])
    if len(inputs) != 1:
        raise EdgematteError(f"decision route: step '{op}' reads {len(inputs)} decision maps, expected 1")
    m = inputs[0]
    if op == "pad":
        return _pad(m, step)
    if op == "window":
        return _window_min(m, step)
    if op == "resample":
        return _resample_min(m, hw, step["method"], step["align_corners"], step["align_mode"])
    if op == "global":
        return np.broadcast_to(m.min(axis=(1, 2), keepdims=True), (m.shape[0], *hw))
    raise EdgematteError(f"decision route: unknown step '{op}' (known: {', '.join(ROUTE_STEPS)})")


def route_margins(margins: np.ndarray, route: Sequence[dict]) -> np.ndarray:
    """Carry a margin map (N, h, w) at the decision's resolution along ``route``; returns (N, H, W) float64.

    ``route`` (from ``DecisionPoint.route``) starts with a "source" step naming the decision and ends with
    the step writing the alpha; each step's output is the minimum margin over the decision positions it
    reads, so the result is, per alpha pixel, the smallest margin of any decision that pixel depends on.
    """
    if not route or route[0].get("op") != "source":
        raise EdgematteError("decision route: expected a route starting with its 'source' step")
    source = route[0]
    m = np.asarray(margins, dtype=np.float64)
    if m.ndim != 3 or m.shape[1:] != tuple(source["hw"]):
        raise EdgematteError(f"decision route: margins {list(m.shape)} do not fit the decision's size {source['hw']}")
    maps = {source["output"]: m}
    for step in route[1:]:
        out = _apply_step(maps, step)
        if out.shape[1:] != tuple(step["hw"]):
            raise EdgematteError(f"decision route: step '{step['op']}' gave {list(out.shape[1:])}, "
                                 f"the program declares {step['hw']} for '{step['output']}'")
        maps[step["output"]] = out
    return maps[route[-1]["output"]]


def decision_margins(scores: np.ndarray, alpha_hw: Tuple[int, int], route: Optional[Sequence[dict]] = None,
                     axis: int = 1) -> np.ndarray:
    """Each alpha pixel's decision margin: (N, H, W) float64, >= 0 (+inf where no decision reaches it).

    ``scores`` is what the program's ``arg_max`` reads, (N, C, h, w), from the reference run. With
    ``route`` (``DecisionPoint.route`` of a frozen program) the margins follow the program's own spatial
    ops. Without one: identity when (h, w) == ``alpha_hw``, else the decision is taken to reach the alpha
    through one interpolation and each pixel gets the minimum over its bilinear/nearest footprint (the
    two nearest low-resolution positions per axis), which is conservative for either method.
    """
    margins = top2_margin(scores, axis)
    if margins.ndim == 2:
        margins = margins[None]
    alpha_hw = tuple(int(d) for d in alpha_hw)
    if route is not None:
        out = route_margins(margins, route)
    elif margins.shape[1:] == alpha_hw:
        out = margins
    else:
        out = _resample_min(margins, alpha_hw)
    if out.shape[1:] != alpha_hw:
        raise EdgematteError(f"decision margins of size {list(out.shape[1:])} do not fit the alpha {list(alpha_hw)}")
    return out


def combined_margins(per_point: Sequence[np.ndarray]) -> np.ndarray:
    """Several decision points' margins (each (N, H, W)) as one map: a pixel is as fragile as its weakest."""
    return np.minimum.reduce([np.asarray(m, dtype=np.float64) for m in per_point])


# ------------------------------------------------------------------------------------------ noise, tolerance
def score_noise(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """Max abs difference between two runs' scores on the same inputs (e.g. oneDNN on vs off), float."""
    if len(a) != len(b) or not len(a):
        raise EdgematteError("score_noise: expected the same non-zero number of score tensors from each run")
    worst = 0.0
    for x, y in zip(a, b):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.shape != y.shape:
            raise EdgematteError(f"score_noise: score shapes {list(x.shape)} and {list(y.shape)} differ")
        worst = max(worst, float(np.abs(x - y).max()))
    return worst


def margin_tolerance(noise: float, safety: float = SAFETY, floor: float = FLOOR) -> float:
    """The margin at or below which a decision may flip in a correct artefact: ``max(2*safety*noise, floor)``.

    A flip needs the two competing scores to swap order: with each moved by at most ``e``, the margin
    must be <= 2e. ``e`` is the measured ``noise`` (max abs score difference between two kernel sets of
    the reference) times ``safety`` (another runtime may be noisier than the two measured); ``floor`` keeps
    float32 ties excusable when the two measured kernel sets agree exactly.
    """
    if not np.isfinite(noise) or noise < 0:
        raise EdgematteError(f"margin_tolerance: score noise {noise!r} is not a finite non-negative number")
    return max(2.0 * safety * float(noise), floor)


# ------------------------------------------------------------------------------------------ comparison
@dataclass
class DecisionParity:
    """Alpha differences with near-tie pixels excused (every figure over all images' pixels).

    ``max_abs_kept`` is over the pixels held to ``bound`` (margin > ``margin_tolerance``), ``max_abs`` /
    ``mean_abs`` over all; ``excused_pixels`` / ``excused_share`` count the pixels whose margin is within
    the tolerance; ``over_bound`` counts pixels beyond ``bound``, ``over_bound_excused`` those of them
    excused. ``min_margin`` is the smallest margin of any pixel (how close the reference came to a flip).
    """

    max_abs_kept: float
    max_abs: float
    mean_abs: float
    excused_pixels: int
    excused_share: float
    over_bound: int
    over_bound_excused: int
    pixels: int
    bound: float
    noise: float
    margin_tolerance: float
    min_margin: float
    compared_to: str = "reference"
    images: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["min_margin"] = None if not np.isfinite(self.min_margin) else self.min_margin  # +inf is not JSON
        return d


def _nchw_alpha(output) -> np.ndarray:
    """An alpha output as float64 [N,1,H,W], from [N,1,H,W] or NHWC [N,H,W,1]."""
    a = np.asarray(output, dtype=np.float64)
    if a.ndim == 4 and a.shape[1] != 1 and a.shape[-1] == 1:
        a = a.transpose(0, 3, 1, 2)
    if a.ndim != 4 or a.shape[1] != 1:
        raise EdgematteError(f"alpha of shape {list(a.shape)}: expected [N,1,H,W] or [N,H,W,1]")
    return a


def decision_aware_compare(outputs: Sequence[np.ndarray], references: Sequence[np.ndarray],
                           margins: Sequence[np.ndarray], noise: float, bound: float, safety: float = SAFETY,
                           compared_to: str = "reference") -> DecisionParity:
    """Compare alphas pairwise, excusing pixels whose decision margin is <= :func:`margin_tolerance` of ``noise``.

    ``outputs`` / ``references``: one alpha per image ([N,1,H,W] or [N,H,W,1], values in [0, 1]);
    ``margins``: one (N, H, W) map per image from :func:`decision_margins` on the reference's scores;
    ``noise``: :func:`score_noise` of the reference's scores under two kernel sets; ``bound``: the max abs
    difference allowed on the pixels not excused.
    """
    if len(margins) != len(references):
        raise EdgematteError("decision_aware_compare: expected one output, reference and margin map per image")
    tolerance = margin_tolerance(noise, safety)
    maps = [np.asarray(m, dtype=np.float64) for m in margins]
    maps = [m[None] if m.ndim == 2 else m for m in maps]
    lowest = min((float(m.min()) for m in maps), default=np.inf)
    return compare_excused(outputs, references, [m <= tolerance for m in maps], noise, tolerance, bound,
                           min_margin=lowest, compared_to=compared_to)


def compare_excused(outputs: Sequence[np.ndarray], references: Sequence[np.ndarray], excused: Sequence[np.ndarray],
                    noise: float, tolerance: float, bound: float, min_margin: float = np.inf,
                    compared_to: str = "reference") -> DecisionParity:
    """:func:`decision_aware_compare` once the excused pixels are known: ``excused`` is one boolean (N, H, W) map
    per image (e.g. margins carried through a deployment's post-processing to the photo's size); ``tolerance``
    is the margin they were excused at, ``min_margin`` the smallest margin seen (both only reported)."""
    if not (len(outputs) == len(references) == len(excused)) or not outputs:
        raise EdgematteError("decision_aware_compare: expected one output, reference and margin map per image")
    diffs, masks = [], []
    for out, ref, mask in zip(outputs, references, excused):
        o, r = _nchw_alpha(out), _nchw_alpha(ref)
        e = np.asarray(mask, dtype=bool)
        e = e[None] if e.ndim == 2 else e
        if o.shape != r.shape or e.shape != (r.shape[0], *r.shape[2:]):
            raise EdgematteError(f"decision_aware_compare: output {list(o.shape)}, reference {list(r.shape)} and "
                                 f"margins {list(e.shape)} do not match")
        diffs.append(np.abs(o - r)[:, 0].ravel())
        masks.append(e.ravel())
    d, e = np.concatenate(diffs), np.concatenate(masks)
    kept = d[~e]
    return DecisionParity(
        max_abs_kept=float(kept.max()) if kept.size else 0.0,
        max_abs=float(d.max()),
        mean_abs=float(d.mean()),
        excused_pixels=int(e.sum()),
        excused_share=float(e.mean()),
        over_bound=int((d > bound).sum()),
        over_bound_excused=int(((d > bound) & e).sum()),
        pixels=int(d.size),
        bound=float(bound),
        noise=float(noise),
        margin_tolerance=float(tolerance),
        min_margin=float(min_margin),
        compared_to=compared_to,
        images=len(outputs),
    )


def within(parity: DecisionParity, bound: Optional[float] = None, max_excused_share: Optional[float] = None) -> bool:
    """The verdict: every pixel not excused within ``bound`` (default: the bound compared with), and, if
    ``max_excused_share`` is given, no more than that share of pixels beyond the bound thanks to an excuse (a
    guard against a tolerance so loose that it excuses the whole image). Near-ties the artefact decides as the
    reference does cost nothing: a model whose scores tie on a quarter of the image still passes when its
    artefact agrees there."""
    limit = parity.bound if bound is None else bound
    if not np.isfinite(parity.max_abs_kept) or parity.max_abs_kept > limit:
        return False
    return max_excused_share is None or parity.over_bound_excused <= max_excused_share * parity.pixels
