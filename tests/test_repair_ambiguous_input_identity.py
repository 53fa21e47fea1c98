"""The onnx2tf_input repair ``ambiguous_input_identity``: a graph input whose shape reads the same channels-first
and channels-last is read through an exact identity (MaxPool, kernel 1) in the copy onnx2tf reads.

The misread, reproduced on a small graph (RVM's ConvGRU at 128x128, docs/toolchain.md trap 17): a state ``s``
``[1, 16, 16, 16]`` is concatenated with a ``[1, 16, 16, 16]`` feature map. Plain onnx2tf 1.29.24 moves ``s``
channels-last without flagging it, and Concat's shape workaround transposes it once more. The real case
(PaddleSeg's RVM at 128x128, TFLite fp32 against the reference 1.0 -> 1.1e-5) is measured in
docs/toolchain.md, not tested here: one conversion takes about 3 minutes of CPU.
"""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgematte.converter.repairs.base import RepairContext  # noqa: E402
from edgematte.converter.repairs.onnx2tf_input import ambiguous_input_identity  # noqa: E402
from edgematte.converter.repairs.onnx2tf_input.ambiguous_input_identity import ambiguous  # noqa: E402
from edgematte.converter.tflite import input_layout, read_onnx_interface, repair_bridge  # noqa: E402
from tests.onnx2tf_runs import plain_and_repaired  # noqa: E402

helper, numpy_helper = onnx.helper, onnx.numpy_helper
FP32_TOLERANCE = 1e-5


def _model(nodes, inputs, outputs, initializers=()):
    model = helper.make_model(
        helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s) for n, s in inputs],
                          [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s) for n, s in outputs],
                          list(initializers)),
        opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _weight(rng, name, shape):
    return numpy_helper.from_array(rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[1:])), shape).astype(np.float32), name)


def concat_state_model(c=16):
    """x [1, 3, c, c] -> a = Conv(x) [1, c, c, c]; Concat(a, s) with the graph input s [1, c, c, c] (reads the
    same both ways) -> Conv -> y [1, 4, c, c]; and Mul(a, s) -> z, the GRU's other use of its state."""
    rng = np.random.default_rng(0)
    inits = [_weight(rng, "w_a", [c, 3, 3, 3]), _weight(rng, "w_y", [4, 2 * c, 3, 3])]
    nodes = [helper.make_node("Conv", ["x", "w_a"], ["a"], pads=[1, 1, 1, 1], name="conv_a"),
             helper.make_node("Concat", ["a", "s"], ["cat"], axis=1, name="concat"),
             helper.make_node("Conv", ["cat", "w_y"], ["y"], pads=[1, 1, 1, 1], name="conv_y"),
             helper.make_node("Mul", ["a", "s"], ["z"], name="gate")]
    return _model(nodes, [("x", [1, 3, c, c]), ("s", [1, c, c, c])], [("y", [1, 4, c, c]), ("z", [1, c, c, c])],
                  inits)


@pytest.mark.parametrize("shape, expected", [
    ([1, 16, 16, 16], True),
    ([2, 8, 8, 8], True),            # any batch
    ([1, 4, 4], True),               # rank 3
    ([1, 5, 5, 5, 5], True),         # rank 5
    ([1, 16, 32, 32], False),        # the shape tells the layouts apart
    ([1, 1, 1, 1], False),           # nothing to mix up
    ([1, 3, 3], True),
    ([4, 4], False),                 # rank 2: onnx2tf transposes nothing
    ([1, 16, None, 16], False),      # not static
])
def test_which_shapes_read_the_same_both_ways(shape, expected):
    assert ambiguous(shape) is expected


def test_every_consumer_reads_one_identity_and_the_copy_is_bit_exact(tmp_path):
    model = concat_state_model()
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    data, inputs, _ = read_onnx_interface(path)

    repaired, applied, check = repair_bridge(data, inputs, where="test")

    assert check == {"max_abs": 0.0, "reassociated_max_abs": 0.0, "outputs": 2, "seed": 0}
    assert path.read_bytes() == data
    summary = {a["name"]: (a["matched"], a["changed"]) for a in applied}
    assert summary["ambiguous_input_identity"] == (1, 1)
    record = next(a for a in applied if a["name"] == "ambiguous_input_identity")["records"][0]
    assert (record["input"], record["shape"], record["consumers"], record["action"]) == (
        "s", [1, 16, 16, 16], ["concat", "gate"], "rewritten")
    graph = onnx.load_from_string(repaired).graph
    pool = graph.node[0]
    assert (pool.op_type, list(pool.input), list(pool.output)) == ("MaxPool", ["s"], ["s/flagged_channels_last"])
    assert {a.name: list(a.ints) for a in pool.attribute} == {"kernel_shape": [1, 1], "strides": [1, 1]}
    readers = {n.name: list(n.input) for n in graph.node}
    assert readers["concat"] == ["a", "s/flagged_channels_last"] and readers["gate"] == ["a", "s/flagged_channels_last"]
    assert [i.name for i in graph.input] == ["x", "s"]  # the interface is unchanged

    # the identity is exact on what no seeded feed holds: NaN, infinities, -0.0, denormals
    import onnxruntime

    s = np.random.default_rng(1).normal(0, 1e3, [1, 16, 16, 16]).astype(np.float32)
    s.flat[:5] = [np.nan, np.inf, -np.inf, -0.0, np.float32(1e-45)]
    feed = {"x": np.zeros([1, 3, 16, 16], np.float32), "s": s}
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    before, after = (onnxruntime.InferenceSession(m, options).run(["z"], feed)[0] for m in (data, repaired))
    assert before.tobytes() == after.tobytes()


def test_inputs_that_tell_their_layout_or_nobody_reads_are_left():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    model = _model(nodes, [("x", [1, 16, 32, 32]), ("unread", [1, 8, 8, 8])], [("y", [1, 16, 32, 32])])
    before = model.SerializeToString()
    matches = ambiguous_input_identity.apply(model, RepairContext(where="test"))
    assert model.SerializeToString() == before
    assert [(m.changed, m.record["input"], m.record["action"]) for m in matches] == [(False, "unread", "left")]


@pytest.mark.parametrize("onnx_shape, tflite_shape, layout, expected", [
    ([1, 16, 16, 16], [1, 16, 16, 16], "nhwc", "nhwc"),   # onnx2tf moves every rank 3-5 input channels-last
    ([1, 16, 16, 16], [1, 16, 16, 16], "nchw", "nchw"),   # ... except those -k keeps
    ([1, 4, 4], [1, 4, 4], "nhwc", "nwc"),
    ([1, 16, 32, 32], [1, 32, 32, 16], "nchw", "nhwc"),   # the shape tells: the rule is not asked
    ([1, 3], [1, 3], "nhwc", "as_onnx"),
])
def test_an_ambiguous_input_takes_the_layout_onnx2tf_gives_every_input(onnx_shape, tflite_shape, layout, expected):
    assert input_layout(onnx_shape, tflite_shape, layout) == expected


# ---------------------------------------------------------------------------------------------
# Through onnx2tf: the misread without the repair, the right outputs with it


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The concat-state graph through onnx2tf twice: without the onnx2tf_input repairs, and with them."""
    rng = np.random.default_rng(4)
    feed = {"x": rng.uniform(-1, 1, [1, 3, 16, 16]).astype(np.float32),
            "s": rng.uniform(-1, 1, [1, 16, 16, 16]).astype(np.float32)}
    plain, repaired = plain_and_repaired(concat_state_model(), tmp_path_factory.mktemp("ambiguous_input"), feed)
    for info, _, _ in (plain, repaired):
        assert {i["onnx_name"]: i["layout"] for i in info["files"]["fp32"]["inputs"]} == {"x": "nhwc", "s": "nhwc"}
    return plain, repaired


def test_plain_onnx2tf_transposes_an_ambiguous_state_twice(converted):
    (info, errors, scale), _ = converted
    assert info["applied_repairs"] == []
    print(f"plain onnx2tf: TFLite fp32 vs ONNX Runtime max abs {errors} (outputs up to {scale:.3g})")
    assert errors["y"] > 0.1 * scale, errors


def test_with_the_repair_tflite_computes_what_onnx_runtime_computes(converted):
    from edgematte.quant.tflite.ops import tflite_ops

    _, (info, errors, scale) = converted
    print(f"TFLite fp32 vs ONNX Runtime: max abs {errors} (outputs up to {scale:.3g})")
    assert max(errors.values()) <= FP32_TOLERANCE * max(1.0, scale), errors
    assert ("ambiguous_input_identity", 1, 1) in [(a["name"], a["matched"], a["changed"])
                                                  for a in info["applied_repairs"]]
    ops = [op["op"] for op in tflite_ops(info["files"]["fp32"]["path"])]
    assert ops.count("MAX_POOL_2D") == 1, ops
