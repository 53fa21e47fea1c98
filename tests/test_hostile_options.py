"""Hostile and careless options: thread counts, widths, input shapes, unwritable outputs and the temporary
folder a conversion is built in. Each is refused in one line naming the option (exit 1) before any work, or
clamped with one warning; nothing is written.

Part of the hostile-input suite (``tests/test_hostile_*.py``). Commands that would hang or grow without end
before these checks existed run in a subprocess with a timeout.
"""

from pathlib import Path
from types import SimpleNamespace

import pytest

from edgematte.core import threads as thread_policy
from edgematte.core.errors import EdgematteError
from edgematte.core.threads import machine_cores, resolve_threads
from edgematte.pipeline import run as pipeline_run
from edgematte.runtime.matter import Matter
from edgematte.zoo.export import MAX_INPUT_PIXELS, check_input_shape, validate_width

from .conftest import run_cli, run_main
from .test_hostile_runtime_inputs import TIMEOUT, files_in, one_error_line, photo, write_tiny_model

CORES = machine_cores()
TINY_ZOO = ("ppmattingv2", "--seed", "0", "--width", "0.25", "--input-shape", "1", "3", "64", "64")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """Two identical artefacts: verify compares the second with the first (the stand-in reference)."""
    return write_tiny_model(tmp_path_factory.mktemp("tiny_model") / "conversion", copies=2)


@pytest.fixture(autouse=True)
def fresh_thread_warnings(monkeypatch):
    monkeypatch.setattr(thread_policy, "_warned", set())  # each too-large count is warned about once a process


def too_many_warning(option="--threads", count=99999) -> str:
    label = f"{option} {count}" if option.startswith("-") else f"{option}={count}"
    return (f"edgematte: warning: {label} is more than this machine's {CORES} "
            f"{'core' if CORES == 1 else 'cores'}; using {CORES}")


def local_commands(model_dir: Path, tmp_path: Path) -> dict:
    """Every command whose --threads runs here, ready to run (bench's are a board's: not here)."""
    data = tmp_path / "data"
    photo(data / "a.png")
    return {
        "matte": ["matte", data / "a.png", "--model", model_dir, "-o", tmp_path / "out"],
        "verify": ["verify", model_dir, "--images", data],
        "quant eval": ["quant", "eval", model_dir, "--artefact", "model_2.onnx", "--data", data],
        "convert": ["convert", *TINY_ZOO, "-o", tmp_path / "out"],
    }


# ------------------------------------------------------------------------------------------ --threads
@pytest.mark.parametrize("command", ["matte", "verify", "quant eval", "convert"])
@pytest.mark.parametrize("count", ["0", "-4"])
def test_a_thread_count_below_one_is_refused_in_one_line(model_dir, tmp_path, capsys, command, count):
    args = local_commands(model_dir, tmp_path)[command]
    before = files_in(tmp_path)
    code, out, err = run_main(capsys, *args, "--threads", count)
    one_error_line(code, err, f"--threads {count}: the thread count must be at least 1")
    assert out == "" and files_in(tmp_path) == before and not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["matte", "verify", "quant eval"])
def test_too_many_threads_are_clamped_to_the_cores_with_one_warning(model_dir, tmp_path, command):
    args = local_commands(model_dir, tmp_path)[command]
    r = run_cli(*args, "--threads", 99999, timeout=TIMEOUT)  # before: never finished while memory grew
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert warnings == [too_many_warning()]


def test_convert_clamps_its_threads_before_any_work(tmp_path, capsys, monkeypatch):
    seen = {}

    def stop(model, out, options):
        seen["threads"] = options.threads
        raise EdgematteError("stopped here")

    monkeypatch.setattr(pipeline_run, "convert", stop)
    monkeypatch.setattr("edgematte.pipeline.convert", stop)
    code, _, err = run_main(capsys, "convert", *TINY_ZOO, "-o", tmp_path / "out", "--threads", "99999")
    assert code == 1 and err.splitlines() == [too_many_warning(), "edgematte: error: stopped here"]
    assert seen == {"threads": CORES}


def test_the_library_and_the_backends_apply_the_same_policy_once(model_dir, capsys):
    first = Matter.from_manifest(model_dir, threads=99999)
    second = Matter.from_manifest(model_dir, threads=99999)
    assert first.backend.threads == second.backend.threads == CORES
    assert capsys.readouterr().err.splitlines() == [too_many_warning("threads")]  # once, not once a backend
    assert Matter.from_manifest(model_dir, threads=CORES).backend.threads == CORES
    for bad, shown in ((0, "0"), (-1, "-1"), (1.5, "1.5"), (True, "True"), ("2", "'2'")):
        with pytest.raises(EdgematteError) as caught:
            Matter.from_manifest(model_dir, threads=bad)
        assert str(caught.value).startswith(f"threads={shown}: the thread count must be")
    assert resolve_threads(None) is None and resolve_threads(1) == 1 and resolve_threads(2.0) == min(2, CORES)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------ --width
@pytest.mark.parametrize("width, shown", [("0", "0"), ("-1", "-1"), ("nan", "nan"), ("inf", "inf"),
                                          ("1e9", "1e+09"), ("2.5", "2.5")])
@pytest.mark.parametrize("command", [["convert", "ppmattingv2", "--seed", "0"],
                                     ["export", "ppmattingv2", "--seed", "0"], ["zoo", "info", "ppmattingv2"]])
def test_a_width_that_is_not_a_sensible_finite_number_is_one_line(tmp_path, capsys, command, width, shown):
    out = ["-o", tmp_path / "out"] if command[0] != "zoo" else []
    code, stdout, err = run_main(capsys, *command, "--width", width, *out)
    one_error_line(code, err, f"--width {shown}: the channel width multiplier must be a number above 0 and at most 2 "
                              "(1 is the official model, 0.25 a tiny test variant)")
    assert stdout == "" and list(tmp_path.iterdir()) == []


def test_check_weights_refuses_a_bad_width_before_reading_the_file(tmp_path, capsys):
    code, _, err = run_main(capsys, "zoo", "check-weights", "ppmattingv2", tmp_path / "missing.pdparams",
                            "--width", "nan")
    one_error_line(code, err, None, "--width nan: the channel width multiplier")


def test_width_bounds():
    assert validate_width(0.25) == 0.25 and validate_width(2) == 2.0 and validate_width("1") == 1.0
    for bad in (0, -0.5, 2.0001, float("nan"), float("inf"), "wide", None):
        with pytest.raises(EdgematteError, match="--width"):
            validate_width(bad)


# ------------------------------------------------------------------------------------------ --input-shape
HUGE = ("1", "3", "100000", "100000")
HUGE_MESSAGE = ("--input-shape 1 3 100000 100000: N x H x W is 10000.0 megapixels, above the limit of 16.8 "
                "(4096 x 4096): a single 32-channel float32 feature map at that size would need 1,192 GiB of memory")


@pytest.mark.parametrize("command", ["convert", "export"])
def test_a_huge_input_shape_is_one_line_saying_why(tmp_path, capsys, command):
    code, _, err = run_main(capsys, command, "ppmattingv2", "--seed", "0", "--input-shape", *HUGE,
                            "-o", tmp_path / "out")
    one_error_line(code, err, HUGE_MESSAGE)
    assert list(tmp_path.iterdir()) == []


def test_input_shape_bounds_for_every_source():
    assert check_input_shape([1, 3, 4096, 4096]) == [1, 3, 4096, 4096]
    assert 1 * 4096 * 4096 == MAX_INPUT_PIXELS
    with pytest.raises(EdgematteError, match=r"--input-shape 2 3 4096 4096: N x H x W is 33.6 megapixels"):
        check_input_shape([2, 3, 4096, 4096])
    # a deploy folder of a model outside the zoo, with --input-shape or with its deploy.yaml's fixed shape
    source = SimpleNamespace(spec=None, input_shape=[1, 3, 100000, 100000], origin="exported/")
    with pytest.raises(EdgematteError) as caught:
        pipeline_run.resolve_input_shape(source, None)
    assert str(caught.value).startswith("exported/: its deploy.yaml input_shape 1 3 100000 100000: N x H x W is")
    with pytest.raises(EdgematteError) as caught:
        pipeline_run.resolve_input_shape(source, [1, 3, 100000, 100000])
    assert str(caught.value) == HUGE_MESSAGE
    assert pipeline_run.resolve_input_shape(source, [1, 3, 64, 96]) == [1, 3, 64, 96]


def test_zoo_info_input_size_is_checked_before_counting(capsys):
    code, _, err = run_main(capsys, "zoo", "info", "ppmattingv2", "--input-size", "0", "0")
    one_error_line(code, err, "--input-size 0 0: expected N>=1, C=3 (RGB) and positive H, W")
    code, _, err = run_main(capsys, "zoo", "info", "ppmattingv2", "--input-size", "100", "100")
    one_error_line(code, err, "--input-size 100 100: ppmattingv2 needs H and W to be multiples of 32 and at least 64")


# ------------------------------------------------------------------------------------------ -o
def test_convert_into_a_place_that_cannot_be_written_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for out in (tmp_path / "file" / "sub" / "out", Path("/proc/edgematte-test/out")):
        code, _, err = run_main(capsys, "convert", *TINY_ZOO, "-o", out)
        line = one_error_line(code, err)
        assert str(out.parent if out.parts[1] == "proc" else tmp_path / "file") in line
        assert "Error:" not in line and "internal error" not in line and "Traceback" not in line
    assert files_in(tmp_path) == {"file": b"x"}


# ------------------------------------------------------------------------------------------ the temporary folder
@pytest.mark.parametrize("relative", [False, True])
def test_errors_inside_a_conversion_name_out_not_its_temporary_folder(tmp_path, capsys, monkeypatch, relative):
    def fail(model, work, **options):  # a source that is wrong, found while OUT is built in its temporary sibling
        raise EdgematteError(f"{work / 'source' / 'deploy.yaml'}: Deploy.input_shape is a string, not a list "
                             f"(in {work.parent.resolve()})")

    monkeypatch.setattr(pipeline_run, "open_model_source", fail)
    monkeypatch.chdir(tmp_path)
    out = Path("out") if relative else tmp_path / "out"
    code, _, err = run_main(capsys, "convert", *TINY_ZOO, "-o", out)
    one_error_line(code, err, f"{out}/.work/source/deploy.yaml: Deploy.input_shape is a string, not a list (in {out})")
    assert ".edgematte-" not in err
    assert list(tmp_path.iterdir()) == []  # the temporary folder is gone too
