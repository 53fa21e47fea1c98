"""Hostile manifests: nothing a manifest points at is trusted blindly.

Artefact paths must stay inside the conversion folder and every file is checked by its sha256 before a
runtime loads it; the reference's files are hashed too. Part of the hostile-input suite
(``tests/test_hostile_*.py``).
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from edgematte.core.errors import EdgematteError
from edgematte.core.manifest import Manifest
from edgematte.core.samples import sample_photo
from edgematte.runtime.imageio import write_image
from tests.conftest import run_cli


@pytest.fixture()
def conversion(tiny_conversion, tmp_path):
    out = tmp_path / "conv"
    shutil.copytree(tiny_conversion, out)
    return out


@pytest.fixture()
def photo(tmp_path):
    path = tmp_path / "photos" / "cat.png"
    path.parent.mkdir()
    write_image(path, sample_photo("chelsea")[::4, ::4])
    return path


def _edit(out: Path, change) -> None:
    path = out / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _onnx_entry(data: dict) -> dict:
    return next(a for a in data["artefacts"] if a["path"] == "model.onnx")


def _commands(conversion: Path, photo: Path, tmp_path: Path):
    """Every command that loads artefacts from a manifest, each asked for the ONNX model."""
    return {
        "matte": ("matte", photo, "--model", conversion, "--artefact", "model.onnx", "-o", tmp_path / "mattes"),
        "quant eval": ("quant", "eval", conversion, "--artefact", "model.onnx", "--data", photo.parent),
        "bench": ("bench", conversion, "--artefacts", "model.onnx", "--threads", "1", "--runs", "1", "--warmup", "0",
                  "--size", "64x64", "-o", tmp_path / "bench"),
        "verify": ("verify", conversion, "--images", photo.parent),
    }


def _assert_refused(result, *fragments):
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgematte: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("where", ["absolute", "dotdot"])
def test_an_artefact_path_out_of_the_folder_is_refused_by_every_command(conversion, photo, tmp_path, where):
    # A perfectly valid model with the right sha256, just outside the conversion folder.
    elsewhere = tmp_path / "other" / "model.onnx"
    elsewhere.parent.mkdir()
    shutil.copyfile(conversion / "model.onnx", elsewhere)
    path = str(elsewhere) if where == "absolute" else os.path.relpath(elsewhere, conversion)
    assert where == "absolute" or path.startswith("..")
    _edit(conversion, lambda m: _onnx_entry(m).update(path=path))
    reason = "is absolute" if where == "absolute" else "leaves the conversion folder"
    for name, args in _commands(conversion, photo, tmp_path).items():
        _assert_refused(run_cli(*args), f"{conversion}/manifest.json: not a valid edgematte manifest", path, reason)
    assert not (tmp_path / "mattes").exists() and not (tmp_path / "bench").exists()


def test_a_symbolic_link_out_of_the_folder_is_refused(conversion, tmp_path):
    elsewhere = tmp_path / "model.onnx"
    shutil.move(conversion / "model.onnx", elsewhere)
    (conversion / "model.onnx").symlink_to(elsewhere)
    manifest = Manifest.read(conversion)
    with pytest.raises(EdgematteError, match=r"conv/model.onnx: artefact path leads out of the conversion folder"):
        manifest.file(manifest.find("model.onnx"))


def test_a_swapped_artefact_is_never_run(conversion, photo, tmp_path):
    # Another valid model in its place: the fp32 TFLite renamed (loads fine, computes something else).
    shutil.copyfile(conversion / "model_fp32.tflite", conversion / "model.onnx")
    for name, args in _commands(conversion, photo, tmp_path).items():
        result = run_cli(*args)
        if name == "verify":  # verify reports it among the results instead of stopping at it
            assert result.returncode == 1 and "model.onnx: changed since conversion" in result.stdout, result.stdout
            assert "so it was not run" in result.stdout
            continue
        _assert_refused(result, f"{conversion}/model.onnx: changed since conversion (its sha256 differs")
    assert not (tmp_path / "mattes").exists()


def test_a_changed_reference_file_is_named(conversion, photo):
    (conversion / "reference" / "model.pdiparams").write_bytes(b"\0" * 64)
    _assert_refused(run_cli("verify", conversion, "--images", photo.parent),
                    f"{conversion}/reference/model.pdiparams: changed since conversion")


@pytest.mark.parametrize("change, message", [
    (lambda m: m.pop("artefacts"), "it has no 'artefacts' list"),
    (lambda m: m.update(artefacts="model.onnx"), "'artefacts' is not a list"),
    (lambda m: m["artefacts"].append("model.onnx"), "an artefact entry is str, not an object"),
    (lambda m: _onnx_entry(m).update(format="exe"), "format 'exe' is not one of nb, onnx, tflite"),
    (lambda m: _onnx_entry(m).update(path=""), "artefact path is not a path ('')"),
    (lambda m: _onnx_entry(m).update(path=7), "artefact path is not a path (7)"),
    (lambda m: m["model"].update(input_shape=[1, 3, "64", 64]), "model.input_shape [1, 3, '64', 64] is not four"),
    (lambda m: m["model"].update(input_shape=[1, 3, True, 64]), "model.input_shape [1, 3, True, 64] is not four"),
    (lambda m: m["model"].update(transforms="Normalize"), "model.transforms is not a list"),
    (lambda m: m["reference"].update(model_dir="/etc"), "reference.model_dir '/etc' is absolute"),
    (lambda m: m["reference"].update(files={"../x": "0" * 64}), "reference file '../x' leaves the conversion folder"),
    (lambda m: m["reference"].update(files={"model.pdmodel": "abc"}), "reference.files is not a map of file names"),
    (lambda m: m["model"].update(inputs="img"), "model.inputs is not a non-empty list"),
    (lambda m: m["model"].update(inputs=[{"name": "img", "role": "weights", "shape": [1, 3, 64, 64]}]),
     "model.inputs 'img': role 'weights' is not one of image, trimap, state, constant"),
    (lambda m: m["model"].update(outputs=[{"name": "a", "role": "alpha"}, {"name": "h", "role": "state"}]),
     "model.outputs 'h': a state without its pair"),
    (lambda m: m["model"].update(inputs=[{"name": "img", "role": "image", "shape": [1, 3, -64, 64]}]),
     "model.inputs 'img': shape [1, 3, -64, 64] is not a list of positive integers"),
    (lambda m: m["model"].update(outputs=[{"name": "fg", "role": "foreground"}]),
     "model.outputs: exactly one alpha is needed, found 0"),
])
def test_malformed_manifests_are_one_line(conversion, photo, tmp_path, change, message):
    _edit(conversion, change)
    _assert_refused(run_cli("matte", photo, "--model", conversion, "-o", tmp_path / "mattes"),
                    f"{conversion}/manifest.json: not a valid edgematte manifest (", message)


def test_roles_the_artefact_does_not_have_are_one_line(conversion, photo, tmp_path):
    """A manifest whose roles name a second input the model does not have: refused, not fed."""
    _edit(conversion, lambda m: m["model"].update(inputs=[
        {"name": m["model"].get("input_name") or "x", "role": "image", "shape": m["model"]["input_shape"]},
        {"name": "trimap", "role": "trimap", "shape": [1, 1, *m["model"]["input_shape"][2:]]}]))
    r = run_cli("matte", photo, "--model", conversion, "-o", tmp_path / "mattes")
    assert r.returncode != 0 and "inputs: has 1 tensors" in r.stderr and "the model 2" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_manifest_with_no_hash_is_not_trusted(conversion):
    _edit(conversion, lambda m: _onnx_entry(m).pop("sha256"))
    manifest = Manifest.read(conversion)
    with pytest.raises(EdgematteError, match="model.onnx: the manifest records no sha256 for this artefact"):
        manifest.file(manifest.find("model.onnx"))


def test_special_files_as_a_manifest_never_block(tmp_path, photo):
    fifo = tmp_path / "manifest.json"
    os.mkfifo(fifo)
    _assert_refused(run_cli("matte", photo, "--model", fifo, "-o", tmp_path / "m", timeout=60),
                    f"{fifo}: is a FIFO, not a regular manifest file")
    _assert_refused(run_cli("verify", "/dev/zero", timeout=60), "/dev/zero: is a character device")
    big = tmp_path / "big" / "manifest.json"
    big.parent.mkdir()
    with open(big, "wb") as f:
        f.truncate(65 * 2**20)  # sparse: 65 MiB that cost nothing on disk
    _assert_refused(run_cli("verify", big.parent), f"{big}: 68157440 bytes, more than the 64 MiB limit")
