"""dtSSD and MESSDdt on clips whose answers are known by construction."""

import numpy as np
import pytest

from edgematte.core.temporal_metrics import dtssd_pairs, messddt_pairs, reference_flow, temporal_numerics

H, W = 64, 96


def disc(cx: float, cy: float = 32.0, radius: float = 14.0) -> np.ndarray:
    """A soft disc (alpha in [0, 1], a 4-pixel ramp at its edge) centred at (cx, cy)."""
    rows, cols = np.indices((H, W))
    distance = np.hypot(cols - cx, rows - cy)
    return np.clip((radius - distance) / 4.0 + 0.5, 0.0, 1.0)


def still_clip(frames: int = 4) -> list:
    return [disc(40.0) for _ in range(frames)]


def test_a_prediction_equal_to_the_reference_scores_zero():
    clip = [disc(30.0 + 3 * t) for t in range(4)]
    figures = temporal_numerics(zip(clip, [a.copy() for a in clip]))
    assert figures["dtssd"] == 0.0 and figures["messddt"] == 0.0 and figures["frame_pairs"] == 3


def test_a_steady_error_on_a_still_scene_costs_nothing():
    refs = still_clip()
    preds = [np.clip(r + 0.1 * disc(60.0, radius=6.0), 0, 1) for r in refs]  # the same wrong patch every frame
    assert dtssd_pairs(preds, refs) == [0.0, 0.0, 0.0]
    assert messddt_pairs(preds, refs) == [0.0, 0.0, 0.0]


def test_flicker_costs_its_amplitude():
    refs = [np.full((H, W), 0.5) for _ in range(5)]
    delta = 0.08
    preds = [r + (delta if t % 2 else 0.0) for t, r in enumerate(refs)]  # every other frame lifted by delta
    assert dtssd_pairs(preds, refs) == pytest.approx([delta] * 4, abs=1e-12)
    # squared error delta**2 then 0, alternately: each pair's change is delta**2 everywhere
    assert messddt_pairs(preds, refs) == pytest.approx([delta ** 2] * 4, abs=1e-12)
    assert temporal_numerics(zip(preds, refs))["dtssd"] == pytest.approx(delta, abs=1e-12)


def test_messddt_follows_the_motion_and_dtssd_does_not():
    """The subject moves 3 px a frame. An error attached to it (a dimmer rim moving along) is coherent: MESSDdt
    stays small, while dtSSD sees the error change place. An error fixed in the frame while the subject moves
    is what MESSDdt is for."""
    refs = [disc(30.0 + 3 * t) for t in range(5)]
    rim = [0.15 * (r * (1 - r)) * 4 for r in refs]  # largest on the edge: moves with the disc
    moving = [np.clip(r - e, 0, 1) for r, e in zip(refs, rim)]
    fixed_patch = 0.15 * disc(38.0, radius=8.0)
    fixed = [np.clip(r - fixed_patch * (t % 2), 0, 1) for t, r in enumerate(refs)]
    flow = reference_flow(refs[0], refs[1])
    edge = (refs[0] > 0.05) & (refs[0] < 0.95)
    assert np.median(flow[..., 0][edge]) == 3 and np.median(flow[..., 1][edge]) == 0
    moving_figures, fixed_figures = temporal_numerics(zip(moving, refs)), temporal_numerics(zip(fixed, refs))
    # measured: the moving error's MESSDdt is 0 (the flow is exact here), the flickering patch's 6.1e-4
    assert moving_figures["dtssd"] > 1e-2  # the error moved: dtSSD counts it (0.029)
    assert moving_figures["messddt"] < 0.2 * fixed_figures["messddt"] and fixed_figures["messddt"] > 1e-4


def test_one_frame_has_no_pairs_and_bad_input_is_refused():
    single = temporal_numerics([(disc(40.0), disc(40.0))])
    assert single["dtssd"] is None and single["messddt"] is None and single["frame_pairs"] == 0
    with pytest.raises(ValueError, match="^2 predicted frames for 3 reference frames$"):
        dtssd_pairs(still_clip(2), still_clip(3))
    with pytest.raises(ValueError, match=r"^every frame must have one size"):
        messddt_pairs([disc(40.0), np.zeros((H, W + 1))], still_clip(2))
    with pytest.raises(ValueError, match="^frame 1 prediction: expected a float alpha"):
        dtssd_pairs([disc(40.0), np.zeros((H, W), np.uint8)], still_clip(2))
    with pytest.raises(ValueError, match=r"^frame 1: every frame must have one size"):
        temporal_numerics([(disc(40.0), disc(40.0)), (np.zeros((H, W + 1)), np.zeros((H, W + 1)))])
    with pytest.raises(ValueError, match="^temporal_numerics needs at least one frame$"):
        temporal_numerics([])
