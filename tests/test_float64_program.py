"""edgematte.converter.float64_program: float64 copies of inference programs and the float noise they measure.

The programs are built here with ``paddle.static`` and saved with ``save_inference_model`` (what a legacy
export is). Truth comes from numpy in float64, computed independently of Paddle, never from the code under
test; Paddle Inference and the static executor are driven directly so a change in the project's backends
cannot hide a bug here.
"""

import os
import time

import numpy as np
import pytest

paddle = pytest.importorskip("paddle", reason="the converter tests need paddlepaddle (edgematte[convert])")

from edgematte.converter.float64_program import (  # noqa: E402
    DEFAULT_CEILING,
    DEFAULT_FACTOR,
    FloatNoise,
    derived_bound,
    float64_copy,
    measure_float_noise,
    run_float64,
)
from edgematte.converter.program import (  # noqa: E402
    ModelFiles,
    check_params_file,
    parse_program,
    read_program,
)
from edgematte.core.errors import EdgematteError  # noqa: E402


# ----------------------------------------------------------------------------- building programs
def _save(tmp_path, name, build, shape, seed=0, tweak=None):
    """Build ``build(x)`` on a ``[*shape]`` float32 input ``x`` in a fresh static program, save it to ``tmp_path/name``.

    Returns ``(ModelFiles, {parameter name: float32 value})``; parameters get seeded random values, then
    ``tweak(params)`` may change some in place (names differ between builds, so it picks them by shape).
    """
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        scope = paddle.static.Scope()
        with paddle.static.program_guard(main, startup), paddle.static.scope_guard(scope):
            paddle.seed(seed)
            x = paddle.static.data("x", list(shape), "float32")
            out = build(x)
            outs = list(out) if isinstance(out, (list, tuple)) else [out]
            exe = paddle.static.Executor(paddle.CPUPlace())
            exe.run(startup)
            rng = np.random.RandomState(seed)
            params = {}
            for var in main.list_vars():
                if var.persistable and var.name not in ("feed", "fetch"):
                    tensor = scope.find_var(var.name).get_tensor()
                    value = np.array(tensor)
                    if value.dtype == np.float32 and "variance" not in var.name:
                        value = (rng.standard_normal(value.shape) * 0.3).astype(np.float32)
                        tensor.set(value, paddle.CPUPlace())
                    params[var.name] = value
            if tweak is not None:
                tweak(params)
                for name, value in params.items():
                    scope.find_var(name).get_tensor().set(value, paddle.CPUPlace())
            paddle.static.save_inference_model(str(tmp_path / name / "model"), [x], outs, exe, program=main)
    finally:
        paddle.disable_static()
    return ModelFiles(tmp_path / name / "model.pdmodel", tmp_path / name / "model.pdiparams"), params


def _tiny(x):
    """1x1 conv (3 -> 2 channels, with bias) + sigmoid."""
    return paddle.nn.functional.sigmoid(paddle.nn.Conv2D(3, 2, 1)(x))


def _rich(x):
    """Every op type named in the brief: conv, BN, relu, pool, bilinear resize, elementwise, concat, sigmoid,
    softmax, a cast whose output is float32, a fill_constant and an assign_value (float32 constants).

    The resize takes its scale from a float tensor (as RVM's ``downsample_ratio``): the interpolate kernel
    reads that input as float32 whatever the program says.
    """
    y = paddle.nn.functional.relu(paddle.nn.BatchNorm2D(4)(paddle.nn.Conv2D(3, 4, 3, padding=1)(x)))
    pooled = paddle.nn.functional.avg_pool2d(y, 2)
    half = paddle.full([1], 0.5, "float32")  # fill_constant
    up = paddle.nn.functional.interpolate(pooled, scale_factor=half * 4, mode="bilinear", align_corners=False)
    bias = paddle.assign(np.array([0.25, -0.5, 0.75, 0.125], np.float32).reshape(1, 4, 1, 1))  # assign_value
    mixed = up * half + y + bias
    counted = paddle.cast(paddle.cast(mixed * 4, "int32"), "float32")  # int32 -> float32 cast
    both = paddle.concat([mixed, counted * 0.01], axis=1)
    logits = paddle.nn.Conv2D(8, 2, 1)(both)
    return paddle.nn.functional.sigmoid(logits[:, :1]), paddle.nn.functional.softmax(logits, axis=1)


def _deep(x, depth=20):
    """A stack of ``depth`` 3x3 convs (8 channels) with relu, then a 1x1 head and sigmoid: an alpha in (0,1).

    With the N(0, 0.3) weights of :func:`_save`, the 0.8 scale keeps the activations from vanishing or
    exploding over 20 layers: the alpha spans [0, 1] as a matte does (std ~0.2 over the image).
    """
    y = x
    for i in range(depth):
        y = paddle.nn.functional.relu(paddle.nn.Conv2D(3 if i == 0 else 8, 8, 3, padding=1)(y)) * 0.8
    return paddle.nn.functional.sigmoid(paddle.nn.Conv2D(8, 1, 1)(y))


def _inference(files, dtype_input, onednn=False, ir_optim=True, threads=1):
    """Outputs of Paddle Inference (CPU) on ``dtype_input``, in fetch order."""
    config = paddle.inference.Config(str(files.model), str(files.params))
    config.disable_gpu()
    config.disable_glog_info()
    config.switch_ir_optim(ir_optim)
    if onednn:
        config.enable_mkldnn()
    else:
        config.disable_mkldnn()
    config.set_cpu_math_library_num_threads(threads)
    predictor = paddle.inference.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(dtype_input.shape))
    handle.copy_from_cpu(dtype_input)
    predictor.run()
    return [predictor.get_output_handle(n).copy_to_cpu() for n in predictor.get_output_names()]


def _executor(files, feed):
    """Outputs of paddle.static's executor on CPU, in fetch order."""
    paddle.enable_static()
    try:
        exe = paddle.static.Executor(paddle.CPUPlace())
        with paddle.static.scope_guard(paddle.static.Scope()):
            program, feeds, fetches = paddle.static.load_inference_model(str(files.model.with_suffix("")), exe)
            return exe.run(program, feed={feeds[0]: feed}, fetch_list=fetches)
    finally:
        paddle.disable_static()


def _input(shape, seed=1):
    return np.random.RandomState(seed).uniform(-1, 1, shape).astype(np.float32)


# ----------------------------------------------------------------------------- (a) float64 is float64
def test_float64_copy_of_tiny_net_matches_numpy_float64(tmp_path):
    files, params = _save(tmp_path, "tiny", _tiny, (1, 3, 5, 7))
    copy = float64_copy(files, tmp_path / "f64")
    assert copy.model.name == "model.pdmodel" and copy.params.name == "model.pdiparams"
    (weight,) = [v for v in params.values() if v.ndim == 4]
    (bias,) = [v for v in params.values() if v.ndim == 1]
    x = _input((1, 3, 5, 7)).astype(np.float64) * np.pi  # values float32 cannot hold
    logits = np.einsum("oc,nchw->nohw", weight[:, :, 0, 0].astype(np.float64), x) + bias.astype(np.float64)[:, None,
                                                                                                             None]
    truth = 1 / (1 + np.exp(-logits))
    for got in (_inference(copy, x)[0], _inference(copy, x, ir_optim=False)[0], _executor(copy, x)[0],
                run_float64(copy, [{"x": x}])[0][0]):
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, truth, rtol=0, atol=1e-12)
    # the fp32 original is not that close: the test above could not pass in float32
    assert np.abs(_inference(files, x.astype(np.float32))[0] - truth).max() > 1e-9


def test_float64_copy_widens_every_float_tensor_attribute_and_parameter(tmp_path):
    files, params = _save(tmp_path, "rich", _rich, (1, 3, 8, 8))
    copy = float64_copy(files, tmp_path / "f64")
    info = read_program(copy.model)
    assert check_params_file(info, copy.params) == len(params)
    floats = {n: v.dtype for n, v in info.variables.items() if v.dtype.startswith("float")}
    narrowed = {n for n in floats if n.endswith("@float32")}  # the interpolate's Scale, cast back (see _rich)
    assert len(narrowed) == 1 and floats.pop(narrowed.pop()) == "float32"
    assert floats and set(floats.values()) == {"float64"}
    ints = {n for n, v in read_program(files.model).variables.items() if v.dtype.startswith("int")}
    assert ints and all(info.variables[n].dtype.startswith("int") for n in ints)  # the cast's int32 stays
    program = parse_program(copy.model.read_bytes())
    ops = list(program.blocks[0].ops)
    (resize,) = [op for op in ops if op.type == "bilinear_interp_v2"]
    (scale,) = [a for slot in resize.inputs if slot.parameter == "Scale" for a in slot.arguments]
    (narrowing,) = [op for op in ops if op.type == "cast" and scale in [a for s in op.outputs for a in s.arguments]]
    assert ops.index(narrowing) < ops.index(resize)
    ops.remove(narrowing)
    attrs = {(op.type, a.name): a for op in ops for a in op.attrs}
    fp = paddle.base.proto.framework_pb2
    assert attrs[("fill_constant", "dtype")].i == fp.VarType.FP64
    assert attrs[("cast", "out_dtype")].i in (fp.VarType.FP64, fp.VarType.INT32)
    assert {a.i for (t, n), a in attrs.items()} and all(
        a.i != fp.VarType.FP32 for (t, n), a in attrs.items() if n in ("dtype", "in_dtype", "out_dtype"))
    assert list(attrs[("assign_value", "fp64_values")].float64s) == [0.25, -0.5, 0.75, 0.125]
    assert not attrs[("assign_value", "fp32_values")].floats

    x = _input((1, 3, 8, 8))
    fp32 = _inference(files, x)
    for runs in (_inference(copy, x.astype(np.float64)), _executor(copy, x.astype(np.float64)),
                 run_float64(copy, [{"x": x}])[0]):
        assert [r.dtype for r in runs] == [np.float64, np.float64]
        for a, b in zip(fp32, runs):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    # parameters are widened exactly: the float64 file holds the float32 values
    paddle.enable_static()
    try:
        with paddle.static.scope_guard(paddle.static.Scope()) as _:
            scope = paddle.static.global_scope()
            exe = paddle.static.Executor(paddle.CPUPlace())
            paddle.static.load_inference_model(str(copy.model.with_suffix("")), exe)
            for name, value in params.items():
                loaded = np.array(scope.find_var(name).get_tensor())
                assert loaded.dtype == (np.float64 if value.dtype == np.float32 else value.dtype)
                np.testing.assert_array_equal(loaded, value)
    finally:
        paddle.disable_static()


# ----------------------------------------------------------------------------- (b) the noise of a deep net
@pytest.fixture(scope="module")
def deep(tmp_path_factory):
    """A 20-conv float32 net, four inputs and its Paddle Inference (plain CPU) outputs on them."""
    tmp = tmp_path_factory.mktemp("deep")
    files, params = _save(tmp, "deep", _deep, (1, 3, 24, 24), seed=3)
    feeds = [{"x": _input((1, 3, 24, 24), seed=s)} for s in range(4)]
    references = [_inference(files, f["x"]) for f in feeds]
    return tmp, files, params, feeds, references


def test_measure_float_noise_of_a_deep_net_is_small_and_nonzero(deep):
    tmp, files, _, feeds, references = deep
    noise = measure_float_noise(files, feeds, references)
    assert isinstance(noise, FloatNoise) and noise.output_names == tuple(read_program(files.model).fetch_names)
    assert len(noise.outputs) == 4 and all(o[0].dtype == np.float64 for o in noise.outputs)
    # independently: the float64 copy run directly, and the difference computed here
    copy = float64_copy(files, tmp / "f64")
    direct = [_inference(copy, f["x"].astype(np.float64))[0] for f in feeds]
    for mine, theirs in zip(noise.outputs, direct):
        np.testing.assert_allclose(mine[0], theirs, rtol=0, atol=1e-13)
    diffs = [np.abs(r[0].astype(np.float64) - t) for r, t in zip(references, direct)]
    assert noise.max_abs[0] == pytest.approx(max(d.max() for d in diffs), rel=1e-9)
    assert noise.mean_abs[0] == pytest.approx(np.mean(np.concatenate([d.ravel() for d in diffs])), rel=1e-9)
    assert 0 < noise.mean_abs[0] <= noise.alpha_max_abs < 1e-4  # float noise: non-zero, below 1e-4
    assert 0 < noise.seconds < 60
    # a bare array per image means "the first output": the same numbers
    bare = measure_float_noise(files, feeds, [r[0] for r in references])
    assert bare.max_abs == noise.max_abs


# ----------------------------------------------------------------------------- (c) the bound
def test_derived_bound_has_a_floor_and_a_factor():
    assert DEFAULT_FACTOR == 4.0
    assert derived_bound(0.0) == 1e-4
    assert derived_bound(1e-6) == 1e-4  # tiny noise: the historic bound
    assert derived_bound(2.5e-5) == 1e-4
    assert derived_bound(6e-4) == pytest.approx(2.4e-3)  # the noisiest model measured: still << 1e-2
    assert derived_bound(1e-4, floor=0, factor=2) == pytest.approx(2e-4)
    assert derived_bound(1e-6, floor=1e-3) == 1e-3
    # a decision flip (PP-Matting-HRNet's arg_max: 1.0) is no float noise: the bound stays far below 1e-2
    assert derived_bound(1.0) == DEFAULT_CEILING == 2.5e-3
    assert derived_bound(1e-3) == DEFAULT_CEILING
    assert derived_bound(1.0, ceiling=1.0) == 1.0
    for bad in (-1e-6, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            derived_bound(bad)
    with pytest.raises(ValueError):
        derived_bound(1e-6, floor=1e-2)  # a floor above the ceiling


# ----------------------------------------------------------------------------- (d) a real error still fails
def test_a_one_percent_weight_error_is_far_above_the_derived_bound(deep):
    tmp, files, params, feeds, references = deep
    noise = measure_float_noise(files, feeds, references)
    bound = derived_bound(noise.alpha_max_abs)
    # the "artefact": the same program with one weight 1% off (the largest of the head, a 1x1 conv)
    def one_percent_off(params):
        (head,) = [n for n, v in params.items() if v.shape == (1, 8, 1, 1)]
        flat = params[head].reshape(-1)
        flat[np.argmax(np.abs(flat))] *= 1.01

    broken, _ = _save(tmp, "broken", _deep, (1, 3, 24, 24), seed=3, tweak=one_percent_off)
    artefact = [_inference(broken, f["x"]) for f in feeds]
    error = max(np.abs(a[0] - r[0]).max() for a, r in zip(artefact, references))
    assert error > 10 * bound, (error, bound)
    # measured against the float64 truth the same way, the broken model's "noise" is no noise
    assert measure_float_noise(files, feeds, artefact).alpha_max_abs > 10 * bound


# ----------------------------------------------------------------------------- (e) bad input
def _one_line_error(call, *names):
    with pytest.raises(EdgematteError) as e:
        call()
    message = str(e.value)
    assert "\n" not in message and all(n in message for n in names), message
    return message


def _lrn(x):
    """A float op with no float64 CPU kernel in paddle 2.6 (local response normalization, legacy op)."""
    x = paddle.nn.Conv2D(3, 3, 1)(x)  # a parameter: a program without any is not a model Paddle loads
    block = x.block
    out = block.create_var(name="lrn_out", dtype="float32", shape=x.shape)
    mid = block.create_var(name="lrn_mid", dtype="float32", shape=x.shape)
    block.append_op(type="lrn", inputs={"X": [x]}, outputs={"Out": [out], "MidOut": [mid]},
                    attrs={"n": 3, "k": 1.0, "alpha": 1e-4, "beta": 0.75, "data_format": "NCHW"})
    return paddle.nn.functional.sigmoid(out)


def test_an_op_without_a_float64_kernel_is_named(tmp_path):
    files, _ = _save(tmp_path, "lrn", _lrn, (1, 3, 4, 4))
    assert _inference(files, _input((1, 3, 4, 4)))[0].shape == (1, 3, 4, 4)  # fine in float32
    _one_line_error(lambda: float64_copy(files, tmp_path / "f64"), "model.pdmodel", "'lrn'", "float64")
    assert not (tmp_path / "f64").exists()  # refused before anything is written


def test_corrupt_or_mismatched_files_are_one_line_errors(tmp_path):
    files, _ = _save(tmp_path, "tiny", _tiny, (1, 3, 4, 4))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.pdmodel").write_bytes(b"\x08\x01garbage" * 7)
    (bad / "model.pdiparams").write_bytes(files.params.read_bytes())
    _one_line_error(lambda: float64_copy(bad, tmp_path / "out"), "model.pdmodel")
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / "model.pdmodel").write_bytes(files.model.read_bytes())
    (truncated / "model.pdiparams").write_bytes(files.params.read_bytes()[:-5])
    _one_line_error(lambda: float64_copy(truncated, tmp_path / "out"), "model.pdiparams", "truncated")
    _one_line_error(lambda: float64_copy(files, files.model.parent), "new folder")
    _one_line_error(lambda: float64_copy(ModelFiles(tmp_path / "no.pdmodel", files.params), tmp_path / "out"),
                    "no.pdmodel", "not found")
    x = _input((1, 3, 4, 4))
    _one_line_error(lambda: measure_float_noise(files, [{"y": x}], [np.zeros((1, 2, 4, 4))]), str(files.model), "'y'")
    _one_line_error(lambda: measure_float_noise(files, [{"x": x[:, :, :3]}], [np.zeros((1, 2, 3, 4))]),
                    str(files.model), "[1, 3, 3, 4]", "[1, 3, 4, 4]")
    _one_line_error(lambda: measure_float_noise(files, [{"x": x}], [np.zeros((1, 2, 5, 5))]), "shape")
    _one_line_error(lambda: measure_float_noise(files, [{"x": x}], []), "1 feeds")
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- a real official program
def test_official_modnet_mobilenetv2_float_noise(tmp_path):
    """PaddleSeg's own MODNet-MobileNetV2 program at 64x64: converts, runs, and its fp32 noise is float noise."""
    from edgematte.converter.freeze import freeze_input_shape
    from tests.official_models import build_official_folder

    start = time.perf_counter()
    frozen = freeze_input_shape(build_official_folder("modnet_mobilenetv2", tmp_path / "src"), tmp_path / "frozen",
                                [1, 3, 64, 64])
    feeds = [{frozen.info.feed_names[0]: _input((1, 3, 64, 64), seed=s)} for s in range(2)]
    references = [_inference(frozen.files, f[frozen.info.feed_names[0]], threads=2)[:1] for f in feeds]
    noise = measure_float_noise(frozen.files, feeds, references)
    assert 0 < noise.alpha_max_abs < 1e-4
    assert derived_bound(noise.alpha_max_abs) == 1e-4
    assert all(0 <= o[0].min() and o[0].max() <= 1 for o in noise.outputs)
    assert time.perf_counter() - start < 60 or os.environ.get("CI")
