"""Host-JVM end to end: Java pre-processing -> Python runtime inference -> Java post-processing equals the
all-Python pipeline, on the golden images plus a full-size sample photo.

The Java side is android_demo/core, compiled here with javac and driven through its CLI
(``org.edgematte.core.tools.CoreMain``); the model is a tiny matting-shaped ONNX graph run by the runtime's
ONNX Runtime backend. Thresholds: tensors and 8-bit outputs exact, float alpha within 1e-6.
"""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgematte.core.samples import sample_photo
from edgematte.runtime.backends.base import TensorSpec
from edgematte.runtime.backends.litert import quantize
from edgematte.runtime.backends.onnxruntime import OnnxRuntimeBackend
from edgematte.runtime.profiles import get_profile
from edgematte.runtime.vectors import BACKGROUND_COLOUR, GoldenImage, golden_images, read_golden_vectors

from .test_converter_tflite import build_tiny_matting_onnx

ANDROID_DEMO = Path(__file__).resolve().parents[1] / "android_demo"
MODEL_HW = (64, 96)  # the tiny graph needs sides divisible by 4
FLOAT_TOLERANCE = 1e-6
INPUT_QUANT = TensorSpec("img", (1, 3, *MODEL_HW), "int8", (0.0078125, 0))

pytestmark = pytest.mark.skipif(shutil.which("javac") is None or shutil.which("java") is None,
                                reason="no JDK (javac/java) on PATH: the Java core cannot be compiled here; "
                                       "android_demo/host-test.sh installs one")


@pytest.fixture(scope="module")
def core_classes(tmp_path_factory):
    out = tmp_path_factory.mktemp("core-classes")
    sources = sorted(str(p) for p in (ANDROID_DEMO / "core/src/main/java").rglob("*.java"))
    subprocess.run(["javac", "-encoding", "UTF-8", "-d", str(out), *sources], check=True, capture_output=True,
                   text=True, timeout=300)
    return out


def _core(core_classes, *args):
    result = subprocess.run(["java", "-cp", str(core_classes), "org.edgematte.core.tools.CoreMain", *map(str, args)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = build_tiny_matting_onnx(tmp_path_factory.mktemp("onnx") / "tiny.onnx", *MODEL_HW)
    return OnnxRuntimeBackend(path, threads=1)


@pytest.fixture(scope="module")
def images():
    extra = GoldenImage("coffee", "skimage.data.coffee() 400x600", sample_photo("coffee"))
    return golden_images() + [extra]


@pytest.fixture(scope="module")
def images_dir(images, tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for image in images:
        array = image.rgb if image.alpha is None else np.dstack([image.rgb, image.alpha])
        np.save(folder / f"{image.name}.npy", array)
    return folder


@pytest.fixture(scope="module")
def java_run(core_classes, images_dir, model, tmp_path_factory):
    """Java pre -> Python model -> Java post; returns (tensors dir, outputs dir, golden-format result)."""
    root = tmp_path_factory.mktemp("java-run")
    tensors, outputs, result = root / "tensors", root / "outputs", root / "result"
    size = f"{MODEL_HW[0]}x{MODEL_HW[1]}"
    _core(core_classes, "preprocess", "--profile", "android", "--model-size", size, "--layout", "nchw",
          images_dir, tensors)
    outputs.mkdir()
    for tensor_file in sorted(tensors.glob("*.npy")):
        np.save(outputs / tensor_file.name, model.run(np.load(tensor_file)))
    colour = ",".join(map(str, BACKGROUND_COLOUR))
    _core(core_classes, "postprocess", "--profile", "android", "--model-size", size, "--layout", "nchw",
          "--colour", colour, images_dir, outputs, result)
    return tensors, outputs, read_golden_vectors(result)


def test_java_preprocessing_equals_python(java_run, images):
    tensors, _, _ = java_run
    profile = get_profile("android")
    for image in images:
        java_tensor = np.load(tensors / f"{image.name}.npy")
        python_tensor, _ = profile.preprocess(image.rgb, MODEL_HW, "nchw")
        assert java_tensor.dtype == np.float32 and java_tensor.shape == (1, 3, *MODEL_HW)
        diff = np.abs(java_tensor - python_tensor).max()
        assert diff <= FLOAT_TOLERANCE, f"{image.name}: tensor max |diff| {diff}"


def test_java_post_and_composites_equal_all_python(java_run, images, model):
    _, _, result = java_run
    profile = get_profile("android")
    assert result.index["generator"]["side"] == "java"
    assert sorted(c["image"] for c in result.cases) == sorted(image.name for image in images)
    worst = 0.0
    for image in images:
        tensor, state = profile.preprocess(image.rgb, MODEL_HW, "nchw")
        alpha = profile.postprocess(model.run(tensor), state)
        case = result.case(f"android/{image.name}")
        assert case["original_hw"] == list(image.rgb.shape[:2])
        java_alpha = result.array(case, "post_alpha")
        diff = float(np.abs(java_alpha - alpha).max())
        worst = max(worst, diff)
        assert diff <= FLOAT_TOLERANCE, f"{image.name}: alpha max |diff| {diff}"
        assert np.array_equal(result.array(case, "alpha8"), profile.alpha_to_uint8(alpha)), image.name
        assert np.array_equal(result.array(case, "composite_colour"),
                              profile.composite(image.rgb, alpha, BACKGROUND_COLOUR)), image.name
        assert np.array_equal(result.array(case, "composite_blur"), profile.composite(image.rgb, alpha, "blur")), \
            image.name
        assert 0.0 <= java_alpha.min() and java_alpha.max() <= 1.0
    print(f"java pre -> python model -> java post vs all-python: alpha max |diff| {worst:.3g} "
          f"over {len(images)} images")


def test_java_int8_input_quantization_equals_litert_rule(core_classes, images_dir, images, tmp_path):
    size = f"{MODEL_HW[0]}x{MODEL_HW[1]}"
    scale, zero_point = INPUT_QUANT.quant
    _core(core_classes, "preprocess", "--profile", "android", "--model-size", size, "--layout", "nchw",
          "--quant", f"int8:{scale}:{zero_point}", images_dir, tmp_path)
    profile = get_profile("android")
    for image in images:
        java_q = np.load(tmp_path / f"{image.name}.npy")
        python_q = quantize(profile.preprocess(image.rgb, MODEL_HW, "nchw")[0], INPUT_QUANT)
        assert java_q.dtype == np.int8 and np.array_equal(java_q, python_q), image.name


IMAGENET = [{"type": "LoadImages", "to_rgb": True}, {"type": "LimitShort", "max_short": 512},
            {"type": "Normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}]
RVM = [{"type": "LoadImages", "to_rgb": True}, {"type": "Normalize", "mean": [0, 0, 0], "std": [1, 1, 1]}]


@pytest.mark.parametrize("profile_name, transforms", [("android", IMAGENET), ("android", RVM),
                                                      ("paddleseg-android", IMAGENET)])
def test_java_takes_the_manifests_normalization(core_classes, images_dir, images, tmp_path, profile_name,
                                                transforms):
    """--manifest: the Java profile reads model.transforms as the app does; tensors equal Python's bit for bit."""
    manifest = tmp_path / "manifest.json"
    model = {"name": "m", "input_shape": [1, 3, *MODEL_HW], "transforms": transforms}
    manifest.write_text(json.dumps({"schema": "edgematte.manifest/1", "model": model, "artefacts": []}))
    _core(core_classes, "preprocess", "--profile", profile_name, "--model-size", f"{MODEL_HW[0]}x{MODEL_HW[1]}",
          "--layout", "nhwc", "--manifest", manifest, images_dir, tmp_path / "tensors")
    profile = get_profile(profile_name, transforms)
    assert profile is not get_profile(profile_name)
    for image in images:
        java_tensor = np.load(tmp_path / "tensors" / f"{image.name}.npy")
        python_tensor, _ = profile.preprocess(image.rgb, MODEL_HW, "nhwc")
        assert java_tensor.dtype == np.float32 and java_tensor.tobytes() == python_tensor.tobytes(), image.name
        if transforms is RVM:  # v / 255 (and the letterbox's 0.0 padding): inside [0, 1]
            assert python_tensor.min() >= 0 and python_tensor.max() <= 1


def test_core_cli_reports_bad_arguments(core_classes, tmp_path):
    result = subprocess.run(["java", "-cp", str(core_classes), "org.edgematte.core.tools.CoreMain", "preprocess",
                             "--model-size", "64", tmp_path, tmp_path], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == "edgematte-core: error: expected HxW, got '64'"


def test_java_and_python_agree_on_what_runs_on_android(core_classes, tmp_path):
    """Manifest.java's runsOnAndroid and core/manifest.py's artefacts_for("android") are one rule, written twice."""
    from edgematte.core.manifest import Manifest

    from .conftest import DATA

    source = json.loads((DATA / "manifest.edgematte-0.1.json").read_text())
    spec = {"name": "x", "shape": [1, 3, 64, 64], "dtype": "float32"}
    parity = {"max_abs": None, "mean_abs": None, "frac_over_1_255": None, "compared_to": "reference"}
    for entry in source["artefacts"]:  # 0.1 wrote Lite int8 entries without specs; the app skips those (JUnit)
        if not entry["inputs"]:
            entry.update(inputs=[spec], outputs=[spec])
    for target in ("x86", "arm", "opencl", "any"):  # every format x target, beyond what a conversion writes
        for fmt in ("nb", "onnx", "tflite"):
            source["artefacts"].append({"path": f"extra/{fmt}_{target}", "format": fmt, "target": target,
                                        "precision": "fp32", "inputs": [spec], "outputs": [spec], "parity": parity})
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(source))
    java = _core(core_classes, "android-artefacts", path).stdout.split()
    python = [a.path for a in Manifest.read(path).artefacts_for("android")]
    assert java == python
    assert "model_arm_int8.nb" in java and "extra/nb_opencl" in java and "extra/tflite_x86" in java
    assert "model_x86.nb" not in java and "extra/onnx_arm" not in java and "extra/nb_any" not in java
