"""verify_manifest on the tiny conversion: a good one passes, a tampered artefact fails on its numbers."""

import json
import shutil

import numpy as np
import pytest

from edgematte.core import parity as parity_lib
from edgematte.core.errors import EdgematteError
from edgematte.core.fsutil import sha256_file
from edgematte.core.samples import sample_photo
from edgematte.runtime.imageio import write_image
from edgematte.runtime.verify import (
    DEFAULT_UNBOUNDED_THRESHOLD,
    Threshold,
    boundary_pixel_share,
    threshold_for,
    verify_manifest,
)


def by_path(report):
    return {a.path: a for a in report.artefacts}


@pytest.fixture
def conversion_copy(tiny_conversion, tmp_path):
    out = tmp_path / "conv"
    shutil.copytree(tiny_conversion, out)
    return out


def edit_manifest(out, change):
    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest, indent=2))


def negate_largest_weight_buffer(tflite_path):
    """Flip the sign of the largest constant buffer of a TFLite model: it still loads, computes otherwise."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(tflite_path))
    sizes = [0 if buffer.data is None else buffer.data.size for buffer in model.buffers]
    index = int(np.argmax(sizes))
    weights = model.buffers[index].data.view(np.float16)  # the fp16 model stores its weights as float16
    model.buffers[index].data = (-weights).view(np.uint8)
    flatbuffer_utils.write_model(model, str(tflite_path))


def test_a_good_conversion_passes_against_the_paddle_reference(tiny_conversion):
    pytest.importorskip("paddle", reason="the Paddle reference needs paddlepaddle (converter profile)")
    report = verify_manifest(tiny_conversion, threads=2)
    assert report.passed and report.exit_code == 0
    assert report.reference["kind"] == "paddle_inference" and report.reference["path"] == "reference"
    assert report.reference["note"] is None and report.reference["recorded_max_abs"] is None
    assert report.images == ["astronaut", "coffee", "chelsea", "rocket"]
    artefacts = by_path(report)
    assert {p: a.status for p, a in artefacts.items()} == {
        "model_x86.nb": "pass", "model_arm.nb": "skipped", "model.onnx": "pass",
        "model_fp32.tflite": "pass", "model_fp16.tflite": "pass"}
    assert "arm .nb cannot run on this x86 host" in artefacts["model_arm.nb"].reason
    for path, limit in (("model_x86.nb", 1e-5), ("model.onnx", 1e-5), ("model_fp32.tflite", 1e-5),
                        ("model_fp16.tflite", 2e-3)):
        artefact = artefacts[path]
        assert artefact.sha256_ok and len(artefact.images) == 4
        assert artefact.max_abs < limit and artefact.mean_abs < artefact.max_abs  # measured 6e-7 .. 9e-7; 5e-4
        assert artefact.threshold == Threshold(max_abs=5e-3 if "fp16" in path else 1e-4)
        # SAD is sum |a - b| / 1000 over the photo: at most max_abs * pixels / 1000.
        for image in artefact.images:
            h, w = image.size
            assert 0 < image.sad <= image.max_abs * h * w / 1000 + 1e-12
    json.dumps(report.as_dict())  # the --json form is plain JSON
    assert report.summary_lines()[-1] == "PASS: 4 passed, 0 failed, 1 skipped"


def test_a_tampered_artefact_fails_on_its_numbers_even_with_a_matching_checksum(conversion_copy):
    negate_largest_weight_buffer(conversion_copy / "model_fp16.tflite")
    report = verify_manifest(conversion_copy, threads=2)
    fp16 = by_path(report)["model_fp16.tflite"]
    assert not report.passed and report.exit_code == 1
    assert fp16.status == "fail" and fp16.sha256_ok is False and "sha256 differs" in fp16.reason
    assert fp16.reason.endswith("so it was not run") and fp16.max_abs is None  # a foreign file is never run
    assert by_path(report)["model_fp32.tflite"].status == "pass"

    # Even when the manifest is edited to the tampered file's checksum, the numbers give it away.
    digest = sha256_file(conversion_copy / "model_fp16.tflite")
    edit_manifest(conversion_copy, lambda m: next(a for a in m["artefacts"] if a["path"] == "model_fp16.tflite")
                  .update(sha256=digest))
    fp16 = by_path(verify_manifest(conversion_copy, threads=2))["model_fp16.tflite"]
    assert fp16.status == "fail" and fp16.sha256_ok and fp16.reason.startswith("max abs 0.0")
    assert fp16.max_abs > 10 * 5e-3  # measured 0.077 against a bound of 0.005


def test_without_a_reference_model_the_fp32_onnx_stands_in(conversion_copy):
    manifest = json.loads((conversion_copy / "manifest.json").read_text())
    stand_in_error = next(a for a in manifest["artefacts"] if a["path"] == "model.onnx")["parity"]["max_abs"]
    edit_manifest(conversion_copy, lambda m: m["reference"].pop("model_dir"))
    report = verify_manifest(conversion_copy, threads=2)
    assert report.passed
    assert report.reference["kind"] == "stand_in" and report.reference["path"] == "model.onnx"
    assert "no reference.model_dir" in report.reference["note"]
    assert report.reference["recorded_max_abs"] == stand_in_error
    artefacts = by_path(report)
    assert artefacts["model.onnx"].status == "reference" and artefacts["model.onnx"].sha256_ok
    for path in ("model_x86.nb", "model_fp32.tflite", "model_fp16.tflite"):
        # The bound, widened by the stand-in's own recorded distance from the Paddle reference.
        assert artefacts[path].status == "pass"
        assert artefacts[path].threshold.max_abs == (5e-3 if "fp16" in path else 1e-4) + stand_in_error
    assert artefacts["model_fp32.tflite"].max_abs < 1e-5  # measured 1.0e-6

    data = (conversion_copy / "model.onnx").read_bytes()
    (conversion_copy / "model.onnx").write_bytes(data[: len(data) // 3])
    with pytest.raises(EdgematteError, match="reference model.onnx: cannot run it"):
        verify_manifest(conversion_copy)


def test_recorded_reference_digests_are_checked(conversion_copy, tmp_path):
    pytest.importorskip("paddle", reason="the Paddle reference needs paddlepaddle (converter profile)")
    reference = conversion_copy / "reference"
    recorded = json.loads((conversion_copy / "manifest.json").read_text())["reference"]["files"]
    assert recorded == {name: sha256_file(reference / name) for name in ("model.pdiparams", "model.pdmodel")}
    write_image(tmp_path / "photo.png", sample_photo("chelsea")[::2, ::2])
    assert verify_manifest(conversion_copy, images_dir=tmp_path / "photo.png").passed
    (reference / "model.pdiparams").write_bytes(b"\0" * 64)
    with pytest.raises(EdgematteError, match=r"reference/model.pdiparams: changed since conversion \(its sha256"):
        verify_manifest(conversion_copy)
    shutil.rmtree(reference)
    with pytest.raises(EdgematteError, match="reference.model_dir is missing"):
        verify_manifest(conversion_copy)


def test_images_folder_thresholds_and_a_missing_artefact(conversion_copy, tmp_path):
    photos = tmp_path / "photos"
    write_image(photos / "cat.png", sample_photo("chelsea"))
    write_image(photos / "more" / "rocket.jpg", sample_photo("rocket"))
    (photos / "readme.txt").write_text("not a photo")
    report = verify_manifest(conversion_copy, images_dir=photos, thresholds={"fp32": Threshold(max_abs=1e-9)})
    assert report.images == ["cat.png", "more/rocket.jpg"]
    assert len(report.skipped_images) == 1 and "readme.txt" in report.skipped_images[0][1]
    artefacts = by_path(report)
    # fp32 artefacts differ from the reference by ~1e-6: over a given 1e-9, and the report says why.
    assert artefacts["model_fp32.tflite"].status == "fail"
    assert artefacts["model_fp32.tflite"].threshold_source == "given for 'fp32'"
    assert artefacts["model_fp32.tflite"].reason.startswith("max abs ")
    assert artefacts["model_fp16.tflite"].status == "pass"

    (conversion_copy / "model_x86.nb").unlink()
    assert by_path(verify_manifest(conversion_copy))["model_x86.nb"].reason.endswith("model_x86.nb: missing")
    with pytest.raises(EdgematteError, match="--images .*no readable image"):
        verify_manifest(conversion_copy, images_dir=photos / "readme.txt")


def test_threshold_rules_for_int8_and_models_with_hard_decisions():
    from edgematte.core.manifest import Artefact, Manifest

    def artefact(path, precision, **extra):
        parity = {"max_abs": None, "mean_abs": None, "frac_over_1_255": None, "compared_to": "reference"}
        return Artefact.from_dict(dict({"path": path, "format": "tflite", "precision": precision, "parity": parity},
                                       **extra))

    int8 = artefact("model_int8.tflite", "int8", numerics={"budget_mad": 0.01})
    assert threshold_for(int8, None, 0.0, 0.0) == (Threshold(mean_abs=0.01), "int8 budget mean abs 0.01")
    unknown = artefact("model_w8.tflite", "dynamic")
    assert threshold_for(unknown, None, 0.0, 0.0)[0] == DEFAULT_UNBOUNDED_THRESHOLD == Threshold(mean_abs=0.02)
    assert threshold_for(unknown, {"*": Threshold(max_abs=0.5)}, 0.0, 0.0) == (Threshold(max_abs=0.5), "given for '*'")

    def manifest(**reference):
        return Manifest.from_dict({"model": {"name": "humanmatting", "input_shape": [1, 3, 64, 64]},
                                   "reference": reference})

    assert boundary_pixel_share(manifest()) == 0.0  # an old manifest, no default known
    assert boundary_pixel_share(manifest(), default=1e-3) == 1e-3  # the cli's zoo fallback for old manifests
    assert boundary_pixel_share(manifest(boundary_pixel_share=0.01), default=1e-3) == 0.01

    # One of 10000 pixels flipped by an argmax: beyond the bound, yet within a 0.1% boundary share.
    reference = np.zeros((100, 100), np.float32)
    flipped = reference.copy()
    flipped[50, 50] = 0.04
    pooled = parity_lib.compare([flipped], [reference], "test", bound=1e-3)
    assert pooled.frac_over_bound == 1e-4 and pooled.mean_abs == pytest.approx(4e-6)
    assert Threshold(max_abs=1e-3, boundary_pixel_share=1e-3).exceeded(pooled) is None
    assert Threshold(max_abs=1e-3).exceeded(pooled) == "max abs 0.04 > 0.001"
