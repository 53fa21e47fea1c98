"""`edgematte convert` end to end on tiny seeded models: artefacts, manifest, report, and clean failures."""

import json
import tarfile
from pathlib import Path

import pytest
import yaml

from edgematte.converter.program import read_program
from edgematte.core.fsutil import atomic_dir, sha256_file
from edgematte.zoo.export import export_deploy_folder

from .conftest import run_cli

TINY = ["--seed", "0", "--width", "0.25"]


def _manifest(out):
    return json.loads((Path(out) / "manifest.json").read_text())


@pytest.fixture(scope="module")
def tiny_uneven(tmp_path_factory):
    """Tiny PP-MattingV2 at 480x640: the pyramid pools 7x10 -> 4 and 6 bins, plain paddle2onnx gets it wrong."""
    out = tmp_path_factory.mktemp("conv") / "out"
    r = run_cli("convert", "ppmattingv2", *TINY, "--input-shape", 1, 3, 480, 640, "--to", "lite,onnx",
                "--lite-targets", "arm,x86,opencl", "-o", out)
    assert r.returncode == 0, r.stderr
    return out, r


def test_manifest_stable_minimum(tiny_uneven):
    out, _ = tiny_uneven
    m = _manifest(out)
    assert m["model"]["name"] == "ppmattingv2"
    assert m["model"]["input_shape"] == [1, 3, 480, 640]
    assert len(m["model"]["source_sha256"]) == 64
    assert {a["path"] for a in m["artefacts"]} == {"model_x86.nb", "model_arm.nb", "model_opencl.nb", "model.onnx"}
    for a in m["artefacts"]:
        assert {"path", "format", "target", "precision", "size_bytes", "sha256", "parity"} <= set(a)
        assert {"max_abs", "mean_abs", "frac_over_1_255", "compared_to", "runs_on_host"} <= set(a["parity"])
        f = out / a["path"]
        assert f.stat().st_size == a["size_bytes"] and sha256_file(f) == a["sha256"]
    for tool in ("paddlepaddle", "paddlelite", "paddle2onnx", "onnx"):
        assert m["tools"][tool]
    assert not (out / ".work").exists()


def test_parity_of_host_artefacts_at_an_uneven_size(tiny_uneven):
    out, _ = tiny_uneven
    by_path = {a["path"]: a for a in _manifest(out)["artefacts"]}
    for path in ("model_x86.nb", "model.onnx"):
        p = by_path[path]["parity"]
        assert p["runs_on_host"] and p["images"] == 4
        assert p["max_abs"] <= 1e-4 and p["within_bound"]
    repairs = by_path["model.onnx"]["onnx"]["repairs"]
    assert any(r["action"] == "replaced" for r in repairs), repairs
    for target in ("arm", "opencl"):
        p = by_path[f"model_{target}.nb"]["parity"]
        assert p["runs_on_host"] is False and "cannot run on this x86 host" in p["reason"]
        assert p["max_abs"] == by_path["model_x86.nb"]["parity"]["max_abs"]


def test_reference_is_checked_and_report_written(tiny_uneven):
    out, _ = tiny_uneven
    m = _manifest(out)
    (check,) = m["reference"]["checks"]
    assert check["max_abs"] <= 1e-5 and check["images"] == 4
    report = (out / "report.md").read_text()
    assert "model.onnx" in report and "report/model_onnx_diff.png" in report
    for png in ("input.png", "reference_alpha.png", "model_onnx_diff.png", "model_x86_nb_alpha.png"):
        assert (out / "report" / png).stat().st_size > 0


def _paddleseg_style(folder):
    """Rewrite deploy.yaml the way PaddleSeg's export writes a dynamic feed: -1 for unknown sizes."""
    cfg = yaml.safe_load((folder / "deploy.yaml").read_text())
    cfg["Deploy"]["input_shape"] = [-1, 3, -1, -1]
    (folder / "deploy.yaml").write_text(yaml.safe_dump(cfg))
    return folder


def test_dynamic_deploy_folder_archive_gets_native_shape(tmp_path):
    folder = _paddleseg_style(export_deploy_folder("ppmattingv2", tmp_path / "deploy", seed=1, width=0.25))
    archive = tmp_path / "deploy.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(folder, arcname="ppmattingv2_deploy")
    out = tmp_path / "out"
    r = run_cli("convert", archive, "--to", "onnx", "-o", out)
    assert r.returncode == 0, r.stderr
    m = _manifest(out)
    assert m["model"]["input_shape"] == [1, 3, 512, 512]  # native size: the yaml says -1
    assert m["model"]["declared_input_shape"] == [None, 3, None, None]
    # the program's own fetch (Paddle numbers it by a process-wide counter: scale_0.tmp_N)
    assert m["model"]["output_name"] == read_program(folder / "model.pdmodel").fetch_names[0]
    assert m["model"]["output_name"].startswith("save_infer_model/scale_0.tmp_")
    assert m["model"]["source_sha256"] == sha256_file(archive)
    (onnx,) = m["artefacts"]
    assert onnx["parity"]["max_abs"] <= 1e-4
    assert folder.joinpath("model.pdmodel").read_bytes() == (tmp_path / "deploy" / "model.pdmodel").read_bytes()


def _failed_cleanly(r, out, *needles):
    """Non-zero exit, exactly one error line naming what is wrong, no traceback, nothing left behind."""
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith("edgematte: error:")]
    assert len(errors) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in errors[0], r.stderr
    leftovers = [p for p in out.parent.iterdir() if p.name.startswith("." + out.name)]
    assert not leftovers, leftovers


def test_corrupt_params(tmp_path):
    folder = export_deploy_folder("ppmattingv2", tmp_path / "d", seed=0, width=0.25, input_shape=[1, 3, 128, 128])
    params = folder / "model.pdiparams"
    params.write_bytes(params.read_bytes()[: params.stat().st_size // 2])
    out = tmp_path / "out"
    r = run_cli("convert", folder, "-o", out)
    _failed_cleanly(r, out, "model.pdiparams")
    assert not out.exists()


def test_truncated_archive(tmp_path):
    folder = export_deploy_folder("ppmattingv2", tmp_path / "d", seed=0, width=0.25, input_shape=[1, 3, 128, 128])
    archive = tmp_path / "m.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(folder, arcname="m")
    archive.write_bytes(archive.read_bytes()[:-4096])
    out = tmp_path / "out"
    _failed_cleanly(run_cli("convert", archive, "-o", out), out, "m.tar.gz")
    assert not out.exists()


@pytest.mark.parametrize("shape", [[1, 4, 512, 512], [1, 3, 500, 500], [2, 3, 512]])
def test_wrong_input_shape_keeps_previous_output(tmp_path, shape):
    out = tmp_path / "out"
    with atomic_dir(out) as previous:  # an earlier output of ours (one of the user's would be refused anyway)
        (previous / "manifest.json").write_text("previous good output")
    r = run_cli("convert", "ppmattingv2", *TINY, "--input-shape", *shape, "-o", out)
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and ("--input-shape" in r.stderr or "Option '--input-shape'" in r.stderr)
    assert (out / "manifest.json").read_text() == "previous good output"


def test_op_without_lite_kernel(tmp_path):
    import paddle

    class Odd(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv = paddle.nn.Conv2D(3, 1, 3, padding=1)

        def forward(self, img):
            return paddle.erfinv(paddle.nn.functional.sigmoid(self.conv(img)) * 0.5)

    folder = tmp_path / "odd"
    paddle.jit.save(Odd(), str(folder / "model"),
                    input_spec=[paddle.static.InputSpec([1, 3, 64, 64], "float32", "img")])
    (folder / "deploy.yaml").write_text(yaml.safe_dump({"Deploy": {"model": "model.pdmodel",
                                                                   "params": "model.pdiparams",
                                                                   "input_shape": [1, 3, 64, 64], "transforms": []}}))
    out = tmp_path / "out"
    r = run_cli("convert", folder, "--to", "lite", "-o", out)
    _failed_cleanly(r, out, "erfinv", "model.pdmodel")
    assert not out.exists()


@pytest.mark.slow
def test_full_size_ppmattingv2_at_the_uneven_size(tmp_path):
    """The product at full size (seed 0): the artefacts the uneven pools concern (the ONNX model, where plain
    paddle2onnx is off by 0.043 at 480x640: its 7x10 pyramid grid pools unevenly to 4 and 6 bins, and the Lite
    programs) within their bound. The TFLite models are onnx2tf's conversion of that same repaired ONNX model; at
    full size they are held to PaddleSeg's own output by benchmarks/official_acceptance.py (onnx2tf at 480x640
    would take most of this test's time)."""
    out = tmp_path / "out"
    r = run_cli("convert", "ppmattingv2", "--seed", "0", "--input-shape", 1, 3, 480, 640, "--to", "lite,onnx",
                "-o", out, timeout=1500)
    assert r.returncode == 0, r.stderr
    by_path = {a["path"]: a for a in _manifest(out)["artefacts"]}
    assert set(by_path) == {"model_x86.nb", "model_arm.nb", "model.onnx"}
    for path in ("model_x86.nb", "model.onnx"):
        assert by_path[path]["parity"]["max_abs"] <= 1e-4, (path, by_path[path]["parity"])
    assert by_path["model.onnx"]["inputs"][0]["shape"] == [1, 3, 480, 640]


@pytest.mark.slow
def test_tiny_humanmatting_converts_to_every_format(tmp_path):
    """PP-HumanMatting's refiner pads come out of paddle2onnx as 5-D pads that onnx2tf cannot take; the
    converter folds them back to 4-D. fp16 is skipped by default for this model, with the reason."""
    out = tmp_path / "out"
    r = run_cli("convert", "humanmatting", *TINY, "--input-shape", 1, 3, 256, 256, "-o", out, timeout=1500)
    assert r.returncode == 0, r.stderr
    m = _manifest(out)
    by_path = {a["path"]: a for a in m["artefacts"]}
    assert set(by_path) == {"model_x86.nb", "model_arm.nb", "model.onnx", "model_fp32.tflite"}
    assert "fp16" in m["fp16_skipped"] or "fp16-rounded" in m["fp16_skipped"]
    for path in ("model_x86.nb", "model.onnx", "model_fp32.tflite"):
        assert by_path[path]["parity"]["within_bound"], (path, by_path[path]["parity"])
        assert by_path[path]["parity"]["max_abs"] <= 1e-3
    rewritten = [n for n in by_path["model.onnx"]["onnx"]["normalizations"] if n["action"] == "rewritten"]
    assert len(rewritten) == 2


def test_report_names_pixels_beyond_the_bound_of_a_decision_flip_model():
    from edgematte.core.manifest import ParityRecord
    from edgematte.pipeline.report import _parity_note

    flipped = {"max_abs": 2.9e-3, "mean_abs": 1e-6, "frac_over_1_255": 0.0, "compared_to": "reference", "bound": 1e-3,
               "frac_over_bound": 0.00018, "within_bound": True, "reason": None}

    def note(**changes):
        return _parity_note(ParityRecord.from_dict(dict(flipped, **changes)))

    assert note() == "0.018% of pixels beyond 0.001 (within the parity rule)"
    assert note(frac_over_bound=0.004, within_bound=False) == "0.400% of pixels beyond 0.001 (OUTSIDE the parity rule)"
    assert note(max_abs=5e-4) == ""  # within the max-abs bound: nothing to explain
