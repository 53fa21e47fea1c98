"""ONNX Runtime (CPU): runs the repaired .onnx files that ``edgematte.converter.onnx`` writes.

``onnxruntime`` is imported only when a backend is built, so the rest of edgematte works without it
and a missing install is one clear error instead of an ImportError at import time.
"""

from pathlib import Path
from typing import List, Optional

import numpy as np

from ...core.errors import EdgematteError
from .base import Backend, TensorSpec

# ONNX Runtime's type strings -> numpy dtype names.
_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as e:
        raise EdgematteError("the onnxruntime backend needs the onnxruntime package (pip install onnxruntime)") from e
    return onnxruntime


def _spec(arg) -> TensorSpec:
    """TensorSpec of an ONNX Runtime NodeArg; symbolic or unknown dimensions become -1."""
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or ()))
    return TensorSpec(arg.name, shape, _ORT_DTYPES.get(arg.type, arg.type))


class OnnxRuntimeBackend(Backend):
    """One .onnx model on ONNX Runtime's CPU provider (:meth:`run` for one input, :meth:`run_feeds` for several).

    ``threads`` sets ``intra_op_num_threads`` (None: ONNX Runtime's default, one per core).
    ``profile_prefix``: turn ONNX Runtime's profiler on, its JSON written at ``PREFIX_<date>.json`` when
    :meth:`end_profiling` is called (the session is otherwise the same: same graph optimizations, same kernels).
    """

    name = "onnxruntime"

    def __init__(self, path, threads: Optional[int] = None, profile_prefix: Optional[str] = None):
        super().__init__(path, threads)
        ort = _import_onnxruntime()
        path = Path(path)
        if not path.is_file():
            raise EdgematteError(f"{path}: no such ONNX model file")
        options = ort.SessionOptions()
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initializers are noise here
        if profile_prefix is not None:
            options.enable_profiling = True
            options.profile_file_prefix = str(profile_prefix)
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own Fail/InvalidGraph/... types
            raise EdgematteError(f"{path}: ONNX Runtime cannot load it: {str(e).splitlines()[0][:300]}") from e
        self._inputs = [_spec(a) for a in self._session.get_inputs()]
        self._outputs = [_spec(a) for a in self._session.get_outputs()]

    @property
    def inputs(self) -> List[TensorSpec]:
        return list(self._inputs)

    @property
    def outputs(self) -> List[TensorSpec]:
        return list(self._outputs)

    def _checked(self, spec: TensorSpec, x) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype != np.dtype(spec.dtype):
            raise EdgematteError(f"{self.path}: input '{spec.name}' wants {spec.dtype}, got {x.dtype}")
        if len(x.shape) != len(spec.shape) or any(want not in (-1, got) for want, got in zip(spec.shape, x.shape)):
            raise EdgematteError(
                f"{self.path}: input '{spec.name}' wants shape {list(spec.shape)}, got {list(x.shape)}")
        return np.ascontiguousarray(x)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run a one-input model on ``x``; return its first output."""
        if len(self._inputs) != 1:
            raise EdgematteError(f"{self.path}: the model has {len(self._inputs)} inputs; run_feeds takes them all")
        spec = self._inputs[0]
        result = self._session.run([self._outputs[0].name], {spec.name: self._checked(spec, x)})[0]
        return np.array(result, copy=True)

    def run_feeds(self, feeds):
        self._check_feed_count(feeds)
        named = {spec.name: self._checked(spec, x) for spec, x in zip(self._inputs, feeds)}
        return [np.array(r, copy=True) for r in self._session.run(None, named)]

    def end_profiling(self) -> str:
        """Stop the profiler (``profile_prefix``) and return the path of the JSON it wrote."""
        return self._session.end_profiling()
