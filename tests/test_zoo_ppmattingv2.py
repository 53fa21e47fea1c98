"""PP-MattingV2 dygraph model: official checkpoint layout, FLOPs, forward parity with PaddleSeg, export.

The parity reference ``tests/data/ppmattingv2.seed0.512x512.npz`` was computed by PaddleSeg's own model
code with the seeded-weight formula (seed 0) on ``skimage.data.astronaut()``.
"""

import contextlib
import io
from pathlib import Path

import cv2
import numpy as np
import paddle
import pytest
import skimage.data

from edgematte.zoo import ppmattingv2
from edgematte.zoo.weights import count_parameters, format_layout, parse_layout, seeded_state_dict

from .helpers import normalize, run_dygraph, run_paddle_inference

DATA = Path(__file__).parent / "data"
OFFICIAL_PARAMETERS = 8_947_488  # published 8.95 M; BatchNorm running statistics excluded
OFFICIAL_MACS_512 = 7_507_110_912  # paddle.flops at 1x3x512x512 (published 7.51 GFLOPs)
PARITY_TOL = 1e-5
TINY_WIDTH = 0.25


def official_layout():
    return parse_layout((DATA / "ppmattingv2.state_dict.tsv").read_text())


def photo(height: int, width: int, name: str = "astronaut") -> np.ndarray:
    return cv2.resize(getattr(skimage.data, name)(), (width, height), interpolation=cv2.INTER_AREA)


def seeded_model(width: float, seed: int):
    model = ppmattingv2.build(width)
    model.set_state_dict(seeded_state_dict(ppmattingv2.layout(width), seed))
    model.eval()
    return model


def export(model, prefix: Path, shape) -> str:
    spec = paddle.static.InputSpec(shape, "float32", "img")
    paddle.jit.save(model, str(prefix), input_spec=[spec])
    assert prefix.with_suffix(".pdmodel").is_file() and prefix.with_suffix(".pdiparams").is_file()
    return str(prefix)


@pytest.fixture(scope="module")
def official_seed0():
    return seeded_model(1.0, seed=0)


@pytest.fixture(scope="module")
def tiny_seed0():
    return seeded_model(TINY_WIDTH, seed=0)


# ----------------------------------------------------------------------------- layout
def test_layout_equals_official_checkpoint_line_by_line():
    expected = format_layout(official_layout()).splitlines()
    got = format_layout(ppmattingv2.layout()).splitlines()
    assert len(got) == len(expected) == 485
    for line_number, (want, have) in enumerate(zip(expected, got), start=1):
        assert have == want, f"line {line_number}"


def test_layout_is_the_built_models_state_dict():
    model = ppmattingv2.build()
    state = model.state_dict()
    assert [key for key, _, _ in ppmattingv2.layout()] == list(state)
    assert ppmattingv2.LAYOUT_NAME == "ppmattingv2"


def test_parameter_count_is_official():
    assert count_parameters(ppmattingv2.layout()) == OFFICIAL_PARAMETERS


def test_tiny_width_keeps_keys_and_shrinks_shapes():
    official = official_layout()
    tiny = ppmattingv2.layout(TINY_WIDTH)
    assert [key for key, _, _ in tiny] == [key for key, _, _ in official]
    for (key, small, _), (_, full, _) in zip(tiny, official):
        assert len(small) == len(full) and all(s <= f for s, f in zip(small, full)), key
    assert count_parameters(tiny) < OFFICIAL_PARAMETERS / 10


def test_training_only_head_is_in_checkpoint_but_not_in_forward(tiny_seed0):
    aux_keys = [key for key, _, _ in ppmattingv2.layout(TINY_WIDTH) if key.startswith("matting_head_mlff8x.")]
    assert len(aux_keys) == 6
    ran = []
    hook = tiny_seed0.matting_head_mlff8x.register_forward_post_hook(lambda layer, inp, out: ran.append(1))
    try:
        run_dygraph(tiny_seed0, normalize(photo(64, 64)))
    finally:
        hook.remove()
    assert ran == []


# ----------------------------------------------------------------------------- FLOPs
@pytest.mark.slow
# paddle.flops' own hooks turn shape tensors into ints in a way numpy 1.25+ deprecates (hundreds of lines).
@pytest.mark.filterwarnings("ignore:Conversion of an array with ndim > 0 to a scalar:DeprecationWarning")
def test_flops_at_512_equal_official(official_seed0):
    with contextlib.redirect_stdout(io.StringIO()):  # paddle.flops prints its total
        macs = paddle.flops(official_seed0, [1, 3, 512, 512], print_detail=False)
    assert macs == OFFICIAL_MACS_512


# ----------------------------------------------------------------------------- forward
@pytest.mark.slow
def test_seed0_forward_matches_paddleseg(official_seed0):
    reference = np.load(DATA / "ppmattingv2.seed0.512x512.npz")
    alpha = run_dygraph(official_seed0, normalize(reference["image"]))
    assert alpha.shape == reference["alpha"].shape == (1, 1, 512, 512)
    assert alpha.dtype == np.float32
    max_abs = float(np.abs(alpha - reference["alpha"]).max())
    assert max_abs <= PARITY_TOL, f"max abs alpha difference {max_abs:.3g} > {PARITY_TOL}"


@pytest.mark.slow
def test_other_seed_non_square_real_photo_gives_a_real_matte():
    model = seeded_model(1.0, seed=7)
    alpha = run_dygraph(model, normalize(photo(480, 640, "coffee")))
    assert alpha.shape == (1, 1, 480, 640)
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0
    assert alpha.std() > 0.01


def test_tiny_runs_at_384x640(tiny_seed0):
    alpha = run_dygraph(tiny_seed0, normalize(photo(384, 640)))
    assert alpha.shape == (1, 1, 384, 640)
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0
    assert alpha.std() > 0.01


# ----------------------------------------------------------------------------- static export
def test_tiny_dynamic_export_matches_dygraph(tiny_seed0, tmp_path):
    prefix = export(tiny_seed0, tmp_path / "model", [None, 3, None, None])
    for height, width in [(512, 512), (480, 640)]:
        x = normalize(photo(height, width))
        expected = run_dygraph(tiny_seed0, x)
        got = run_paddle_inference(prefix, x)
        assert got.shape == expected.shape == (1, 1, height, width)
        assert expected.std() > 0.01  # the tiny model's matte is not a constant
        max_abs = float(np.abs(got - expected).max())
        assert max_abs <= PARITY_TOL, f"{height}x{width}: max abs difference {max_abs:.3g}"


def test_tiny_fixed_export_matches_dygraph(tiny_seed0, tmp_path):
    prefix = export(tiny_seed0, tmp_path / "model", [1, 3, 480, 640])
    x = normalize(photo(480, 640))
    max_abs = float(np.abs(run_paddle_inference(prefix, x) - run_dygraph(tiny_seed0, x)).max())
    assert max_abs <= PARITY_TOL, f"max abs difference {max_abs:.3g}"


@pytest.mark.slow
def test_official_fixed_512_export_matches_reference(official_seed0, tmp_path):
    prefix = export(official_seed0, tmp_path / "model", [1, 3, 512, 512])
    reference = np.load(DATA / "ppmattingv2.seed0.512x512.npz")
    x = normalize(reference["image"])
    got = run_paddle_inference(prefix, x)
    versus_dygraph = float(np.abs(got - run_dygraph(official_seed0, x)).max())
    versus_paddleseg = float(np.abs(got - reference["alpha"]).max())
    assert versus_dygraph <= PARITY_TOL, f"max abs difference vs dygraph {versus_dygraph:.3g}"
    assert versus_paddleseg <= PARITY_TOL, f"max abs difference vs PaddleSeg {versus_paddleseg:.3g}"
