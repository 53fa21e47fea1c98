"""`edgematte quant eval`: an artefact's matting metrics on a folder, against fp32 and ground truth."""

import json

import numpy as np

from edgematte.core.samples import sample_photo
from edgematte.runtime.imageio import write_image
from edgematte.runtime.matter import Matter

from .conftest import run_cli


def test_quant_eval_against_fp32_and_ground_truth(tiny_conversion, tmp_path):
    data, gt = tmp_path / "image" / "set1", tmp_path / "alpha" / "set1"
    photos = {"coffee": sample_photo("coffee"), "rocket": sample_photo("rocket")}
    matter = Matter.from_manifest(tiny_conversion, artefact="model.onnx")
    for name, rgb in photos.items():
        write_image(data / f"{name}.png", rgb)
        # ground truth = the fp32 model's own 8-bit alpha: the figures vs ground truth are then known
        write_image(gt / f"{name}.png", np.rint(matter(rgb) * 255).astype(np.uint8))
    (data / "notes.txt").write_text("not an image")
    r = run_cli("quant", "eval", tiny_conversion, "--artefact", "model_fp32.tflite", "--data", tmp_path / "image",
                "--gt", tmp_path / "alpha", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["images"] == 2 and result["skipped"][0]["file"] == "set1/notes.txt"
    assert result["vs_fp32"]["mad"] <= 1e-5 and result["vs_fp32"]["reference"].startswith("Paddle Inference")
    truth = result["vs_ground_truth"]
    assert truth["max_abs"] <= 0.5 / 255 + 1e-5 and 0 < truth["mad"] <= 0.25 / 255 + 1e-5


def test_missing_ground_truth_names_the_file(tiny_conversion, tmp_path):
    write_image(tmp_path / "img" / "a.png", sample_photo("chelsea"))
    (tmp_path / "gt").mkdir()
    r = run_cli("quant", "eval", tiny_conversion, "--data", tmp_path / "img", "--gt", tmp_path / "gt")
    assert r.returncode == 1 and "no ground-truth alpha for image a.png" in r.stderr


def test_skipped_files_are_labelled_evaluation_not_calibration(tmp_path):
    from .test_hostile_runtime_inputs import write_tiny_model

    model = write_tiny_model(tmp_path / "conversion", copies=2)
    write_image(tmp_path / "data" / "a.png", sample_photo("chelsea")[::8, ::8])
    (tmp_path / "data" / "notes.txt").write_text("not an image")
    r = run_cli("quant", "eval", model, "--artefact", "model_2.onnx", "--data", tmp_path / "data", timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [f"edgematte: warning: evaluation: skipping {tmp_path / 'data' / 'notes.txt'}: "
                                     "not an image (no JPEG, PNG, WebP, BMP, TIFF or PNM header)"]
    assert r.stdout.startswith("model_2.onnx (fp32) on 1 images\n  vs model.onnx as a stand-in")
