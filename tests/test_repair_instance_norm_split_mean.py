"""The onnx2tf_input repair ``instance_norm_split_mean``: InstanceNormalization with its mean and variance taken over
W, then H (AveragePools), in the copy onnx2tf reads, because LiteRT's MEAN adds a whole plane in one float32 sum.

The misread is reproduced on one InstanceNormalization over 256x256 planes whose values sit near 1.3 with small
noise (the flat regions of an upscaled photo: LiteRT's running sum then rounds one way again and again). The real
case (MODNet-MobileNetV2 at 512x512: TFLite alpha 1.03e-3 from float64 before, over the model's bound) is
measured in docs/toolchain.md, trap 18: one conversion takes minutes.
"""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgematte.converter.repairs.base import RepairContext  # noqa: E402
from edgematte.converter.repairs.onnx2tf_input import instance_norm_split_mean  # noqa: E402
from edgematte.converter.tflite import read_onnx_interface, repair_bridge  # noqa: E402
from tests.onnx2tf_runs import plain_and_repaired  # noqa: E402

helper, numpy_helper = onnx.helper, onnx.numpy_helper
EPSILON = 1e-5


def instance_norm_model(channels=8, height=256, width=256, constant_affine=True):
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.5, 2.0, channels).astype(np.float32)
    bias = rng.uniform(-0.5, 0.5, channels).astype(np.float32)
    inputs = [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, channels, height, width])]
    initializers = [numpy_helper.from_array(bias, "bias")]
    if constant_affine:
        initializers.append(numpy_helper.from_array(scale, "scale"))
    else:
        inputs.append(helper.make_tensor_value_info("scale", onnx.TensorProto.FLOAT, [channels]))
    node = helper.make_node("InstanceNormalization", ["x", "scale", "bias"], ["y"], epsilon=EPSILON, name="norm")
    model = helper.make_model(
        helper.make_graph([node], "g", inputs,
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, channels, height, width])],
                          initializers),
        opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model, scale, bias


def float64_instance_norm(x, scale, bias):
    x = x.astype(np.float64)
    mean = x.mean(axis=(2, 3), keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=(2, 3), keepdims=True)
    return (x - mean) / np.sqrt(variance + EPSILON) * scale[None, :, None, None] + bias[None, :, None, None]


def flat_input(channels=8, size=256):
    """Values near 1.3 with noise of 0.01: where a running float32 sum of the plane goes wrong."""
    return (1.3 + np.random.default_rng(1).normal(0, 0.01, (1, channels, size, size))).astype(np.float32)


def test_the_split_is_the_same_function_within_rounding(tmp_path):
    import onnxruntime

    model, scale, bias = instance_norm_model(channels=3, height=24, width=40)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    data, inputs, _ = read_onnx_interface(path)

    repaired, applied, check = repair_bridge(data, inputs, where="test")

    summary = {a["name"]: (a["matched"], a["changed"], a["preserves_outputs"]) for a in applied}
    assert summary["instance_norm_split_mean"] == (1, 1, False)
    record = next(a for a in applied if a["name"] == "instance_norm_split_mean")["records"][0]
    assert (record["onnx_node"], record["plane"], record["action"]) == ("norm", [24, 40], "rewritten")
    assert 0 < check["reassociated_max_abs"] < 1e-5 and check["max_abs"] == 0.0
    graph = onnx.load_from_string(repaired).graph
    pools = [n for n in graph.node if n.op_type == "AveragePool"]
    kernels = [[list(a.ints) for a in n.attribute if a.name == "kernel_shape"][0] for n in pools]
    assert kernels == [[1, 40], [24, 1], [1, 40], [24, 1]]  # mean and variance, W then H
    assert "InstanceNormalization" not in [n.op_type for n in graph.node]
    assert [o.name for o in graph.output] == ["y"]
    assert {t.name for t in graph.initializer}.isdisjoint({"scale", "bias"})  # only their [1, C, 1, 1] copies
    # on a photo-like input, against float64: as close as ONNX Runtime's own InstanceNormalization
    x = np.random.default_rng(2).normal(0.4, 0.8, (1, 3, 24, 40)).astype(np.float32)
    exact = float64_instance_norm(x, scale, bias)
    original, split = (onnxruntime.InferenceSession(m).run(None, {"x": x})[0] for m in (data, repaired))
    assert np.abs(split - exact).max() <= max(2 * np.abs(original - exact).max(), 1e-6)


def test_what_it_cannot_split_is_left_and_said_why():
    for model, reason in [(instance_norm_model(constant_affine=False)[0], "scale or bias is not a constant"),
                          (instance_norm_model(height=1, width=1)[0], "a plane of one value")]:
        before = model.SerializeToString()
        matches = instance_norm_split_mean.apply(model, RepairContext(where="test"))
        assert model.SerializeToString() == before
        assert [(m.changed, m.record["action"]) for m in matches] == [(False, "left")]
        assert matches[0].record["reason"].startswith(reason)


def test_a_rewrite_that_moves_outputs_beyond_rounding_is_a_repair_bug(monkeypatch, tmp_path):
    """The re-association proof is no formality: a split that forgot epsilon's place or the scale fails it."""
    model, _, _ = instance_norm_model(channels=2, height=8, width=8)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    data, inputs, _ = read_onnx_interface(path)
    real = instance_norm_split_mean._split_nodes

    def wrong_scale(model, node, height, width, taken):
        nodes = real(model, node, height, width, taken)
        for tensor in model.graph.initializer:
            if tensor.name.endswith("/scale"):
                tensor.CopyFrom(numpy_helper.from_array(2 * numpy_helper.to_array(tensor), tensor.name))
        return nodes

    monkeypatch.setattr(instance_norm_split_mean, "_split_nodes", wrong_scale)
    with pytest.raises(AssertionError, match="re-associating repairs for onnx2tf move outputs"):
        repair_bridge(data, inputs, where="test")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """One InstanceNormalization over 8 x 256 x 256 through onnx2tf, without and with the repairs, against
    float64."""
    model, scale, bias = instance_norm_model()
    x = flat_input()
    return plain_and_repaired(model, tmp_path_factory.mktemp("instance_norm"), {"x": x},
                              expected={"y": float64_instance_norm(x, scale, bias)})


def test_litert_mean_over_a_large_flat_plane_is_far_off(converted):
    (info, errors, scale), _ = converted
    print(f"plain: TFLite fp32 vs float64 max abs {errors['y']:.3g} (outputs up to {scale:.3g})")
    assert info["applied_repairs"] == []
    assert errors["y"] > 3e-4  # measured 6.1e-4 on 4 channels, 1.7e-3 on 16 of this kind


def test_with_the_split_tflite_is_close_to_float64(converted):
    from edgematte.quant.tflite.ops import tflite_ops

    (_, plain, _), (info, errors, scale) = converted
    print(f"split: TFLite fp32 vs float64 max abs {errors['y']:.3g} (plain {plain['y']:.3g})")
    assert errors["y"] <= plain["y"] / 5
    assert ("instance_norm_split_mean", 1, 1) in [(a["name"], a["matched"], a["changed"])
                                                  for a in info["applied_repairs"]]
    ops = [op["op"] for op in tflite_ops(info["files"]["fp32"]["path"])]
    assert ops.count("AVERAGE_POOL_2D") == 4 and "MEAN" not in ops and "TRANSPOSE" not in ops, ops
