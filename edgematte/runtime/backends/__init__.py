"""Inference backends, one module each, all following :class:`~.base.Backend`.

Modules are imported only when their backend is opened, so the runtime imports without paddle,
paddlelite, tensorflow or even onnxruntime installed.
"""

import importlib
from pathlib import Path

from ...core.errors import EdgematteError

BACKENDS = {
    "litert": ("edgematte.runtime.backends.litert", "LiteRTBackend"),
    "onnxruntime": ("edgematte.runtime.backends.onnxruntime", "OnnxRuntimeBackend"),
    "paddle_lite": ("edgematte.runtime.backends.paddle_lite", "PaddleLiteBackend"),
    "paddle_inference": ("edgematte.runtime.backends.paddle_inference", "PaddleInferenceBackend"),
}
# The backend that runs each artefact format by default.
DEFAULT_BACKEND_FOR_FORMAT = {
    "tflite": "litert", "onnx": "onnxruntime", "nb": "paddle_lite", "pdmodel": "paddle_inference",
}


def backend_for_path(path) -> str:
    """The default backend name for a model file, from its extension."""
    suffix = Path(path).suffix.lstrip(".")
    if suffix not in DEFAULT_BACKEND_FOR_FORMAT:
        raise EdgematteError(f"{path}: unknown model format '.{suffix}' (expected .tflite, .onnx, .nb or .pdmodel)")
    return DEFAULT_BACKEND_FOR_FORMAT[suffix]


def open_backend(name: str, path, threads=None):
    """Load ``path`` with backend ``name`` (one of :data:`BACKENDS`)."""
    if name not in BACKENDS:
        raise EdgematteError(f"unknown backend '{name}' (choose from {', '.join(BACKENDS)})")
    module, cls = BACKENDS[name]
    return getattr(importlib.import_module(module), cls)(path, threads=threads)
