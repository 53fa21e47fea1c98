"""The onnx_artefact repair ``channel_reduction_per_pixel``: a reduction over the channels of a blocked convolution's
NCHW output becomes a reduction over the last axis of its per-pixel layout ``[N, H*W, C]``.

The synthetic graph is shaped like PP-MattingV2's attention blocks: the mean and the maximum over the channels of a
32-channel Conv + ReLU map, concatenated; beside it channel reductions the repair must leave (8 channels, a map not
written by a convolution, a convolution ONNX Runtime does not block) and a reduction over another axis. What ONNX
Runtime does with a graph is read from the graph it optimized (``optimized_model_filepath``).
"""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgematte.converter.onnx import tune_onnx_artefact
from edgematte.converter.repairs.base import RepairContext
from edgematte.converter.repairs.onnx_artefact import channel_reduction_per_pixel as repair
from tests.onnx_runtime_runs import run_onnx

SIZE = 12


def _attention_model():
    """img [1, 3, S, S] -> f = ReLU(Conv 3->32); attention = Concat(ReduceMean(f), ReduceMax(f)) [1, 2, S, S];
    narrow = ReduceMax(Conv 3->8) (8 channels); pair = ReduceMin(Concat(f, f)) (not a convolution's output);
    wide = ReduceMax(Conv 19->32 of Concat(Conv 3->16, img)) (19 input channels: not blocked); rows =
    ReduceMax(f, axis 2)."""
    rng = np.random.default_rng(0)
    inits, nodes = [], []

    def conv(name, x, out, o, i):
        inits.append(numpy_helper.from_array(rng.normal(0, 0.4, (o, i, 3, 3)).astype(np.float32), f"{name}.w"))
        nodes.append(helper.make_node("Conv", [x, f"{name}.w"], [out], name=name, kernel_shape=[3, 3], pads=[1] * 4))

    def reduce(op, x, out, axis=1):
        nodes.append(helper.make_node(op, [x], [out], name=out, axes=[axis], keepdims=1))

    conv("feature", "img", "c", 32, 3)
    nodes.append(helper.make_node("Relu", ["c"], ["f"], name="relu"))
    reduce("ReduceMean", "f", "mean")
    reduce("ReduceMax", "f", "max")
    nodes.append(helper.make_node("Concat", ["mean", "max"], ["attention"], name="attention", axis=1))
    conv("narrow_conv", "img", "n", 8, 3)
    reduce("ReduceMax", "n", "narrow")
    nodes.append(helper.make_node("Concat", ["f", "f"], ["ff"], name="twice", axis=1))
    reduce("ReduceMin", "ff", "pair")
    conv("sixteen", "img", "s", 16, 3)
    nodes.append(helper.make_node("Concat", ["s", "img"], ["si"], name="with_image", axis=1))
    conv("wide_conv", "si", "w", 32, 19)
    reduce("ReduceMax", "w", "wide")
    reduce("ReduceMax", "f", "rows", axis=2)
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in (
        ("attention", [1, 2, SIZE, SIZE]), ("narrow", [1, 1, SIZE, SIZE]), ("pair", [1, 1, SIZE, SIZE]),
        ("wide", [1, 1, SIZE, SIZE]), ("rows", [1, 32, 1, SIZE]))]
    model = helper.make_model(
        helper.make_graph(nodes, "attention", [helper.make_tensor_value_info("img", TensorProto.FLOAT,
                                                                             [1, 3, SIZE, SIZE])],
                          outputs, initializer=inits),
        opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _feed(seed=1):
    return {"img": np.random.default_rng(seed).uniform(-1, 1, (1, 3, SIZE, SIZE)).astype(np.float32)}


def _reorders_to_nhwc(model, tmp_path):
    """The tensors ONNX Runtime's optimized graph reorders from its blocked layout straight to NHWC."""
    path = tmp_path / "optimized.onnx"
    run_onnx(model, _feed(), optimized=path)
    return [n.input[0] for n in onnx.load(str(path)).graph.node
            if n.op_type == "ReorderOutput" and helper.get_attribute_value(
                next(a for a in n.attribute if a.name == "channels_last")) == 1]


def test_the_reductions_of_a_blocked_convolution_are_rewritten_and_the_others_left():
    model = _attention_model()

    records = repair.reduce_per_pixel(model, "attention")

    shape = [1, 32, SIZE, SIZE]
    assert records == [
        {"onnx_node": "mean", "op": "ReduceMean", "shape": shape, "action": "rewritten",
         "reason": "reduced over the last axis of [N, H*W, C]"},
        {"onnx_node": "max", "op": "ReduceMax", "shape": shape, "action": "rewritten",
         "reason": "reduced over the last axis of [N, H*W, C]"},
        {"onnx_node": "narrow", "op": "ReduceMax", "shape": [1, 8, SIZE, SIZE], "action": "left",
         "reason": "8 channels, fewer than a block (16): nothing to gain"},
        {"onnx_node": "pair", "op": "ReduceMin", "shape": [1, 64, SIZE, SIZE], "action": "left",
         "reason": "its input is not written by a convolution with constant weights: the transpose would be a copy"},
        {"onnx_node": "wide", "op": "ReduceMax", "shape": shape, "action": "left",
         "reason": "its input's convolution (19 input channels, 1 groups) does not run in ONNX Runtime's blocked "
                   "kernels: the transpose would be a copy"}]  # "rows" reduces axis 2: not a match
    rewritten = [(n.name, n.op_type, list(n.input), list(n.output)) for n in model.graph.node
                 if n.name.startswith(("f/", "mean", "max"))]
    assert rewritten == [
        ("f/nhwc", "Transpose", ["f"], ["f/nhwc"]),  # one per tensor, shared by both reductions
        ("f/pixels_by_channel", "Reshape", ["f/nhwc", "f/pixels_by_channel/shape"], ["f/pixels_by_channel"]),
        ("mean/per_pixel", "ReduceMean", ["f/pixels_by_channel"], ["mean/per_pixel"]),
        ("mean", "Reshape", ["mean/per_pixel", "mean/shape"], ["mean"]),
        ("max/per_pixel", "ReduceMax", ["f/pixels_by_channel"], ["max/per_pixel"]),
        ("max", "Reshape", ["max/per_pixel", "max/shape"], ["max"])]
    constants = {t.name: numpy_helper.to_array(t).tolist() for t in model.graph.initializer}
    assert constants["f/pixels_by_channel/shape"] == [0, SIZE * SIZE, 32]  # 0: the batch as it comes
    assert constants["mean/shape"] == constants["max/shape"] == [0, 1, SIZE, SIZE]
    transpose = next(n for n in model.graph.node if n.name == "f/nhwc")
    assert helper.get_attribute_value(transpose.attribute[0]) == [0, 2, 3, 1]
    reduction = next(n for n in model.graph.node if n.name == "mean/per_pixel")
    assert {a.name: helper.get_attribute_value(a) for a in reduction.attribute} == {"axes": [2], "keepdims": 0}
    onnx.checker.check_model(model, full_check=True)


def test_onnx_runtime_reorders_the_map_to_nhwc_and_the_outputs_hold(tmp_path):
    original = _attention_model()
    if not _nchwc_available(tmp_path):
        pytest.skip("ONNX Runtime has no blocked (NCHWc) kernels on this CPU: nothing to compare")
    rewritten = _attention_model()
    repair.reduce_per_pixel(rewritten, "attention")

    assert len(_reorders_to_nhwc(rewritten, tmp_path)) == 1  # f, reordered once for both reductions
    assert _reorders_to_nhwc(original, tmp_path) == []
    feed = _feed()
    (attention, *others), (new_attention, *new_others) = run_onnx(original, feed), run_onnx(rewritten, feed)
    assert new_attention.shape == attention.shape == (1, 2, SIZE, SIZE)
    assert np.array_equal(new_attention[:, 1], attention[:, 1])  # the maximum: exact
    assert np.abs(new_attention[:, 0] - attention[:, 0]).max() < 1e-6  # the mean: summed in another order
    assert all(np.array_equal(a, b) for a, b in zip(others, new_others))


def _nchwc_available(tmp_path) -> bool:
    path = tmp_path / "probe.onnx"
    run_onnx(_attention_model(), _feed(), optimized=path)
    return any(n.domain == "com.microsoft.nchwc" for n in onnx.load(str(path)).graph.node)


def test_a_transpose_straight_into_the_reduction_is_undone_by_onnx_runtime(tmp_path):
    """Why the Reshape is there: ONNX Runtime's transpose optimizer pushes a Transpose through a reduction that reads
    it directly and cancels it, giving back the slow reduction over the channels (an upgrade that stops doing so
    fails here, and the Reshape could go)."""
    if not _nchwc_available(tmp_path):
        pytest.skip("ONNX Runtime has no blocked (NCHWc) kernels on this CPU: nothing to compare")
    model = _attention_model()
    repair.reduce_per_pixel(model, "attention")
    by_name = {n.name: n for n in model.graph.node}
    for name in ("mean/per_pixel", "max/per_pixel"):  # read the NHWC map itself, over its last axis, keepdims
        node = by_name[name]
        node.input[0] = "f/nhwc"
        del node.attribute[:]
        node.attribute.extend([helper.make_attribute("axes", [3]), helper.make_attribute("keepdims", 1)])
    model.graph.node.remove(by_name["f/pixels_by_channel"])  # "mean", "max": [1, S, S, 1] -> [0, 1, S, S], valid

    assert _reorders_to_nhwc(model, tmp_path) == []


@pytest.mark.parametrize("op, opset", [("ReduceMean", 18), ("ReduceSum", 13), ("ReduceMax", 11)])
def test_axes_as_an_input_and_keepdims_0_are_kept(op, opset, tmp_path):
    """Reductions take their axes as an input from opset 18 (ReduceSum from 13): the rewrite writes them the same
    way; keepdims=0 gives [N, H, W] as before."""
    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array(rng.normal(0, 0.4, (16, 3, 1, 1)).astype(np.float32), "w")]
    nodes = [helper.make_node("Conv", ["img", "w"], ["f"], name="conv")]
    if opset >= (13 if op == "ReduceSum" else 18):
        inits.append(numpy_helper.from_array(np.array([-3], np.int64), "axes"))
        nodes.append(helper.make_node(op, ["f", "axes"], ["y"], name="reduce", keepdims=0))
    else:
        nodes.append(helper.make_node(op, ["f"], ["y"], name="reduce", axes=[-3], keepdims=0))
    model = helper.make_model(
        helper.make_graph(nodes, "one", [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, 6, 10])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 10])], initializer=inits),
        opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    feed = {"img": rng.uniform(-1, 1, (1, 3, 6, 10)).astype(np.float32)}
    before = run_onnx(model, feed)[0]

    assert [m.changed for m in repair.apply(model, RepairContext(where="one"))] == [True]

    onnx.checker.check_model(model, full_check=True)
    reduction = next(n for n in model.graph.node if n.name == "y/per_pixel")
    axes_as_input = len(reduction.input) == 2
    assert axes_as_input == (opset >= (13 if op == "ReduceSum" else 18))
    if axes_as_input:
        assert numpy_helper.to_array(next(t for t in model.graph.initializer
                                          if t.name == reduction.input[1])).tolist() == [2]
    after = run_onnx(model, feed)[0]
    assert after.shape == before.shape == (1, 6, 10)
    assert np.abs(after - before).max() <= (0.0 if op == "ReduceMax" else 1e-5)


def test_a_wrong_rewrite_fails_the_proof(tmp_path, monkeypatch):
    """A rewrite that lays the pixels out column by column instead of row by row (perm [0, 3, 2, 1]) gives every
    output the right shape and the wrong pixels: the proof refuses it and nothing is written."""
    bridge = tmp_path / "bridge.onnx"
    onnx.save(_attention_model(), str(bridge))
    right = repair._pixels_by_channel

    def columns_first(model, tensor, shape, taken):
        flat, (transpose, reshape) = right(model, tensor, shape, taken)
        del transpose.attribute[:]
        transpose.attribute.extend([helper.make_attribute("perm", [0, 3, 2, 1])])
        return flat, [transpose, reshape]

    monkeypatch.setattr(repair, "_pixels_by_channel", columns_first)
    with pytest.raises(AssertionError, match=r"attention: the repairs for ONNX Runtime move outputs \['attention'\]"):
        tune_onnx_artefact(bridge, tmp_path / "model.onnx", where="attention")
    assert not (tmp_path / "model.onnx").exists()


def test_a_conversion_rewrites_the_attention_maps_of_a_block_or_more(tiny_conversion):
    """The tiny PP-MattingV2 (width 0.25): the mean and maximum over the channels of 14 maps. Full width has 256, 256,
    128 x3, 96 x3, 64 x2, 32 x2 and two 3-channel maps; a quarter of each here, the 3-channel ones as they are (the
    image's): those of 16 channels or more are rewritten, the 8- and 3-channel ones left."""
    manifest = json.loads((tiny_conversion / "manifest.json").read_text())
    onnx_entry = next(a for a in manifest["artefacts"] if a["path"] == "model.onnx")
    records = [r for r in onnx_entry["onnx"]["runtime_repairs"] if r["repair"] == "channel_reduction_per_pixel"]

    assert sorted(r["shape"][1] for r in records) == sorted([64, 64, 32, 32, 32, 24, 24, 24, 16, 16, 8, 8, 3, 3] * 2)
    assert {(r["shape"][1] >= 16, r["action"]) for r in records} == {(True, "rewritten"), (False, "left")}
    assert onnx_entry["onnx"]["runtime_repair_check"]["max_abs"] < 1e-5 and onnx_entry["parity"]["within_bound"]
    published = onnx.load(str(tiny_conversion / "model.onnx"))
    assert sum(n.op_type in repair.REDUCTIONS and n.name.endswith("/per_pixel") for n in published.graph.node) == sum(
        r["action"] == "rewritten" for r in records)
