"""Paddle -> ONNX: export_onnx (paddle2onnx, the ONNX repairs of the registry, onnxsim) is exact against Paddle.

The reference is Paddle itself: Paddle Inference with the broken oneDNN fusion pass deleted
(docs/toolchain.md, trap 8). Nets are tiny (input 4x the pooled grid) so the file runs in well under a minute.
The repairs themselves are tested one file each: tests/test_repair_<name>.py (this file's PyramidNet is
also the adaptive_pool_windows repair's test net).
"""

import sys

import cv2
import numpy as np
import onnx
import onnxruntime
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest
from paddle.static import InputSpec
from skimage import data as skdata

from edgematte.converter import onnx as converter
from edgematte.converter.repairs import registry
from edgematte.core.errors import EdgematteError
from edgematte.runtime.backends.base import TensorSpec
from edgematte.runtime.backends.onnxruntime import OnnxRuntimeBackend
from edgematte.runtime.backends.paddle_inference import PaddleInferenceBackend

PARITY_TOLERANCE = 1e-5  # max abs, ONNX Runtime vs Paddle Inference


class PyramidNet(nn.Layer):
    """A PP-MattingV2-like toy: stride-4 grid, pyramid pooling, attention, area resize, bilinear decoder.

    Input ``img`` float32 [1, 3, 4*gh, 4*gw]; output sigmoid alpha float32 [1, 1, 4*gh, 4*gw] in (0, 1).
    Besides the adaptive pools it holds two ordinary pools that must survive unrepaired: a 3x3
    stride-1 pool (on an 8x8 grid paddle2onnx writes adaptive 8 -> 6 bins identically) and a 2x2
    ceil-mode pool like ResNet-vd's shortcut.
    """

    def __init__(self, ch=8, bins=(2, 4, 6)):
        super().__init__()
        self.bins = bins
        self.stem1 = nn.Conv2D(3, ch, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2D(ch)
        self.stem2 = nn.Conv2D(ch, ch, 3, stride=2, padding=1)
        self.ppm = nn.LayerList([nn.Conv2D(ch, ch, 1) for _ in bins])
        self.qkv = nn.Conv2D(ch, 3 * ch, 1)
        self.head = nn.Conv2D(ch * (len(bins) + 6), 1, 3, padding=1)

    def forward(self, img):
        x = F.relu6(self.bn1(self.stem1(img)))
        g = F.relu(self.stem2(x))
        n, c, h, w = g.shape

        def up(t):
            return F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)

        feats = [g]
        for b, conv in zip(self.bins, self.ppm):
            feats.append(up(conv(F.adaptive_avg_pool2d(g, b))))
        feats.append(up(F.interpolate(g, size=((2 * h + 2) // 3, (2 * w + 2) // 3), mode="area")))
        feats.append(up(F.adaptive_max_pool2d(g, 3)))
        feats.append(up(F.avg_pool2d(g, 3, stride=1)))
        feats.append(up(F.avg_pool2d(g, 2, stride=2, ceil_mode=True)))

        q, k, v = paddle.split(self.qkv(g), 3, axis=1)
        q = q.reshape([n, c, h * w]).transpose([0, 2, 1])
        k = k.reshape([n, c, h * w])
        v = v.reshape([n, c, h * w]).transpose([0, 2, 1])
        attention = F.softmax(paddle.matmul(q, k) / c**0.5, axis=-1)
        feats.append(paddle.matmul(attention, v).transpose([0, 2, 1]).reshape([n, c, h, w]))

        logits = F.interpolate(self.head(paddle.concat(feats, axis=1)), scale_factor=4, mode="bilinear",
                               align_corners=False)
        return F.sigmoid(logits)


# Per grid, the adaptive pools in program order and whether paddle2onnx's single pooling node is
# already exact ("kept") or must be "replaced". Worked out by hand from the two window rules:
# paddle2onnx: stride s = floor(in/out), window i = [i*s, i*s + in-(out-1)*s);
# Paddle: window i = [floor(i*in/out), ceil((i+1)*in/out)).
# Order: bins 2, 4, 6, area resize to ((2h+2)//3, (2w+2)//3), adaptive max pool to 3.
EXPECTED_ACTIONS = {
    (8, 8): ["kept", "kept", "replaced", "replaced", "replaced"],  # 8->6, area 8->6, max 8->3 uneven
    (7, 10): ["kept", "replaced", "replaced", "replaced", "kept"],  # 7->2 and 7|10->3 happen to coincide
    (4, 4): ["kept", "kept", "replaced", "kept", "kept"],  # 4->6 upsamples: paddle2onnx writes stride 0
}
GRIDS = list(EXPECTED_ACTIONS)
ONNX_REPAIRS = {r.name: r for r in registry.repairs_for("onnx")}


def _photo(hw):
    """A real photo (astronaut face crop) as PaddleSeg feeds it: float32 [1, 3, H, W] in [-1, 1]."""
    rgb = skdata.astronaut()[30:230, 140:340]
    rgb = cv2.resize(rgb, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
    return ((rgb.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None].copy()


def _save_net(net, folder, input_shape):
    paddle.seed(0)
    net.eval()
    paddle.jit.save(net, str(folder / "model"), input_spec=[InputSpec(input_shape, "float32", "img")])
    return folder


def _build_pyramid_net(folder, grid):
    paddle.seed(7)
    net = PyramidNet()
    # BatchNorm with non-trivial statistics, so the folded conv+BN is exercised too.
    net.bn1._mean.set_value(paddle.uniform([8], min=-0.2, max=0.2))
    net.bn1._variance.set_value(paddle.uniform([8], min=0.5, max=2.0))
    return _save_net(net, folder, [1, 3, 4 * grid[0], 4 * grid[1]])


@pytest.fixture(scope="module", params=GRIDS, ids=lambda g: f"grid{g[0]}x{g[1]}")
def exported(request, tmp_path_factory):
    """(grid, paddle model dir, exported onnx path, export info) for one grid size."""
    grid = request.param
    root = tmp_path_factory.mktemp(f"pyramid{grid[0]}x{grid[1]}")
    model_dir = _build_pyramid_net(root / "paddle", grid)
    info = converter.export_onnx(model_dir, root / "model.onnx")
    return grid, model_dir, root / "model.onnx", info


def _paddle_reference(model_dir, x):
    return PaddleInferenceBackend(model_dir, threads=1).run(x)


def test_repaired_onnx_matches_paddle_inference(exported):
    grid, model_dir, onnx_path, info = exported
    x = _photo((4 * grid[0], 4 * grid[1]))
    reference = _paddle_reference(model_dir, x)
    got = OnnxRuntimeBackend(onnx_path, threads=1).run(x)
    assert got.shape == reference.shape == (1, 1, 4 * grid[0], 4 * grid[1])
    assert 0.05 < reference.std()  # a real signal, not a saturated sigmoid
    err = float(np.abs(got - reference).max())
    print(f"grid {grid}: repaired ONNX vs Paddle Inference max abs {err:.3g}")
    assert err <= PARITY_TOLERANCE


def test_export_records_every_repair(exported):
    """Per-match records as before ("repairs", "normalizations"), and one uniform record per ONNX repair."""
    grid, _, _, info = exported
    assert [r["action"] for r in info["repairs"]] == EXPECTED_ACTIONS[grid]
    assert [tuple(r["input_hw"]) for r in info["repairs"]] == [grid] * 5
    assert info["normalizations"] == [] and info["normalization_check"] is None  # no pads in this net
    assert info["applied_repairs"] == [
        {"name": "adaptive_pool_windows", "kind": "onnx", "matched": 5,
         "changed": EXPECTED_ACTIONS[grid].count("replaced"), "why": ONNX_REPAIRS["adaptive_pool_windows"].why},
        {"name": "resize_to_one_pixel", "kind": "onnx", "matched": 0, "changed": 0,
         "why": ONNX_REPAIRS["resize_to_one_pixel"].why},
        {"name": "unsqueezed_pad_fold", "kind": "onnx", "matched": 0, "changed": 0,
         "why": ONNX_REPAIRS["unsqueezed_pad_fold"].why},
        {"name": "channel_slice_pushdown", "kind": "onnx", "matched": 0, "changed": 0,
         "why": ONNX_REPAIRS["channel_slice_pushdown"].why},
    ]


def test_export_info_describes_the_file(exported):
    grid, _, onnx_path, info = exported
    assert info["opset"] == 11
    assert info["inputs"] == [{"name": "img", "shape": [1, 3, 4 * grid[0], 4 * grid[1]], "dtype": "float32"}]
    assert len(info["outputs"]) == 1 and info["outputs"][0]["shape"] == [1, 1, 4 * grid[0], 4 * grid[1]]
    assert info["simplify"]["kept"] is True and info["simplify"]["max_abs"] <= converter.SIMPLIFY_TOLERANCE
    assert info["tool_versions"]["paddle2onnx"] == "1.3.1"
    assert set(info["tool_versions"]) == {"paddle2onnx", "paddlepaddle", "onnx", "onnxsim", "onnxruntime"}
    assert "PaddlePaddle model is exported as ONNX format now" in info["paddle2onnx_log"]
    onnx.checker.check_model(onnx.load(str(onnx_path)), full_check=True)


def test_simplifier_result_is_dropped_when_it_does_not_validate(tmp_path, monkeypatch):
    model_dir = _build_pyramid_net(tmp_path / "paddle", (8, 8))
    real_run_tool = converter.run_tool

    def run_tool_with_a_bad_simplifier(argv, *, what, **kwargs):
        done = real_run_tool(argv, what=what, **kwargs)
        if what == "onnxsim":
            bad = onnx.load(argv[-1])
            bad.graph.node.append(onnx.helper.make_node("Neg", [bad.graph.output[0].name], ["negated"]))
            bad.graph.output[0].name = "negated"
            onnx.save(bad, argv[-1])
        return done

    monkeypatch.setattr(converter, "run_tool", run_tool_with_a_bad_simplifier)
    info = converter.export_onnx(model_dir, tmp_path / "model.onnx")
    assert info["simplify"]["kept"] is False
    assert "differs" in info["simplify"]["reason"]
    x = _photo((32, 32))
    err = float(np.abs(OnnxRuntimeBackend(tmp_path / "model.onnx").run(x) - _paddle_reference(model_dir, x)).max())
    assert err <= PARITY_TOLERANCE


class _Tiny(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 4, 3, padding=1)

    def forward(self, img):
        return F.adaptive_avg_pool2d(self.conv(img), 3)


def test_dynamic_input_shape_is_refused(tmp_path):
    model_dir = _save_net(_Tiny(), tmp_path / "paddle", [1, 3, None, None])
    with pytest.raises(EdgematteError, match="fixed input shape"):
        converter.export_onnx(model_dir, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_paddle2onnx_failure_is_one_clear_error(tmp_path):
    model_dir = _save_net(_Tiny(), tmp_path / "paddle", [1, 3, 10, 10])
    (model_dir / "model.pdiparams").write_bytes(b"\0" * 7)  # paddle2onnx exits 0 and leaves an empty file
    (tmp_path / "model.onnx").write_bytes(b"previous good file")
    with pytest.raises(EdgematteError, match="paddle2onnx failed"):
        converter.export_onnx(model_dir, tmp_path / "model.onnx")
    assert (tmp_path / "model.onnx").read_bytes() == b"previous good file"


# ---------------------------------------------------------------------------------- the backend


def test_backend_reports_specs_and_runs(exported):
    grid, _, onnx_path, _ = exported
    hw = (4 * grid[0], 4 * grid[1])
    backend = OnnxRuntimeBackend(onnx_path, threads=2)
    assert backend.name == "onnxruntime"
    assert backend.inputs == [TensorSpec("img", (1, 3, *hw), "float32")]
    assert len(backend.outputs) == 1 and backend.outputs[0].shape == (1, 1, *hw)
    assert backend._session.get_session_options().intra_op_num_threads == 2
    x = _photo(hw)
    first = backend.run(x)
    direct = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"img": x})[0]
    assert np.array_equal(first, direct)
    kept = first.copy()
    backend.run(-x)
    assert np.array_equal(first, kept)  # the caller owns what run() returned
    assert 0.0 < first.min() and first.max() < 1.0  # sigmoid output


def test_backend_input_errors(exported, tmp_path):
    _, _, onnx_path, _ = exported
    backend = OnnxRuntimeBackend(onnx_path)
    spec = backend.inputs[0]
    with pytest.raises(EdgematteError, match="wants shape"):
        backend.run(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(EdgematteError, match="wants float32"):
        backend.run(np.zeros(spec.shape, np.float64))
    with pytest.raises(EdgematteError, match="no such ONNX model"):
        OnnxRuntimeBackend(tmp_path / "missing.onnx")
    (tmp_path / "garbage.onnx").write_bytes(b"not a model")
    with pytest.raises(EdgematteError, match="garbage.onnx: ONNX Runtime cannot load it"):
        OnnxRuntimeBackend(tmp_path / "garbage.onnx")


def test_backend_runs_several_inputs_and_outputs_through_run_feeds(tmp_path):
    """``run`` is the one-input call (first output); a model with several inputs runs through ``run_feeds``."""
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Add", ["x", "y"], ["a"]), onnx.helper.make_node("Neg", ["x"], ["b"])], "two",
        [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1, 4]) for n in ("x", "y")],
        [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1, 4]) for n in ("a", "b")])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 11)])
    model.ir_version = 6
    onnx.save(model, tmp_path / "two.onnx")
    backend = OnnxRuntimeBackend(tmp_path / "two.onnx")
    x, y = np.arange(4, dtype=np.float32)[None], np.full((1, 4), 10, np.float32)
    a, b = backend.run_feeds([x, y])
    assert a.tolist() == [[10, 11, 12, 13]] and b.tolist() == [[0, -1, -2, -3]]
    with pytest.raises(EdgematteError, match="the model has 2 inputs; run_feeds takes them all"):
        backend.run(x)
    with pytest.raises(EdgematteError, match=r"the model has 2 inputs \['x', 'y'\], got 1 arrays"):
        backend.run_feeds([x])


def test_backend_without_onnxruntime_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` raise ImportError
    with pytest.raises(EdgematteError, match="needs the onnxruntime package"):
        OnnxRuntimeBackend(tmp_path / "any.onnx")


# ---------------------------------------------------------------------------------- full size


@pytest.mark.slow
def test_ppmattingv2_at_256_converts_and_matches_paddle(tmp_path):
    """The reported failure: PP-MattingV2 at 256x256 pools a 4x4 grid to 6x6 bins (paddle2onnx: stride 0).

    Measured here: repaired ONNX vs Paddle Inference 1.3e-6 (formula weights, seed 0, astronaut).
    """
    from edgematte.zoo import ppmattingv2
    from edgematte.zoo.weights import seeded_state_dict

    net = ppmattingv2.build(1.0)
    net.set_state_dict({k: paddle.to_tensor(v) for k, v in seeded_state_dict(ppmattingv2.layout(1.0), 0).items()})
    model_dir = _save_net(net, tmp_path / "paddle", [1, 3, 256, 256])
    info = converter.export_onnx(model_dir, tmp_path / "model.onnx")
    assert [(r["output_hw"], r["action"]) for r in info["repairs"] if r.get("paddle_op") == "pool2d"] == [
        ([2, 2], "kept"), ([4, 4], "kept"), ([6, 6], "replaced")]
    rgb = cv2.resize(skdata.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    x = ((rgb.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None].copy()
    reference = _paddle_reference(model_dir, x)
    got = OnnxRuntimeBackend(tmp_path / "model.onnx", threads=2).run(x)
    assert reference.std() > 0.05
    err = float(np.abs(got - reference).max())
    print(f"PP-MattingV2 256x256: repaired ONNX vs Paddle Inference max abs {err:.3g}")
    assert err <= PARITY_TOLERANCE
