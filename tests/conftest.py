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
