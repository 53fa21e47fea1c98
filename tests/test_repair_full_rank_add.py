"""The onnx2tf_input repair ``full_rank_add``: the Adds onnx2tf's rescue guard takes become ``Sub(a, Neg(b))`` in
the copy onnx2tf reads, bit for bit the same sum; the others stay as they are.

The misread, reproduced on a small graph (RVM's pattern, docs/toolchain.md trap 16): ``s = Add(a, b)``
``[1, 16, 32, 32]`` is concatenated with another ``[1, 16, 32, 32]`` into ``[1, 32, 32, 32]``, which a bilinear
2x Resize then scales. Plain onnx2tf 1.29.24 adds channels-first and the Resize scales the channel and row axes.
The real case (PaddleSeg's RVM at 256x256: TFLite fp32 parity 1.0 -> 1.6e-5) is measured in docs/toolchain.md,
trap 16, not tested here: one conversion takes about 3 minutes of CPU.
"""

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgematte.converter.repairs import registry  # noqa: E402
from edgematte.converter.repairs.base import ONNX2TF_INPUT, RepairContext  # noqa: E402
from edgematte.converter.repairs.onnx2tf_input.full_rank_add import guard_fires  # noqa: E402
from edgematte.converter.tflite import read_onnx_interface, repair_bridge  # noqa: E402
from tests.onnx2tf_runs import plain_and_repaired  # noqa: E402

helper, numpy_helper = onnx.helper, onnx.numpy_helper
FP32_TOLERANCE = 1e-5


def _model(nodes, inputs, outputs, initializers=(), opset=13):
    model = helper.make_model(
        helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s) for n, s in inputs],
                          [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s) for n, s in outputs],
                          list(initializers)),
        opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _weight(rng, name, shape):
    fan_in = int(np.prod(shape[1:]))
    return numpy_helper.from_array(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32), name)


def concat_resize_model(c=16, h=32):
    """x [1, 3, h, h] -> a = Conv(x), s = Add(a, Conv(a)), Concat(s, Conv(x)) [1, 2c, h, h] (2c == h: reads the
    same both ways) -> bilinear 2x Resize -> Conv -> y [1, 2, 2h, 2h]."""
    rng = np.random.default_rng(0)
    inits = [_weight(rng, "w_a", [c, 3, 3, 3]), _weight(rng, "w_b", [c, c, 3, 3]), _weight(rng, "w_c", [c, 3, 3, 3]),
             _weight(rng, "w_y", [2, 2 * c, 3, 3]), numpy_helper.from_array(np.zeros(0, np.float32), "roi"),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    nodes = [helper.make_node("Conv", ["x", "w_a"], ["a"], pads=[1, 1, 1, 1], name="conv_a"),
             helper.make_node("Conv", ["a", "w_b"], ["b"], pads=[1, 1, 1, 1], name="conv_b"),
             helper.make_node("Add", ["a", "b"], ["s"], name="add"),
             helper.make_node("Conv", ["x", "w_c"], ["c"], pads=[1, 1, 1, 1], name="conv_c"),
             helper.make_node("Concat", ["s", "c"], ["cat"], axis=1, name="concat"),
             helper.make_node("Resize", ["cat", "roi", "scales"], ["up"], mode="linear", name="resize"),
             helper.make_node("Conv", ["up", "w_y"], ["y"], pads=[1, 1, 1, 1], name="conv_y")]
    return _model(nodes, [("x", [1, 3, h, h])], [("y", [1, 2, 2 * h, 2 * h])], inits)


def _apply(model):
    """This repair alone (the kind's others, e.g. ambiguous_input_identity, have their own tests)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry.ORDER, ONNX2TF_INPUT, ("onnx2tf_input.full_rank_add",))
        return registry.apply_all(ONNX2TF_INPUT, model, RepairContext(where="test"))


# ---------------------------------------------------------------------------------------------
# Which Adds, and the rewrite (no onnx2tf)


@pytest.mark.parametrize("inputs, output, fires", [
    ([[1, 16, 32, 32], [1, 16, 32, 32]], [1, 16, 32, 32], True),
    ([[1, 16, 32, 32], [1, 16, 1, 1]], [1, 16, 32, 32], True),    # a full-rank broadcast: the guard takes it too
    ([[1, 4, 10], [1, 4, 10]], [1, 4, 10], True),                  # rank 3 (NCW)
    ([[1, 8, 8, 8], [1, 8, 8, 8]], [1, 8, 8, 8], False),           # channels-last reads the same: guard silent
    ([[1, 1, 1, 1], [1, 1, 1, 1]], [1, 1, 1, 1], False),
    ([[1, 16, 32, 32], [16, 1, 1]], [1, 16, 32, 32], False),       # a lower-rank operand
    ([[4, 16], [4, 16]], [4, 16], False),                          # rank 2: nothing transposed
    ([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]], [1, 2, 3, 4, 5, 6], False),
])
def test_the_guard_rule(inputs, output, fires):
    assert (guard_fires(inputs, output) is not None) == fires


def test_adds_the_guard_does_not_take_are_left_alone():
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.normal(size=[8, 1, 1]).astype(np.float32), "bias3"),
             numpy_helper.from_array(np.float32(0.5), "half"),
             numpy_helper.from_array(rng.normal(size=[64, 8]).astype(np.float32), "m")]
    nodes = [helper.make_node("Add", ["x", "x"], ["cube"], name="cube_add"),          # [1, 8, 8, 8]
             helper.make_node("Add", ["cube", "bias3"], ["biased"], name="rank3_bias"),
             helper.make_node("Add", ["biased", "half"], ["shifted"], name="scalar"),
             helper.make_node("Reshape", ["shifted", "shape"], ["flat"]),
             helper.make_node("Add", ["flat", "m"], ["y"], name="rank2")]
    inits.append(numpy_helper.from_array(np.array([64, 8], np.int64), "shape"))
    model = _model(nodes, [("x", [1, 8, 8, 8])], [("y", [64, 8])], inits)
    before = model.SerializeToString()

    applied = _apply(model)

    assert model.SerializeToString() == before
    assert [(a["name"], a["kind"], a["matched"], a["changed"]) for a in applied] == [
        ("full_rank_add", ONNX2TF_INPUT, 0, 0)]
    data = model.SerializeToString()
    inputs = [{"name": "x", "shape": [1, 8, 8, 8], "dtype": "float32"}]
    repaired, bridged, _ = repair_bridge(data, inputs)
    assert [r for r in bridged if r["name"] == "full_rank_add"] == applied
    # the ambiguous [1, 8, 8, 8] input itself is read through an identity (its own repair), no Add changed
    assert [n.op_type for n in onnx.load_from_string(repaired).graph.node].count("Add") == 4


def test_the_rewrite_is_bit_exact_and_negates_constants_in_place(tmp_path):
    rng = np.random.default_rng(2)
    inits = [_weight(rng, "w", [8, 3, 3, 3]), numpy_helper.from_array(rng.normal(size=[1, 8, 1, 1]).astype(np.float32),
                                                                       "shift")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Add", ["shift", "a"], ["shifted"], name="constant_first"),
             helper.make_node("Add", ["shifted", "a"], ["y"], name="residual")]
    model = _model(nodes, [("x", [1, 3, 16, 16])], [("y", [1, 8, 16, 16])], inits)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    data, inputs, _ = read_onnx_interface(path)

    repaired, applied, check = repair_bridge(data, inputs, where="test")

    assert check == {"max_abs": 0.0, "reassociated_max_abs": 0.0, "outputs": 1, "seed": 0}
    assert path.read_bytes() == data  # the ONNX file itself is not touched
    repair = next(r for r in registry.repairs_for(ONNX2TF_INPUT) if r.name == "full_rank_add")
    assert [r for r in registry.summary(applied) if r["name"] == "full_rank_add"] == [
        {"name": "full_rank_add", "kind": ONNX2TF_INPUT, "matched": 2, "changed": 2, "why": repair.why}]
    assert registry.changed(applied) == 2  # nothing else in this graph for the kind's other repairs
    records = next(a for a in applied if a["name"] == "full_rank_add")["records"]
    assert [(r["onnx_node"], r["action"], r["output_shape"]) for r in records] == [
        ("constant_first", "rewritten", [1, 8, 16, 16]), ("residual", "rewritten", [1, 8, 16, 16])]
    graph = onnx.load_from_string(repaired).graph
    assert [(n.op_type, n.name) for n in graph.node] == [
        ("Conv", "conv"), ("Sub", "constant_first"), ("Neg", "residual/neg"), ("Sub", "residual")]
    negated = {t.name: numpy_helper.to_array(t) for t in graph.initializer}["shift/negated"]
    assert np.array_equal(negated, -numpy_helper.to_array(inits[1]))
    assert list(graph.node[1].input) == ["a", "shift/negated"]

    # and beyond the seeded feed: ONNX Runtime, optimizations off, on another input
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    x = {"x": np.random.default_rng(3).normal(0, 10, [1, 3, 16, 16]).astype(np.float32)}
    before, after = (onnxruntime.InferenceSession(m, options).run(None, x)[0] for m in (data, repaired))
    assert before.tobytes() == after.tobytes()


def test_a_shape_that_is_not_static_is_reported_and_left():
    model = _model([helper.make_node("Add", ["x", "x"], ["y"], name="dynamic")], [("x", [1, 16, "h", 32])],
                   [("y", [1, 16, "h", 32])])
    before = model.SerializeToString()
    applied = _apply(model)
    assert model.SerializeToString() == before
    assert (applied[0]["matched"], applied[0]["changed"]) == (1, 0)
    assert applied[0]["records"][0]["action"] == "left"


# ---------------------------------------------------------------------------------------------
# Through onnx2tf: the misread without the repair, the right sum with it


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The concat-resize graph through onnx2tf twice: without the onnx2tf_input repairs, and with them."""
    feed = {"x": np.random.default_rng(4).uniform(-1, 1, [1, 3, 32, 32]).astype(np.float32)}
    runs = plain_and_repaired(concat_resize_model(), tmp_path_factory.mktemp("full_rank_add"), feed)
    return [(info, errors["y"], scale) for info, errors, scale in runs]


def test_plain_onnx2tf_misreads_the_layout_after_a_full_rank_add(converted):
    (info, error, scale), _ = converted
    assert info["applied_repairs"] == [] and info["repair_check"] is None
    print(f"plain onnx2tf: TFLite fp32 vs ONNX Runtime max abs {error:.3g} (outputs up to {scale:.3g})")
    assert error > 0.1 * scale, (error, scale)


def test_with_the_repair_tflite_computes_what_onnx_runtime_computes(converted):
    from edgematte.quant.tflite.ops import tflite_ops

    _, (info, error, scale) = converted
    print(f"TFLite fp32 vs ONNX Runtime: max abs {error:.3g} (outputs up to {scale:.3g})")
    assert error <= FP32_TOLERANCE * max(1.0, scale)
    assert [(a["name"], a["matched"], a["changed"]) for a in info["applied_repairs"]] == [
        ("instance_norm_split_mean", 0, 0), ("full_rank_add", 1, 1), ("ambiguous_input_identity", 0, 0)]
    assert [r["onnx_node"] for r in info["repairs"]] == ["add"]
    assert info["repair_check"]["max_abs"] == 0.0
    json.dumps(info)  # recordable as it is
    # TensorFlow folds a - (-b) back into one ADD: the model has the ops an unguarded Add would give
    ops = [op["op"] for op in tflite_ops(info["files"]["fp32"]["path"])]
    assert ops.count("ADD") == 1 and not {"SUB", "NEG", "ADD_N", "TRANSPOSE"} & set(ops), ops
