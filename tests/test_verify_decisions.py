"""verify's decision-aware rule (edgematte.runtime.verify_decisions), numpy only: near-ties at the model's size
are carried to the photo through each profile's own post-processing, and a flip no near-tie reaches fails."""

import numpy as np
import pytest

from edgematte.core.errors import EdgematteError
from edgematte.core.manifest import Manifest, ModelInfo, ReferenceInfo
from edgematte.runtime.profiles import get_profile
from edgematte.runtime.verify_decisions import RecordedDecisions, excused_on_photo

H = W = 32          # model input / alpha size
PHOTO = (48, 40)    # the photo (h, w): upscaled, non-square
TIE = (10, 12)      # the one near-tie pixel of the model-size alpha


def _rule(points=None, share=0.1) -> RecordedDecisions:
    route = [{"op": "source", "output": "idx", "hw": [H, W]}]
    record = {"wired": True, "score_noise": 1e-6, "margin_tolerance": 4e-6, "max_excused_share": share,
              "points": points if points is not None else [{"logits": "scores", "axis": 1, "steps": route}]}
    manifest = Manifest.new(ModelInfo(name="m", input_shape=[1, 3, H, W]), ReferenceInfo(backend="test"))
    manifest.reference.extra["decisions"] = record
    return RecordedDecisions.of(manifest)


def _scores() -> np.ndarray:
    """Two classes with margin 0.4 everywhere except a near-tie (1e-6) at TIE."""
    s = np.zeros((1, 2, H, W), np.float32)
    s[0, 1] = 0.4
    s[0, :, TIE[0], TIE[1]] = [0.5, 0.5 + 1e-6]
    return s


@pytest.mark.parametrize("profile_name", ["android", "paddleseg-android"])
def test_near_ties_reach_exactly_the_photo_pixels_that_read_them(profile_name):
    profile = get_profile(profile_name)
    rgb = np.random.default_rng(0).integers(0, 256, (*PHOTO, 3), dtype=np.uint8)
    _tensor, state = profile.preprocess(rgb, (H, W))
    near = _rule().near_ties({"scores": _scores()}, (H, W))
    assert near.shape == (H, W) and np.argwhere(near).tolist() == [list(TIE)]
    excused = excused_on_photo(profile, near, state)
    assert excused.shape == PHOTO
    # the photo pixels an alpha flip at TIE moves are exactly the excused ones
    alpha = np.zeros((1, 1, H, W), np.float32)
    flipped = alpha.copy()
    flipped[0, 0, TIE[0], TIE[1]] = 1.0
    moved = profile.postprocess(flipped, state) != profile.postprocess(alpha, state)
    assert moved.any() and np.array_equal(moved, excused & moved)
    assert excused.sum() <= 4 * moved.sum()  # no more than the resize's footprint
    assert not excused_on_photo(profile, np.zeros((H, W), bool), state).any()
    assert excused_on_photo(profile, np.ones((H, W), bool), state).all()


def test_a_flip_at_a_near_tie_passes_and_one_elsewhere_fails():
    rule = _rule()
    reference = np.random.default_rng(1).uniform(0, 1, PHOTO).astype(np.float32)
    excused = np.zeros(PHOTO, bool)
    excused[20:22, 30:32] = True
    at_tie, elsewhere = reference.copy(), reference.copy()
    at_tie[20, 30] = 1.0 if at_tie[20, 30] < 0.5 else 0.0  # a flipped decision: moved by 0.5 or more
    elsewhere[5, 5] += 0.3
    ok = rule.compare([at_tie + 1e-6], [reference], [excused], 1e-4, "ref")
    assert rule.within(ok, 1e-4) and ok.excused_pixels == 4 and ok.over_bound_excused == 1
    bad = rule.compare([elsewhere], [reference], [excused], 1e-4, "ref")
    assert not rule.within(bad, 1e-4) and bad.max_abs_kept == pytest.approx(0.3, abs=1e-6)
    # the cap: an excuse may not let more than the recorded share beyond the bound
    capped = _rule(share=0.0)
    assert not capped.within(capped.compare([at_tie], [reference], [excused], 1e-4, "ref"), 1e-4)


def test_malformed_records_are_one_line():
    with pytest.raises(EdgematteError, match="reference.decisions: malformed"):
        _rule(points=[{"logits": "scores", "axis": "1", "steps": []}])
    with pytest.raises(EdgematteError, match="reference.decisions: malformed"):
        _rule(points=[{"logits": "scores", "axis": 1, "steps": [{"op": "exec", "output": "x"}]}])
    with pytest.raises(EdgematteError, match="malformed"):
        _rule(points=[])
    route = [{"op": "source", "output": "idx", "hw": [H, W]}, {"op": "window", "inputs": ["idx"], "output": "o"}]
    rule = _rule(points=[{"logits": "scores", "axis": 1, "steps": route}])
    with pytest.raises(EdgematteError, match="route the scores cannot follow"):
        rule.near_ties({"scores": _scores()}, (H, W))
    with pytest.raises(EdgematteError, match="fetches no scores"):
        _rule().near_ties({}, (H, W))
    unwired = Manifest.new(ModelInfo(name="m", input_shape=[1, 3, H, W]), ReferenceInfo(backend="test"))
    unwired.reference.extra["decisions"] = {"wired": False, "why": "unroutable"}
    assert RecordedDecisions.of(unwired) is None
