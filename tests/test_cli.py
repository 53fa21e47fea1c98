"""The command-line surface: help, version, exit codes and one-line errors."""

import pytest

from edgematte import __version__

from .conftest import run_cli

COMMANDS = ["export", "convert", "matte", "verify", "quant", "bench", "device"]


def test_help_lists_every_command_with_one_line():
    r = run_cli("--help")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    for cmd in COMMANDS + ["zoo", "runtime"]:
        rows = [row for row in lines if row.strip().startswith(cmd + " ")]
        assert len(rows) == 1, f"{cmd} not listed once in --help"
        assert len(rows[0].split(None, 1)) == 2, f"{cmd} has no description"


@pytest.mark.parametrize(
    "cmd",
    [["export"], ["convert"], ["matte"], ["verify"], ["quant"], ["quant", "eval"], ["bench"], ["device"],
     ["bench-merge"], ["device", "verify"], ["device", "arm-check"], ["device", "arm-rootfs"], ["zoo"],
     ["zoo", "list"], ["zoo", "info"], ["zoo", "check-weights"], ["runtime", "vectors"]],
)
def test_every_command_has_help(cmd):
    r = run_cli(*cmd, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Usage: edgematte " + " ".join(cmd))


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0
    assert __version__ in r.stdout


def test_unknown_option_is_one_line_exit_2():
    r = run_cli("export", "--no-such-option")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1, r.stderr
    assert "No such option" in r.stderr and "--no-such-option" in r.stderr
    assert "edgematte export --help" in r.stderr


def test_unknown_command_exit_2():
    r = run_cli("frobnicate")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "frobnicate" in r.stderr


def test_user_error_names_the_file_one_line(tmp_path):
    missing = tmp_path / "nope.pdparams"
    r = run_cli("zoo", "check-weights", "ppmattingv2", missing)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1, r.stderr
    assert str(missing) in r.stderr and "Traceback" not in r.stderr


def test_debug_shows_traceback(tmp_path):
    missing = tmp_path / "nope.pdparams"
    r = run_cli("--debug", "zoo", "check-weights", "ppmattingv2", missing)
    assert r.returncode != 0
    assert "Traceback" in r.stderr


def test_unknown_model_lists_known_ones():
    r = run_cli("zoo", "info", "modnet")
    assert r.returncode == 1
    assert "unknown model 'modnet'" in r.stderr and "ppmattingv2" in r.stderr


@pytest.mark.parametrize("command", [["matte", "{photo}", "--model", "{model}", "-o", "{out}"],
                                     ["verify", "{model}"],
                                     ["quant", "eval", "{model}", "--data", "{data}"]])
def test_a_manifest_without_artefacts_is_one_line(tmp_path, command):
    import json

    from edgematte.core.samples import sample_photo
    from edgematte.runtime.imageio import write_image

    model = tmp_path / "conversion"
    model.mkdir()
    (model / "manifest.json").write_text(json.dumps({"schema": "edgematte.manifest/1",
                                                     "model": {"name": "m", "input_shape": [1, 3, 64, 64]}}))
    write_image(tmp_path / "data" / "a.png", sample_photo("chelsea")[::8, ::8])
    places = {"photo": tmp_path / "data" / "a.png", "model": model, "out": tmp_path / "out", "data": tmp_path / "data"}
    r = run_cli(*(arg.format(**places) for arg in command), timeout=60)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == (f"edgematte: error: {model / 'manifest.json'}: not a valid edgematte manifest (it has no "
                        "'artefacts' list)\n")
    assert not (tmp_path / "out").exists()


def test_threads_help_says_the_count_is_bounded_by_the_cores():
    for command in (["matte"], ["verify"], ["quant", "eval"], ["convert"]):
        r = run_cli(*command, "--help")
        assert r.returncode == 0 and "at most this machine's cores" in " ".join(r.stdout.split()), command
