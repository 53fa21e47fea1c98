"""edgematte.converter.program: reading and freezing legacy Paddle inference programs.

The models are tiny nets built here with the op types that matter in PP-MattingV2 (conv + BatchNorm
+ relu6, adaptive_avg_pool2d with uneven bins, bilinear interpolate to a run-time size, sigmoid),
exported with ``paddle.jit.save`` as users' models are. Names and shapes are checked against what
Paddle Inference itself reports, never against the code under test. (The relu6 patch is a repair now:
tests/test_repair_relu6_threshold.py.)
"""

import hashlib
from pathlib import Path

import numpy as np
import pytest

paddle = pytest.importorskip("paddle", reason="the converter tests need paddlepaddle (edgematte[convert])")

from edgematte.converter.freeze import freeze_input_shape  # noqa: E402
from edgematte.converter.program import check_params_file, locate_model_files, read_program  # noqa: E402
from edgematte.core.errors import EdgematteError  # noqa: E402
from edgematte.runtime.backends.paddle_inference import PaddleInferenceBackend  # noqa: E402

FEED_NAME = "img"
FROZEN_SHAPE = (1, 3, 480, 640)


# ----------------------------------------------------------------------------- test models
class TinyMattingNet(paddle.nn.Layer):
    """[N,3,H,W] float32 -> alpha [N,1,H,W] in (0,1), with PP-MattingV2's awkward op types.

    At 480x640 the pyramid branch pools a 15x20 grid (1/32 scale) into 6x6 bins: uneven windows in
    both directions. Both resizes take their size from a tensor's run-time shape, as PaddleSeg does.
    """

    def __init__(self, outputs: int = 1):
        super().__init__()
        self.outputs = outputs
        self.conv = paddle.nn.Conv2D(3, 8, 3, stride=2, padding=1)
        self.bn = paddle.nn.BatchNorm2D(8)
        self.head = paddle.nn.Conv2D(8, 1, 1)

    def forward(self, img):
        x = paddle.nn.functional.relu6(self.bn(self.conv(img)))  # 1/2 scale
        grid = paddle.nn.functional.avg_pool2d(x, 16)  # 1/32 scale
        pooled = paddle.nn.functional.adaptive_avg_pool2d(grid, 6)
        context = paddle.nn.functional.interpolate(pooled, size=x.shape[2:], mode="bilinear", align_corners=False)
        logits = self.head(x + context)
        logits = paddle.nn.functional.interpolate(logits, size=img.shape[2:], mode="bilinear", align_corners=False)
        alpha = paddle.nn.functional.sigmoid(logits)
        if self.outputs == 2:
            return alpha, logits
        return alpha


def build_tiny_net(outputs: int = 1, seed: int = 0) -> TinyMattingNet:
    """A TinyMattingNet in eval mode with non-trivial BatchNorm statistics (so BN and relu6 matter)."""
    paddle.seed(seed)
    net = TinyMattingNet(outputs)
    rng = np.random.RandomState(seed)
    net.bn.weight.set_value((3.0 + rng.rand(8)).astype("float32"))  # drives some activations past 6
    net.bn.bias.set_value((0.5 * rng.randn(8)).astype("float32"))
    net.bn._mean.set_value((0.1 * rng.randn(8)).astype("float32"))
    net.bn._variance.set_value(np.exp(0.2 * rng.randn(8)).astype("float32"))
    net.eval()
    return net


def export_tiny_net(folder: Path, input_shape, outputs: int = 1) -> Path:
    """``paddle.jit.save`` a TinyMattingNet to ``folder/model.pdmodel`` + ``.pdiparams`` (feed ``img``)."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = paddle.static.InputSpec(list(input_shape), "float32", name=FEED_NAME)
    paddle.jit.save(build_tiny_net(outputs), str(folder / "model"), input_spec=[spec])
    return folder


def seeded_input(shape, seed: int = 1) -> np.ndarray:
    """float32 in [-1, 1] (a normalised image), deterministic."""
    return np.random.RandomState(seed).uniform(-1.0, 1.0, size=shape).astype(np.float32)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def folder_digest(folder: Path) -> dict:
    """{file name: (sha256, mtime_ns)} of a folder: proves nothing was rewritten."""
    return {p.name: (sha256(p), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("paddle_models")
    return {
        "dynamic": export_tiny_net(root / "dynamic", [-1, 3, -1, -1]),
        "fixed": export_tiny_net(root / "fixed", [1, 3, 64, 96]),
        "two_outputs": export_tiny_net(root / "two_outputs", [-1, 3, -1, -1], outputs=2),
    }


# ----------------------------------------------------------------------------- reading
def test_read_program_matches_what_paddle_inference_reports(models):
    for key in ("dynamic", "two_outputs"):
        info = read_program(models[key] / "model.pdmodel")
        paddle_inference = PaddleInferenceBackend(models[key])
        assert info.feed_names == tuple(s.name for s in paddle_inference.inputs) == (FEED_NAME,)
        assert info.fetch_names == tuple(s.name for s in paddle_inference.outputs)
        assert info.feeds[0].shape == (-1, 3, -1, -1)
        assert info.feeds[0].dtype == "float32"
    assert len(read_program(models["two_outputs"] / "model.pdmodel").fetch_names) == 2
    assert read_program(models["fixed"] / "model.pdmodel").feeds[0].shape == (1, 3, 64, 96)


def test_read_program_counts_op_types(models):
    info = read_program(models["dynamic"] / "model.pdmodel")
    # what TinyMattingNet.forward calls: 2 convs, 1 BN, 1 relu6, 2 pools, 2 resizes, 1 sigmoid
    assert info.op_counts["conv2d"] == 2
    assert info.op_counts["batch_norm"] == 1
    assert info.op_counts["relu6"] == 1
    assert info.op_counts["pool2d"] == 2
    assert info.op_counts["bilinear_interp_v2"] == 2
    assert info.op_counts["sigmoid"] == 1
    assert info.op_counts["feed"] == info.op_counts["fetch"] == 1
    assert info.program_bytes == (models["dynamic"] / "model.pdmodel").read_bytes()


def test_locate_model_files_accepts_folder_file_prefix_and_pair(models, tmp_path):
    folder = models["dynamic"]
    expected = (folder / "model.pdmodel", folder / "model.pdiparams")
    for source in (folder, folder / "model.pdmodel", folder / "model", expected):
        files = locate_model_files(source)
        assert (files.model, files.params) == expected
    fastdeploy = tmp_path / "fd"
    fastdeploy.mkdir()
    for suffix in (".pdmodel", ".pdiparams"):
        (fastdeploy / f"inference{suffix}").write_bytes((folder / f"model{suffix}").read_bytes())
    assert locate_model_files(fastdeploy).model.name == "inference.pdmodel"
    with pytest.raises(EdgematteError, match="not found"):
        locate_model_files(tmp_path / "nothing" / "model.pdmodel")


# ----------------------------------------------------------------------------- freezing
def _producer_types(program_bytes: bytes) -> dict:
    """{variable name: type of the op that writes it} for block 0."""
    from paddle.base.proto import framework_pb2

    program = framework_pb2.ProgramDesc.FromString(program_bytes)
    return {arg: op.type for op in program.blocks[0].ops for out in op.outputs for arg in out.arguments}


def test_freeze_input_shape_reinfers_every_shape_and_computes_the_same(models, tmp_path):
    source = models["dynamic"]
    before = folder_digest(source)
    frozen = freeze_input_shape(source, tmp_path / "frozen", FROZEN_SHAPE)

    assert folder_digest(source) == before, "the user's model files were modified"
    assert frozen.info.feeds[0].shape == FROZEN_SHAPE
    assert sha256(frozen.files.params) == sha256(source / "model.pdiparams")
    # the two resizes take their size from run-time values: compile-time inference leaves them (and the
    # sigmoid and scale after the second one) dynamic; the run-time pass fixes all of them
    producers = _producer_types(frozen.info.program_bytes)
    assert sorted(producers[n] for n in frozen.compile_time_dynamic) == [
        "bilinear_interp_v2", "bilinear_interp_v2", "scale", "sigmoid"
    ]
    assert frozen.still_dynamic == ()
    shapes = {name: var.shape for name, var in frozen.info.variables.items()}
    pool_outputs = [s for s in shapes.values() if len(s) == 4 and s[2:] in ((15, 20), (6, 6))]
    assert sorted(pool_outputs) == [(1, 8, 6, 6), (1, 8, 15, 20)]
    assert shapes[frozen.info.fetch_names[0]] == (1, 1, 480, 640)

    # same numbers in Paddle Inference (oneDNN with the broken fusion pass removed)
    x = seeded_input(FROZEN_SHAPE)
    original = PaddleInferenceBackend(source).run(x)
    fixed = PaddleInferenceBackend(frozen.files.model).run(x)
    assert original.shape == (1, 1, 480, 640)
    assert np.abs(fixed - original).max() <= 1e-6
    assert 0.05 < original.std()  # a real image-dependent alpha, not a constant


def test_frozen_model_matches_the_dygraph_net(models, tmp_path):
    frozen = freeze_input_shape(models["dynamic"], tmp_path / "frozen", FROZEN_SHAPE)
    x = seeded_input(FROZEN_SHAPE, seed=2)
    dygraph = build_tiny_net()(paddle.to_tensor(x)).numpy()
    assert np.abs(PaddleInferenceBackend(frozen.files.model).run(x) - dygraph).max() <= 1e-5


@pytest.mark.parametrize(
    "shape, problem",
    [
        ((1, 4, 512, 512), "dimension 1 must be 3"),
        ((1, 3, 480), "has 4 dimensions"),
        ((1, 3, 0, 640), "positive"),
    ],
)
def test_freeze_rejects_shapes_the_model_cannot_take(models, tmp_path, shape, problem):
    with pytest.raises(EdgematteError, match="--input-shape") as caught:
        freeze_input_shape(models["dynamic"], tmp_path / "frozen", shape)
    assert problem in str(caught.value)
    assert not (tmp_path / "frozen").exists()


def test_freeze_refuses_to_change_a_fixed_dimension(models, tmp_path):
    with pytest.raises(EdgematteError, match=r"dimension 2 must be 64"):
        freeze_input_shape(models["fixed"], tmp_path / "frozen", FROZEN_SHAPE)
    same = freeze_input_shape(models["fixed"], tmp_path / "same", (1, 3, 64, 96))
    assert same.still_dynamic == () and same.compile_time_dynamic == ()


def test_freeze_never_writes_into_the_source_folder(models):
    before = folder_digest(models["dynamic"])
    for target in (models["dynamic"], models["dynamic"].parent):
        with pytest.raises(EdgematteError, match="new folder"):
            freeze_input_shape(models["dynamic"], target, FROZEN_SHAPE)
    assert folder_digest(models["dynamic"]) == before


# ----------------------------------------------------------------------------- corrupt files
def _copy_model(src: Path, dst: Path, model_bytes=None, params_bytes=None) -> Path:
    dst.mkdir(parents=True)
    (dst / "model.pdmodel").write_bytes((src / "model.pdmodel").read_bytes() if model_bytes is None else model_bytes)
    (dst / "model.pdiparams").write_bytes(
        (src / "model.pdiparams").read_bytes() if params_bytes is None else params_bytes
    )
    return dst


def _one_line_error(callable_, *args) -> str:
    with pytest.raises(EdgematteError) as caught:
        callable_(*args)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_corrupt_or_truncated_pdmodel_is_one_line_error(models, tmp_path):
    good = (models["dynamic"] / "model.pdmodel").read_bytes()
    cases = {
        "truncated": good[: len(good) // 2],
        "garbage": bytes(range(256)) * 4,
        "empty": b"",
    }
    for name, data in cases.items():
        path = tmp_path / f"{name}.pdmodel"
        path.write_bytes(data)
        message = _one_line_error(read_program, path)
        assert str(path) in message


def test_truncated_or_foreign_pdiparams_is_one_line_error(models, tmp_path):
    source = models["dynamic"]
    params = (source / "model.pdiparams").read_bytes()
    info = read_program(source / "model.pdmodel")
    assert check_params_file(info, source / "model.pdiparams") == len(info.parameters) == 8

    truncated = _copy_model(source, tmp_path / "truncated", params_bytes=params[:-100])
    message = _one_line_error(freeze_input_shape, truncated, tmp_path / "out", FROZEN_SHAPE)
    assert "model.pdiparams" in message and "truncated" in message
    padded = _copy_model(source, tmp_path / "padded", params_bytes=params + b"\0" * 16)
    assert "16 unexpected bytes" in _one_line_error(check_params_file, info, padded / "model.pdiparams")
    # parameters of a different architecture
    other = tmp_path / "other"
    paddle.jit.save(paddle.nn.Conv2D(3, 2, 1), str(other / "model"),
                    input_spec=[paddle.static.InputSpec([1, 3, 8, 8], "float32", name=FEED_NAME)])
    mismatched = _copy_model(source, tmp_path / "mismatched", params_bytes=(other / "model.pdiparams").read_bytes())
    assert "model.pdiparams" in _one_line_error(check_params_file, info, mismatched / "model.pdiparams")
    assert not (tmp_path / "out").exists()
