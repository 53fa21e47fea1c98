"""LiteRT (TensorFlow Lite): run a ``.tflite`` file on this CPU, with XNNPACK by default.

The interpreter comes from ``ai-edge-litert`` (``ai_edge_litert.interpreter``); where only the older
``tflite-runtime`` wheel or full ``tensorflow`` is installed, their interpreter is used instead. It
is imported only when a backend is created, so importing the runtime never needs any of them.

Layout and dtype are the model's own: onnx2tf writes NHWC models by default (input
``[N, H, W, 3]``, alpha ``[N, H, W, 1]``). Integer-I/O models (full int8) take and return integer
arrays; :attr:`TensorSpec.quant` carries each tensor's ``(scale, zero_point)`` and
:func:`quantize` / :func:`dequantize` convert exactly as LiteRT's own QUANTIZE / DEQUANTIZE kernels do.

Tensor names are the model's signature names where it has exactly one signature (onnx2tf keeps the
ONNX names there: ``img``, ``alpha``), else the raw tensor names (``serving_default_img:0``).
"""

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ...core.errors import EdgematteError
from ...core.native_output import captured_native_stderr
from ...core.versions import describe, installed_version
from .base import Backend, TensorSpec

# Where each interpreter flavour lives, most preferred first, and the distribution that installs it.
_INTERPRETER_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite")
_DISTRIBUTIONS = {"ai_edge_litert.interpreter": "ai-edge-litert", "tflite_runtime.interpreter": "tflite-runtime",
                  "tensorflow.lite": "tensorflow"}


def _import_interpreter():
    """``(Interpreter class, OpResolverType enum or None, module name)`` of the best installed runtime."""
    import importlib

    for module_name in _INTERPRETER_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if module_name == "tensorflow.lite":
            resolver = getattr(getattr(module, "experimental", None), "OpResolverType", None)
        else:
            resolver = getattr(module, "OpResolverType", None)
        return module.Interpreter, resolver, module_name
    raise EdgematteError(
        "the LiteRT backend needs a TFLite interpreter: pip install ai-edge-litert "
        "(or tflite-runtime, or tensorflow)"
    )


def _quant_params(detail: dict):
    """``(scale, zero_point)`` of an integer tensor with one per-tensor scale, else ``None``."""
    if not np.issubdtype(np.dtype(detail["dtype"]), np.integer):
        return None
    scale, zero_point = detail["quantization"]
    if scale == 0.0:
        return None
    return float(scale), int(zero_point)


def _integer_limits(spec: TensorSpec):
    info = np.iinfo(np.dtype(spec.dtype))
    return info.min, info.max


def quantize(x_float: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Float values -> the integer tensor ``spec`` describes (``spec.quant = (scale, zero_point)``).

    ``q = clip(round_half_to_even(x * float32(1 / scale)) + zero_point, dtype min, dtype max)``, in
    float32 arithmetic. This is bit-exact with LiteRT's QUANTIZE op as it runs by default (XNNPACK
    and the optimized builtin kernel, measured in ``tests/test_converter_tflite.py``). LiteRT's
    *reference* kernel (``OpResolverType.BUILTIN_REF``) instead computes ``x / scale`` and rounds
    half away from zero; the two differ by one step only on exact ties.

    Returns an array of ``spec.dtype`` (``int8``, ``uint8``, ``int16``...) shaped like ``x_float``.
    """
    if spec.quant is None:
        raise ValueError(f"tensor {spec.name!r} ({spec.dtype}) has no quantization parameters")
    scale, zero_point = spec.quant
    lo, hi = _integer_limits(spec)
    inverse_scale = np.float32(1.0) / np.float32(scale)
    scaled = np.asarray(x_float, dtype=np.float32) * inverse_scale
    q = np.rint(scaled) + np.float32(zero_point)  # np.rint rounds half to even
    return np.clip(q, lo, hi).astype(spec.dtype)


def dequantize(q: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Integer tensor values -> float32 ``scale * (q - zero_point)``, as LiteRT's DEQUANTIZE computes it."""
    if spec.quant is None:
        raise ValueError(f"tensor {spec.name!r} ({spec.dtype}) has no quantization parameters")
    scale, zero_point = spec.quant
    return (scale * (np.asarray(q).astype(np.float64) - zero_point)).astype(np.float32)


class LiteRTBackend(Backend):
    """Run a ``.tflite`` model with LiteRT on the CPU.

    ``threads`` sets the interpreter's (and XNNPACK's) thread count, at most this machine's cores (see
    :class:`~.base.Backend`); ``None`` keeps LiteRT's default.
    ``use_xnnpack=False`` runs the builtin kernels only (no default delegate), e.g. to compare.
    Input and output: the model's own layout and dtype (see :attr:`inputs`, :attr:`outputs`).
    """

    name = "litert"

    def __init__(self, path, threads: Optional[int] = None, use_xnnpack: bool = True):
        super().__init__(path, threads)
        path = Path(path)
        if not path.is_file():
            raise EdgematteError(f"{path}: TFLite model not found")
        interpreter_class, resolver, self.runtime_module = _import_interpreter()
        self.runtime_version = describe(installed_version(_DISTRIBUTIONS[self.runtime_module]))
        options = {"model_path": str(path)}
        if self.threads is not None:
            options["num_threads"] = self.threads
        if not use_xnnpack:
            if resolver is None:
                raise EdgematteError(f"{self.runtime_module} cannot run without its default delegate")
            options["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self._interpreter = interpreter_class(**options)
        except ValueError as e:
            raise EdgematteError(f"{path}: not a loadable TFLite model ({_first_line(e)})") from e
        try:
            with captured_native_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                self._interpreter.allocate_tensors()
        except RuntimeError as e:
            raise EdgematteError(f"{path}: LiteRT cannot prepare this model ({_first_line(e)})") from e
        self._input_details = self._interpreter.get_input_details()
        self._output_details = self._interpreter.get_output_details()
        self._names = self._signature_names()

    def _signature_names(self) -> Dict[int, str]:
        """Tensor index -> signature name, when the model has exactly one signature."""
        try:
            signatures = self._interpreter._get_full_signature_list()  # the only index-level view
        except AttributeError:
            return {}
        if len(signatures) != 1:
            return {}
        (signature,) = signatures.values()
        names = {index: name for name, index in signature.get("inputs", {}).items()}
        names.update({index: name for name, index in signature.get("outputs", {}).items()})
        return names

    def _spec(self, detail: dict) -> TensorSpec:
        signature = detail.get("shape_signature")
        shape = signature if signature is not None and len(signature) else detail["shape"]
        return TensorSpec(
            name=self._names.get(detail["index"], detail["name"]),
            shape=tuple(int(d) for d in shape),
            dtype=np.dtype(detail["dtype"]).name,
            quant=_quant_params(detail),
        )

    @property
    def inputs(self) -> List[TensorSpec]:
        return [self._spec(d) for d in self._input_details]

    @property
    def outputs(self) -> List[TensorSpec]:
        return [self._spec(d) for d in self._output_details]

    def _fit_input(self, index: int, x: np.ndarray) -> bool:
        """Make input ``index``'s buffer ``x``'s shape; a fixed model accepts only its own shape. Returns whether
        the tensors must be reallocated."""
        detail = self._input_details[index]
        current = tuple(int(d) for d in detail["shape"])
        if tuple(x.shape) == current:
            return False
        declared = detail.get("shape_signature")
        declared = tuple(int(d) for d in (declared if declared is not None and len(declared) else current))
        fits = len(declared) == x.ndim and all(d in (-1, n) for d, n in zip(declared, x.shape))
        if not fits:
            spec = self.inputs[index]
            raise EdgematteError(
                f"{self.path}: input {spec.name!r} must be {spec.dtype} of shape {declared} "
                f"(-1: any), got shape {tuple(x.shape)}"
            )
        self._interpreter.resize_tensor_input(detail["index"], list(x.shape))
        return True

    def _invoke(self, feeds: Sequence[np.ndarray]) -> None:
        if len(feeds) != len(self._input_details):
            raise EdgematteError(f"{self.path}: the model has {len(self._input_details)} inputs, got {len(feeds)}")
        for index, x in enumerate(feeds):
            expected = np.dtype(self._input_details[index]["dtype"])
            if x.dtype != expected:
                raise ValueError(f"{self.path}: LiteRT input must be {expected.name}, got {x.dtype.name}")
        if any([self._fit_input(index, x) for index, x in enumerate(feeds)]):
            self._interpreter.allocate_tensors()
            self._input_details = self._interpreter.get_input_details()
            self._output_details = self._interpreter.get_output_details()
        for detail, x in zip(self._input_details, feeds):
            self._interpreter.set_tensor(detail["index"], np.ascontiguousarray(x))
        self._interpreter.invoke()

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run on ``x`` (the model's input dtype and layout); return a copy of the first output.

        The interpreter's tensors are allocated once and reused; they are reallocated only when a
        model with a dynamic input shape is fed a new shape.
        """
        self._invoke([x])
        # get_tensor returns a fresh array, never a view of the interpreter's buffer
        return self._interpreter.get_tensor(self._output_details[0]["index"])

    def run_feeds(self, feeds):
        self._invoke(feeds)
        return [self._interpreter.get_tensor(d["index"]) for d in self._output_details]


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
