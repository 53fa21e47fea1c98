"""What the TensorFlow quantizer is asked to make: typed jobs, and the plan a worker subprocess reads.

A job is one of :class:`FullIntegerJob`, :class:`DynamicRangeJob`, :class:`FloatTwinJob` and
:class:`LayerErrorsJob` (the caller's side: where results go, what must come out float). :meth:`planned` turns
each into a :class:`PlannedJob`, its entry in the :class:`WorkerPlan` (``plan.json``) the worker runs: what to
compute and which files of the work folder to write. ``kind`` names the job type in that file only.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar, List, Optional, Sequence, Tuple, Union

import numpy as np

from ...core.errors import EdgematteError
from .calibration import stack_calibration

INT8_IO_DTYPES = ("float32", "int8")


@dataclass(frozen=True)
class FullIntegerJob:
    """A full-integer model (int8 weights and activations) written to ``out``.

    ``io_dtype``: ``"float32"`` keeps float input/output, ``"int8"`` makes them int8.
    ``keep_float_nodes`` / ``keep_float_ops``: ops left in float, by output tensor name or builtin
    op type (see :func:`edgematte.quant.tflite.quantize_int8`). ``check_float_nodes``: the kept nodes
    that must come out float (``None``: all of them; MLIR may still quantize a denylisted
    scale-preserving op such as an AVERAGE_POOL_2D fed by the model input). ``output_names``: the names the
    written model's signature gives its outputs, in the SavedModel's output order (TensorFlow names them
    ``output_0``, ``output_1``...; onnx2tf's own TFLite keeps the ONNX names, and a model with several outputs,
    a recurrent one, is fed by them); empty keeps TensorFlow's. The result is ``out``.
    """

    out: Path
    io_dtype: str = "float32"
    keep_float_nodes: Tuple[str, ...] = ()
    keep_float_ops: Tuple[str, ...] = ()
    check_float_nodes: Optional[Tuple[str, ...]] = None
    output_names: Tuple[str, ...] = ()

    kind: ClassVar[str] = "full_integer"
    needs_calibrated: ClassVar[bool] = True

    def __post_init__(self):
        if self.io_dtype not in INT8_IO_DTYPES:
            raise EdgematteError(f"io_dtype must be one of {', '.join(INT8_IO_DTYPES)}, got {self.io_dtype!r}")
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "keep_float_nodes", tuple(self.keep_float_nodes))
        object.__setattr__(self, "keep_float_ops", tuple(self.keep_float_ops))
        if self.check_float_nodes is not None:
            object.__setattr__(self, "check_float_nodes", tuple(self.check_float_nodes))
        object.__setattr__(self, "output_names", tuple(self.output_names))

    @property
    def must_be_float(self) -> Tuple[str, ...]:
        return self.keep_float_nodes if self.check_float_nodes is None else self.check_float_nodes

    def planned(self, index: int, workdir: Path) -> "PlannedJob":
        return PlannedJob(self.kind, f"job{index}.tflite", f"job{index}.error", io_dtype=self.io_dtype,
                          keep_float_nodes=list(self.keep_float_nodes), keep_float_ops=list(self.keep_float_ops),
                          output_names=list(self.output_names))


@dataclass(frozen=True)
class DynamicRangeJob:
    """A dynamic-range model (int8 weights, float activations, from the SavedModel itself) written to ``out``;
    ``output_names`` as for :class:`FullIntegerJob`."""

    out: Path
    output_names: Tuple[str, ...] = ()

    kind: ClassVar[str] = "dynamic_range"
    needs_calibrated: ClassVar[bool] = False

    def __post_init__(self):
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "output_names", tuple(self.output_names))

    def planned(self, index: int, workdir: Path) -> "PlannedJob":
        return PlannedJob(self.kind, f"job{index}.tflite", f"job{index}.error", output_names=list(self.output_names))


@dataclass(frozen=True)
class FloatTwinJob(DynamicRangeJob):
    """The float model TensorFlow's converter makes from the SavedModel (no optimizations), written to ``out``:
    the dynamic-range model's twin, op for op, that keeps its layers float
    (:mod:`edgematte.quant.tflite.float_weights`); ``output_names`` as for :class:`FullIntegerJob`."""

    kind: ClassVar[str] = "float_twin"


@dataclass(frozen=True, eq=False)
class LayerErrorsJob:
    """TensorFlow's QuantizationDebugger on ``batches`` (float32 ``[K, *input_shape]``).

    The int8 model (with ``keep_float_nodes`` / ``keep_float_ops`` float) runs with a float
    reference beside every quantized op (each fed the same quantized input). The result is one
    dict per quantized tensor: ``tensor_name``, ``op``, ``tensor_index``, ``scale``,
    ``zero_point``, ``num_elements``, ``mean_error``, ``stddev``, ``max_abs_error``,
    ``mean_squared_error`` (float units), ``float_variance`` (of the float reference output),
    ``rmse_steps`` (root mean squared error / scale: about 0.29 is pure rounding) and ``sqnr_db``
    (10 log10 of float variance over squared error; ``inf`` when there is no error).
    """

    batches: Union[np.ndarray, Sequence[np.ndarray]]
    keep_float_nodes: Tuple[str, ...] = ()
    keep_float_ops: Tuple[str, ...] = ()

    kind: ClassVar[str] = "layer_errors"
    needs_calibrated: ClassVar[bool] = True

    def __post_init__(self):
        object.__setattr__(self, "keep_float_nodes", tuple(self.keep_float_nodes))
        object.__setattr__(self, "keep_float_ops", tuple(self.keep_float_ops))

    def planned(self, index: int, workdir: Path) -> "PlannedJob":
        np.save(workdir / f"job{index}_batches.npy", stack_calibration(self.batches))
        return PlannedJob(self.kind, f"job{index}.json", f"job{index}.error",
                          keep_float_nodes=list(self.keep_float_nodes), keep_float_ops=list(self.keep_float_ops),
                          batches_npy=f"job{index}_batches.npy")


Int8Job = Union[FullIntegerJob, DynamicRangeJob, FloatTwinJob, LayerErrorsJob]
JOB_TYPES = (FullIntegerJob, DynamicRangeJob, FloatTwinJob, LayerErrorsJob)


@dataclass
class PlannedJob:
    """One job as the worker runs it; ``produced`` / ``error``: its result / error file in the work folder."""

    kind: str
    produced: str
    error: str
    io_dtype: str = "float32"
    keep_float_nodes: List[str] = field(default_factory=list)
    keep_float_ops: List[str] = field(default_factory=list)
    batches_npy: Optional[str] = None
    output_names: List[str] = field(default_factory=list)


@dataclass
class WorkerPlan:
    """``plan.json``: the worker's whole task; paths relative to the work folder (its cwd) unless absolute.

    The calibrated model comes from ``calibrated_in`` (a cached one), or is made from
    ``calibration_npy`` (``.npy``; ``.npz`` by input name for a model with several inputs) with
    ``activation_ranges`` and written to ``calibrated_out``, or is not needed (dynamic range only). With
    ``untie_ratio`` the untied inputs are listed in ``untied_out``.
    """

    saved_model_dir: str
    untie_ratio: Optional[float]
    jobs: List[PlannedJob] = field(default_factory=list)
    untied_out: str = "untied.json"
    calibration_npy: Optional[str] = None
    calibrated_out: Optional[str] = None
    activation_ranges: Optional[str] = None
    calibrated_in: Optional[str] = None

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self)), encoding="utf-8")

    @classmethod
    def read(cls, path) -> "WorkerPlan":
        fields = json.loads(Path(path).read_text(encoding="utf-8"))
        fields["jobs"] = [PlannedJob(**job) for job in fields["jobs"]]
        return cls(**fields)
