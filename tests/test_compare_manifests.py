"""tools/compare_manifests.py: how a refactor proves a conversion's figures unchanged."""

import copy
import json

from .conftest import DATA, load_tool

compare = load_tool("compare_manifests")
OLD = json.loads((DATA / "manifest.edgematte-0.1.json").read_text())


def _artefact(manifest, path):
    return next(a for a in manifest["artefacts"] if a["path"] == path)


def test_a_conversion_equals_itself_and_a_changed_figure_shows():
    assert compare.differences(OLD, OLD) == ([], [])
    new = copy.deepcopy(OLD)
    _artefact(new, "model_int8.tflite")["numerics"]["mad"] += 1e-9
    _artefact(new, "model.onnx")["parity"]["max_abs"] = 2e-6
    _artefact(new, "model_x86_int8.nb")["size_bytes"] += 8  # measured here: its size must repeat
    found, listed = compare.differences(OLD, new)
    assert [line.split(":")[0] for line in found] == [
        "model.onnx parity.max_abs", "model_x86_int8.nb size_bytes", "model_int8.tflite numerics.mad"]
    assert listed == []


def test_nb_hashes_and_the_arm_int8_size_are_listed_not_failed():
    new = copy.deepcopy(OLD)
    _artefact(new, "model_arm.nb")["sha256"] = "0" * 64
    _artefact(new, "model_arm_int8.nb")["size_bytes"] += 8
    found, listed = compare.differences(OLD, new)
    assert found == [] and [line.split(":")[0] for line in listed] == [
        "model_arm.nb sha256", "model_arm_int8.nb size_bytes"]
