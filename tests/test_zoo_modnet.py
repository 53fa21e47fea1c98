"""MODNet dygraph models (MobileNetV2, ResNet50_vd, HRNet_W18 backbones): official checkpoint layouts, forward
parity with PaddleSeg, and what ``zoo list`` / ``zoo info`` say about them.

Seed 0 of these models is the seeded-weight formula plus calibrated BatchNorm statistics
(``tests/data/official/MODEL/bn_stats.npz``; the plain formula saturates the deeper backbones). The references:
- ``tests/data/MODEL.seed0.512x512.alpha_stride4.npz``: every 4th row and column of PaddleSeg's own dygraph alpha
  for the astronaut photo at 512x512 (the full reference is 2.4 MB a model), plus the full alpha's min, max, mean;
- the deploy program PaddleSeg's export wrote (``tests/official_models.py``), run in Paddle Inference at 128x128.

Float noise: both checks compare two float32 computations of the same net, each some rounding away from the exact
result, so a bound is the sum of the two noises, measured against the same model run in float64:
- at 512x512 (``Facts``; astronaut, seed 0): how far our float32 dygraph alpha and PaddleSeg's float32 reference
  each lie from our float64 alpha. MODNet-MobileNetV2: ours 1.20e-4, PaddleSeg's 1.12e-4 (we measure 1.69e-4
  between them; PaddleSeg's own static export against its dygraph: 1.7e-4). MODNet-ResNet50_vd: 1.34e-4 and
  2.49e-4 (between them 2.52e-4; PaddleSeg's: 2.8e-4). MODNet-HRNet_W18: 5.48e-5 and 8.69e-5 (between them
  8.52e-5; PaddleSeg's: 1.0e-4).
- at 128x128 both are measured in the test: PaddleSeg's program must lie within twice our float32 noise of our
  float64 alpha (measured: MobileNetV2 3.5e-5 against a noise of 3.2e-5, ResNet50_vd 5.0e-5 against 3.2e-5,
  HRNet_W18 2.3e-5 against 2.4e-5).
"""

import functools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edgematte.runtime.backends.paddle_inference import PaddleInferenceBackend
from edgematte.zoo.bn_calibration import calibrate_batchnorm, calibration_input
from edgematte.zoo.registry import get_model_spec
from edgematte.zoo.weights import count_parameters, format_layout, seeded_state_dict

from .conftest import run_cli
from .helpers import assert_statistics_reproduced, normalize, run_dygraph
from .official_models import OFFICIAL, build_official_folder

DATA = Path(__file__).parent / "data"
TINY_WIDTH = 0.25


class Facts:
    """What is known about one MODNet variant: checkpoint size, ``paddle.flops`` (multiply-accumulates) at
    ``flops_size`` (512 is the published figure; the heavy nets are counted at 256 to keep the test short), and the
    float32 noise at 512x512 of our alpha and of PaddleSeg's reference (max abs from our float64 alpha)."""

    def __init__(self, name, entries, parameters, with_running_stats, flops_size, macs, our_noise_512,
                 reference_noise_512):
        self.name, self.entries, self.parameters = name, entries, parameters
        self.with_running_stats, self.flops_size, self.macs = with_running_stats, flops_size, macs
        self.bound_512 = our_noise_512 + reference_noise_512


VARIANTS = {
    facts.name: facts
    for facts in (
        # published: 6.5 M parameters, 15.7 GFLOPs (multiply-accumulates)
        Facts("modnet_mobilenetv2", 410, 6_488_892, 6_523_788, 512, 15_656_338_688, 1.20e-4, 1.12e-4),
        # published: 92.2 M parameters, 151.6 GFLOPs (paddle.flops at 512: 151,646,898,176)
        Facts("modnet_resnet50_vd", 420, 92_134_332, 92_189_708, 256, 37_913_298_944, 1.34e-4, 2.49e-4),
        # published: 10.2 M parameters, 28.5 GFLOPs (4 x the count at 256)
        Facts("modnet_hrnet_w18", 1670, 10_199_384, 10_234_020, 256, 7_125_098_000, 5.48e-5, 8.69e-5),
    )
}
NAMES = list(VARIANTS)


@functools.lru_cache(maxsize=8)  # the formula draws 92 M numbers for ResNet50_vd: once per model, not per test
def seed0_state(name: str, width: float = 1.0) -> dict:
    """Seed-0 weights: the formula, then the calibrated BatchNorm statistics (full width only)."""
    spec = get_model_spec(name)
    state = seeded_state_dict(spec.layout(width), seed=0)
    if width == 1.0:
        with np.load(OFFICIAL / name / "bn_stats.npz") as stats:
            state.update({key: stats[key] for key in stats.files})
    return state


def seed0_model(name: str, width: float = 1.0):
    model = get_model_spec(name).build(width)
    model.set_state_dict(seed0_state(name, width))
    model.eval()
    return model


def astronaut(size: int) -> np.ndarray:
    image = np.load(DATA / "ppmattingv2.seed0.512x512.npz")["image"]  # the same photo as the MODNet references
    return image if size == 512 else cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("name", NAMES)
def test_layout_equals_official_table_line_by_line(name):
    official = (DATA / f"{name}.state_dict.tsv").read_text().splitlines()
    ours = format_layout(get_model_spec(name).layout()).splitlines()
    assert len(ours) == len(official) == VARIANTS[name].entries
    for index, (mine, theirs) in enumerate(zip(ours, official)):
        assert mine == theirs, f"entry {index}: {mine!r} != official {theirs!r}"


@pytest.mark.parametrize("name", NAMES)
def test_parameter_counts_are_official(name):
    layout = get_model_spec(name).layout()
    assert count_parameters(layout) == VARIANTS[name].parameters
    assert count_parameters(layout, include_running_stats=True) == VARIANTS[name].with_running_stats


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_seed0_forward_at_512_matches_paddleseg(name):
    ref = np.load(DATA / f"{name}.seed0.512x512.alpha_stride4.npz")
    alpha = run_dygraph(seed0_model(name), normalize(astronaut(512)))
    assert alpha.shape == (1, 1, 512, 512) and alpha.dtype == np.float32
    bound = VARIANTS[name].bound_512
    max_diff = float(np.abs(alpha[:, :, ::4, ::4] - ref["alpha_stride4"]).max())
    assert max_diff <= bound, f"max abs alpha difference {max_diff:.3g} vs PaddleSeg (bound {bound:.3g})"
    assert abs(alpha.astype(np.float64).mean() - float(ref["full_mean"])) <= 1e-6
    assert abs(alpha.min() - ref["full_min"]) <= bound and abs(alpha.max() - ref["full_max"]) <= bound


# Paddle Inference spends most of a minute preparing HRNet's 1,600-op program: full-size work, marked slow
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if "hrnet" in n else n for n in NAMES])
def test_seed0_forward_at_128_matches_the_official_deploy_program(name, tmp_path):
    x = normalize(astronaut(128))
    model = seed0_model(name)
    alpha = run_dygraph(model, x)
    model.to(dtype="float64")
    exact = run_dygraph(model, x.astype(np.float64))
    our_noise = float(np.abs(alpha - exact).max())
    official = PaddleInferenceBackend(build_official_folder(name, tmp_path / "official"), threads=2).run(x)
    assert alpha.shape == official.shape == (1, 1, 128, 128)
    assert alpha.std() > 0.05, "alpha is (nearly) constant: the comparison would mean nothing"
    assert 0 < our_noise < 1e-4
    program_noise = float(np.abs(official - exact).max())
    assert program_noise <= 2 * our_noise, (
        f"PaddleSeg's program is {program_noise:.3g} from our float64 alpha (our float32 noise {our_noise:.3g})")


@pytest.mark.parametrize("name", NAMES)
def test_tiny_width_keeps_official_keys_and_handles_non_square_inputs(name):
    official = (DATA / f"{name}.state_dict.tsv").read_text().splitlines()
    tiny = get_model_spec(name).layout(TINY_WIDTH)
    assert [key for key, _, _ in tiny] == [line.split("\t")[0] for line in official]
    model = seed0_model(name, TINY_WIDTH)
    alpha = run_dygraph(model, normalize(cv2.resize(astronaut(512), (224, 160), interpolation=cv2.INTER_AREA)))
    assert alpha.shape == (1, 1, 160, 224)
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0 and alpha.std() > 1e-3


def test_zoo_list_names_the_modnet_models():
    r = run_cli("zoo", "list")
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    listed = [line.split()[0] for line in lines]
    assert set(NAMES) <= set(listed)
    # columns line up whatever the longest name (modnet_resnet50_vd, ppmatting_hrnet_w18)
    config_columns = {line.index(line.split()[1], len(line.split()[0])) for line in lines}
    assert len(config_columns) == 1, r.stdout


@pytest.mark.parametrize("name", NAMES)
def test_zoo_info_gives_official_parameters_flops_and_transforms(name):
    size = VARIANTS[name].flops_size
    r = run_cli("zoo", "info", name, "--json", "--input-size", size, size)
    assert r.returncode == 0, r.stderr
    facts = json.loads(r.stdout)
    assert facts["paddleseg_class"] == "MODNet" and facts["native_input"] == [1, 3, 512, 512]
    assert facts["parameters"] == VARIANTS[name].parameters
    assert facts["flops_input"] == [1, 3, size, size] and facts["macs"] == VARIANTS[name].macs
    official = yaml.safe_load((OFFICIAL / name / "deploy.yaml").read_text())
    assert facts["transforms"] == official["Deploy"]["transforms"]
    assert facts["input_size_multiple"] == 32


def test_exported_tiny_model_matches_dygraph(tmp_path):
    from edgematte.zoo.export import export_deploy_folder

    folder = export_deploy_folder("modnet_mobilenetv2", tmp_path / "d", seed=0, width=TINY_WIDTH)
    spec = get_model_spec("modnet_mobilenetv2")
    model = spec.build(TINY_WIDTH)
    model.set_state_dict(seeded_state_dict(spec.layout(TINY_WIDTH), 0))
    calibrate_batchnorm(model, normalize(astronaut(512)))  # --seed calibrates at every width
    for height, width in [(128, 128), (96, 160)]:
        x = normalize(cv2.resize(astronaut(512), (width, height), interpolation=cv2.INTER_AREA))
        got = PaddleInferenceBackend(folder, threads=2).run(x)
        expected = run_dygraph(model, x)
        assert got.shape == (1, 1, height, width)
        assert float(np.abs(got - expected).max()) <= 1e-4


# ----------------------------------------------------------------------------- --seed: calibrated statistics
@functools.lru_cache(maxsize=1)
def _astronaut_input() -> np.ndarray:
    from edgematte.core.samples import sample_photo

    x = calibration_input(sample_photo("astronaut"), (512, 512), get_model_spec("modnet_mobilenetv2").transforms)
    reference = np.load(DATA / "ppmattingv2.seed0.512x512.npz")["image"]
    assert np.array_equal(x, normalize(reference))  # the bundled photo is the references' photo, bit for bit
    return x


@pytest.mark.parametrize("name", NAMES)
def test_seed_calibration_reproduces_the_official_statistics(name):
    """The rule (one eval pass over the astronaut at 512x512, each BatchNorm set to its own input's statistics
    just before it runs) recomputes every value of the references' ``bn_stats.npz``: bit for bit on the Intel hosts
    they were made on, within float noise (:data:`tests.helpers.STATISTICS_NOISE`) where kernels round otherwise."""
    spec = get_model_spec(name)
    assert spec.seed_calibration_photo == "astronaut" and spec.native_hw == (512, 512)
    model = spec.build()
    model.set_state_dict(seeded_state_dict(spec.layout(), seed=0))
    calibrated = calibrate_batchnorm(model, _astronaut_input())
    assert_statistics_reproduced(calibrated, OFFICIAL / name / "bn_stats.npz")
    # the model now carries them
    state = model.state_dict()
    key = sorted(calibrated)[0]
    assert np.array_equal(state[key].numpy(), calibrated[key])


def test_export_seed0_reproduces_paddleseg_at_512(tmp_path):
    """``edgematte export modnet_mobilenetv2 --seed 0``: the deploy folder, in Paddle Inference with the oneDNN fix,
    gives PaddleSeg's own alpha within the summed float noise (static kernels against PaddleSeg's dygraph)."""
    out = tmp_path / "modnet"
    r = run_cli("export", "modnet_mobilenetv2", "--seed", 0, "-o", out)
    assert r.returncode == 0, r.stderr
    ref = np.load(DATA / "modnet_mobilenetv2.seed0.512x512.alpha_stride4.npz")
    alpha = PaddleInferenceBackend(out, threads=2).run(_astronaut_input())
    bound = VARIANTS["modnet_mobilenetv2"].bound_512
    max_diff = float(np.abs(alpha[:, :, ::4, ::4] - ref["alpha_stride4"]).max())
    print(f"export --seed 0 at 512x512 against PaddleSeg: max abs {max_diff:.3g} (bound {bound:.3g})")
    assert max_diff <= bound
    assert abs(alpha.astype(np.float64).mean() - float(ref["full_mean"])) <= 1e-5


def test_a_checkpoint_saved_by_paddle_checks_and_exports_like_the_seed(tmp_path):
    """A fine-tuned user's file: ``paddle.save(model.state_dict())`` of the seed-0 model (calibrated statistics
    included) passes ``zoo check-weights`` and exports, with ``--weights``, the program ``--seed 0`` exports."""
    import paddle

    spec = get_model_spec("modnet_mobilenetv2")
    model = spec.build()
    model.set_state_dict(seeded_state_dict(spec.layout(), seed=0))
    calibrate_batchnorm(model, _astronaut_input())
    checkpoint = tmp_path / "modnet.pdparams"
    paddle.save(model.state_dict(), str(checkpoint))
    r = run_cli("zoo", "check-weights", "modnet_mobilenetv2", checkpoint)
    assert r.returncode == 0 and "weights match the model layout" in r.stdout + r.stderr, r.stdout + r.stderr
    for option, value in (("--weights", checkpoint), ("--seed", 0)):
        r = run_cli("export", "modnet_mobilenetv2", option, value, "--input-shape", 1, 3, 128, 128,
                    "-o", tmp_path / option.strip("-"))
        assert r.returncode == 0, r.stderr
    x = normalize(astronaut(128))
    from_file, from_seed = (PaddleInferenceBackend(tmp_path / name, threads=2).run(x) for name in ("weights", "seed"))
    assert from_file.std() > 0.05 and np.array_equal(from_file, from_seed)
    # the wrong model's checkpoint is refused by name
    r = run_cli("zoo", "check-weights", "modnet_hrnet_w18", checkpoint)
    assert r.returncode == 1 and "missing" in (r.stdout + r.stderr)
