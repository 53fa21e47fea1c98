"""Paddle Lite: run an x86 ``.nb`` with the ``paddlelite`` wheel (x86_64 Linux, Python <= 3.10 only).

Traps handled here:
- ``get_output(i).numpy()`` is a view of the predictor's buffer that the next ``run()`` overwrites:
  :meth:`PaddleLiteBackend.run` returns a copy.
- The x86 wheel given an arm or opencl ``.nb`` returns all zeros or crashes the process, without an
  error. A ``.nb`` records the place of every kernel it holds (kernel keys ``op/alias/target/
  precision/layout``), so a foreign ``.nb`` is refused before it is loaded.
- paddlelite 2.13rc0's ``Tensor.from_numpy`` loads wrong data under numpy 2; under numpy 1.x it is
  exact and 20x faster than ``set_float_data``, so numpy 2 falls back to ``resize`` + ``set_float_data``.
- Feeding one predictor a new input shape can corrupt the heap: an x86 .nb of a single conv2d that
  ran at 480x640 aborts the process (``double free or corruption``) at 240x320 or 640x480 (seen with
  paddlelite 2.13rc0). The backend builds a fresh predictor whenever the input shape changes.
- ``MobileConfig`` in Python has no thread or power-mode setter: ``threads`` is recorded but Lite
  picks its own thread count.

``paddlelite`` is imported only when a backend is created, so importing the runtime never needs it.
"""

import re
from pathlib import Path
from typing import List, Optional, Set

import numpy as np

from ...core.errors import EdgematteError
from .base import Backend, TensorSpec

# lite/api/paddle_place.h TargetType values, as they appear in a .nb's kernel keys.
LITE_TARGETS = {
    0: "unk", 1: "host", 2: "x86", 3: "cuda", 4: "arm", 5: "opencl", 6: "any", 7: "fpga", 8: "npu",
    9: "xpu", 10: "bm", 11: "mlu", 12: "rknpu", 13: "apu", 14: "huawei_ascend_npu",
    15: "imagination_nna", 16: "intel_fpga", 17: "metal", 18: "nnadapter",
}
# Places whose kernels the x86 wheel can execute.
X86_RUNNABLE = frozenset({"host", "x86", "any"})

# A kernel key: op type / alias / target / precision / layout, e.g. b"conv2d/def/2/1/1".
_KERNEL_KEY_RE = re.compile(rb"([a-z][a-z0-9_]*)/([A-Za-z0-9_]+)/(\d{1,2})/(\d{1,2})/(\d{1,2})(?![0-9/])")
_NB_VERSION_RE = re.compile(rb"\A..(v\d+\.\d+[\w.-]*)\x00", re.DOTALL)


def nb_kernel_targets(path) -> Set[str]:
    """The places (``x86``, ``arm``, ``opencl``, ``host``...) of the kernels recorded in a ``.nb`` file."""
    data = Path(path).read_bytes()
    return {LITE_TARGETS.get(int(m.group(3)), f"target{int(m.group(3))}") for m in _KERNEL_KEY_RE.finditer(data)}


LITE_PRECISIONS = {0: "unk", 1: "float", 2: "int8", 3: "int32", 4: "any", 5: "fp16", 6: "bool", 7: "int64",
                   8: "int16", 9: "uint8", 10: "fp64"}
CONV_OPS = ("conv2d", "depthwise_conv2d", "conv2d_transpose")


def nb_kernel_census(path) -> dict:
    """How much of a ``.nb`` runs in which precision, read from the kernel keys it records.

    Returns ``{"convolutions": {precision: count}, "calib": count}``: the convolution kernels by
    precision (``int8``, ``float``...) and the ``calib`` ops (fp32 <-> int8 conversions of whole
    activations) opt inserted. What an int8 ``.nb`` really computes in int8, and what it pays for it.
    """
    data = Path(path).read_bytes()
    convolutions, calib = {}, 0
    for m in _KERNEL_KEY_RE.finditer(data):
        op = m.group(1).decode()
        if op in CONV_OPS:
            precision = LITE_PRECISIONS.get(int(m.group(4)), f"precision{int(m.group(4))}")
            convolutions[precision] = convolutions.get(precision, 0) + 1
        elif op == "calib":
            calib += 1
    return {"convolutions": convolutions, "calib": calib}


def _numpy_major() -> int:
    return int(np.__version__.split(".")[0])


class PaddleLiteBackend(Backend):
    """Run an x86 Paddle Lite ``.nb`` (from :func:`edgematte.converter.paddle_lite.optimize`) on this CPU.

    Input: one float32 NCHW array of any size the model accepts. Output: a float32 array the caller
    owns (e.g. alpha ``[N, 1, H, W]`` in 0..1 for the matting models).
    """

    name = "paddle_lite"

    threads_effective = False  # MobileConfig's Python API cannot set threads (see the module docstring)

    def __init__(self, path, threads: Optional[int] = None):
        super().__init__(path, threads)
        path = Path(path)
        if not path.is_file():
            raise EdgematteError(f"{path}: Paddle Lite model (.nb) not found")
        try:
            header = path.read_bytes()[:64]
        except OSError as e:
            raise EdgematteError(f"{path}: cannot read the Paddle Lite model: {e.strerror or e}") from e
        version = _NB_VERSION_RE.match(header)
        targets = nb_kernel_targets(path)
        if version is None or not targets:
            raise EdgematteError(f"{path}: not a Paddle Lite naive-buffer model (.nb written by opt)")
        foreign = sorted(targets - X86_RUNNABLE)
        if foreign:
            raise EdgematteError(
                f"{path}: this .nb was optimized for {', '.join(foreign)}; the x86 paddlelite wheel would "
                "return zeros or crash. Run it on its device, or convert for --target x86 to run here"
            )
        self.nb_version = version.group(1).decode()
        self.kernel_targets = targets
        try:
            from paddlelite import lite
        except ImportError as e:
            raise EdgematteError(
                "the Paddle Lite backend needs paddlelite 2.13rc0 on x86_64 Python 3.10 "
                "(pip install 'edgematte[convert]')"
            ) from e
        self._lite = lite
        self._config = lite.MobileConfig()
        self._config.set_model_from_file(str(path))
        self._create_predictor()
        self._input_names = list(self._predictor.get_input_names())
        self._output_names = list(self._predictor.get_output_names())
        self._feed_with_from_numpy = _numpy_major() < 2
        self._last_input_shapes = ()
        self._last_output_shapes = ()
        self.predictors_created = 1

    def _create_predictor(self) -> None:
        self._predictor = None  # release the old buffers before allocating new ones
        self._predictor = self._lite.create_paddle_predictor(self._config)

    @property
    def inputs(self) -> List[TensorSpec]:
        """Names from the model; the shape is the last one fed (``()`` before the first run).

        Lite's Python API does not expose the declared input shape of a ``.nb``.
        """
        shapes = self._last_input_shapes or [()] * len(self._input_names)
        return [TensorSpec(n, s, "float32") for n, s in zip(self._input_names, shapes)]

    @property
    def outputs(self) -> List[TensorSpec]:
        shapes = self._last_output_shapes or [()] * len(self._output_names)
        return [TensorSpec(n, s, "float32") for n, s in zip(self._output_names, shapes)]

    def _feed(self, index: int, x: np.ndarray) -> None:
        tensor = self._predictor.get_input(index)
        if self._feed_with_from_numpy:
            tensor.from_numpy(x)
        else:
            tensor.resize(list(x.shape))
            tensor.set_float_data(x.ravel().tolist())

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run on float32 ``x`` (NCHW); return a copy of the first output."""
        return self.run_feeds([x])[0]

    def run_feeds(self, feeds):
        """Run on one float32 NCHW array per input; return a copy of every output."""
        if len(feeds) != len(self._input_names):
            raise EdgematteError(f"{self.path}: the model has {len(self._input_names)} inputs "
                                 f"{self._input_names}, got {len(feeds)} arrays")
        for x in feeds:
            if x.dtype != np.float32:
                raise ValueError(f"{self.path}: Paddle Lite input must be float32, got {x.dtype}")
        feeds = [np.ascontiguousarray(x) for x in feeds]
        shapes = tuple(tuple(x.shape) for x in feeds)
        if self._last_input_shapes and shapes != self._last_input_shapes:
            self._create_predictor()  # a reshaped predictor may corrupt the heap (module docstring)
            self.predictors_created += 1
        for index, x in enumerate(feeds):
            self._feed(index, x)
        self._predictor.run()
        # numpy() views the predictor's buffer, which the next run overwrites
        outputs = [np.array(self._predictor.get_output(i).numpy(), copy=True) for i in range(len(self._output_names))]
        self._last_input_shapes = shapes
        self._last_output_shapes = tuple(tuple(o.shape) for o in outputs)
        return outputs
