"""The resize_to_one_pixel repair: Paddle's interpolation to one pixel reads index 0, paddle2onnx's Resize the
centre. Checked on small programs written here with Paddle, through paddle2onnx and ONNX Runtime."""

import numpy as np
import onnx
import onnxruntime as ort
import paddle
import pytest

from edgematte.converter.freeze import freeze_input_shape
from edgematte.converter.onnx import export_onnx, run_paddle2onnx
from edgematte.converter.repairs import registry
from edgematte.converter.repairs.onnx.resize_to_one_pixel import REPAIR
from edgematte.runtime.backends.paddle_inference import PaddleInferenceBackend


def _save(prefix, mode: str, size, shape=(1, 2, 5, 6)):
    """x -> a 1x1 conv (so the program has a parameter) -> interpolate(mode) to ``size`` -> a 1x1 conv."""
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            x = paddle.static.data("x", list(shape), "float32")
            y = paddle.static.nn.conv2d(x, 2, 1)
            y = paddle.nn.functional.interpolate(y, size=list(size), mode=mode)
            out = paddle.static.nn.conv2d(y, 1, 1)
        executor = paddle.static.Executor(paddle.CPUPlace())
        executor.run(startup)
        paddle.static.save_inference_model(str(prefix), [x], [out], executor, program=main)
    finally:
        paddle.disable_static()


def _paddle(model_dir, x):
    return PaddleInferenceBackend(str(model_dir / "model.pdmodel"), threads=1, use_onednn=False).run(x)


def _onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("mode, size, sliced_axes, action", [
    ("bilinear", (1, 1), [2, 3], "replaced"),
    ("bilinear", (1, 4), [2], "sliced"),   # the width is still resized, by the Resize
    ("bilinear", (3, 1), [3], "sliced"),
])
def test_one_pixel_interpolations_read_index_zero_as_paddle_does(tmp_path, mode, size, sliced_axes, action):
    _save(tmp_path / "src" / "model", mode, size)
    frozen = freeze_input_shape(tmp_path / "src", tmp_path / "frozen", [1, 2, 5, 6])
    x = np.random.RandomState(0).uniform(-1, 1, (1, 2, 5, 6)).astype(np.float32)
    expected = _paddle(tmp_path / "frozen", x)

    # paddle2onnx alone: the centre, not index 0 (what the repair exists for).
    run_paddle2onnx(frozen.files.model.parent, tmp_path / "raw.onnx")
    assert np.abs(_onnx(tmp_path / "raw.onnx", x) - expected).max() > 1e-2

    info = export_onnx(frozen.files.model.parent, tmp_path / "model.onnx")
    (record,) = [r for r in info["repairs"] if "coordinate_transformation_mode" in r]
    assert record["action"] == action and record["axes"] == sliced_axes
    assert record["coordinate_transformation_mode"] == "half_pixel"
    summary = next(r for r in info["applied_repairs"] if r["name"] == "resize_to_one_pixel")
    assert (summary["matched"], summary["changed"]) == (1, 1)
    np.testing.assert_allclose(_onnx(tmp_path / "model.onnx", x), expected, rtol=0, atol=1e-6)
    ops = [n.op_type for n in onnx.load(str(tmp_path / "model.onnx")).graph.node]
    assert ("Resize" in ops) == (action == "sliced")


def test_nearest_is_written_asymmetric_and_left(tmp_path):
    """paddle2onnx writes Paddle's nearest (align_corners off) with ``asymmetric`` coordinates: index 0 already."""
    _save(tmp_path / "src" / "model", "nearest", (1, 1))
    frozen = freeze_input_shape(tmp_path / "src", tmp_path / "frozen", [1, 2, 5, 6])
    info = export_onnx(frozen.files.model.parent, tmp_path / "model.onnx")
    (record,) = [r for r in info["repairs"] if "coordinate_transformation_mode" in r]
    assert (record["coordinate_transformation_mode"], record["action"]) == ("asymmetric", "left")
    assert record["reason"] == "it reads index 0 already"
    x = np.random.RandomState(0).uniform(-1, 1, (1, 2, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(_onnx(tmp_path / "model.onnx", x), _paddle(tmp_path / "frozen", x), rtol=0, atol=1e-6)


def test_bicubic_and_resizes_to_more_than_one_pixel_are_left(tmp_path):
    _save(tmp_path / "cubic" / "model", "bicubic", (1, 1))
    frozen = freeze_input_shape(tmp_path / "cubic", tmp_path / "cubic_frozen", [1, 2, 5, 6])
    info = export_onnx(frozen.files.model.parent, tmp_path / "cubic.onnx")
    (record,) = [r for r in info["repairs"] if "coordinate_transformation_mode" in r]
    assert record["action"] == "left" and record["reason"] == "Paddle's bicubic does not read index 0 there"

    _save(tmp_path / "wide" / "model", "bilinear", (2, 3))
    frozen = freeze_input_shape(tmp_path / "wide", tmp_path / "wide_frozen", [1, 2, 5, 6])
    info = export_onnx(frozen.files.model.parent, tmp_path / "wide.onnx")
    assert not [r for r in info["repairs"] if "coordinate_transformation_mode" in r]


def test_registered_as_a_correction_after_the_pool_repair():
    assert not REPAIR.preserves_outputs and REPAIR.applies_to == "onnx"
    names = [r.name for r in registry.repairs_for("onnx")]
    assert names.index("adaptive_pool_windows") < names.index("resize_to_one_pixel")
