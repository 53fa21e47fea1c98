"""PP-HumanMatting dygraph model: official checkpoint layout, forward parity with PaddleSeg, export.

The parity reference ``tests/data/humanmatting.seed0.512x512.npz`` was computed by PaddleSeg's own model
code (``human_matting-resnet34_vd``, eval mode) with the seeded-weight formula (seed 0) on the
astronaut photo it stores. PaddleSeg's own static export agrees with it to 2e-4 (argmax fusion and
clipping sit on a boundary at a few pixels), hence the 1e-3 bound.
"""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import paddle
import pytest

from edgematte.zoo import humanmatting
from edgematte.zoo.weights import count_parameters, format_layout, parse_layout, seeded_state_dict

from .helpers import normalize, run_dygraph, run_paddle_inference

DATA = Path(__file__).parent / "data"
OFFICIAL_PARAMETERS = 63_889_670  # published 63.9 M; BatchNorm running statistics excluded
PARITY_TOL = 1e-3
EXPORT_TOL = 1e-3
TINY_WIDTH = 0.25


def reference():
    return np.load(DATA / "humanmatting.seed0.512x512.npz")


def photo(height: int, width: int) -> np.ndarray:
    """The reference astronaut photo resized to ``height`` x ``width`` (uint8 RGB)."""
    return cv2.resize(reference()["image"], (width, height), interpolation=cv2.INTER_AREA)


def with_seed(model, width: float, seed: int):
    model.set_state_dict(seeded_state_dict(humanmatting.layout(width), seed))
    model.eval()
    return model


@pytest.fixture(scope="module")
def official_model():
    """The full-width model (weights set by each test)."""
    return humanmatting.build(1.0)


@pytest.fixture(scope="module")
def tiny_seed0():
    return with_seed(humanmatting.build(TINY_WIDTH), TINY_WIDTH, seed=0)


def test_layout_equals_official_table_line_by_line():
    official = (DATA / "humanmatting.state_dict.tsv").read_text().splitlines()
    ours = format_layout(humanmatting.layout()).splitlines()
    assert len(ours) == len(official) == 486
    for index, (mine, theirs) in enumerate(zip(ours, official)):
        assert mine == theirs, f"entry {index}: {mine!r} != official {theirs!r}"
    assert humanmatting.LAYOUT_NAME == "humanmatting"


def test_parameter_count_matches_published():
    assert count_parameters(humanmatting.layout()) == OFFICIAL_PARAMETERS


def test_seed0_forward_matches_paddleseg(official_model):
    ref = reference()
    alpha = run_dygraph(with_seed(official_model, 1.0, seed=0), normalize(ref["image"]))
    assert alpha.shape == (1, 1, 512, 512) and alpha.dtype == np.float32
    max_diff = float(np.abs(alpha - ref["alpha"]).max())
    assert max_diff <= PARITY_TOL, f"max abs alpha difference {max_diff:.3g} vs PaddleSeg"


def test_other_seed_non_square_input_gives_a_real_matte(official_model):
    alpha = run_dygraph(with_seed(official_model, 1.0, seed=1), normalize(photo(384, 640)))
    assert alpha.shape == (1, 1, 384, 640)
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    assert alpha.std() > 0.05, "alpha is (nearly) constant"
    # both saturated regions (glance fusion) and refined edges in between
    assert (alpha == 0).mean() > 0.01 and (alpha == 1).mean() > 0.01
    assert ((alpha > 0) & (alpha < 1)).mean() > 0.001


def test_tiny_width_has_official_keys_with_smaller_shapes():
    official = parse_layout((DATA / "humanmatting.state_dict.tsv").read_text())
    tiny = humanmatting.layout(TINY_WIDTH)
    assert [key for key, _, _ in tiny] == [key for key, _, _ in official]
    for (key, small, _), (_, full, _) in zip(tiny, official):
        assert len(small) == len(full) and all(s <= f for s, f in zip(small, full)), key
    assert count_parameters(tiny) < OFFICIAL_PARAMETERS / 10


def test_tiny_model_handles_multiples_of_32(tiny_seed0):
    # 160 x 224 is not a multiple of 128 (PaddleSeg's fixed x2 upsampling would not fit it)
    alpha = run_dygraph(tiny_seed0, normalize(photo(160, 224)))
    assert alpha.shape == (1, 1, 160, 224)
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0 and alpha.std() > 0.01


@pytest.mark.parametrize(
    "export_shape, run_sizes",
    [
        ([1, 3, 256, 256], [(256, 256)]),
        ([None, 3, None, None], [(256, 256), (128, 384), (160, 224)]),
    ],
    ids=["fixed-256", "dynamic"],
)
def test_exported_program_matches_dygraph(tiny_seed0, tmp_path, export_shape, run_sizes):
    prefix = tmp_path / "model"
    paddle.jit.save(tiny_seed0, str(prefix), input_spec=[paddle.static.InputSpec(export_shape, "float32", "img")])
    for height, width in run_sizes:
        x = normalize(photo(height, width))
        expected = run_dygraph(tiny_seed0, x)
        got = run_paddle_inference(str(prefix), x)
        assert got.shape == (1, 1, height, width)
        max_diff = float(np.abs(got - expected).max())
        assert max_diff <= EXPORT_TOL, f"{height}x{width}: exported vs dygraph max abs diff {max_diff:.3g}"
        assert expected.std() > 0.01  # a constant matte would make the comparison meaningless


LITE_SCRIPT = """
import sys, numpy as np

from paddlelite.lite import MobileConfig, Opt, create_paddle_predictor
prefix, x_path = sys.argv[1], sys.argv[2]
opt = Opt()
opt.set_model_file(prefix + ".pdmodel")
opt.set_param_file(prefix + ".pdiparams")
opt.set_valid_places("x86")
opt.set_model_type("naive_buffer")
opt.set_optimize_out(prefix)
opt.run()
config = MobileConfig()
config.set_model_from_file(prefix + ".nb")
predictor = create_paddle_predictor(config)
predictor.get_input(0).from_numpy(np.load(x_path))
predictor.run()
np.save(prefix + ".lite.npy", predictor.get_output(0).numpy().copy())
"""


def test_exported_program_runs_in_paddle_lite(tmp_path):
    """Guards the two Lite-specific choices in the model: no 0-D constants (opt's program aborts in
    FillConstantOp::InferShape) and a max-subtracted softmax (Lite's x86 kernel overflows to NaN).
    Lite runs in a subprocess: its failures abort the process."""
    state = seeded_state_dict(humanmatting.layout(TINY_WIDTH), seed=0)
    # glance logits far beyond exp()'s float32 range (88), as the full-width seeded model has them
    for key in ("decoder0_g.2.weight", "decoder0_g.2.bias"):
        state[key] = state[key] * 100.0
    model = humanmatting.build(TINY_WIDTH)
    model.set_state_dict(state)
    model.eval()
    prefix = tmp_path / "model"
    paddle.jit.save(model, str(prefix), input_spec=[paddle.static.InputSpec([1, 3, 256, 256], "float32", "img")])
    x = normalize(photo(256, 256))
    np.save(tmp_path / "x.npy", x)
    result = subprocess.run(
        [sys.executable, "-c", LITE_SCRIPT, str(prefix), str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = np.load(str(prefix) + ".lite.npy")
    expected = run_dygraph(model, x)
    assert got.shape == expected.shape == (1, 1, 256, 256)
    max_diff = float(np.abs(got - expected).max())
    assert max_diff <= EXPORT_TOL, f"Paddle Lite x86 .nb vs dygraph max abs diff {max_diff:.3g}"


def test_png_decoding_still_works_after_importing_the_model():
    """Importing paddle first breaks zlib for libpng and Pillow (cv2.imread returns None on
    scikit-image's chelsea.png, Pillow segfaults); the module loads the system zlib before paddle."""
    import skimage

    png = Path(skimage.__file__).parent / "data" / "chelsea.png"
    assert png.is_file()
    code = (
        "import sys\n"
        "import edgematte.zoo.humanmatting\n"
        "import cv2\n"
        "image = cv2.imread(sys.argv[1])\n"
        "print(None if image is None else image.shape)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(png)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "(300, 451, 3)", result.stderr[-2000:]
