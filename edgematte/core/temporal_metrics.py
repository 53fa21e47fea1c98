"""Temporal coherence of an alpha sequence against a reference sequence: dtSSD and MESSDdt.

Both come from Erofeev et al., "Perceptually Motivated Benchmark for Video Matting" (BMVC 2015), the temporal
metrics the video matting literature reports (RVM, MODNet-V, MaGGIe). With ``a_t`` the predicted alpha and
``g_t`` the reference alpha of frame ``t`` (float64 H x W in [0, 1], :func:`edgematte.core.metrics.as_alpha`),
``N`` pixels, for each pair of frames ``(t - 1, t)``, t = 1..T-1:

- **dtSSD** ``= sqrt( (1/N) * sum_p ((a_t - a_{t-1}) - (g_t - g_{t-1}))**2 )``: how far the prediction's change
  from frame to frame departs from the reference's. Flicker on a still scene costs its full amplitude; an error
  that stays put costs nothing.
- **MESSDdt** ``= (1/N) * sum_p | e_{t-1}(p) - e_t(p + v(p)) |`` with ``e = (a - g)**2`` and ``v`` the optical
  flow of the reference from ``t - 1`` to ``t``: an error that moves with the subject costs nothing, one that
  appears, vanishes or changes size does. ``v`` is OpenCV's Farneback flow on the 8-bit reference alphas, rounded
  to whole pixels, targets clamped to the frame (the common implementation's choices).

A clip's figure is the mean over its T - 1 pairs; a single frame has none (``None``). Scale: none. RVM's
evaluation code reports dtSSD x 100 and averages over T frames with 0 for the first; others scale MESSDdt by
1e4 and restrict both to a trimap's unknown band. Here every pixel counts, unscaled, so the numbers compare
artefacts of one conversion (INT8 against fp32, per-frame models against a recurrent one) on one clip.
"""

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .metrics import as_alpha

# Farneback parameters: pyramid scale, levels, window, iterations, polynomial neighbourhood and sigma
FLOW_PARAMETERS = (0.5, 5, 15, 3, 7, 1.5)


def _sequences(preds: Sequence, refs: Sequence) -> tuple:
    preds = [as_alpha(p, f"frame {i} prediction") for i, p in enumerate(preds)]
    refs = [as_alpha(r, f"frame {i} reference") for i, r in enumerate(refs)]
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predicted frames for {len(refs)} reference frames")
    shapes = {a.shape for a in preds + refs}
    if len(shapes) > 1:
        raise ValueError(f"every frame must have one size, got {sorted(shapes)}")
    return preds, refs


def dtssd_step(pred_before: np.ndarray, ref_before: np.ndarray, pred: np.ndarray, ref: np.ndarray) -> float:
    """dtSSD of one pair of consecutive frames (float64 H x W alphas, as :func:`as_alpha` gives them)."""
    return float(np.sqrt(np.mean(((pred - pred_before) - (ref - ref_before)) ** 2)))


def reference_flow(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Farneback optical flow of 2-D alphas in [0, 1] from ``previous`` to ``current``: int64 ``[H, W, 2]``
    (dx, dy), rounded to whole pixels."""
    to_8bit = [np.round(np.clip(a, 0, 1) * 255).astype(np.uint8) for a in (previous, current)]
    flow = cv2.calcOpticalFlowFarneback(to_8bit[0], to_8bit[1], None, *FLOW_PARAMETERS,
                                        cv2.OPTFLOW_FARNEBACK_GAUSSIAN)
    return np.rint(flow).astype(np.int64)


def messddt_step(pred_before: np.ndarray, ref_before: np.ndarray, pred: np.ndarray, ref: np.ndarray) -> float:
    """MESSDdt of one pair of consecutive frames (float64 H x W alphas, as :func:`as_alpha` gives them)."""
    flow = reference_flow(ref_before, ref)
    height, width = ref.shape
    rows, cols = np.indices((height, width))
    target_rows = np.clip(rows + flow[..., 1], 0, height - 1)
    target_cols = np.clip(cols + flow[..., 0], 0, width - 1)
    before = (pred_before - ref_before) ** 2
    after = ((pred - ref) ** 2)[target_rows, target_cols]
    return float(np.mean(np.abs(before - after)))


def dtssd_pairs(preds: Sequence, refs: Sequence) -> List[float]:
    """dtSSD of each pair of consecutive frames (T - 1 values for T frames)."""
    preds, refs = _sequences(preds, refs)
    return [dtssd_step(preds[t - 1], refs[t - 1], preds[t], refs[t]) for t in range(1, len(preds))]


def messddt_pairs(preds: Sequence, refs: Sequence) -> List[float]:
    """MESSDdt of each pair of consecutive frames (T - 1 values for T frames)."""
    preds, refs = _sequences(preds, refs)
    return [messddt_step(preds[t - 1], refs[t - 1], preds[t], refs[t]) for t in range(1, len(preds))]


class TemporalAccumulator:
    """dtSSD and MESSDdt of a clip fed one frame at a time (:meth:`add`): only the previous frame is kept, so a
    long video costs one frame of memory."""

    def __init__(self):
        self.dtssd: List[float] = []
        self.messddt: List[float] = []
        self.frames = 0
        self._before: Optional[Tuple[np.ndarray, np.ndarray]] = None

    def add(self, pred, ref) -> None:
        """The next frame's predicted and reference alpha (any shape :func:`as_alpha` takes)."""
        index = self.frames
        pred, ref = as_alpha(pred, f"frame {index} prediction"), as_alpha(ref, f"frame {index} reference")
        shapes = {pred.shape, ref.shape} | ({self._before[1].shape} if self._before is not None else set())
        if len(shapes) > 1:
            raise ValueError(f"frame {index}: every frame must have one size, got {sorted(shapes)}")
        if self._before is not None:
            self.dtssd.append(dtssd_step(*self._before, pred, ref))
            self.messddt.append(messddt_step(*self._before, pred, ref))
        self._before, self.frames = (pred, ref), index + 1

    def result(self) -> Dict[str, Optional[object]]:
        """``{dtssd, messddt, frame_pairs, dtssd_per_pair, messddt_per_pair}``: the means over the pairs (``None``
        for a single frame); no frame at all raises ``ValueError``."""
        if self.frames == 0:
            raise ValueError("temporal_numerics needs at least one frame")
        return {"dtssd": float(np.mean(self.dtssd)) if self.dtssd else None,
                "messddt": float(np.mean(self.messddt)) if self.messddt else None,
                "frame_pairs": len(self.dtssd), "dtssd_per_pair": list(self.dtssd),
                "messddt_per_pair": list(self.messddt)}


def temporal_numerics(frames: Iterable[Tuple[np.ndarray, np.ndarray]]) -> Dict[str, Optional[object]]:
    """:meth:`TemporalAccumulator.result` of a clip given as ``(predicted alpha, reference alpha)`` per frame,
    in order."""
    accumulator = TemporalAccumulator()
    for pred, ref in frames:
        accumulator.add(pred, ref)
    return accumulator.result()
