"""The unsqueezed_pad_fold repair: paddle2onnx's Unsqueeze -> 5-D Pad -> Squeeze becomes one 4-D Pad, exactly.

Graphs are built here with onnx.helper in paddle2onnx's form (axes as attributes before opset 13, as an
input since; pads and the fill value as Constant nodes or initializers). The reference for every rewrite is
ONNX Runtime on the graph before it. That onnx2tf fails on the chain and converts the folded graph, and the
end-to-end export of Paddle's own pads, are in tests/test_converter_onnx_tf_compat.py.
"""

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgematte.converter.repairs.base import RepairContext
from edgematte.converter.repairs.onnx import unsqueezed_pad_fold as repair
from edgematte.converter.repairs.onnx.graph import pads_operand

SHAPE = (1, 3, 6, 8)
# Paddle's F.pad(x, [left 2, right 1, top 1, bottom 2], mode="reflect") as paddle2onnx writes it: 5-D pads
# [begin N C D H W, end N C D H W], D the inserted axis; and the same pads without D, written out by hand.
PADS_5D = [0, 0, 0, 1, 2, 0, 0, 0, 2, 1]
PADS_4D = [0, 0, 1, 2, 0, 0, 2, 1]


def _chain_model(opset, pads=PADS_5D, mode="reflect", value=None):
    """x [1, 3, 6, 8] -> Unsqueeze(axes=[2]) -> Pad(mode, pads as a Constant node) -> Squeeze(axes=[2]) -> Relu -> y."""
    nodes, initializers = [], []
    if opset >= 13:
        initializers.append(numpy_helper.from_array(np.array([2], np.int64), "axes"))
    axes_input, axes_attr = (["axes"], {}) if opset >= 13 else ([], {"axes": [2]})
    nodes.append(helper.make_node("Unsqueeze", ["x", *axes_input], ["x5"], name="unsqueeze", **axes_attr))
    nodes.append(helper.make_node("Constant", [], ["pads"], value=numpy_helper.from_array(np.array(pads, np.int64))))
    pad_inputs = ["x5", "pads"]
    if value is not None:
        initializers.append(numpy_helper.from_array(np.array(value, np.float32), "value"))
        pad_inputs.append("value")
    nodes.append(helper.make_node("Pad", pad_inputs, ["p5"], name="pad", mode=mode))
    nodes.append(helper.make_node("Squeeze", ["p5", *axes_input], ["p4"], name="squeeze", **axes_attr))
    nodes.append(helper.make_node("Relu", ["p4"], ["y"], name="relu"))
    out_hw = [SHAPE[2] + pads[3] + pads[8], SHAPE[3] + pads[4] + pads[9]]
    model = helper.make_model(
        helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, *out_hw])],
                          initializer=initializers),
        opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _run(model, x):
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _input():
    return np.random.default_rng(1).uniform(-1.0, 1.0, SHAPE).astype(np.float32)


@pytest.mark.parametrize("opset, mode, value", [(11, "reflect", None), (13, "reflect", None), (11, "constant", 0.5),
                                                (13, "edge", None)])
def test_the_chain_becomes_one_4d_pad_with_identical_outputs(opset, mode, value):
    model = _chain_model(opset, mode=mode, value=value)
    x = _input()
    before = _run(model, x)

    matches = repair.REPAIR.apply(model, RepairContext())

    assert [m.changed for m in matches] == [True]
    record = matches[0].record
    assert record["action"] == "rewritten" and record["mode"] == mode
    assert record["pads_before"] == PADS_5D and record["pads_after"] == PADS_4D
    assert [n.op_type for n in model.graph.node] == ["Pad", "Relu"]
    (pad,) = [n for n in model.graph.node if n.op_type == "Pad"]
    assert pad.input[0] == "x" and pad.output[0] == "p4" and pads_operand(model, pad).tolist() == PADS_4D
    # the 5-D pads (a Constant node) and, since opset 13, the axes nothing reads any more are gone
    assert sorted(t.name for t in model.graph.initializer) == sorted(
        ["p5/pads_without_inserted_axes"] + (["value"] if value is not None else []))
    onnx.checker.check_model(model, full_check=True)
    after = _run(model, x)
    print(f"opset {opset} {mode}: folded vs original in ONNX Runtime, max abs {np.abs(after - before).max():.3g}")
    assert after.shape == before.shape == (1, 3, 6 + 3, 8 + 3)
    assert np.array_equal(after, before)  # the same elements, moved the same way: bit for bit


def test_a_nonzero_pad_on_the_inserted_axis_is_matched_but_left_alone():
    # pads (begin 1, end -1) on the size-1 inserted axis shift its one element out: by the ONNX spec the
    # result is all fill value, which no 4-D Pad of x gives.
    model = _chain_model(11, pads=[0, 0, 1, 1, 2, 0, 0, -1, 2, 1], mode="constant")
    before = model.SerializeToString()

    matches = repair.REPAIR.apply(model, RepairContext())

    assert [m.changed for m in matches] == [False]
    assert matches[0].record["action"] == "left" and "{2: (1, -1)}" in matches[0].record["reason"]
    assert model.SerializeToString() == before


def test_a_graph_without_the_chain_matches_nothing_and_changes_nothing():
    """A plain 4-D Pad (what the rewrite produces) and an Unsqueeze that feeds no Pad."""
    nodes = [helper.make_node("Constant", [], ["pads"], value=numpy_helper.from_array(np.array(PADS_4D, np.int64))),
             helper.make_node("Pad", ["x", "pads"], ["p"], mode="reflect"),
             helper.make_node("Unsqueeze", ["p"], ["y"], axes=[0])]
    model = helper.make_model(
        helper.make_graph(nodes, "no_chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 3, 9, 11])]),
        opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    before = model.SerializeToString()

    assert repair.REPAIR.apply(model, RepairContext()) == []
    assert model.SerializeToString() == before
