"""edgematte.quant.paddle_ptq on a tiny PP-MattingV2 (width 0.25, 256x256, seed-0 formula weights).

The reference is the fp32 model in Paddle Inference (oneDNN with the broken fusion pass removed;
tests/test_converter_program.py checks it against dygraph). Calibration images are the built-in set,
evaluation images the held-out sample photos, both pre-processed by the ``fastdeploy`` profile.
Paddle Lite .nb files run in a child process so a segfault fails a test instead of killing pytest.

Measured here (4 evaluation images, 8 calibration images, avg, per-channel, the three depthwise
convs without bias kept float): simulated INT8 in Paddle Inference MAD 0.0026 (max 0.10); Paddle
Lite x86 int8 .nb MAD 0.0093 (max 0.19).
"""

import re
import signal
import subprocess
import sys

import numpy as np
import pytest

paddle = pytest.importorskip("paddle", reason="the PTQ tests need paddlepaddle (edgematte[convert])")
pytest.importorskip("paddlelite", reason="the Paddle Lite tests need paddlelite 2.13rc0 (edgematte[convert])")
pytest.importorskip("skimage", reason="the built-in calibration set needs scikit-image (edgematte[convert])")

from edgematte.converter.paddle_lite import optimize  # noqa: E402
from edgematte.converter.program import read_checked_model  # noqa: E402
from edgematte.core.errors import EdgematteError  # noqa: E402
from edgematte.core.metrics import matting_numerics  # noqa: E402
from edgematte.quant.calibration import calibration_tensors, split_calibration_evaluation  # noqa: E402
from edgematte.quant.paddle_ptq import (  # noqa: E402
    CONV_OP_TYPES,
    REASON_KEEP_FLOAT,
    REASON_NO_BIAS,
    convs_without_bias,
    quantize_paddle_model,
)
from edgematte.runtime.backends.paddle_inference import PaddleInferenceBackend  # noqa: E402
from edgematte.runtime.profiles import get_profile  # noqa: E402
from edgematte.zoo.export import export_deploy_folder  # noqa: E402
from edgematte.zoo.registry import get_model_spec  # noqa: E402

INPUT_SHAPE = [1, 3, 256, 256]
CALIBRATION_COUNT = 8
EVALUATION_COUNT = 4
# Thresholds, about 2x the measured values in the module docstring.
SIMULATED_MAD_MAX = 0.006
LITE_INT8_MAD_MAX = 0.02
LITE_INT8_MAX_ABS_MAX = 0.4
# Anything quantized moves the alpha by far more than float noise (fp32 .nb vs Paddle: 5e-8).
QUANTIZED_MAD_MIN = 5e-4

# The child process: run an x86 .nb on every tensor of an .npy file, save the outputs.
_RUN_NB_CHILD = r"""
import sys
import numpy as np
from edgematte.runtime.backends.paddle_lite import PaddleLiteBackend
backend = PaddleLiteBackend(sys.argv[1])
np.save(sys.argv[3], np.stack([backend.run(t) for t in np.load(sys.argv[2])]))
"""
# Paddle Lite kernel keys in a .nb: op/alias/target/precision/layout; target 2 = x86, precision 2 = int8.
_X86_INT8_CONV_KERNEL = re.compile(rb"(?:depthwise_)?conv2d/[A-Za-z0-9_]+/2/2/\d(?![0-9/])")


def run_nb_in_child(nb_path, tensors_npy, out_npy):
    done = subprocess.run([sys.executable, "-c", _RUN_NB_CHILD, str(nb_path), str(tensors_npy), str(out_npy)],
                          capture_output=True, text=True, timeout=600)
    return done


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny model, its calibration/evaluation tensors and the fp32 reference alphas."""
    root = tmp_path_factory.mktemp("ptq")
    model_dir = export_deploy_folder("ppmattingv2", root / "fp32", seed=0, width=0.25, input_shape=INPUT_SHAPE)
    split = split_calibration_evaluation(calib_count=CALIBRATION_COUNT, eval_count=EVALUATION_COUNT)
    preprocess = get_profile("fastdeploy", get_model_spec("ppmattingv2").transforms).preprocess
    hw = tuple(INPUT_SHAPE[2:])
    calibration = calibration_tensors(split.calibration, preprocess, hw, names=split.calibration_names)
    evaluation = calibration_tensors(split.evaluation, preprocess, hw, names=split.evaluation_names)
    np.save(root / "evaluation.npy", evaluation)
    reference = PaddleInferenceBackend(model_dir)
    return {
        "root": root,
        "model": model_dir,
        "split": split,
        "calibration": calibration,
        "evaluation": evaluation,
        "evaluation_npy": root / "evaluation.npy",
        "reference": [reference.run(t) for t in evaluation],
    }


@pytest.fixture(scope="module")
def quantized(tiny):
    return quantize_paddle_model(tiny["model"], tiny["root"] / "int8", tiny["calibration"])


def numerics_against_reference(tiny, outputs):
    return matting_numerics(list(zip(outputs, tiny["reference"])))


# ----------------------------------------------------------------------------- finding convs without bias
class BiasCases(paddle.nn.Layer):
    """One conv per case of :func:`convs_without_bias`; ``NO_BIAS`` names those without a bias in Lite."""

    NO_BIAS = ("conv_with_bias", "conv_residual", "conv_shared", "depthwise_residual", "last")

    def __init__(self):
        super().__init__()
        nn = paddle.nn
        self.conv_bn = nn.Conv2D(3, 4, 3, padding=1, bias_attr=False)  # + BatchNorm: bias
        self.bn = nn.BatchNorm2D(4)
        # paddle 2.6 exports its bias as reshape2(b) -> elementwise_add, which opt does not fuse
        self.conv_with_bias = nn.Conv2D(4, 4, 1)
        self.conv_residual = nn.Conv2D(4, 4, 3, padding=1, bias_attr=False)  # + activation: no bias
        self.conv_shared = nn.Conv2D(4, 4, 1, bias_attr=False)  # feeds a BatchNorm AND an add: no fusion
        self.bn_shared = nn.BatchNorm2D(4)
        self.depthwise_bn = nn.Conv2D(4, 4, 3, padding=1, groups=4, bias_attr=False)  # depthwise + BN: bias
        self.bn_depthwise = nn.BatchNorm2D(4)
        self.depthwise_residual = nn.Conv2D(4, 4, 3, padding=1, groups=4, bias_attr=False)  # no bias
        self.last = nn.Conv2D(4, 1, 1, bias_attr=False)  # -> sigmoid: no bias

    def forward(self, img):
        x = paddle.nn.functional.relu(self.bn(self.conv_bn(img)))
        x = self.conv_with_bias(x)
        x = self.conv_residual(x) + x
        y = self.conv_shared(x)
        x = self.bn_shared(y) + y
        x = self.bn_depthwise(self.depthwise_bn(x))
        x = self.depthwise_residual(x) + x
        return paddle.nn.functional.sigmoid(self.last(x))


def test_convs_without_bias_follow_the_dataflow(tmp_path):
    net = BiasCases()
    net.eval()
    paddle.jit.save(net, str(tmp_path / "model"),
                    input_spec=[paddle.static.InputSpec([1, 3, 16, 16], "float32", "img")])
    found = convs_without_bias(tmp_path)
    assert {c.weight for c in found} == {getattr(net, name).weight.name for name in BiasCases.NO_BIAS}
    depthwise = convs_without_bias(tmp_path, depthwise_only=True)
    assert [(c.weight, c.op_type, c.depthwise) for c in depthwise] == \
        [(net.depthwise_residual.weight.name, "depthwise_conv2d", True)]


def test_pp_mattingv2_has_six_convs_without_bias_three_depthwise(tiny):
    """docs/toolchain.md, Paddle Lite: the six convs of PP-MattingV2 with no BatchNorm and no bias."""
    found = convs_without_bias(tiny["model"])
    assert sorted(c.op_type for c in found) == ["conv2d"] * 3 + ["depthwise_conv2d"] * 3
    assert [c.weight for c in convs_without_bias(tiny["model"], depthwise_only=True)] == \
        [c.weight for c in found if c.op_type == "depthwise_conv2d"]


class DepthwiseWithoutBias(paddle.nn.Layer):
    """Conv+BN, a depthwise conv without bias (residual), a 1x1 conv without bias: the Lite trap, small."""

    def __init__(self):
        super().__init__()
        nn = paddle.nn
        self.stem = nn.Conv2D(3, 8, 3, padding=1, bias_attr=False)
        self.bn = nn.BatchNorm2D(8)
        self.depthwise = nn.Conv2D(8, 8, 3, padding=1, groups=8, bias_attr=False)
        self.head = nn.Conv2D(8, 1, 1, bias_attr=False)

    def forward(self, img):
        x = paddle.nn.functional.relu(self.bn(self.stem(img)))
        x = self.depthwise(x) + x
        return paddle.nn.functional.sigmoid(self.head(x))


def test_lite_x86_int8_segfaults_on_a_depthwise_conv_without_bias(tmp_path):
    """The trap behind the workaround, on a three-conv net. If the second run stops crashing, Paddle
    Lite fixed it and the workaround can go."""
    net = DepthwiseWithoutBias()
    net.eval()
    paddle.jit.save(net, str(tmp_path / "fp32" / "model"),
                    input_spec=[paddle.static.InputSpec([1, 3, 32, 32], "float32", "img")])
    rng = np.random.RandomState(0)
    calibration = rng.normal(0, 1, (8, 1, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "inputs.npy", calibration[:2])
    status = {}
    for workaround in (True, False):
        out = tmp_path / f"int8_{workaround}"
        info = quantize_paddle_model(tmp_path / "fp32", out, calibration, keep_float_depthwise_without_bias=workaround)
        # the 1x1 conv without bias is quantized either way; only the depthwise one is held back
        assert [(op.op_type, op.quantized) for op in info.ops] == \
            [("conv2d", True), ("depthwise_conv2d", not workaround), ("conv2d", True)]
        optimize(out, out.with_suffix(".nb"), "x86")
        status[workaround] = run_nb_in_child(out.with_suffix(".nb"), tmp_path / "inputs.npy", tmp_path / "out.npy")
    assert status[True].returncode == 0, status[True].stderr[-2000:]
    assert status[False].returncode == -signal.SIGSEGV


# ----------------------------------------------------------------------------- the quantized model
def test_quantized_model_records_what_is_int8(tiny, quantized):
    files, info = read_checked_model(tiny["root"] / "int8")
    assert files.model.name == "model.pdmodel" and (tiny["root"] / "int8" / "deploy.yaml").is_file()
    assert info.op_counts.get("fake_channel_wise_dequantize_max_abs", 0) > 0

    _, source = read_checked_model(tiny["model"])
    convs = sum(source.op_counts.get(t, 0) for t in CONV_OP_TYPES)
    no_bias = {c.weight for c in convs_without_bias(tiny["model"], depthwise_only=True)}
    float_ops = quantized.float_ops
    assert {op.weight for op in float_ops} == no_bias
    assert all(op.reason == REASON_NO_BIAS for op in float_ops)
    # every other conv and the six attention matmuls are quantized
    quantized_convs = [op for op in quantized.quantized_ops if op.op_type in CONV_OP_TYPES]
    assert len(quantized_convs) == convs - len(no_bias)
    assert sum(op.op_type == "matmul_v2" for op in quantized.quantized_ops) == source.op_counts["matmul_v2"] == 6
    record = quantized.as_dict()
    assert record["calibration_count"] == CALIBRATION_COUNT and record["weights"] == "per-channel"
    assert record["float_count"] == len(no_bias)


def test_simulated_int8_in_paddle_inference_is_close_to_fp32(tiny, quantized):
    simulated = PaddleInferenceBackend(tiny["root"] / "int8")
    numbers = numerics_against_reference(tiny, [simulated.run(t) for t in tiny["evaluation"]])
    assert numbers["eval_images"] == EVALUATION_COUNT
    assert QUANTIZED_MAD_MIN < numbers["mad"] < SIMULATED_MAD_MAX, numbers


def test_lite_x86_int8_nb_runs_and_is_close_to_fp32(tiny, quantized):
    nb = tiny["root"] / "int8_x86.nb"
    optimize(tiny["root"] / "int8", nb, "x86")
    # Lite really runs the quantized convs in int8: one int8 kernel per quantized conv
    int8_convs = len(_X86_INT8_CONV_KERNEL.findall(nb.read_bytes()))
    assert int8_convs == sum(op.op_type in CONV_OP_TYPES for op in quantized.quantized_ops)

    done = run_nb_in_child(nb, tiny["evaluation_npy"], tiny["root"] / "int8_x86.out.npy")
    assert done.returncode == 0, f"the int8 .nb crashed (status {done.returncode}): {done.stderr[-2000:]}"
    numbers = numerics_against_reference(tiny, list(np.load(tiny["root"] / "int8_x86.out.npy")))
    assert QUANTIZED_MAD_MIN < numbers["mad"] < LITE_INT8_MAD_MAX, numbers
    assert numbers["max_abs"] < LITE_INT8_MAX_ABS_MAX, numbers


def test_onnx_format_with_a_layer_kept_float(tiny, quantized):
    """quantize_linear/dequantize_linear with int8 weights; a user-chosen conv stays float."""
    keep = quantized.quantized_ops[0].weight  # the first conv
    out = tiny["root"] / "int8_onnx"
    info = quantize_paddle_model(tiny["model"], out, tiny["calibration"], onnx_format=True, skip_tensors=[keep])
    # the saved declarations match the stored tensors (int8 weights, [1] scales): our strict reader agrees
    _, written = read_checked_model(out)
    assert written.variables[keep].dtype == "float32"
    assert written.variables[quantized.quantized_ops[1].weight].dtype == "int8"
    assert [op.reason for op in info.float_ops if op.weight == keep] == [REASON_KEEP_FLOAT]
    assert len(info.quantized_ops) == len(quantized.quantized_ops) - 1
    simulated = PaddleInferenceBackend(out)
    numbers = numerics_against_reference(tiny, [simulated.run(t) for t in tiny["evaluation"]])
    assert QUANTIZED_MAD_MIN < numbers["mad"] < SIMULATED_MAD_MAX, numbers


# ----------------------------------------------------------------------------- refusals
def test_wrong_calibration_shape_is_refused_before_quantizing(tiny, tmp_path):
    wrong = np.zeros((CALIBRATION_COUNT, 1, 3, 512, 512), np.float32)
    with pytest.raises(EdgematteError, match=r"tensor 0 of 8 has shape \[1, 3, 512, 512\]; the model input is "
                                             r"\[1, 3, 256, 256\]"):
        quantize_paddle_model(tiny["model"], tmp_path / "out", wrong)
    assert not (tmp_path / "out").exists()


def test_bad_options_are_refused(tiny, tmp_path):
    with pytest.raises(EdgematteError, match="--algo median: choose one of avg, abs_max, hist, mse, KL"):
        quantize_paddle_model(tiny["model"], tmp_path / "out", tiny["calibration"], algo="median")
    with pytest.raises(EdgematteError, match="--keep-float no_such_layer: no such tensor"):
        quantize_paddle_model(tiny["model"], tmp_path / "out", tiny["calibration"], skip_tensors=["no_such_layer"])
    with pytest.raises(EdgematteError, match="must go to a new folder"):
        quantize_paddle_model(tiny["model"], tiny["model"], tiny["calibration"])
    assert not (tmp_path / "out").exists()
