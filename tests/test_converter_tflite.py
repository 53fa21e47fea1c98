"""ONNX -> TFLite with onnx2tf (traps contained), the LiteRT backend, and int8 quantization helpers.

The network under test is a tiny matting-shaped ONNX graph built here with onnx.helper: conv + BN +
relu6 (Clip), a single-head attention block (Reshape, Transpose, MatMul, Softmax), a 1x1 conv,
sigmoid and a bilinear 4x resize; input ``img`` [1, 3, 64, 96], output ``alpha`` [1, 1, 64, 96].
onnx2tf takes seconds per run, so each layout is converted once per module.

Layouts seen with onnx2tf 1.29.24: ``nhwc`` gives input [1, 64, 96, 3] and output [1, 64, 96, 1];
``nchw`` (``-k img``) gives input [1, 3, 64, 96] and still output [1, 64, 96, 1].
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgematte.converter import tflite as conv
from edgematte.converter.tflite import convert_to_tflite, tensor_layout
from edgematte.core.errors import EdgematteError
from edgematte.core.fsutil import sha256_file
from edgematte.core.tools import last_error_line
from edgematte.quant.tflite import quantize_int8
from edgematte.runtime.backends import litert
from edgematte.runtime.backends.litert import LiteRTBackend, dequantize, quantize
from edgematte.runtime.model_io import layout_to_onnx, onnx_to_layout

H, W = 64, 96
FP32_TOLERANCE = 1e-5
FP16_TOLERANCE = 5e-3
# A refused proxy: any HTTP(S) request made by the onnx2tf subprocess fails at once.
NO_NETWORK = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "",
              "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "no_proxy": ""}


# ---------------------------------------------------------------------------------------------
# Tiny models


def build_tiny_matting_onnx(path, h=H, w=W, seed=0):
    """The tiny matting-shaped graph described in the module docstring (opset 11, float32)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    initializers, nodes = [], []

    def const(name, value):
        initializers.append(numpy_helper.from_array(np.asarray(value), name))

    def normal(scale, shape):
        return rng.normal(0.0, scale, shape).astype(np.float32)

    c = 8
    const("w1", normal(0.3, (c, 3, 3, 3)))
    const("b1", normal(0.1, c))
    nodes.append(helper.make_node("Conv", ["img", "w1", "b1"], ["c1"], kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1]))
    const("bn_scale", rng.uniform(0.5, 1.5, c).astype(np.float32))
    const("bn_bias", normal(0.1, c))
    const("bn_mean", normal(0.1, c))
    const("bn_var", rng.uniform(0.5, 1.5, c).astype(np.float32))
    nodes.append(helper.make_node("BatchNormalization", ["c1", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["bn1"],
                                  epsilon=1e-5))
    const("zero", np.array(0.0, np.float32))
    const("six", np.array(6.0, np.float32))
    nodes.append(helper.make_node("Clip", ["bn1", "zero", "six"], ["relu6"]))
    const("w2", normal(0.3, (c, c, 3, 3)))
    nodes.append(helper.make_node("Conv", ["relu6", "w2"], ["c2"], kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1]))
    gh, gw = h // 4, w // 4
    const("tokens_shape", np.array([1, c, gh * gw], np.int64))
    nodes.append(helper.make_node("Reshape", ["c2", "tokens_shape"], ["tokens_cf"]))
    nodes.append(helper.make_node("Transpose", ["tokens_cf"], ["tokens"], perm=[0, 2, 1]))
    for name in ("q", "k", "v"):
        const(f"W{name}", normal(0.3, (c, c)))
        nodes.append(helper.make_node("MatMul", ["tokens", f"W{name}"], [name]))
    nodes.append(helper.make_node("Transpose", ["k"], ["k_t"], perm=[0, 2, 1]))
    nodes.append(helper.make_node("MatMul", ["q", "k_t"], ["scores"]))
    nodes.append(helper.make_node("Softmax", ["scores"], ["attention"], axis=-1))
    nodes.append(helper.make_node("MatMul", ["attention", "v"], ["context"]))
    nodes.append(helper.make_node("Transpose", ["context"], ["context_cf"], perm=[0, 2, 1]))
    const("map_shape", np.array([1, c, gh, gw], np.int64))
    nodes.append(helper.make_node("Reshape", ["context_cf", "map_shape"], ["context_map"]))
    nodes.append(helper.make_node("Add", ["context_map", "c2"], ["features"]))
    const("w3", normal(0.3, (1, c, 1, 1)))
    nodes.append(helper.make_node("Conv", ["features", "w3"], ["logit"], kernel_shape=[1, 1]))
    nodes.append(helper.make_node("Sigmoid", ["logit"], ["alpha_small"]))
    const("roi", np.array([], np.float32))
    const("scales", np.array([1, 1, 4, 4], np.float32))
    nodes.append(helper.make_node("Resize", ["alpha_small", "roi", "scales"], ["alpha"], mode="linear",
                                  coordinate_transformation_mode="half_pixel"))
    graph = helper.make_graph(
        nodes, "tiny_matting", [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("alpha", TensorProto.FLOAT, [1, 1, h, w])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def build_custom_op_onnx(path):
    """A valid ONNX file with an op onnx2tf does not know (``com.example.FancyMatte``)."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("FancyMatte", ["img"], ["alpha"], domain="com.example")
    graph = helper.make_graph([node], "custom",
                              [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("alpha", TensorProto.FLOAT, [1, 1, 16, 16])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11), helper.make_opsetid("com.example", 1)])
    model.ir_version = 7
    onnx.save(model, str(path))
    return path


def onnxruntime_alpha(onnx_path, x_nchw):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return session.run(None, {"img": x_nchw})[0]


def sample_inputs():
    """Two float32 NCHW inputs in 0..1: seeded noise and a real photo (scikit-image's astronaut)."""
    import cv2
    from skimage import data

    noise = np.random.default_rng(7).random((1, 3, H, W), dtype=np.float32)
    photo = cv2.resize(data.astronaut(), (W, H), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return {"noise": noise, "photo": np.ascontiguousarray(photo.transpose(2, 0, 1)[None])}


# ---------------------------------------------------------------------------------------------
# One conversion per layout, in an empty cwd, with the network refused


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    return build_tiny_matting_onnx(tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def _convert_in_empty_cwd(onnx_path, base, layout, **kwargs):
    cwd = base / "cwd"
    cwd.mkdir()
    before = sha256_file(onnx_path)
    saved_env = {k: os.environ.get(k) for k in NO_NETWORK}
    old_cwd = os.getcwd()
    os.environ.update(NO_NETWORK)
    os.chdir(cwd)
    try:
        info = convert_to_tflite(onnx_path, base / "out", layout=layout, **kwargs)
    finally:
        os.chdir(old_cwd)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {"info": info, "sha_before": before, "sha_after": sha256_file(onnx_path),
            "cwd_after": sorted(p.name for p in cwd.iterdir()), "out": base / "out"}


@pytest.fixture(scope="module")
def conversions(tiny_onnx, tmp_path_factory):
    """Both layouts converted once; the NHWC one keeps its SavedModel for the int8 tests."""
    results = {}
    for layout in ("nhwc", "nchw"):
        base = tmp_path_factory.mktemp(f"convert_{layout}")
        kwargs = {"saved_model_dir": base / "saved_model"} if layout == "nhwc" else {}
        results[layout] = _convert_in_empty_cwd(tiny_onnx, base, layout, **kwargs)
    return results


@pytest.fixture(params=["nhwc", "nchw"])
def converted(request, conversions):
    return conversions[request.param]


def test_tflite_matches_onnxruntime(converted, tiny_onnx):
    info = converted["info"]
    expected_input = {"nhwc": (1, H, W, 3), "nchw": (1, 3, H, W)}[info["layout"]]
    report = {}
    for precision, tolerance in (("fp32", FP32_TOLERANCE), ("fp16", FP16_TOLERANCE)):
        entry = info["files"][precision]
        backend = LiteRTBackend(entry["path"], threads=2)
        (spec_in,), (spec_out,) = backend.inputs, backend.outputs
        assert (spec_in.name, spec_in.shape, spec_in.dtype) == ("img", expected_input, "float32")
        # onnx2tf writes the 4-D output channels-last in both layouts
        assert (spec_out.name, spec_out.shape, spec_out.dtype) == ("alpha", (1, H, W, 1), "float32")
        assert entry["inputs"][0]["layout"] == info["layout"]
        assert entry["outputs"][0]["layout"] == "nhwc"
        for label, x in sample_inputs().items():
            reference = onnxruntime_alpha(tiny_onnx, x)
            alpha = layout_to_onnx(backend.run(onnx_to_layout(x, info["layout"])), "nhwc")
            assert alpha.shape == reference.shape == (1, 1, H, W)
            assert 0.0 < reference.std()  # the comparison is not between two constants
            error = float(np.abs(alpha - reference).max())
            report[f"{precision}/{label}"] = error
            assert error <= tolerance, (precision, label, error)
    print(f"{info['layout']}: max abs vs onnxruntime {report}, conversion {info['wall_time_s']} s")


def test_conversion_touches_nothing_else(converted):
    assert converted["sha_before"] == converted["sha_after"]  # onnx2tf got a copy
    assert converted["cwd_after"] == []  # it ran in its own temporary directory
    out_files = sorted(p.name for p in converted["out"].iterdir())
    assert out_files == ["model_fp16.tflite", "model_fp32.tflite", "onnx2tf.log"]


def test_conversion_info(converted, tiny_onnx):
    info = converted["info"]
    assert info["onnx"] == str(tiny_onnx) and info["onnx_sha256"] == converted["sha_before"]
    assert info["onnx2tf_version"] == "1.29.24"
    assert info["tensorflow_version"].startswith("2.")
    assert 0 < info["wall_time_s"] < 600
    for precision, name in (("fp32", "model_fp32.tflite"), ("fp16", "model_fp16.tflite")):
        entry = info["files"][precision]
        path = Path(entry["path"])
        assert path == converted["out"] / name and entry["precision"] == precision
        assert entry["bytes"] == path.stat().st_size and entry["sha256"] == sha256_file(path)
        assert entry["inputs"][0]["onnx_shape"] == [1, 3, H, W]
        assert entry["outputs"][0]["onnx_shape"] == [1, 1, H, W]
    # fp16 stores half-size weights: smaller, though the tiny graph's structure dominates
    assert info["files"]["fp16"]["bytes"] < info["files"]["fp32"]["bytes"]
    log = Path(info["log_path"]).read_text()
    assert "Float32 tflite output complete" in log and "\x1b[" not in log
    json.dumps(info)  # fit for a manifest


def test_saved_model_kept_for_int8(converted):
    saved_model = converted["info"]["saved_model_dir"]
    if converted["info"]["layout"] == "nchw":
        assert saved_model is None
        return
    assert (Path(saved_model) / "saved_model.pb").is_file()
    assert not list(Path(saved_model).glob("*.tflite"))


# ---------------------------------------------------------------------------------------------
# Failures


def test_truncated_onnx_one_line_error_and_no_files(tiny_onnx, tmp_path):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(tiny_onnx.read_bytes()[:3000])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("previous artefact")
    with pytest.raises(EdgematteError) as caught:
        convert_to_tflite(truncated, out_dir)
    message = str(caught.value)
    assert "\n" not in message and str(truncated) in message and "not a valid ONNX model" in message
    assert sorted(p.name for p in out_dir.iterdir()) == ["keep.txt"]


def test_dynamic_input_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Sigmoid", ["img"], ["alpha"])], "dyn",
                              [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, "h", "w"])],
                              [helper.make_tensor_value_info("alpha", TensorProto.FLOAT, [1, 3, "h", "w"])])
    path = tmp_path / "dynamic.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(path))
    with pytest.raises(EdgematteError, match=r"dynamic shape \[1, 3, -1, -1\]"):
        convert_to_tflite(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_onnx2tf_failure_reported_in_one_line(tmp_path):
    path = build_custom_op_onnx(tmp_path / "custom.onnx")
    log_path = tmp_path / "logs" / "failed.log"
    with pytest.raises(EdgematteError) as caught:
        convert_to_tflite(path, tmp_path / "out", log_path=log_path)
    message = str(caught.value)
    assert "\n" not in message
    assert "FancyMatte OP is not yet implemented" in message and str(log_path) in message
    assert "Traceback" in log_path.read_text()
    assert not (tmp_path / "out").exists()


def test_bad_layout_refused(tiny_onnx, tmp_path):
    with pytest.raises(EdgematteError, match="layout must be one of nhwc, nchw"):
        convert_to_tflite(tiny_onnx, tmp_path, layout="chwn")


def test_last_error_line_picks_the_cause():
    log = textwrap.dedent("""\
        E0000 00:00:1795554721.383241    7685 cuda_dnn.cc:8579] Unable to register cuDNN factory
        \x1b[32mINFO:\x1b[0m input_op_name: img shape: [1, 3, 16, 16] dtype: float32
        \x1b[31mERROR:\x1b[0m The trace log is below.
        Traceback (most recent call last):
          File "onnx2tf.py", line 1, in convert
        ValueError: Depth of input (8) is not a multiple of input depth of filter (256)
        W0000 00:00:1795554754.604906    7815 tf_tfl_flatbuffer_helpers.cc:365] Ignored output_format.
        """)
    assert last_error_line(log) == "ValueError: Depth of input (8) is not a multiple of input depth of filter (256)"
    assert last_error_line("ERROR: X OP is not yet implemented.\nKeyError: 'x'\n") == \
        "ERROR: X OP is not yet implemented. / KeyError: 'x'"
    assert last_error_line("just\nsome output\n") == "some output"
    assert len(last_error_line("RuntimeError: " + "x" * 1000)) == 300


# ---------------------------------------------------------------------------------------------
# Layout bookkeeping


def test_tensor_layout_by_shape_and_by_values():
    assert tensor_layout([1, 1, 64, 96], [1, 64, 96, 1]) == "nhwc"
    assert tensor_layout([1, 1, 64, 96], [1, 1, 64, 96]) == "nchw"
    assert tensor_layout([1, 8, 100], [1, 100, 8]) == "nwc"
    assert tensor_layout([1, 2, 3, 4, 5], [1, 3, 4, 5, 2]) == "ndhwc"
    assert tensor_layout([5, 7], [5, 7]) == "as_onnx"
    assert tensor_layout([1, 3, 64, 96], [1, 96, 64, 3]) == "unknown"
    assert tensor_layout([1, 8, 8, 8], [1, 8, 8, 8]) == "ambiguous"
    x = np.random.default_rng(0).random((1, 8, 8, 8))
    assert tensor_layout(x.shape, x.shape, x, x) == "nchw"
    assert tensor_layout(x.shape, x.shape, x, x.transpose(0, 2, 3, 1)) == "nhwc"


def test_to_and_from_layout_round_trip():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    nhwc = onnx_to_layout(x, "nhwc")
    assert nhwc.shape == (2, 4, 5, 3) and nhwc[1, 2, 3, 0] == x[1, 0, 2, 3]
    assert np.array_equal(layout_to_onnx(nhwc, "nhwc"), x)
    assert onnx_to_layout(x, "nchw") is x and layout_to_onnx(x, "nchw") is x


def test_synthetic_sample_images_fit_onnx2tf():
    images = conv.synthetic_sample_images()
    assert images.shape == (20, 128, 128, 3) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.std() > 0.1
    assert np.array_equal(images, conv.synthetic_sample_images())  # deterministic


# ---------------------------------------------------------------------------------------------
# The LiteRT backend


def test_backend_returns_owned_copies_and_checks_inputs(converted):
    info = converted["info"]
    backend = LiteRTBackend(info["files"]["fp32"]["path"], threads=1)
    assert backend.name == "litert" and backend.runtime_module == "ai_edge_litert.interpreter"
    assert backend.runtime_version.startswith("2.")
    shape = backend.inputs[0].shape
    rng = np.random.default_rng(3)
    x1, x2 = rng.random(shape, dtype=np.float32), rng.random(shape, dtype=np.float32)
    first = backend.run(x1)
    kept = first.copy()
    second = backend.run(x2)
    assert np.array_equal(first, kept) and not np.shares_memory(first, second)
    assert np.abs(first - second).max() > 1e-3  # the inputs really differ in effect
    assert np.array_equal(backend.run(x1), kept)  # buffers reused, same answer
    plain = LiteRTBackend(info["files"]["fp32"]["path"], threads=1, use_xnnpack=False).run(x1)
    assert np.abs(plain - kept).max() <= 1e-6
    with pytest.raises(EdgematteError, match=r"must be float32 of shape"):
        backend.run(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="must be float32, got float64"):
        backend.run(x1.astype(np.float64))


def test_backend_load_errors(tmp_path):
    with pytest.raises(EdgematteError, match="TFLite model not found"):
        LiteRTBackend(tmp_path / "missing.tflite")
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"this is not a flatbuffer" * 10)
    with pytest.raises(EdgematteError, match="not a loadable TFLite model"):
        LiteRTBackend(garbage)


def test_backend_without_any_runtime(monkeypatch):
    import importlib

    real_import = importlib.import_module

    def no_tflite(name, *args, **kwargs):
        if name in litert._INTERPRETER_MODULES:
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", no_tflite)
    with pytest.raises(EdgematteError, match="pip install ai-edge-litert"):
        litert._import_interpreter()


# ---------------------------------------------------------------------------------------------
# Quantization: our quantize/dequantize against LiteRT's own QUANTIZE and DEQUANTIZE ops

_QUANT_OP_MODELS = textwrap.dedent("""\
    import sys
    import numpy as np
    import tensorflow as tf

    class Flatten(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 512], tf.float32)])
        def __call__(self, x):
            return tf.reshape(x, [16, 32])  # exact in int8: the tensor keeps its (scale, zero_point)

    module = Flatten()
    def representative():
        for _ in range(4):
            yield [np.linspace(-1.3, 2.1, 512, dtype=np.float32)[None]]
    for name, io in (("quantize", (tf.float32, tf.int8)), ("dequantize", (tf.int8, tf.float32))):
        converter = tf.lite.TFLiteConverter.from_concrete_functions([module.__call__.get_concrete_function()], module)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type, converter.inference_output_type = io
        open(f"{sys.argv[1]}/{name}.tflite", "wb").write(converter.convert())
    """)


@pytest.fixture(scope="module")
def quant_op_models(tmp_path_factory):
    """``quantize.tflite``: float in -> QUANTIZE -> RESHAPE -> int8 out; ``dequantize.tflite``: int8 in -> float out."""
    folder = tmp_path_factory.mktemp("quant_ops")
    done = subprocess.run([sys.executable, "-c", _QUANT_OP_MODELS, str(folder)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder


@pytest.mark.parametrize("use_xnnpack", [True, False])
def test_quantize_is_bit_exact_with_litert(quant_op_models, use_xnnpack):
    backend = LiteRTBackend(quant_op_models / "quantize.tflite", threads=1, use_xnnpack=use_xnnpack)
    (spec_in,), (spec_out,) = backend.inputs, backend.outputs
    assert spec_in.dtype == "float32" and spec_out.dtype == "int8" and spec_out.quant is not None
    scale, zero_point = spec_out.quant
    # values next to every rounding tie (k + 0.5 steps), beyond both ends, and random values
    k = np.arange(-128, 128)
    near_ties = ((k + 0.5 - zero_point) * np.float64(scale)).astype(np.float32)
    beyond = np.array([-1e3, -5.0, 5.0, 1e3], np.float32)
    noise = np.random.default_rng(0).uniform(-1.5, 2.5, 512 - len(k) - len(beyond)).astype(np.float32)
    x = np.concatenate([near_ties, beyond, noise])[None]
    expected = backend.run(x).reshape(1, -1)
    ours = quantize(x, spec_out)
    assert ours.dtype == np.int8
    assert np.array_equal(ours, expected)
    # the ties are real: half-away-from-zero rounding of x / scale would disagree on some of them
    away = np.clip(np.trunc(x / np.float32(scale) + np.copysign(0.5, x)) + zero_point, -128, 127)
    assert (away != expected).sum() > 0


def test_dequantize_is_exact_with_litert(quant_op_models):
    backend = LiteRTBackend(quant_op_models / "dequantize.tflite", threads=1)
    (spec_in,), (spec_out,) = backend.inputs, backend.outputs
    assert spec_in.dtype == "int8" and spec_out.dtype == "float32"
    q = np.resize(np.arange(-128, 128, dtype=np.int8), (1, 512))
    ours = dequantize(q, spec_in)
    assert ours.dtype == np.float32
    assert np.array_equal(ours.reshape(16, 32), backend.run(q))


def test_quantize_needs_parameters():
    with pytest.raises(ValueError, match="no quantization parameters"):
        quantize(np.zeros(3, np.float32), litert.TensorSpec("x", (3,), "float32"))


# ---------------------------------------------------------------------------------------------
# Full-integer quantization of the tiny net


def test_quantize_int8_float_and_int8_io(conversions, tiny_onnx, tmp_path):
    info = conversions["nhwc"]["info"]
    rng = np.random.default_rng(11)
    calibration = [rng.random((1, H, W, 3), dtype=np.float32) for _ in range(8)]
    float_io = quantize_int8(info["saved_model_dir"], calibration, tmp_path / "int8_float_io.tflite")
    int8_io = quantize_int8(info["saved_model_dir"], calibration, tmp_path / "int8_int8_io.tflite", io_dtype="int8")
    float_backend, int8_backend = LiteRTBackend(float_io), LiteRTBackend(int8_io)
    assert float_backend.inputs[0].dtype == "float32" and float_backend.inputs[0].quant is None
    spec_in, spec_out = int8_backend.inputs[0], int8_backend.outputs[0]
    assert spec_in.dtype == spec_out.dtype == "int8" and spec_in.quant and spec_out.quant
    errors = {}
    for label, x in sample_inputs().items():
        reference = onnxruntime_alpha(tiny_onnx, x)
        x_nhwc = onnx_to_layout(x, "nhwc")
        alpha_float_io = float_backend.run(x_nhwc)
        alpha_int8_io = dequantize(int8_backend.run(quantize(x_nhwc, spec_in)), spec_out)
        # our quantize/dequantize around the int8 model reproduce the float-I/O model's own ops exactly
        assert np.array_equal(alpha_int8_io, alpha_float_io)
        diff = np.abs(layout_to_onnx(alpha_float_io, "nhwc") - reference)
        errors[label] = (float(diff.max()), float(diff.mean()))
        assert diff.max() <= 0.1 and diff.mean() <= 0.04, (label, errors[label])
    print(f"int8 vs onnxruntime (max, mean): {errors}")


def test_quantize_int8_wrong_calibration_layout(conversions, tmp_path):
    info = conversions["nhwc"]["info"]
    with pytest.raises(EdgematteError) as caught:
        quantize_int8(info["saved_model_dir"], [np.zeros((1, 3, H, W), np.float32)], tmp_path / "x.tflite",
                      log_path=tmp_path / "q.log")
    message = str(caught.value)
    assert "\n" not in message and "calibration batches have shape [1, 3, 64, 96]" in message
    assert "[1, 64, 96, 3]" in message
    assert not (tmp_path / "x.tflite").exists()
