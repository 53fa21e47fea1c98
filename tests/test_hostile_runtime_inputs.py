"""Hostile inputs to the runtime commands: FIFOs and devices as photos or backgrounds, an empty background, a
newline in a file name, libpng's own warnings, an output folder that cannot be made. Every refusal is one line
naming the file or option, nothing hangs, a folder run goes on past a bad file, nothing else is written.

Part of the hostile-input suite (``tests/test_hostile_*.py``). The model is a tiny hand-made ONNX graph (the
mean of the colour channels through a sigmoid) in a manifest of its own, so each command runs in a second.
Commands that could hang run in a subprocess with a timeout.
"""

import hashlib
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from edgematte.core.samples import sample_photo
from edgematte.runtime.imageio import shown_name, write_image

from .conftest import run_cli, run_main

TIMEOUT = 60  # seconds; every command here takes about one


def write_tiny_model(folder: Path, copies: int = 1, hw=(32, 32)) -> Path:
    """A conversion folder holding ``copies`` identical fp32 ONNX artefacts (``model.onnx``, ``model_2.onnx``,
    ...) and their manifest: alpha = sigmoid(mean of the three input channels), input [1, 3, H, W]."""
    from onnx import TensorProto, helper

    h, w = hw
    nodes = [helper.make_node("ReduceMean", ["img"], ["mean"], axes=[1], keepdims=1),
             helper.make_node("Sigmoid", ["mean"], ["alpha"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, h, w])],
                              [helper.make_tensor_value_info("alpha", TensorProto.FLOAT, [1, 1, h, w])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString()
    artefacts = []
    for index in range(copies):
        name = "model.onnx" if index == 0 else f"model_{index + 1}.onnx"
        (folder / name).write_bytes(data)
        artefacts.append({"path": name, "format": "onnx", "target": "any", "precision": "fp32", "layout": "nchw",
                          "size_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                          "parity": {"max_abs": 0.0, "mean_abs": 0.0, "frac_over_1_255": 0.0,
                                     "compared_to": "reference", "runs_on_host": True}})
    manifest = {"schema": "edgematte.manifest/1", "model": {"name": "tiny", "input_shape": [1, 3, h, w]},
                "reference": {}, "artefacts": artefacts}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("tiny_model") / "conversion")


def photo(path: Path) -> Path:
    write_image(path, sample_photo("chelsea")[::8, ::8])
    return path


def one_error_line(code, err, expected=None, *fragments) -> str:
    """The single stderr line of a refused command (exit 1); equal to ``expected`` when given."""
    assert code == 1, (code, err)
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n") and lines[0].startswith("edgematte: error: "), err
    if expected is not None:
        assert lines[0] == f"edgematte: error: {expected}"
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def files_in(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ FIFOs and devices
def test_a_fifo_among_the_inputs_is_refused_and_the_other_photos_are_matted(model_dir, tmp_path):
    inputs = tmp_path / "in"
    photo(inputs / "a.png")
    photo(inputs / "sub" / "b.png")
    os.mkfifo(inputs / "pipe.png")
    os.mkfifo(inputs / "sub" / "pipe.jpg")

    given = run_cli("matte", inputs / "pipe.png", inputs / "a.png", "--model", model_dir, "-o", tmp_path / "one",
                    timeout=TIMEOUT)
    assert given.returncode == 1, given.stderr
    assert given.stderr.splitlines()[0] == f"edgematte: warning: {inputs / 'pipe.png'}: is a FIFO, not a regular " \
                                           "image file"
    assert sorted(files_in(tmp_path / "one")) == ["a_alpha.png"]

    walked = run_cli("matte", inputs, "--model", model_dir, "-o", tmp_path / "two", timeout=TIMEOUT)
    assert walked.returncode == 1, walked.stderr
    warnings = [line for line in walked.stderr.splitlines() if line.startswith("edgematte: warning: ")]
    assert warnings == [f"edgematte: warning: {inputs / name}: is a FIFO, not a regular image file"
                        for name in ("pipe.png", "sub/pipe.jpg")]
    assert sorted(files_in(tmp_path / "two")) == ["a_alpha.png", "sub/b_alpha.png"]
    assert "matted 2 of 4 inputs" in walked.stderr


@pytest.mark.parametrize("special", ["fifo", "/dev/zero", "folder"])
def test_a_fifo_a_device_or_a_folder_as_background_is_one_line(model_dir, tmp_path, special):
    source = photo(tmp_path / "a.png")
    if special == "fifo":
        background, kind = tmp_path / "bg.png", "a FIFO, not a regular image file"
        os.mkfifo(background)
    elif special == "folder":
        background, kind = tmp_path, "a folder, not a regular image file"
    else:
        background, kind = Path(special), "a character device, not a regular image file"
    r = run_cli("matte", source, "--model", model_dir, "-o", tmp_path / "out", "--background", background,
                timeout=TIMEOUT)
    assert r.returncode == 1 and r.stdout == ""
    one_error_line(r.returncode, r.stderr, f"--background: {background}: is {kind}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_background_is_refused_not_ignored(model_dir, tmp_path, capsys, text):
    source = photo(tmp_path / "a.png")
    code, _, err = run_main(capsys, "matte", source, "--model", model_dir, "-o", tmp_path / "out",
                            "--background", text)
    one_error_line(code, err, f"--background {text!r}: empty; give an image file, a colour (#00ff00, 0,255,0 or one "
                              "of black, white, gray, grey, red, green, blue) or 'blur'")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ libpng's own lines
def png_with_short_iccp(path: Path) -> Path:
    """A valid PNG whose iCCP chunk holds a profile too short to be one: libpng warns "iCCP: too short" on
    stderr (from C) and decodes the image anyway."""
    data = photo(path).read_bytes()
    body = b"icc\x00\x00" + zlib.compress(b"not an ICC profile" * 4)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    path.write_bytes(data[:33] + chunk + data[33:])  # right after IHDR
    return path


def test_libpng_warnings_stay_off_the_terminal_unless_debugging(model_dir, tmp_path):
    source = png_with_short_iccp(tmp_path / "profiled.png")
    decode = ("import cv2, numpy, sys; "
              f"cv2.imdecode(numpy.fromfile({str(source)!r}, numpy.uint8), cv2.IMREAD_UNCHANGED)")
    raw = subprocess.run([sys.executable, "-c", decode], capture_output=True, text=True, timeout=TIMEOUT)
    assert "libpng warning: iCCP: too short" in raw.stderr  # the file does make libpng talk

    quiet = run_cli("matte", source, "--model", model_dir, "-o", tmp_path / "out", timeout=TIMEOUT)
    assert quiet.returncode == 0, quiet.stderr
    assert "libpng warning" not in quiet.stderr and len(quiet.stderr.splitlines()) == 1
    assert quiet.stderr.startswith("matted 1 of 1 inputs")
    assert sorted(files_in(tmp_path / "out")) == ["profiled_alpha.png"]

    debug = run_cli("--debug", "matte", source, "--model", model_dir, "-o", tmp_path / "out2", timeout=TIMEOUT)
    assert debug.returncode == 0 and "libpng warning: iCCP: too short" in debug.stderr


# ------------------------------------------------------------------------------------------ names
def test_a_newline_in_a_file_name_keeps_every_warning_on_one_line(model_dir, tmp_path, capsys):
    inputs = tmp_path / "in"
    photo(inputs / "good.png")
    (inputs / "two\nlines.png").write_text("not a photo\n")
    os.mkfifo(inputs / "pipe\rname.png")
    r = run_cli("matte", inputs, "--model", model_dir, "-o", tmp_path / "out", timeout=TIMEOUT)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"edgematte: warning: {inputs}/pipe\\rname.png: is a FIFO, not a regular image file",
        f"edgematte: warning: {inputs}/two\\nlines.png: neither a supported image (JPEG, PNG, WebP, BMP, TIFF, PNM) "
        "nor a video (.mp4, .m4v, .mov, .avi, .mkv, .webm, .mpg, .mpeg, .wmv)",
        f"matted 1 of 3 inputs (1 frames, {r.stderr.split('frames, ')[1].split(' frames/s')[0]} frames/s) into "
        f"{tmp_path / 'out'}; 2 failed",
    ]
    assert sorted(files_in(tmp_path / "out")) == ["good_alpha.png"]

    # A missing input (click checks those of the command line; the library reports them).
    from edgematte.runtime.batch import matte_inputs
    from edgematte.runtime.matter import Matter

    missing = inputs / "gone\nmissing.png"
    report = matte_inputs([str(missing)], tmp_path / "out", Matter.from_manifest(model_dir))
    reason = f"{inputs}/gone\\nmissing.png: no such file or folder"
    assert report.failures == [(str(missing), reason)]
    assert capsys.readouterr().err == f"edgematte: warning: {reason}\n"


def test_shown_name_escapes_control_characters_only():
    assert shown_name("photos/a b é.png") == "photos/a b é.png"
    assert shown_name(Path("a\nb\tc\x1b[31md\x7f\u2028.png")) == "a\\nb\\tc\\x1b[31md\\x7f\\u2028.png"
    assert shown_name(os.fsdecode(b"bad\xffbyte.png")) == "bad\\udcffbyte.png"
    assert shown_name(shown_name("x\ny")) == shown_name("x\ny") == "x\\ny"


# ------------------------------------------------------------------------------------------ outputs
def test_matte_into_a_place_that_cannot_be_written_is_one_line(model_dir, tmp_path, capsys):
    source = photo(tmp_path / "a.png")
    before = files_in(tmp_path)
    (tmp_path / "file").write_text("x")
    # Root (as CI runs) may write anywhere the permission bits forbid: these failures stop root too.
    for out, message in (
            (tmp_path / "file" / "sub" / "out",
             f"{tmp_path / 'file'}: is a file, not a folder, so the output folder cannot be written in it"),
            (Path("/proc/edgematte-test/out"),
             "/proc/edgematte-test/out: cannot create the output folder (No such file or directory)")):
        code, _, err = run_main(capsys, "matte", source, "--model", model_dir, "-o", out)
        one_error_line(code, err, message)
    code, _, err = run_main(capsys, "matte", source, "--model", model_dir, "-o", tmp_path / "file")
    assert code == 2 and err.count("\n") == 1 and "'--out'" in err and str(tmp_path / "file") in err  # click's check
    assert files_in(tmp_path) == dict(before, file=b"x")


def test_runtime_samples_into_a_place_that_cannot_be_written_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = run_main(capsys, "runtime", "samples", "-o", tmp_path / "file" / "sub")
    line = one_error_line(code, err, None, str(tmp_path / "file" / "sub"), "cannot write")
    assert "Traceback" not in line and "internal error" not in line
    assert [p.name for p in tmp_path.iterdir()] == ["file"]
