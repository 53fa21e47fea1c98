"""`edgematte export` / zoo info / check-weights, and the Paddle Inference reference it is judged by."""

import numpy as np
import paddle  # noqa: E402  (the test profile always has the convert toolchain)
import pytest
import yaml

from edgematte.core.errors import EdgematteError
from edgematte.runtime.backends.paddle_inference import PaddleInferenceBackend
from edgematte.zoo.export import build_with_weights, export_deploy_folder
from edgematte.zoo.registry import get_model_spec
from edgematte.zoo.source import read_deploy_folder

from .conftest import run_cli
from .helpers import normalize, run_dygraph


@pytest.fixture(scope="module")
def astronaut(data_dir):
    return np.load(data_dir / "ppmattingv2.seed0.512x512.npz")["image"]


def test_fixed_export_runs_in_paddle_inference_likerun_dygraph(tmp_path, astronaut, data_dir):
    folder = export_deploy_folder("ppmattingv2", tmp_path / "d", seed=0, input_shape=[1, 3, 512, 512])
    names = sorted(p.name for p in folder.iterdir())
    assert names == [".edgematte-output.json", "deploy.yaml", "model.pdiparams", "model.pdmodel"]
    deploy = yaml.safe_load((folder / "deploy.yaml").read_text())
    assert deploy["Deploy"]["input_shape"] == [1, 3, 512, 512]
    assert deploy["Deploy"]["model"] == "model.pdmodel" and deploy["Deploy"]["params"] == "model.pdiparams"
    assert [t["type"] for t in deploy["Deploy"]["transforms"]] == ["LoadImages", "LimitShort", "ResizeToIntMult",
                                                                   "Normalize"]
    assert deploy["ModelName"] == "PPMattingV2"

    x = normalize(astronaut)
    alpha = PaddleInferenceBackend(folder, threads=2).run(x)
    official = np.load(data_dir / "ppmattingv2.seed0.512x512.npz")["alpha"]
    assert alpha.shape == (1, 1, 512, 512)
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0 and alpha.std() > 0.01
    assert np.abs(alpha - official).max() <= 1e-4
    model = build_with_weights(get_model_spec("ppmattingv2"), seed=0)
    assert np.abs(alpha - run_dygraph(model, x)).max() <= 1e-5


def test_default_paddle_inference_config_is_wrong_and_the_fix_is_needed(tmp_path, astronaut):
    """docs/toolchain.md, trap 8, kept visible: if Paddle fixes the pass, this test says so and the fix can go."""
    from paddle import inference

    folder = export_deploy_folder("ppmattingv2", tmp_path / "d", seed=0, input_shape=[1, 3, 512, 512])
    config = inference.Config(str(folder / "model.pdmodel"), str(folder / "model.pdiparams"))
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    x = normalize(astronaut)
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(x)
    predictor.run()
    default = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
    fixed = PaddleInferenceBackend(folder, threads=2).run(x)
    plain = PaddleInferenceBackend(folder, threads=2, use_onednn=False).run(x)
    assert np.abs(fixed - plain).max() <= 1e-5
    assert np.abs(default - plain).max() > 1e-2


@pytest.mark.parametrize("hw", [(512, 512), (480, 640)])
def test_dynamic_export_at_several_sizes(tmp_path_factory, hw):
    folder = tmp_path_factory.mktemp("dyn") / "d"
    export_deploy_folder("ppmattingv2", folder, seed=3, width=0.25)
    source = read_deploy_folder(folder)
    assert source.input_shape == [None, 3, None, None]
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, (1, 3, *hw)).astype(np.float32)
    alpha = PaddleInferenceBackend(folder, threads=2).run(x)
    model = build_with_weights(get_model_spec("ppmattingv2"), seed=3, width=0.25)
    assert alpha.shape == (1, 1, *hw)
    assert np.abs(alpha - run_dygraph(model, x)).max() <= 1e-5


def test_one_backend_serves_several_sizes_exactly(tmp_path):
    """oneDNN reuses state across sizes in one predictor (off by ~3e-3 here); the backend keeps one per shape."""
    folder = export_deploy_folder("ppmattingv2", tmp_path / "d", seed=1, width=0.25)
    model = build_with_weights(get_model_spec("ppmattingv2"), seed=1, width=0.25)
    backend = PaddleInferenceBackend(folder, threads=2)
    rng = np.random.RandomState(2)
    for hw in [(512, 512), (480, 640), (384, 640), (512, 512)]:
        x = rng.uniform(-1, 1, (1, 3, *hw)).astype(np.float32)
        assert np.abs(backend.run(x) - run_dygraph(model, x)).max() <= 1e-5, hw


def test_weights_from_paddle_save_equal_seeded(tmp_path):
    spec = get_model_spec("ppmattingv2")
    seeded = build_with_weights(spec, seed=7, width=0.25)
    path = tmp_path / "w.pdparams"
    paddle.save(seeded.state_dict(), str(path))
    loaded = build_with_weights(spec, weights=path, width=0.25)
    x = np.random.RandomState(1).uniform(-1, 1, (1, 3, 128, 192)).astype(np.float32)
    assert np.array_equal(run_dygraph(seeded, x), run_dygraph(loaded, x))


def test_wrong_weights_are_refused_with_the_mismatch(tmp_path):
    spec = get_model_spec("ppmattingv2")
    path = tmp_path / "tiny.pdparams"
    paddle.save(build_with_weights(spec, seed=0, width=0.25).state_dict(), str(path))
    with pytest.raises(EdgematteError, match=r"tiny.pdparams: does not fit ppmattingv2 .*mis-shaped"):
        build_with_weights(spec, weights=path)
    r = run_cli("zoo", "check-weights", "ppmattingv2", path)
    assert r.returncode == 1
    assert "mis-shaped\tbackbone.features.0.conv.weight\texpects [32, 3, 3, 3]" in r.stdout
    assert r.stderr.count("\n") == 1 and "tiny.pdparams" in r.stderr


@pytest.mark.parametrize("shape", [[1, 3, 500, 512], [1, 4, 512, 512], [1, 3, 32, 32]])
def test_bad_input_shape(tmp_path, shape):
    r = run_cli("export", "ppmattingv2", "--seed", "0", "--input-shape", *shape, "-o", tmp_path / "x")
    assert r.returncode == 1 and "--input-shape" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_export_needs_weights_or_seed(tmp_path):
    r = run_cli("export", "ppmattingv2", "-o", tmp_path / "x")
    assert r.returncode == 1 and "--weights FILE.pdparams or --seed N" in r.stderr


@pytest.mark.parametrize("name", ["ppmattingv2", "humanmatting"])
def test_zoo_info_state_dict_matches_the_official_table(data_dir, name):
    r = run_cli("zoo", "info", name, "--state-dict")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (data_dir / f"{name}.state_dict.tsv").read_text()


def test_zoo_info_prints_flops_and_parameters():
    r = run_cli("zoo", "info", "ppmattingv2", "--json")
    assert r.returncode == 0, r.stderr
    import json

    facts = json.loads(r.stdout)
    assert facts["parameters"] == 8_947_488
    # Paddle's own count (paddle.flops) for the official model at 512x512, as PaddleSeg reports it
    assert facts["macs"] == 7_507_110_912
    assert facts["native_input"] == [1, 3, 512, 512]
