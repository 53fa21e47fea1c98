"""Installed versions of the packages edgematte drives: one lookup, one way of saying "not installed"."""

from importlib import metadata
from typing import Dict, Iterable, Optional

# The toolchain a manifest records (what built and checked its artefacts).
TOOLCHAIN = (
    "paddlepaddle",
    "paddlelite",
    "paddle2onnx",
    "onnx",
    "onnxsim",
    "onnx2tf",
    "tensorflow",
    "onnxruntime",
    "ai-edge-litert",
    "numpy",
    "opencv-python",
)
# What the runtime needs on a board or phone host.
RUNTIME = ("ai-edge-litert", "tflite-runtime", "onnxruntime", "paddlelite", "paddlepaddle", "numpy", "opencv-python",
           "opencv-python-headless")
NOT_INSTALLED = None


def installed_version(distribution: str) -> Optional[str]:
    """The installed version of ``distribution`` (a PyPI name), or ``None`` when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return NOT_INSTALLED


def installed_versions(distributions: Iterable[str] = TOOLCHAIN) -> Dict[str, Optional[str]]:
    """``{distribution: version or None}`` for each name, in the given order."""
    return {name: installed_version(name) for name in distributions}


def describe(version: Optional[str]) -> str:
    """A version for people: the version, or "not installed"."""
    return version if version is not None else "not installed"
