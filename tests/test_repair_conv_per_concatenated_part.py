"""The onnx_artefact repair ``conv_per_concatenated_part``: a Conv of a channel Concat that ONNX Runtime's NCHWc pass
refuses (input channels neither fewer than 16 nor a multiple of 4) becomes one Conv per part, summed.

The synthetic graph is shaped like PP-MattingV2's head: a 16-channel feature map concatenated with the 3-channel
image (19 channels), a 3x3 Conv to 8 and a ReLU; beside it a concatenation the blocked kernels take whole (16 + 16)
and one with a part they do not take (16 + 18). What ONNX Runtime does with each graph is read from the graph it
optimized (``optimized_model_filepath``): its NCHWc convolutions are in the ``com.microsoft.nchwc`` domain.
"""

import json

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgematte.converter.onnx import REASSOCIATION_TOLERANCE, tune_onnx_artefact
from edgematte.converter.repairs import registry
from edgematte.converter.repairs.base import ONNX_ARTEFACT, RepairContext
from edgematte.converter.repairs.onnx_artefact import conv_per_concatenated_part as repair
from tests.onnx_runtime_runs import run_onnx

SIZE = 24
NCHWC = "com.microsoft.nchwc"


def _conv(name, x, out, weights, bias=None):
    """(node, initializers) of a Conv with SAME padding for its odd kernel."""
    inits = [numpy_helper.from_array(weights, f"{name}.w")]
    inputs = [x, f"{name}.w"]
    if bias is not None:
        inits.append(numpy_helper.from_array(bias, f"{name}.b"))
        inputs.append(f"{name}.b")
    k = weights.shape[2]
    return helper.make_node("Conv", inputs, [out], name=name, kernel_shape=[k, k], pads=[k // 2] * 4), inits


def _head_model(seed=0):
    """img [1, 3, S, S] -> f = Conv 3->16 -> Concat(f, img) 19 -> Conv 8 + ReLU -> alpha; Concat(f, f) 32 -> Conv 8
    -> side; Concat(f, g) 34 (g: Conv 3->18) -> Conv 8 -> other."""
    rng = np.random.default_rng(seed)

    def w(o, i, k=3):
        return rng.normal(0, 0.3, (o, i, k, k)).astype(np.float32)

    def b(o):
        return rng.normal(0, 0.1, o).astype(np.float32)

    nodes, inits = [], []
    for spec in (("feature", "img", "f", w(16, 3), b(16)), ("wide", "img", "g", w(18, 3), b(18))):
        node, extra = _conv(*spec)
        nodes.append(node)
        inits += extra
    nodes += [helper.make_node("Concat", ["f", "img"], ["fi"], name="cat_image", axis=1),
              helper.make_node("Concat", ["f", "f"], ["ff"], name="cat_blocked", axis=1),
              helper.make_node("Concat", ["f", "g"], ["fg"], name="cat_unblocked", axis=1)]
    for spec in (("head", "fi", "h", w(8, 19), b(8)), ("side", "ff", "side", w(8, 32), b(8)),
                 ("other", "fg", "other", w(8, 34), None)):
        node, extra = _conv(*spec)
        nodes.append(node)
        inits += extra
    nodes.append(helper.make_node("Relu", ["h"], ["alpha"], name="relu"))
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 8, SIZE, SIZE]) for n in ("alpha", "side",
                                                                                                   "other")]
    model = helper.make_model(
        helper.make_graph(nodes, "head", [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
                          outputs, initializer=inits),
        opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _run(model, feed, level=onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL, optimized=None):
    return run_onnx(model, feed, optimized=optimized, level=level)


def _nchwc_convs(model, feed, tmp_path):
    """The tensors whose convolutions ONNX Runtime runs with its NCHWc kernels, read from the graph it optimized (it
    names such a node after the tensor the convolution wrote: ``TENSOR_nchwc``)."""
    path = tmp_path / "optimized.onnx"
    _run(model, feed, optimized=path)
    return {n.name[: -len("_nchwc")] for n in onnx.load(str(path)).graph.node
            if n.domain == NCHWC and n.op_type == "Conv" and n.name.endswith("_nchwc")}


def _single_conv(channels):
    weights = numpy_helper.from_array(np.ones((8, channels, 3, 3), np.float32), "w")
    model = helper.make_model(
        helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1] * 4)], "one",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])], initializer=[weights]),
        opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model, {"x": np.ones((1, channels, 8, 8), np.float32)}


def test_blocked_is_what_the_installed_onnx_runtime_takes_into_its_nchwc_kernels(tmp_path):
    """The repair's rule against ONNX Runtime itself, for 1 to 40 input channels (an upgrade that changes it fails
    here)."""
    taken = {c: "y" in _nchwc_convs(*_single_conv(c), tmp_path) for c in range(1, 41)}
    if not any(taken.values()):
        pytest.skip("ONNX Runtime takes no convolution into NCHWc kernels on this CPU: nothing to compare")
    assert [c for c in taken if taken[c]] == [c for c in taken if repair.blocked(c)]
    assert [c for c in taken if not taken[c]][:6] == [17, 18, 19, 21, 22, 23]


def _feed(seed=1):
    return {"img": np.random.default_rng(seed).uniform(-1, 1, (1, 3, SIZE, SIZE)).astype(np.float32)}


def test_the_image_concatenation_is_split_per_part_and_the_others_stay():
    model = _head_model()
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}

    records = repair.split_concatenated_convs(model, "head")

    assert records == [
        {"onnx_node": "head", "parts": [16, 3], "action": "split",
         "reason": "19 input channels: not blocked; parts [16, 3]: all blocked"},
        {"onnx_node": "other", "parts": [16, 18], "action": "left",
         "reason": "parts [16, 18]: not every part would run blocked"}]  # 16 + 16 = 32: taken whole, not a match
    assert [(n.name, n.op_type, list(n.input), list(n.output)) for n in model.graph.node] == [
        ("feature", "Conv", ["img", "feature.w", "feature.b"], ["f"]),
        ("wide", "Conv", ["img", "wide.w", "wide.b"], ["g"]),
        ("cat_blocked", "Concat", ["f", "f"], ["ff"]),
        ("cat_unblocked", "Concat", ["f", "g"], ["fg"]),
        ("head/part0", "Conv", ["f", "head.w/part0", "head.b"], ["h/part0"]),
        ("head/part1", "Conv", ["img", "head.w/part1"], ["h/part1"]),
        ("head/sum1", "Add", ["h/part0", "h/part1"], ["h"]),
        ("side", "Conv", ["ff", "side.w", "side.b"], ["side"]),
        ("other", "Conv", ["fg", "other.w"], ["other"]),
        ("relu", "Relu", ["h"], ["alpha"])]  # the image concatenation had no other reader: gone
    after = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert "head.w" not in after
    assert np.array_equal(after["head.w/part0"], weights["head.w"][:, :16])
    assert np.array_equal(after["head.w/part1"], weights["head.w"][:, 16:])
    part0 = next(n for n in model.graph.node if n.name == "head/part0")
    assert {a.name: helper.get_attribute_value(a) for a in part0.attribute} == {"kernel_shape": [3, 3],
                                                                                "pads": [1, 1, 1, 1]}
    onnx.checker.check_model(model, full_check=True)


def test_onnx_runtime_runs_every_part_blocked_and_the_outputs_move_by_rounding_only(tmp_path):
    original, feed = _head_model(), _feed()
    before = _nchwc_convs(original, feed, tmp_path)
    if not before:
        pytest.skip("ONNX Runtime takes no convolution into NCHWc kernels on this CPU: nothing to compare")
    assert before == {"f", "g", "side"}  # 19 (the head's) and 34 channels: the im2col path
    split = _head_model()
    repair.split_concatenated_convs(split, "head")

    after = _nchwc_convs(split, feed, tmp_path)

    assert after == {"f", "g", "side", "h/part0", "h/part1"}  # the 3-channel part reads the NCHW image directly
    (alpha, *others), (split_alpha, *split_others) = _run(original, feed), _run(split, feed)
    assert alpha.shape == split_alpha.shape and np.abs(alpha - split_alpha).max() < 1e-5  # re-associated: rounding
    assert all(np.array_equal(a, b) for a, b in zip(others, split_others))  # the convolutions left alone


def test_tune_onnx_artefact_proves_the_rewrite_and_records_it(tmp_path):
    bridge, out = tmp_path / "bridge.onnx", tmp_path / "model.onnx"
    onnx.save(_head_model(), str(bridge))
    before = bridge.read_bytes()

    tuned = tune_onnx_artefact(bridge, out, where="head")

    assert bridge.read_bytes() == before  # what onnx2tf and the int8 quantizer read is untouched
    assert tuned["applied_repairs"][0] == {"name": "conv_per_concatenated_part", "kind": ONNX_ARTEFACT, "matched": 2,
                                           "changed": 1, "why": repair.REPAIR.why}
    assert [r["matched"] for r in tuned["applied_repairs"][1:]] == [0, 0]  # the head has no channel reduction
    assert [(r["repair"], r["action"]) for r in tuned["records"]] == [("conv_per_concatenated_part", "split"),
                                                                      ("conv_per_concatenated_part", "left")]
    assert tuned["check"]["tolerance"] == REASSOCIATION_TOLERANCE and tuned["check"]["max_abs"] < 1e-5
    assert [n.name for n in onnx.load(str(out)).graph.node if n.op_type == "Add"] == ["head/sum1"]


def test_a_graph_with_nothing_to_split_is_published_byte_for_byte(tmp_path):
    model = _head_model()
    model.graph.node.remove(next(n for n in model.graph.node if n.name == "other"))
    model.graph.node.remove(next(n for n in model.graph.node if n.name == "head"))
    model.graph.node.remove(next(n for n in model.graph.node if n.name == "relu"))
    del model.graph.output[:]
    model.graph.output.extend([helper.make_tensor_value_info("side", TensorProto.FLOAT, [1, 8, SIZE, SIZE])])
    bridge, out = tmp_path / "bridge.onnx", tmp_path / "model.onnx"
    onnx.save(model, str(bridge))

    tuned = tune_onnx_artefact(bridge, out)

    assert out.read_bytes() == bridge.read_bytes()
    assert tuned["check"] is None and tuned["records"] == [] and registry.changed(
        [dict(r, records=[]) for r in tuned["applied_repairs"]]) == 0


def test_a_wrong_split_fails_the_proof(tmp_path, monkeypatch):
    """The proof is what stands between a repair bug and a published file: a split that loses the image's part
    (its weights zeroed) moves the outputs by their size and is refused."""
    bridge = tmp_path / "bridge.onnx"
    onnx.save(_head_model(), str(bridge))
    right = repair._per_part

    def image_part_lost(model, node, inputs, parts, weights, taken):
        weights = weights.copy()
        weights[:, parts[0]:] = 0.0
        return right(model, node, inputs, parts, weights, taken)

    monkeypatch.setattr(repair, "_per_part", image_part_lost)
    with pytest.raises(AssertionError, match=r"head: the repairs for ONNX Runtime move outputs \['alpha'\] by"):
        tune_onnx_artefact(bridge, tmp_path / "model.onnx", where="head")
    assert not (tmp_path / "model.onnx").exists()


def test_an_explicit_group_of_one_is_split_and_grouped_or_non_constant_weights_stay():
    model = _head_model()
    next(n for n in model.graph.node if n.name == "head").attribute.append(helper.make_attribute("group", 1))
    assert [m.changed for m in repair.apply(model, RepairContext(where="head"))] == [True, False]

    grouped = _head_model()  # 19 groups of one channel: its weights [19, 1, 3, 3] do not span the concatenation
    head = next(n for n in grouped.graph.node if n.name == "head")
    head.attribute.append(helper.make_attribute("group", 19))
    weights = next(t for t in grouped.graph.initializer if t.name == "head.w")
    weights.CopyFrom(numpy_helper.from_array(np.ones((19, 1, 3, 3), np.float32), "head.w"))
    bias = next(t for t in grouped.graph.initializer if t.name == "head.b")
    bias.CopyFrom(numpy_helper.from_array(np.zeros(19, np.float32), "head.b"))
    grouped.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 19

    variable = _head_model()
    variable.graph.initializer.remove(next(t for t in variable.graph.initializer if t.name == "head.w"))
    variable.graph.input.append(helper.make_tensor_value_info("head.w", TensorProto.FLOAT, [8, 19, 3, 3]))

    for model in (grouped, variable):
        assert repair.split_concatenated_convs(model, "head")[0] == {
            "onnx_node": "head", "parts": [16, 3], "action": "left",
            "reason": "its weights are not a float constant over the concatenated channels"}


def test_a_conversion_publishes_the_split_graph_and_converts_to_tflite_from_the_one_before(tiny_conversion):
    """The tiny PP-MattingV2 (width 0.25): the fusion blocks concatenate 16 + 16 and 8 + 8 channels with the image
    (35 and 19: split); the head's 4 + 3 = 7 is under a block (taken whole, not a match). onnx2tf read the graph
    before the split: the file it converted is not the published one, and no copy of it is left in OUT."""
    manifest = json.loads((tiny_conversion / "manifest.json").read_text())
    by_path = {a["path"]: a for a in manifest["artefacts"]}
    onnx_entry = by_path["model.onnx"]

    splits = [r for r in onnx_entry["onnx"]["runtime_repairs"] if r["repair"] == "conv_per_concatenated_part"]
    assert [(r["parts"], r["action"]) for r in splits] == [([16, 16, 3], "split"), ([8, 8, 3], "split")]
    assert onnx_entry["onnx"]["runtime_repair_check"]["max_abs"] < 1e-5
    assert [(r["matched"], r["changed"]) for r in manifest["repairs"]
            if r["name"] == "conv_per_concatenated_part" and r["artefact"] == "model.onnx"] == [(2, 2)]
    assert onnx_entry["parity"]["within_bound"]
    published = onnx.load(str(tiny_conversion / "model.onnx"))
    assert sorted(n.name for n in published.graph.node if "/part" in n.name or "/sum" in n.name) == sorted(
        f"{r['onnx_node']}/{kind}{k}" for r in splits
        for kind, ks in (("part", range(len(r["parts"]))), ("sum", range(1, len(r["parts"])))) for k in ks)
    assert by_path["model_fp32.tflite"]["onnx2tf"]["onnx_sha256"] != onnx_entry["sha256"]
    assert not list(tiny_conversion.rglob("bridge.onnx"))
