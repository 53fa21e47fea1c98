"""edgematte.converter.paddle_lite (opt) and edgematte.runtime.backends.paddle_lite (x86 .nb runner).

References are Paddle Inference runs of the same exported model (oneDNN with the broken fusion pass
removed), which tests/test_converter_program.py checks against the dygraph net.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

paddle = pytest.importorskip("paddle", reason="the converter tests need paddlepaddle (edgematte[convert])")
pytest.importorskip("paddlelite", reason="the Paddle Lite tests need paddlelite 2.13rc0 (edgematte[convert])")

from edgematte.converter.freeze import freeze_input_shape  # noqa: E402
from edgematte.converter.paddle_lite import optimize, supported_ops_report  # noqa: E402
from edgematte.converter.program import read_program  # noqa: E402
from edgematte.converter.repairs import registry  # noqa: E402
from edgematte.core.errors import EdgematteError  # noqa: E402
from edgematte.runtime.backends.paddle_inference import PaddleInferenceBackend  # noqa: E402
from edgematte.runtime.backends.paddle_lite import PaddleLiteBackend, nb_kernel_targets  # noqa: E402
from tests.test_converter_program import (  # noqa: E402
    FEED_NAME,
    FROZEN_SHAPE,
    export_tiny_net,
    folder_digest,
    seeded_input,
)

LITE_VS_PADDLE_MAX_ABS = 1e-5


class UnsupportedOpsNet(paddle.nn.Layer):
    """A conv followed by erfinv and lgamma, ops Paddle Lite 2.13 has no kernel for on any target."""

    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 4, 3, padding=1)

    def forward(self, img):
        return paddle.lgamma(paddle.erfinv(0.5 * paddle.tanh(self.conv(img))))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("lite_models")
    dynamic = export_tiny_net(root / "dynamic", [-1, 3, -1, -1])
    unsupported = root / "unsupported"
    paddle.jit.save(UnsupportedOpsNet(), str(unsupported / "model"),
                    input_spec=[paddle.static.InputSpec([1, 3, 16, 16], "float32", name=FEED_NAME)])
    return {
        "dynamic": dynamic,
        "frozen": freeze_input_shape(dynamic, root / "frozen", FROZEN_SHAPE).files.model.parent,
        "unsupported": unsupported,
    }


@pytest.fixture(scope="module")
def x86_nb(models, tmp_path_factory):
    out = tmp_path_factory.mktemp("nb") / "tiny_x86.nb"
    before = folder_digest(models["dynamic"])
    info = optimize(models["dynamic"], out, "x86")
    assert folder_digest(models["dynamic"]) == before, "opt's input files were modified"
    return info


def test_optimize_x86_patches_relu6_and_writes_one_nb(x86_nb):
    """opt reads the program with the registry's Paddle program repairs applied (why they are needed:
    tests/test_repair_relu6_threshold.py)."""
    assert x86_nb.relu6_patched == 1
    assert x86_nb.as_dict()["applied_repairs"] == [
        {"name": "relu6_threshold", "kind": "paddle_program", "matched": 1, "changed": 1,
         "why": registry.repairs_for("paddle_program")[0].why},
        *({"name": r.name, "kind": "paddle_program", "matched": 0, "changed": 0, "why": r.why}
          for r in registry.repairs_for("paddle_program")[1:])]
    assert [r["action"] for r in x86_nb.applied_repairs[0]["records"]] == ["patched"]
    assert x86_nb.nb_path.is_file() and x86_nb.nb_bytes == x86_nb.nb_path.stat().st_size > 1000
    assert set(x86_nb.kernel_targets) == {"host", "x86"}
    assert sorted(p.name for p in x86_nb.nb_path.parent.iterdir()) == ["tiny_x86.nb"]


@pytest.mark.parametrize("target, place", [("arm", "arm"), ("opencl", "opencl")])
def test_optimize_device_targets_and_the_runner_refuses_them(models, tmp_path, target, place):
    info = optimize(models["dynamic"], tmp_path / f"tiny_{target}.nb", target)
    assert info.nb_path.stat().st_size > 1000
    assert place in nb_kernel_targets(info.nb_path)
    assert "x86" not in nb_kernel_targets(info.nb_path)
    # the x86 wheel would return zeros (or crash) on it: refused before loading
    with pytest.raises(EdgematteError, match=f"optimized for {place}"):
        PaddleLiteBackend(info.nb_path)


@pytest.mark.parametrize("shape", [FROZEN_SHAPE, (1, 3, 64, 96)])
def test_x86_nb_matches_paddle_inference(x86_nb, models, shape):
    x = seeded_input(shape)
    reference = PaddleInferenceBackend(models["dynamic"]).run(x)
    lite = PaddleLiteBackend(x86_nb.nb_path).run(x)
    assert lite.shape == reference.shape == (1, 1) + tuple(shape[2:])
    assert np.abs(lite - reference).max() <= LITE_VS_PADDLE_MAX_ABS


def test_frozen_model_converts_and_matches(models, tmp_path):
    info = optimize(models["frozen"], tmp_path / "frozen_x86.nb", "x86")
    x = seeded_input(FROZEN_SHAPE, seed=3)
    reference = PaddleInferenceBackend(models["dynamic"]).run(x)
    assert np.abs(PaddleLiteBackend(info.nb_path).run(x) - reference).max() <= LITE_VS_PADDLE_MAX_ABS


def test_runs_return_independent_arrays(x86_nb):
    """Lite's output numpy() is a view the next run overwrites; run() must hand out copies."""
    backend = PaddleLiteBackend(x86_nb.nb_path)
    x1, x2 = seeded_input(FROZEN_SHAPE, seed=4), seeded_input(FROZEN_SHAPE, seed=5)
    y1 = backend.run(x1)
    y1_snapshot = y1.copy()
    y2 = backend.run(x2)
    assert np.array_equal(y1, y1_snapshot)
    assert np.abs(y1 - y2).max() > 0.1  # different images give different alphas
    assert np.array_equal(backend.run(x1), y1)
    assert backend.inputs[0].name == FEED_NAME and backend.inputs[0].shape == FROZEN_SHAPE
    assert backend.outputs[0].name == read_program(x86_nb.source.model).fetch_names[0]
    assert backend.name == "paddle_lite"


_SIZES_CHILD = """
import sys
import numpy as np
from edgematte.runtime.backends.paddle_lite import PaddleLiteBackend
nb, inputs, outputs = sys.argv[1:4]
backend = PaddleLiteBackend(nb)
xs = np.load(inputs)
np.savez(outputs, *[backend.run(xs[f"arr_{i}"]) for i in range(len(xs.files))],
         predictors=np.array(backend.predictors_created))
"""


def test_changing_input_sizes_match_paddle_inference(x86_nb, models, tmp_path):
    """One Lite predictor fed a new shape corrupts the heap (abort at 480x640 -> 64x96 or 640x480).

    The backend rebuilds its predictor on a shape change. The runs happen in a child process, so a
    regression fails this test instead of killing pytest.
    """
    shapes = [FROZEN_SHAPE, (1, 3, 64, 96), (1, 3, 640, 480), FROZEN_SHAPE]
    xs = [seeded_input(shape, seed=i) for i, shape in enumerate(shapes)]
    np.savez(tmp_path / "inputs.npz", *xs)
    done = subprocess.run(
        [sys.executable, "-c", _SIZES_CHILD, str(x86_nb.nb_path), str(tmp_path / "inputs.npz"),
         str(tmp_path / "outputs.npz")],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outputs = np.load(tmp_path / "outputs.npz")
    assert int(outputs["predictors"]) == len(shapes)
    reference = PaddleInferenceBackend(models["dynamic"])
    for i, x in enumerate(xs):
        assert np.abs(outputs[f"arr_{i}"] - reference.run(x)).max() <= LITE_VS_PADDLE_MAX_ABS


def test_both_feeding_methods_agree(x86_nb):
    """numpy 2 makes the backend feed with resize + set_float_data (from_numpy breaks there): same numbers."""
    x = seeded_input((1, 3, 64, 96), seed=6)
    from_numpy = PaddleLiteBackend(x86_nb.nb_path)
    set_float_data = PaddleLiteBackend(x86_nb.nb_path)
    set_float_data._feed_with_from_numpy = False
    assert np.array_equal(from_numpy.run(x), set_float_data.run(x))
    # a non-contiguous view feeds the same values; float64 is refused rather than fed as FP64
    transposed_copy = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    assert np.array_equal(from_numpy.run(transposed_copy), from_numpy.run(x))
    with pytest.raises(ValueError, match="float32"):
        from_numpy.run(x.astype(np.float64))


def test_supported_ops_report(models):
    report = supported_ops_report(models["dynamic"], "x86")
    assert report["supported"] and report["unsupported"] == []
    assert set(report["ops"]) == set(read_program(models["dynamic"] / "model.pdmodel").op_counts)
    assert "kX86" in report["ops"]["conv2d"]["places"]
    assert report["ops"]["conv2d"]["count"] == 2

    arm = supported_ops_report(models["unsupported"], "arm")
    assert not arm["supported"] and arm["unsupported"] == ["erfinv", "lgamma"]
    assert "kARM" in arm["ops"]["conv2d"]["places"]


def test_unsupported_ops_are_listed_and_no_nb_is_left(models, tmp_path):
    out = tmp_path / "out" / "model.nb"
    with pytest.raises(EdgematteError, match=r"no x86 kernel for 2 op type\(s\): erfinv, lgamma"):
        optimize(models["unsupported"], out, "x86")
    assert list(out.parent.iterdir()) == []


def _broken_copy(source: Path, folder: Path, truncate: str) -> Path:
    folder.mkdir(parents=True)
    for suffix in (".pdmodel", ".pdiparams"):
        data = (source / f"model{suffix}").read_bytes()
        (folder / f"model{suffix}").write_bytes(data[: len(data) // 2] if suffix == truncate else data)
    return folder


@pytest.mark.parametrize("truncate", [".pdmodel", ".pdiparams"])
def test_corrupt_model_gives_one_line_error_and_keeps_the_old_nb(models, tmp_path, truncate):
    broken = _broken_copy(models["dynamic"], tmp_path / "broken", truncate)
    out_dir = tmp_path / "out"
    with pytest.raises(EdgematteError) as caught:
        optimize(broken, out_dir / "new.nb", "arm")
    message = str(caught.value)
    assert "\n" not in message and f"model{truncate}" in message
    assert not out_dir.exists() or list(out_dir.iterdir()) == []

    out_dir.mkdir(exist_ok=True)
    previous = out_dir / "previous.nb"
    previous.write_bytes(b"a good model from an earlier run")
    with pytest.raises(EdgematteError):
        optimize(broken, previous, "arm")
    assert previous.read_bytes() == b"a good model from an earlier run"
    assert sorted(p.name for p in out_dir.iterdir()) == ["previous.nb"]


def test_bad_arguments(models, tmp_path):
    with pytest.raises(EdgematteError, match="--target"):
        optimize(models["dynamic"], tmp_path / "m.nb", "riscv")
    with pytest.raises(EdgematteError, match=r"end in \.nb"):
        optimize(models["dynamic"], tmp_path / "m.bin", "x86")
    not_nb = tmp_path / "fake.nb"
    not_nb.write_bytes(b"\0" * 64)
    with pytest.raises(EdgematteError, match="not a Paddle Lite"):
        PaddleLiteBackend(not_nb)
