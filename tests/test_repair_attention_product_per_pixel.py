"""The onnx_artefact repair ``attention_product_per_pixel``: a map multiplied by a one-channel attention map is
multiplied in the per-pixel copy ``[N, H*W, C]`` that ``channel_reduction_per_pixel`` made for its reductions.

The synthetic graph is one PP-MattingV2 attention block: f = ReLU(Conv 3->32); the mean and maximum of f over its
channels -> Conv 2->1 -> Sigmoid = attention [1, 1, S, S]; f * attention -> Conv 32->8. What ONNX Runtime does
with a graph is read from the graph it optimized (``optimized_model_filepath``).
"""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgematte.converter.repairs.onnx_artefact import attention_product_per_pixel as repair
from edgematte.converter.repairs.onnx_artefact import channel_reduction_per_pixel
from tests.onnx_runtime_runs import run_onnx

SIZE = 12


def _block_model(attention_first=False, also_added=False):
    """The attention block (module docstring); ``attention_first`` writes the product as attention * f;
    ``also_added`` makes f read once more in NCHW (f + f, a second output)."""
    rng = np.random.default_rng(0)
    inits, nodes = [], []

    def conv(name, x, out, o, i, k=3):
        inits.append(numpy_helper.from_array(rng.normal(0, 0.4, (o, i, k, k)).astype(np.float32), f"{name}.w"))
        nodes.append(helper.make_node("Conv", [x, f"{name}.w"], [out], name=name, kernel_shape=[k, k],
                                      pads=[k // 2] * 4))

    conv("feature", "img", "c", 32, 3)
    nodes += [helper.make_node("Relu", ["c"], ["f"], name="relu"),
              helper.make_node("ReduceMean", ["f"], ["mean"], name="mean", axes=[1], keepdims=1),
              helper.make_node("ReduceMax", ["f"], ["max"], name="max", axes=[1], keepdims=1),
              helper.make_node("Concat", ["mean", "max"], ["pooled"], name="pooled", axis=1)]
    conv("gate", "pooled", "logit", 1, 2)
    nodes.append(helper.make_node("Sigmoid", ["logit"], ["attention"], name="sigmoid"))
    nodes.append(helper.make_node("Mul", ["attention", "f"] if attention_first else ["f", "attention"], ["weighted"],
                                  name="weigh"))
    conv("out_conv", "weighted", "out", 8, 32)
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 8, SIZE, SIZE])]
    if also_added:
        nodes.append(helper.make_node("Add", ["f", "f"], ["twice"], name="twice"))
        outputs.append(helper.make_tensor_value_info("twice", TensorProto.FLOAT, [1, 32, SIZE, SIZE]))
    model = helper.make_model(
        helper.make_graph(nodes, "block", [helper.make_tensor_value_info("img", TensorProto.FLOAT,
                                                                         [1, 3, SIZE, SIZE])],
                          outputs, initializer=inits),
        opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _per_pixel(model):
    """The model with its channel reductions per pixel (what this repair runs after)."""
    channel_reduction_per_pixel.reduce_per_pixel(model, "block")
    return model


def _run(model, optimized=None):
    feed = {"img": np.random.default_rng(1).uniform(-1, 1, (1, 3, SIZE, SIZE)).astype(np.float32)}
    return run_onnx(model, feed, optimized=optimized)


def _reorders(model, tmp_path):
    """ONNX Runtime's layout copies in its optimized graph: [(op type, channels_last)]."""
    path = tmp_path / "optimized.onnx"
    _run(model, optimized=path)
    return sorted((n.op_type, helper.get_attribute_value(next(a for a in n.attribute if a.name == "channels_last")))
                  for n in onnx.load(str(path)).graph.node if n.op_type in ("ReorderInput", "ReorderOutput"))


@pytest.mark.parametrize("attention_first", [False, True])
def test_the_product_is_taken_per_pixel_in_its_operand_order(attention_first):
    model = _per_pixel(_block_model(attention_first))

    records = repair.multiply_per_pixel(model, "block")

    assert records == [{"onnx_node": "weigh", "map": "f", "shape": [1, 32, SIZE, SIZE], "action": "rewritten",
                        "reason": "multiplied in [N, H*W, C]"}]
    flat = ["f/pixels_by_channel", "weighted/attention_per_pixel"]
    assert [(n.name, n.op_type, list(n.input), list(n.output)) for n in model.graph.node
            if n.name.startswith("weigh")] == [
        ("weighted/attention_per_pixel", "Reshape", ["attention", "weighted/attention_per_pixel/shape"],
         ["weighted/attention_per_pixel"]),
        ("weighted/per_pixel", "Mul", flat[::-1] if attention_first else flat, ["weighted/per_pixel"]),
        ("weighted/nhwc", "Reshape", ["weighted/per_pixel", "weighted/nhwc/shape"], ["weighted/nhwc"]),
        ("weigh", "Transpose", ["weighted/nhwc"], ["weighted"])]
    constants = {t.name: numpy_helper.to_array(t).tolist() for t in model.graph.initializer}
    assert constants["weighted/attention_per_pixel/shape"] == [0, SIZE * SIZE, 1]
    assert constants["weighted/nhwc/shape"] == [0, SIZE, SIZE, 32]
    assert helper.get_attribute_value(next(n for n in model.graph.node if n.name == "weigh").attribute[0]) == [
        0, 3, 1, 2]
    onnx.checker.check_model(model, full_check=True)
    assert np.array_equal(_run(model)[0], _run(_per_pixel(_block_model(attention_first)))[0])  # same products


def test_the_map_is_no_longer_reordered_to_nchw(tmp_path):
    before = _per_pixel(_block_model())
    if not any(kind == "ReorderOutput" for kind, _ in _reorders(before, tmp_path)):
        pytest.skip("ONNX Runtime has no blocked (NCHWc) kernels on this CPU: nothing to compare")
    after = _per_pixel(_block_model())
    repair.multiply_per_pixel(after, "block")

    # before: f out of the blocked layout twice (NHWC for its reductions, NCHW for the product), the product back in;
    # after: f once (NHWC), and the product's transpose folded into the last convolution's reorder. Both: the
    # attention's and the output's reorders to NCHW.
    assert _reorders(before, tmp_path) == [("ReorderInput", 0)] + [("ReorderOutput", 0)] * 3 + [("ReorderOutput", 1)]
    assert _reorders(after, tmp_path) == [("ReorderInput", 1)] + [("ReorderOutput", 0)] * 2 + [("ReorderOutput", 1)]


def test_a_map_also_read_in_nchw_or_without_a_per_pixel_copy_is_left():
    model = _per_pixel(_block_model(also_added=True))
    assert repair.multiply_per_pixel(model, "block") == [
        {"onnx_node": "weigh", "map": "f", "shape": [1, 32, SIZE, SIZE], "action": "left",
         "reason": "the map is also read in NCHW (Add): its NCHW copy would stay"}]
    exposed = _per_pixel(_block_model())  # the map itself an output of the graph: read in NCHW by the user
    exposed.graph.output.append(helper.make_tensor_value_info("f", TensorProto.FLOAT, [1, 32, SIZE, SIZE]))
    assert repair.multiply_per_pixel(exposed, "block")[0]["reason"] == (
        "the map is also read in NCHW (a graph output): its NCHW copy would stay")
    plain = _block_model()  # no channel reduction rewritten: no per-pixel copy, nothing to match
    assert repair.multiply_per_pixel(plain, "block") == []


def test_a_conversion_multiplies_every_map_with_a_per_pixel_copy(tiny_conversion):
    """The tiny PP-MattingV2 (width 0.25): the 10 attention maps of 16 channels or more have per-pixel copies, and
    each is multiplied by its attention there; the published model stays within the fp32 bound."""
    manifest = json.loads((tiny_conversion / "manifest.json").read_text())
    onnx_entry = next(a for a in manifest["artefacts"] if a["path"] == "model.onnx")
    records = onnx_entry["onnx"]["runtime_repairs"]
    products = [r for r in records if r["repair"] == "attention_product_per_pixel"]
    copied = {r["onnx_node"] for r in records if r["repair"] == "channel_reduction_per_pixel"
              and r["action"] == "rewritten"}

    assert len(copied) == 20 and sorted(r["shape"][1] for r in products) == [16, 16, 24, 24, 24, 32, 32, 32, 64, 64]
    assert {r["action"] for r in products} == {"rewritten"}
    assert onnx_entry["parity"]["within_bound"]
