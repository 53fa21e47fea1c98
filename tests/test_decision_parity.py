"""Decision-aware parity: edgematte.converter.decision_logits (find the argmax, fetch its scores) and
edgematte.core.decision_parity (carry margins to alpha pixels, excuse near-ties only).

The synthetic nets copy PP-Matting's fusion, ``alpha = detail * (argmax == 1) + (argmax == 0)``, once at full
resolution (PP-Matting) and once at half resolution followed by a bilinear upsample of the masks (the
shape of PP-HumanMatting's route, shortened). The class scores are the input itself (or its 2x2 average),
so a test plants a near-tie or a clear decision at a known pixel and flips it by editing the input: the
flip is made by the model, not drawn into the alpha by hand.
"""

from pathlib import Path

import numpy as np
import pytest

paddle = pytest.importorskip("paddle", reason="the decision parity tests need paddlepaddle (edgematte[convert])")

from edgematte.converter.decision_logits import decision_points, with_logits  # noqa: E402
from edgematte.converter.freeze import freeze_input_shape  # noqa: E402
from edgematte.converter.program import locate_model_files, parse_program  # noqa: E402
from edgematte.core import decision_parity as dp  # noqa: E402
from edgematte.core.errors import EdgematteError  # noqa: E402

SIZE = 8
TIE = 1.1920929e-07  # 4 float32 steps at 0.25: an exact, representable near-tie margin


class DecisionNet(paddle.nn.Layer):
    """img [1,3,8,8] float32 -> alpha [1,1,8,8]; the class scores are img (or its 2x2 average if ``lowres``)."""

    def __init__(self, lowres: bool):
        super().__init__()
        self.lowres = lowres
        self.detail = paddle.nn.Conv2D(3, 1, 3, padding=1)

    def forward(self, img):
        scores = paddle.nn.functional.avg_pool2d(img, 2) if self.lowres else paddle.scale(img, 1.0)
        index = paddle.argmax(scores, axis=1, keepdim=True)
        fg = (index == 1).astype("float32")
        bg = (index == 0).astype("float32")
        if self.lowres:
            fg = paddle.nn.functional.interpolate(fg, scale_factor=2, mode="bilinear", align_corners=False)
            bg = paddle.nn.functional.interpolate(bg, scale_factor=2, mode="bilinear", align_corners=False)
        detail = paddle.nn.functional.sigmoid(self.detail(img))
        return detail * fg + bg


def _export(tmp_path: Path, lowres: bool) -> Path:
    paddle.seed(0)
    net = DecisionNet(lowres)
    net.eval()
    paddle.jit.save(net, str(tmp_path / "src" / "model"),
                    input_spec=[paddle.static.InputSpec([1, 3, SIZE, SIZE], "float32", name="img")])
    return freeze_input_shape(tmp_path / "src", tmp_path / "frozen", [1, 3, SIZE, SIZE]).files.model.parent


def _run(files, x: np.ndarray) -> dict:
    """All fetches of one Paddle Inference run (plain CPU kernels), by name, in fetch order."""
    from paddle import inference

    config = inference.Config(str(files.model), str(files.params))
    config.disable_gpu()
    config.disable_glog_info()
    config.disable_mkldnn()
    predictor = inference.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(np.ascontiguousarray(x, np.float32))
    predictor.run()
    return {n: predictor.get_output_handle(n).copy_to_cpu().copy() for n in predictor.get_output_names()}


def _scores(block: int, tie_at, clear_at) -> np.ndarray:
    """Input [1,3,8,8]: clear decisions (margin >= 0.2) in ``block``-sized cells, a near-tie at ``tie_at``.

    ``tie_at`` / ``clear_at`` are (row, col) of a cell: the tie has class 1 ahead of class 0 by ``TIE``; the
    clear cell has class 1 ahead by 0.5. Constant cells keep the 2x2 average exact.
    """
    rng = np.random.default_rng(0)
    cells = SIZE // block
    low = np.zeros((3, cells, cells), np.float32)
    for r in range(cells):
        for c in range(cells):
            low[:, r, c] = rng.permutation([0.0, 0.25, 0.5])
    low[:, tie_at[0], tie_at[1]] = [0.25, 0.25 + TIE, 0.0]
    low[:, clear_at[0], clear_at[1]] = [0.0, 0.5, 0.25]
    return np.repeat(np.repeat(low, block, axis=1), block, axis=2)[None].astype(np.float32)


def _flip(x: np.ndarray, cell, block: int) -> np.ndarray:
    """``x`` with classes 0 and 1 swapped in one cell: the decision there flips."""
    y = x.copy()
    rows, cols = slice(cell[0] * block, (cell[0] + 1) * block), slice(cell[1] * block, (cell[1] + 1) * block)
    y[0, 0, rows, cols], y[0, 1, rows, cols] = x[0, 1, rows, cols], x[0, 0, rows, cols]
    return y


@pytest.mark.parametrize("lowres", [False, True], ids=["full_resolution", "half_resolution_upsampled"])
def test_a_near_tie_flip_is_excused_and_a_clear_flip_is_not(tmp_path, lowres):
    folder = _export(tmp_path, lowres)
    files, names = with_logits(locate_model_files(folder), tmp_path / "with_logits")
    (point,) = decision_points(parse_program(files.model.read_bytes()))
    assert point.route is not None and names == (point.logits,)
    block = 2 if lowres else 1
    tie, clear = (1, 2), (3, 0)
    x = _scores(block, tie, clear)
    ref = _run(files, x)
    alpha_name, logits_name = list(ref)
    margins = dp.decision_margins(ref[logits_name], (SIZE, SIZE), point.route)
    # the tie's margin reaches exactly the alpha pixels the interpolation reads it into
    assert margins[0, tie[0] * block, tie[1] * block] == pytest.approx(TIE, rel=1e-3)
    assert np.count_nonzero(margins <= 1e-6) == (1 if not lowres else 5 * 4)  # bilinear taps: 5 rows, 4 columns

    noise = 1e-7  # as if measured between two kernel sets: tolerance = max(4e-7, 1e-6)
    tie_flip = _run(files, _flip(x, tie, block))[alpha_name]
    assert np.abs(tie_flip - ref[alpha_name]).max() > 0.1  # the flip moved the alpha
    excused = dp.decision_aware_compare([tie_flip], [ref[alpha_name]], [margins], noise, bound=1e-4)
    # (the detail conv also sees the swapped input: its neighbours move by float noise, well within the bound)
    assert excused.max_abs_kept < 1e-6 and excused.over_bound == excused.over_bound_excused > 0
    assert dp.within(excused)

    clear_flip = _run(files, _flip(x, clear, block))[alpha_name]
    caught = dp.decision_aware_compare([clear_flip], [ref[alpha_name]], [margins], noise, bound=1e-4)
    assert caught.max_abs_kept > 0.1 and caught.over_bound_excused == 0
    assert not dp.within(caught)


def test_with_logits_keeps_the_outputs_and_appends_the_scores(tmp_path):
    folder = _export(tmp_path, lowres=True)
    files, names = with_logits(folder, tmp_path / "with_logits")
    x = _scores(2, (0, 0), (1, 1))
    original, copy = _run(locate_model_files(folder), x), _run(files, x)
    assert list(copy) == [*original, *names] and len(names) == 1
    for name, value in original.items():
        assert np.array_equal(copy[name], value)
    assert copy[names[0]].shape == (1, 3, SIZE // 2, SIZE // 2)
    with pytest.raises(EdgematteError, match="new folder"):
        with_logits(folder, folder)


def test_the_official_programs_route_and_the_unfrozen_one_says_why_not(tmp_path):
    official = Path(__file__).parent / "data" / "official"
    (point,) = decision_points(parse_program((official / "humanmatting" / "model.pdmodel").read_bytes()))
    assert point.logits == "softmax_0.tmp_0" and point.axis == 1
    assert point.route is None and "freeze the input shape" in point.route_problem
    (pp,) = decision_points(parse_program((official / "ppmatting_hrnet_w18" / "model.pdmodel").read_bytes()))
    assert pp.logits == "softmax_0.tmp_0"


def test_real_humanmatting_with_logits_is_bit_exact(tmp_path):
    from .official_models import build_official_folder

    src = build_official_folder("humanmatting", tmp_path / "src", seed=0)
    frozen = freeze_input_shape(src, tmp_path / "frozen", [1, 3, 128, 128]).files
    files, names = with_logits(frozen, tmp_path / "with_logits")
    (point,) = decision_points(parse_program(files.model.read_bytes()))
    # argmax at 1/4 scale, then bilinear to 1/2, two valid 3x3 convs, nearest x2, two valid 3x3 convs
    assert [s["op"] for s in point.route if s["op"] != "pointwise"] == [
        "source", "resample", "pad", "window", "window", "resample", "window", "window"]
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32)
    original, copy = _run(frozen, x), _run(files, x)
    assert list(copy) == [*original, "softmax_0.tmp_0"] and names == ("softmax_0.tmp_0",)
    for name, value in original.items():
        assert np.array_equal(copy[name], value)
    assert copy[names[0]].shape == (1, 3, 32, 32)
    margins = dp.decision_margins(copy[names[0]], (128, 128), point.route)
    assert margins.shape == (1, 128, 128) and np.all(margins >= 0)


# ----------------------------------------------------------------------------- core, numpy only
def test_top2_margin_and_tolerance_rule():
    scores = np.array([[0.1, 0.5], [0.7, 0.5], [0.2, 0.0]], np.float32).reshape(1, 3, 1, 2)
    assert dp.top2_margin(scores)[0, 0].tolist() == pytest.approx([0.5, 0.0])
    assert np.isinf(dp.top2_margin(scores[:, :1])).all()
    assert dp.margin_tolerance(1e-4) == pytest.approx(4e-4)
    assert dp.margin_tolerance(0.0) == dp.FLOOR
    with pytest.raises(EdgematteError):
        dp.margin_tolerance(float("nan"))


def test_route_steps_take_the_minimum_over_what_each_position_reads():
    m = np.full((1, 4, 4), 9.0)
    m[0, 1, 1] = 0.0
    route = [
        {"op": "source", "output": "a", "hw": [4, 4]},
        {"op": "window", "inputs": ["a"], "output": "b", "hw": [4, 4], "kernel": [3, 3], "stride": [1, 1],
         "dilation": [1, 1], "pads": [1, 1, 1, 1]},
        {"op": "resample", "inputs": ["b"], "output": "c", "hw": [8, 8], "method": "nearest",
         "align_corners": False, "align_mode": 0},
        {"op": "pad", "inputs": ["c"], "output": "d", "hw": [10, 10], "pads": [1, 1, 1, 1], "mode": "constant"},
    ]
    out = dp.route_margins(m, route)
    # 3x3 window: rows/cols 0..2 low; nearest x2 with floor and floor+1 taps: rows/cols 0..5; then padded by 1
    low = np.argwhere(out[0] == 0.0)
    assert low.min(axis=0).tolist() == [1, 1] and low.max(axis=0).tolist() == [6, 6]
    assert np.isinf(out[0, 0]).all()
    with pytest.raises(EdgematteError, match="declares"):
        dp.route_margins(m, [route[0], {**route[1], "hw": [5, 5]}])
    # no route: identity at the same size, an interpolation footprint otherwise
    assert dp.decision_margins(np.zeros((1, 2, 4, 4)), (4, 4)).shape == (1, 4, 4)
    assert dp.decision_margins(np.zeros((1, 2, 4, 4)), (16, 16)).shape == (1, 16, 16)
