"""ONNX graph normalization for onnx2tf: Unsqueeze -> 5-D Pad -> Squeeze folded into one 4-D Pad, exactly.

paddle2onnx writes Paddle's 4-D ``pad`` (pad3d) as Unsqueeze(axes=[2]) -> 5-D Pad -> Squeeze(axes=[2]);
onnx2tf 1.29.24 transposes the 5-D tensor channels-last and then fails to squeeze it. The graphs here
are tiny (built with onnx.helper, or a 3-conv Paddle net), so the file runs in well under a minute;
most of that is two onnx2tf runs.

The reference for every rewrite is ONNX Runtime on the graph before the rewrite; for the Paddle net,
Paddle Inference (with the oneDNN pass fix, docs/toolchain.md, trap 8) on the Paddle model.
"""

import numpy as np
import onnx
import onnxruntime
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest
from onnx import TensorProto, helper, numpy_helper
from paddle.static import InputSpec

from edgematte.converter import onnx as converter
from edgematte.converter.repairs.onnx.graph import attr, pads_operand
from edgematte.converter.repairs.onnx.unsqueezed_pad_fold import fold_unsqueezed_pads
from edgematte.converter.tflite import convert_to_tflite
from edgematte.core.errors import EdgematteError
from edgematte.runtime.backends.litert import LiteRTBackend
from edgematte.runtime.backends.paddle_inference import PaddleInferenceBackend
from edgematte.runtime.model_io import layout_to_onnx, onnx_to_layout

EXACT_TOLERANCE = 1e-7  # the rewrite only moves data: ONNX Runtime must reproduce the outputs to float rounding
TFLITE_FP32_TOLERANCE = 1e-5  # LiteRT fp32 vs ONNX Runtime
PADDLE_TOLERANCE = 1e-5  # ONNX Runtime vs Paddle Inference

C, H, W = 4, 12, 16
# (mode, 5-D pads [begin N C D H W, end N C D H W], constant value). D is the inserted axis, padded by zero.
# Each branch pads H by 3 and W by 5 in total, so the three results concatenate along channels.
BRANCHES = [
    ("constant", [0, 0, 0, 2, 3, 0, 0, 0, 1, 2], 0.5),
    ("reflect", [0, 0, 0, 1, 2, 0, 0, 0, 2, 3], None),
    ("edge", [0, 0, 0, 3, 1, 0, 0, 0, 0, 4], None),
]
# The same pads without the inserted axis, written out by hand: [begin N C H W, end N C H W].
EXPECTED_4D_PADS = [[0, 0, 2, 3, 0, 0, 1, 2], [0, 0, 1, 2, 0, 0, 2, 3], [0, 0, 3, 1, 0, 0, 0, 4]]


def _model(nodes, initializers, inputs, outputs, opset):
    model = helper.make_model(helper.make_graph(nodes, "pad_chains", inputs, outputs, initializer=initializers),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _unsqueeze_pad_squeeze(tag, source, mode, pads, value, opset, nodes, initializers, constants_as_nodes=False):
    """Append Unsqueeze(axes=[2]) -> Pad(mode, pads, value) -> Squeeze(axes=[2]) on ``source``; returns the output name.

    Axes are attributes before opset 13 and an initializer since; with ``constants_as_nodes`` the
    pads and value are Constant nodes (as paddle2onnx writes them) instead of initializers.
    """
    def constant(name, array):
        if constants_as_nodes:
            nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name)))
        else:
            initializers.append(numpy_helper.from_array(array, name))
        return name

    if opset >= 13:
        initializers.append(numpy_helper.from_array(np.array([2], np.int64), f"{tag}/axes"))
        nodes.append(helper.make_node("Unsqueeze", [source, f"{tag}/axes"], [f"{tag}/5d"], name=f"{tag}/unsqueeze"))
    else:
        nodes.append(helper.make_node("Unsqueeze", [source], [f"{tag}/5d"], name=f"{tag}/unsqueeze", axes=[2]))
    pad_inputs = [f"{tag}/5d", constant(f"{tag}/pads", np.array(pads, np.int64))]
    if value is not None:
        pad_inputs.append(constant(f"{tag}/value", np.array(value, np.float32)))
    nodes.append(helper.make_node("Pad", pad_inputs, [f"{tag}/padded"], name=f"{tag}/pad", mode=mode))
    squeeze_inputs = [f"{tag}/padded"] + ([f"{tag}/axes"] if opset >= 13 else [])
    squeeze_attrs = {} if opset >= 13 else {"axes": [2]}
    nodes.append(helper.make_node("Squeeze", squeeze_inputs, [f"{tag}/4d"], name=f"{tag}/squeeze", **squeeze_attrs))
    return f"{tag}/4d"


def build_pad_chain_model(opset=11, seed=0):
    """Input ``x`` float32 [1, 4, 12, 16]; three padding branches (constant 0.5 / reflect / edge), each as
    paddle2onnx writes a 4-D pad, concatenated and fed to an unpadded 3x3 conv: output ``y`` [1, 2, 13, 19]."""
    rng = np.random.default_rng(seed)
    nodes, initializers = [], []
    padded = [_unsqueeze_pad_squeeze(mode, "x", mode, pads, value, opset, nodes, initializers,
                                     constants_as_nodes=(mode == "constant"))
              for mode, pads, value in BRANCHES]
    nodes.append(helper.make_node("Concat", padded, ["joined"], axis=1))
    initializers.append(numpy_helper.from_array(rng.normal(0.0, 0.3, (2, 3 * C, 3, 3)).astype(np.float32), "w"))
    nodes.append(helper.make_node("Conv", ["joined", "w"], ["y"], kernel_shape=[3, 3]))
    return _model(nodes, initializers, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, W])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, H + 1, W + 3])], opset)


def _run(model, x):
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def _input(shape=(1, C, H, W), seed=1):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype(np.float32)


def _copy(model):
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _pad_ranks(model):
    return [len(pads_operand(model, n)) // 2 for n in model.graph.node if n.op_type == "Pad"]


# --------------------------------------------------------------------------------------------------
# The rewrite, in ONNX Runtime


@pytest.mark.parametrize("opset", [11, 13], ids=["axes-attribute-opset11", "axes-input-opset13"])
def test_each_chain_becomes_one_4d_pad_with_identical_outputs(opset):
    model = build_pad_chain_model(opset)
    x = _input()
    before = _run(model, x)[0]
    records = fold_unsqueezed_pads(model)

    assert [r["action"] for r in records] == ["rewritten"] * 3
    assert [r["mode"] for r in records] == [mode for mode, _, _ in BRANCHES]
    assert [r["pads_before"] for r in records] == [pads for _, pads, _ in BRANCHES]
    assert [r["pads_after"] for r in records] == EXPECTED_4D_PADS
    assert all("zero" in r["reason"] for r in records)
    ops = [n.op_type for n in model.graph.node]
    assert "Unsqueeze" not in ops and "Squeeze" not in ops
    assert ops.count("Constant") == 1  # the constant branch's 0.5 is still read; its orphaned pads are dropped
    assert _pad_ranks(model) == [4, 4, 4]
    names = {t.name for t in model.graph.initializer}
    # the conv weight and the three new 4-D pads; the 5-D pads and the axes nothing reads are dropped
    assert "w" in names and len(names) == 4 and not any(n.endswith(("/axes", "/pads")) for n in names)
    constant_pad = next(n for n in model.graph.node if n.op_type == "Pad" and attr(n, "mode") == b"constant")
    assert list(constant_pad.input[:1]) == ["x"] and len(constant_pad.input) == 3
    onnx.checker.check_model(model, full_check=True)

    after = _run(model, x)[0]
    err = float(np.abs(after - before).max())
    print(f"opset {opset}: folded graph vs original in ONNX Runtime, max abs {err:.3g}")
    assert after.shape == before.shape == (1, 2, H + 1, W + 3)
    assert err <= EXACT_TOLERANCE


def test_nonzero_pad_on_the_inserted_axis_is_left_alone():
    # pads (begin 1, end -1) on the size-1 inserted axis shift its one element out: by the ONNX spec
    # the result is all fill value, which no 4-D Pad of x gives. (ONNX Runtime 1.23 returns
    # uninitialized memory for this graph, so only the structure is checked.)
    nodes, initializers = [], []
    out = _unsqueeze_pad_squeeze("shift", "x", "constant", [0, 0, 1, 1, 1, 0, 0, -1, 1, 1], None, 11, nodes,
                                 initializers)
    nodes.append(helper.make_node("Identity", [out], ["y"]))
    model = _model(nodes, initializers, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, W])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, C, H + 2, W + 2])], 11)
    before_bytes = model.SerializeToString()

    records = fold_unsqueezed_pads(model)

    assert [r["action"] for r in records] == ["left"]
    assert "{2: (1, -1)}" in records[0]["reason"] and "not zero" in records[0]["reason"]
    assert model.SerializeToString() == before_bytes


def test_chain_whose_5d_tensor_is_read_elsewhere_is_left_alone():
    nodes, initializers = [], []
    out = _unsqueeze_pad_squeeze("shared", "x", "reflect", [0, 0, 0, 1, 1, 0, 0, 0, 1, 1], None, 11, nodes,
                                 initializers)
    nodes.append(helper.make_node("Identity", [out], ["y"]))
    nodes.append(helper.make_node("ReduceSum", ["shared/5d"], ["total"], keepdims=0))
    model = _model(nodes, initializers, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, W])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, C, H + 2, W + 2]),
                    helper.make_tensor_value_info("total", TensorProto.FLOAT, [])], 11)
    before_bytes = model.SerializeToString()

    records = fold_unsqueezed_pads(model)

    assert [(r["action"], r["reason"]) for r in records] == [
        ("left", "the unsqueezed or padded tensor is also read elsewhere")]
    assert model.SerializeToString() == before_bytes


# --------------------------------------------------------------------------------------------------
# onnx2tf: fails on the chain, converts the folded graph


@pytest.fixture(scope="module")
def pad_chain_files(tmp_path_factory):
    """(folder, original .onnx, folded .onnx) of the opset-11 pad-chain model."""
    folder = tmp_path_factory.mktemp("pad_chain")
    model = build_pad_chain_model(11)
    onnx.save(model, folder / "original.onnx")
    fold_unsqueezed_pads(model)
    onnx.save(model, folder / "folded.onnx")
    return folder, folder / "original.onnx", folder / "folded.onnx"


def test_onnx2tf_fails_on_the_unsqueeze_pad_squeeze_chain(pad_chain_files):
    # Why the normalization exists. If a newer onnx2tf passes this, the rewrite is still exact but
    # no longer needed for it.
    folder, original, _ = pad_chain_files
    with pytest.raises(EdgematteError, match="squeeze"):
        convert_to_tflite(original, folder / "tflite_original", fp16=False, log_path=folder / "original.log")


def test_onnx2tf_converts_the_folded_graph_to_onnx_runtime_parity(pad_chain_files):
    folder, original, folded = pad_chain_files
    info = convert_to_tflite(folded, folder / "tflite_folded", fp16=False)
    x = _input()
    expected = _run(onnx.load(str(original)), x)[0]
    backend = LiteRTBackend(info["files"]["fp32"]["path"], threads=1)
    (input_info,), (output_info,) = info["files"]["fp32"]["inputs"], info["files"]["fp32"]["outputs"]
    got = layout_to_onnx(backend.run(onnx_to_layout(x, input_info["layout"])), output_info["layout"])
    err = float(np.abs(got - expected).max())
    print(f"LiteRT fp32 of the folded graph vs ONNX Runtime of the original: max abs {err:.3g}")
    assert got.shape == expected.shape and float(expected.std()) > 0.1
    assert err <= TFLITE_FP32_TOLERANCE


# --------------------------------------------------------------------------------------------------
# export_onnx: Paddle's own pads, end to end


class PadNet(nn.Layer):
    """Conv, then Paddle's 4-D ``F.pad`` in constant (0.5), reflect and replicate modes, concat, conv, sigmoid.

    Input ``img`` float32 [1, 3, 20, 24]; output float32 [1, 1, 19, 23] in (0, 1).
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 4, 3, padding=0)
        self.head = nn.Conv2D(12, 1, 3, padding=0)

    def forward(self, img):
        f = self.conv(img)
        # Paddle's pad order is [left, right, top, bottom]; each adds 3 rows and 3 columns.
        parts = [F.pad(f, [2, 1, 1, 2], mode="constant", value=0.5),
                 F.pad(f, [1, 2, 2, 1], mode="reflect"),
                 F.pad(f, [3, 0, 0, 3], mode="replicate")]
        return F.sigmoid(self.head(paddle.concat(parts, axis=1)))


def test_export_onnx_folds_paddle_pads_and_matches_paddle_inference(tmp_path):
    paddle.seed(0)
    net = PadNet()
    net.eval()
    paddle.jit.save(net, str(tmp_path / "model"), input_spec=[InputSpec([1, 3, 20, 24], "float32", "img")])
    info = converter.export_onnx(tmp_path, tmp_path / "model.onnx")

    records = info["normalizations"]
    assert [(r["action"], r["mode"]) for r in records] == [
        ("rewritten", "constant"), ("rewritten", "reflect"), ("rewritten", "edge")]
    # ONNX pads [N C H W begin, N C H W end] from Paddle's [left, right, top, bottom]
    assert [r["pads_after"] for r in records] == [[0, 0, 1, 2, 0, 0, 2, 1], [0, 0, 2, 1, 0, 0, 1, 2],
                                                  [0, 0, 0, 3, 0, 0, 3, 0]]
    assert info["normalization_check"]["max_abs"] <= EXACT_TOLERANCE
    assert info["simplify"]["kept"] is True
    model = onnx.load(str(tmp_path / "model.onnx"))
    assert not any(n.op_type in ("Unsqueeze", "Squeeze") for n in model.graph.node)
    assert _pad_ranks(model) == [4, 4, 4]

    x = _input((1, 3, 20, 24), seed=2)
    expected = PaddleInferenceBackend(tmp_path, threads=1).run(x)
    got = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"img": x})[0]
    err = float(np.abs(got - expected).max())
    print(f"PadNet: exported ONNX vs Paddle Inference max abs {err:.3g}")
    assert got.shape == expected.shape == (1, 1, 19, 23) and float(expected.std()) > 0.01
    assert err <= PADDLE_TOLERANCE
