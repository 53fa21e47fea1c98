"""Folding shape computations into constants (edgematte/converter/static_program.py), on the program PaddleSeg's
own export wrote for PP-MattingV2 and on a small program built here for the cases it does not hold."""

import numpy as np
import paddle
import pytest

from edgematte.converter.freeze import freeze_input_shape
from edgematte.converter.program import parse_program, read_program
from edgematte.converter.static_program import static_variables
from edgematte.runtime.backends.paddle_inference import PaddleInferenceBackend
from tests.official_models import build_official_folder


def _ops(model_file):
    program = parse_program(model_file.read_bytes(), str(model_file))
    return [op for block in program.blocks for op in block.ops]


def _variable_attrs(ops):
    fp = __import__("paddle.base.proto.framework_pb2", fromlist=["x"])
    return [f"{op.type}.{a.name}" for op in ops for a in op.attrs if a.type in (fp.VAR, fp.VARS)]


def _run(model_file, x):
    return PaddleInferenceBackend(str(model_file), threads=1, use_onednn=False).run(x)


@pytest.fixture(scope="module")
def official_ppmattingv2(tmp_path_factory):
    return build_official_folder("ppmattingv2", tmp_path_factory.mktemp("official") / "ppmattingv2")


@pytest.mark.parametrize("hw", [(64, 64), (96, 128)])
def test_paddleseg_export_of_ppmattingv2_loses_every_shape_computation(official_ppmattingv2, tmp_path, hw):
    source_ops = _ops(official_ppmattingv2 / "model.pdmodel")
    # What PaddleSeg wrote (read here, independently of the folding code): 11 shape ops feeding 22 slices, two
    # adaptive pools whose ksize is a Variable, 18 interpolations sized by SizeTensor.
    assert sum(op.type == "shape" for op in source_ops) == 11
    assert _variable_attrs(source_ops) == ["pool2d.ksize", "pool2d.ksize"]
    assert sum(1 for op in source_ops for s in op.inputs if s.parameter == "SizeTensor" and s.arguments) == 18

    frozen = freeze_input_shape(official_ppmattingv2, tmp_path / "frozen", [1, 3, *hw])
    ops = _ops(frozen.files.model)
    assert not [op for op in ops if op.type == "shape"] and _variable_attrs(ops) == []
    assert not [op for op in ops for s in op.inputs if s.parameter == "SizeTensor" and s.arguments]
    assert frozen.folded.as_dict() == {"attributes": {"bilinear_interp_v2.SizeTensor": 18, "pool2d.ksize": 2},
                                       "materialised": [], "removed_ops": {"shape": 11, "slice": 22}}
    assert len(ops) == len(source_ops) - 33 and frozen.still_dynamic == ()
    pools = [op for op in ops if op.type == "pool2d" and any(a.name == "adaptive" and a.b for a in op.attrs)]
    assert [list(next(a for a in op.attrs if a.name == "ksize").ints) for op in pools][-2:] == [
        [hw[0] // 4, hw[1] // 4], [hw[0] // 2, hw[1] // 2]]  # the image pooled to the stem's 1/4 and 1/2 scales

    # Same kernels, same numbers: the folded program computes bit for bit what PaddleSeg's program computes.
    x = np.random.RandomState(0).uniform(-1, 1, (1, 3, *hw)).astype(np.float32)
    np.testing.assert_array_equal(_run(frozen.files.model, x), _run(official_ppmattingv2 / "model.pdmodel", x))


def _save_shape_program(prefix):
    """x [N, 3, H, W] -> every kind of shape use: interpolate to 2x its own size (SizeTensor), a reshape to
    [N, 3, -1] (ShapeTensor), a fill_constant of shape [N, 1, 1] (ShapeTensorList), and a data op that reads a
    shape value directly (elementwise_add of the height as a float)."""
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            x = paddle.static.data("x", [None, 3, None, None], "float32")
            size = paddle.shape(x)
            y = paddle.nn.functional.interpolate(x, size=[size[2] * 2, size[3] * 2], mode="bilinear")
            weight = paddle.static.create_parameter([1], "float32", name="w",
                                                    default_initializer=paddle.nn.initializer.Constant(1.5))
            z = paddle.reshape(y, [size[0], 3, -1]) * paddle.full([size[0], 1, 1], 0.5) * weight
            out = z + paddle.cast(size[2], "float32")
        executor = paddle.static.Executor(paddle.CPUPlace())
        executor.run(startup)
        paddle.static.save_inference_model(str(prefix), [x], [out], executor, program=main)
    finally:
        paddle.disable_static()


def test_every_shape_use_of_a_small_program_folds_and_computes_the_same(tmp_path):
    _save_shape_program(tmp_path / "src" / "model")
    source = tmp_path / "src" / "model.pdmodel"
    assert {"shape", "slice", "fill_constant", "cast"} <= set(read_program(source).op_counts)
    frozen = freeze_input_shape(source, tmp_path / "frozen", [2, 3, 8, 12])
    report = frozen.folded.as_dict()
    assert report["attributes"] == {"bilinear_interp_v2.SizeTensor": 1, "reshape2.ShapeTensor": 1}
    # The small fill_constant is itself a function of shapes: it becomes a constant, as does the float height.
    assert len(report["materialised"]) == 2 and report["removed_ops"]["fill_constant"] >= 1
    ops = _ops(frozen.files.model)
    assert [op.type for op in ops if op.type in ("shape", "slice", "cast", "fill_constant")] == []
    assert sum(op.type == "scale" for op in ops) == 1  # the export's own output op; the two size scales went
    assert sum(op.type == "assign_value" for op in ops) == 2
    x = np.random.RandomState(1).uniform(-1, 1, (2, 3, 8, 12)).astype(np.float32)
    expected = _run(source, x)
    assert expected.shape == (2, 3, 16 * 24)
    np.testing.assert_array_equal(_run(frozen.files.model, x), expected)


def test_an_interpolation_whose_scale_would_override_the_folded_size_keeps_its_tensor(tmp_path):
    """Paddle's precedence: a SizeTensor beats a positive ``scale`` attribute, which beats out_h/out_w. Folding the
    size into out_h/out_w there would let the scale win, so the size must reach the op as a tensor."""
    _save_shape_program(tmp_path / "src" / "model")
    source = tmp_path / "src" / "model.pdmodel"
    program = parse_program(source.read_bytes())
    fp = __import__("paddle.base.proto.framework_pb2", fromlist=["x"])
    interp = next(op for op in program.blocks[0].ops if op.type == "bilinear_interp_v2")
    scale = next(a for a in interp.attrs if a.name == "scale")
    scale.type = fp.FLOATS
    del scale.floats[:]
    scale.floats.extend([3.0, 3.0])  # would give 3x the size; the SizeTensor says 2x
    source.write_bytes(program.SerializeToString())
    frozen = freeze_input_shape(source, tmp_path / "frozen", [1, 3, 8, 12])
    assert "bilinear_interp_v2.SizeTensor" not in frozen.folded.attributes
    assert len(frozen.folded.materialised) == 4  # the two sizes, the [N, 1, 1] constant, the height
    x = np.random.RandomState(2).uniform(-1, 1, (1, 3, 8, 12)).astype(np.float32)
    expected = _run(source, x)
    assert expected.shape == (1, 3, 16 * 24)
    np.testing.assert_array_equal(_run(frozen.files.model, x), expected)


def test_weights_and_data_are_never_static(official_ppmattingv2):
    program = parse_program((official_ppmattingv2 / "model.pdmodel").read_bytes())
    static = set(static_variables(program))
    persistable = {v.name for v in program.blocks[0].vars if v.persistable}
    producers = {a: op.type for op in program.blocks[0].ops for s in op.outputs for a in s.arguments}
    assert static and not static & persistable and "img" not in static
    assert {producers[name] for name in static} == {"shape", "slice"}
