"""The typed manifest: a manifest edgematte 0.1 wrote (tests/data/manifest.edgematte-0.1.json, the full-size
PP-MattingV2 --int8 conversion) loads, keeps every field it does not name, and says which artefact runs where."""

import json
import shutil

import pytest

from edgematte.core.errors import EdgematteError
from edgematte.core.manifest import SCHEMA_VERSION, Artefact, Manifest

from .conftest import DATA

OLD = DATA / "manifest.edgematte-0.1.json"


@pytest.fixture
def old(tmp_path):
    shutil.copy(OLD, tmp_path / "manifest.json")
    return tmp_path


def test_a_manifest_of_edgematte_0_1_loads_and_round_trips(old):
    original = json.loads(OLD.read_text())
    manifest = Manifest.read(old)
    assert manifest.schema_version == "1.0" and manifest.dir == old
    assert manifest.model.name == "ppmattingv2" and manifest.model.input_hw == (512, 512)
    assert manifest.reference.model_dir == "reference"
    assert manifest.reference.noise == pytest.approx(1.7732e-6, rel=1e-4)
    assert len(manifest.artefacts) == 10 and manifest.repairs == []
    int8 = manifest.find("model_int8.tflite")
    assert int8.numerics["mad"] == pytest.approx(0.007075, abs=1e-6) and int8.parity.runs_on_host
    assert manifest.find("model_arm.nb").parity.reason.startswith("an arm .nb cannot run on this x86 host")

    written = manifest.to_dict()
    for key, value in original.items():  # nothing lost or changed, in any section
        assert written[key] == value, key
    assert set(written) - set(original) == {"schema_version", "repairs"}

    manifest.schema_version = SCHEMA_VERSION
    manifest.write()
    again = Manifest.read(old)
    assert again.to_dict() == manifest.to_dict() and again.schema_version == "1.2"


def test_which_artefact_runs_where(old):
    manifest = Manifest.read(old)

    def names(platform):
        return [a.path for a in manifest.artefacts_for(platform)]

    tflite = ["model_fp32.tflite", "model_fp16.tflite", "model_int8.tflite", "model_int8_io.tflite",
              "model_dynamic.tflite"]
    fp, int8 = tflite[:2], tflite[2:]
    assert names("android") == ["model_arm.nb", *fp, "model_arm_int8.nb", *int8]  # Manifest.java runsOnAndroid
    assert names("arm") == ["model_arm.nb", "model.onnx", *fp, "model_arm_int8.nb", *int8]
    assert names("x86") == ["model_x86.nb", "model.onnx", *fp, "model_x86_int8.nb", *int8]
    assert names("litert") == tflite
    assert [a.path for a in manifest.host_artefacts()] == names("x86")
    with pytest.raises(ValueError, match="unknown platform 'ios'"):
        manifest.artefacts_for("ios")


def test_finding_and_selecting_artefacts(old):
    manifest = Manifest.read(old)
    assert manifest.find("model.onnx") is manifest.artefacts[2]
    assert manifest.file(manifest.find("model.onnx"), check=False) == old / "model.onnx"
    assert [a.path for a in manifest.select(["model_fp16.tflite", "model.onnx"])] == ["model_fp16.tflite", "model.onnx"]
    litert = manifest.artefacts_for("litert")
    assert manifest.select(None, among=litert) == litert and manifest.select([]) == manifest.artefacts
    with pytest.raises(EdgematteError, match=rf"{old}: no artefact 'model.bin' \(has: model_x86.nb, model_arm.nb, "):
        manifest.find("model.bin")


def test_bad_manifests_are_one_line_errors_naming_the_file(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": "edgematte.manifest/1", "model": {"name": "m"},
                                                        "artefacts": [{"format": "onnx"}]}))
    with pytest.raises(EdgematteError, match=rf"{tmp_path}/manifest.json: not a valid edgematte manifest"):
        Manifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": "something/2"}))
    with pytest.raises(EdgematteError, match="manifest.json"):
        Manifest.read(tmp_path)


def test_an_artefact_keeps_what_it_does_not_name():
    entry = {"path": "m.tflite", "format": "tflite", "target": "any", "precision": "int8", "size_bytes": 3,
             "sha256": "ab", "parity": {"max_abs": 0.1, "mean_abs": 0.01, "frac_over_1_255": 0.2,
                                        "compared_to": "reference", "runs_on_host": True, "bound": 0.5},
             "inputs": [{"name": "x", "shape": [1, 8, 8, 3], "dtype": "int8", "quant": [0.5, 3], "layout": "nhwc"}],
             "quantization": {"kept_float": {"ops": ["MEAN"]}}, "numerics": {"mad": 0.004}}
    artefact = Artefact.from_dict(entry)
    assert artefact.inputs[0].quant == [0.5, 3] and artefact.inputs[0].extra == {"layout": "nhwc"}
    assert artefact.parity.bound == 0.5 and artefact.numerics == {"mad": 0.004}
    assert artefact.to_dict() == dict(entry, outputs=[], runtime=None, layout=None, profile=None)
