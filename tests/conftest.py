import os
import sys
from pathlib import Path

import pytest

import edgematte  # noqa: F401  (first: it loads the system zlib before any test imports paddle)

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]

# Paddle's first import spends seconds probing for GPUs and writes noise to stderr.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("FLAGS_call_stack_level", "0")


@pytest.fixture(scope="session")
def data_dir():
    return DATA


def run_cli(*args, env=None, timeout=600):
    """Run the installed CLI in a subprocess; returns CompletedProcess with text output."""
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "edgematte.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def run_main(capsys, *args):
    """``edgematte ARGS`` in this process: (exit status, stdout, stderr). The signal handlers main() installs
    are put back afterwards."""
    import signal

    from edgematte.cli import main

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with pytest.raises(SystemExit) as stopped:
            main([str(a) for a in args])
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    out, err = capsys.readouterr()
    return stopped.value.code, out, err


@pytest.fixture(scope="session")
def tiny_conversion(tmp_path_factory):
    """One full `edgematte convert` of the tiny seeded PP-MattingV2 at 256x320 (every format), shared."""
    out = tmp_path_factory.mktemp("tiny_conversion") / "out"
    r = run_cli("convert", "ppmattingv2", "--seed", "0", "--width", "0.25", "--input-shape", 1, 3, 256, 320,
                "--lite-targets", "arm,x86", "-o", out)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="session")
def int8_conversion(tmp_path_factory):
    """One `edgematte convert --int8` of the tiny seeded PP-MattingV2 at 256x256 (Lite, ONNX, TFLite; 8 calibration
    images), shared by the INT8 pipeline tests."""
    out = tmp_path_factory.mktemp("int8") / "out"
    r = run_cli("convert", "ppmattingv2", "--seed", "0", "--width", "0.25", "--input-shape", 1, 3, 256, 256,
                "--to", "lite,onnx,tflite", "--no-fp16", "--int8", "--calib-count", 8, "-o", out)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="session")
def rvm_tflite(tmp_path_factory):
    """RVM as PaddleSeg's export writes it, converted to an fp32 TFLite at 128x128 (its states r1..r4), for the
    ssh and qemu bench targets."""
    from tests.official_models import build_official_folder

    folder = build_official_folder("rvm_mobilenetv3", tmp_path_factory.mktemp("official") / "rvm")
    out = tmp_path_factory.mktemp("converted") / "rvm"
    r = run_cli("convert", folder, "--input-shape", 1, 3, 128, 128, "--to", "tflite", "--no-fp16", "-o", out)
    assert r.returncode == 0, r.stderr
    return out


def _load_script(folder: str, name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{folder}_{name}", REPO / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_tool(name: str):
    """A developer script of ``tools/`` (not part of the package) as a module."""
    return _load_script("tools", name)


def load_benchmark(name: str):
    """A script of ``benchmarks/`` (not part of the package) as a module."""
    return _load_script("benchmarks", name)
