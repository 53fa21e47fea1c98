"""Weights-only INT8 for Paddle Lite: int8 conv weights that Paddle Lite turns back into float as it loads the ``.nb``.

This is Paddle Lite's *dynamic offline quantization* format, the one paddle's ``WeightQuantization`` and
``opt --quant_model`` write: the params file stores a conv's weight as int8 (one abs-max scale per output channel),
and the op carries ``quantization_type = "post_weight_channel_wise_abs_max"``, ``quantize_weight_bits = 8`` and
``<weight>_quant_scale`` (the scales). Lite's light predictor multiplies the weights back at load
(``LightPredictor::DequantizeWeight``); opt's conv + BatchNorm fusion scales the per-channel scales instead of the
weights. Every op then computes in float: the ``.nb`` is smaller (about a quarter of the quantized weights' bytes)
and runs at fp32 speed, and its only error is the rounding of the weights. Where Lite's full int8 cannot meet the
MAD budget (the activations are the cost: seeded MODNet-MobileNetV2 and RVM, docs/toolchain.md#int8-modnet), this
is the Lite INT8 artefact that can.

edgematte writes the format itself, at the level of the program and params files, because paddle's
``WeightQuantization`` quantizes every op of a type (no keep-float list) and leaves the program declaring float32
for the int8 tensors it stores (edgematte's params check, and any strict reader, refuses that).

:class:`SimulatedWeights` runs the program in Paddle's static executor with some weights replaced by their
rounded values: the cheap measure that ranks which weights cost the most (the search in
:func:`edgematte.quant.int8.paddle_lite_weight_int8`).
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..converter.program import (
    ModelFiles,
    _framework_pb2,
    parse_program,
    read_checked_model,
    read_param_records,
    static_mode,
)
from ..core.errors import EdgematteError
from ..core.fsutil import atomic_dir
from ..runtime.backends.base import Backend, TensorSpec

WEIGHT_OP_TYPES = ("conv2d", "depthwise_conv2d")
"""Ops whose ``Filter`` Paddle Lite dequantizes at load (its ``fc``/``mul`` path takes another axis; unused here)."""
QUANTIZATION_TYPE = "post_weight_channel_wise_abs_max"
WEIGHT_BITS = 8
_LEVELS = (1 << (WEIGHT_BITS - 1)) - 1  # 127: symmetric, as Lite's own post_quant_dynamic_pass


def quantize_per_channel(weight: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(int8 weight, float32 scales)``: one abs-max scale per output channel (axis 0), values rounded to nearest.

    ``weight``: float32 ``[C_out, C_in / groups, kH, kW]``. A channel of zeros gets scale 1 (its int8 values are 0).
    """
    w = np.asarray(weight, dtype=np.float32)
    peak = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    scales = np.where(peak > 0, peak / _LEVELS, 1.0).astype(np.float32)
    shape = (-1,) + (1,) * (w.ndim - 1)
    q = np.clip(np.rint(w / scales.reshape(shape)), -_LEVELS, _LEVELS).astype(np.int8)
    return q, scales


def dequantized(weight: np.ndarray) -> np.ndarray:
    """What Paddle Lite computes with in place of ``weight`` (float32, same shape): int8 value times its scale."""
    q, scales = quantize_per_channel(weight)
    return q.astype(np.float32) * scales.reshape((-1,) + (1,) * (q.ndim - 1))


@dataclass(frozen=True)
class WeightOp:
    """A conv whose weight can be stored as int8: ``weight`` (its ``Filter``), ``op_type``, ``output`` and ``macs``
    (multiply-accumulates of one inference: weight elements x output pixels; 0 where the output size is unknown)."""

    weight: str
    op_type: str
    output: str
    macs: int


def quantizable_weight_ops(source) -> List[WeightOp]:
    """The convs of ``source`` (anything :func:`~edgematte.converter.program.locate_model_files` takes) whose weight
    can be stored as int8: a 4-D float32 persistable ``Filter`` of a conv2d / depthwise_conv2d of block 0 that no
    other op reads (Paddle Lite dequantizes a weight in place for each op marked with its scales: a weight two ops
    read would be rescaled twice). In program order."""
    files, info = read_checked_model(source)
    return _quantizable(parse_program(info.program_bytes, str(files.model)), info)


def _quantizable(program, info) -> List[WeightOp]:
    readers: Dict[str, List[str]] = {}
    for block in program.blocks:
        for op in block.ops:
            for slot in op.inputs:
                for name in slot.arguments:
                    readers.setdefault(name, []).append(op.type)
    found: Dict[str, WeightOp] = {}
    for op in program.blocks[0].ops:
        if op.type not in WEIGHT_OP_TYPES:
            continue
        outputs = [name for slot in op.outputs if slot.parameter == "Output" for name in slot.arguments]
        for name in (name for slot in op.inputs if slot.parameter == "Filter" for name in slot.arguments):
            spec = info.variables.get(name)
            # A weight several ops read (RVM's box filter: one depthwise weight, four convs) stays float: Lite
            # dequantizes in place once per op that carries its scales, so the second op would rescale floats.
            if (spec is None or not spec.persistable or spec.dtype != "float32" or len(spec.shape) != 4
                    or len(readers[name]) != 1):
                continue
            out = info.variables.get(outputs[0]) if outputs else None
            pixels = int(np.prod(out.shape[2:])) if out is not None and len(out.shape) == 4 else 0
            found[name] = WeightOp(name, op.type, outputs[0] if outputs else "",
                                   int(np.prod(spec.shape)) * max(pixels, 0))
    return list(found.values())


@dataclass(frozen=True)
class WeightInt8Info:
    """What :func:`write_weight_int8_model` wrote: the model, its int8 weights and those kept float."""

    model: ModelFiles
    quantized: Tuple[str, ...]
    kept_float: Tuple[str, ...]
    float_bytes: int
    int8_bytes: int
    seconds: float

    def as_dict(self) -> dict:
        return {"method": "int8 weights, per output channel (abs max), made float again as Paddle Lite loads them; "
                          "every op computes in float",
                "quantization_type": QUANTIZATION_TYPE, "weight_bits": WEIGHT_BITS,
                "quantized_count": len(self.quantized), "kept_float": list(self.kept_float),
                "weight_bytes": {"float32": self.float_bytes, "int8": self.int8_bytes},
                "seconds": round(self.seconds, 3)}


def write_weight_int8_model(source, out_dir, keep_float: Sequence[str] = ()) -> WeightInt8Info:
    """Write to ``out_dir`` (atomically; not the source's folder) ``source`` with every quantizable weight
    (:func:`quantizable_weight_ops`) not in ``keep_float`` stored as int8, its ops marked for Paddle Lite.

    ``keep_float``: weight names; a name that is not a quantizable weight is refused in one line. The program
    declares each int8 weight as INT8 (what the params file holds); ``deploy.yaml`` is copied when present."""
    start = time.perf_counter()
    files, info = read_checked_model(source)
    out_dir = Path(out_dir)
    if out_dir.resolve() in (files.model.parent.resolve(), *files.model.resolve().parents):
        raise EdgematteError(f"{out_dir}: the quantized model must go to a new folder, not the model's own folder")
    program = parse_program(info.program_bytes, str(files.model))
    candidates = [w.weight for w in _quantizable(program, info)]
    unknown = sorted(set(keep_float) - set(candidates))
    if unknown:
        raise EdgematteError(f"{files.model}: keep-float {', '.join(unknown)}: not a conv weight that can be stored "
                             f"as int8 (weights are named like {', '.join(candidates[:3])})")
    chosen = [name for name in candidates if name not in set(keep_float)]
    if not chosen:
        raise EdgematteError(f"{files.model}: no conv weight left to store as int8")
    scales = {}
    records = read_param_records(info, files.params)
    for index, record in enumerate(records):
        if record.spec.name in chosen:
            q, scales[record.spec.name] = quantize_per_channel(record.array())
            records[index] = record.replaced(q)
    _mark_ops(program, scales)
    with atomic_dir(out_dir) as work:
        (work / files.model.name).write_bytes(program.SerializeToString())
        (work / files.params.name).write_bytes(b"".join(r.to_bytes() for r in records))
        deploy_yaml = files.model.parent / "deploy.yaml"
        if deploy_yaml.is_file():
            (work / "deploy.yaml").write_bytes(deploy_yaml.read_bytes())
        read_checked_model(work)  # the result must pass edgematte's own reader
    float_bytes = sum(4 * int(np.prod(info.variables[n].shape)) for n in chosen)
    return WeightInt8Info(ModelFiles(out_dir / files.model.name, out_dir / files.params.name), tuple(chosen),
                          tuple(sorted(keep_float)), float_bytes, float_bytes // 4, time.perf_counter() - start)


def _mark_ops(program, scales: Dict[str, np.ndarray]) -> None:
    """Declare the int8 weights as INT8 and give each op that reads one the attributes Paddle Lite dequantizes by."""
    fp = _framework_pb2()
    for block in program.blocks:
        for var in block.vars:
            if var.name in scales:
                var.type.lod_tensor.tensor.data_type = fp.VarType.INT8
        for op in block.ops:
            read = [name for slot in op.inputs if slot.parameter == "Filter" for name in slot.arguments
                    if name in scales]
            if not read:
                continue
            _set(op, "quantization_type", fp.STRING, QUANTIZATION_TYPE)
            _set(op, "quantize_weight_bits", fp.INT, WEIGHT_BITS)
            _set(op, "with_quant_attr", fp.BOOLEAN, True)
            for name in read:
                _set(op, f"{name}_quant_scale", fp.FLOATS, scales[name])


def _set(op, name: str, attr_type: int, value) -> None:
    fp = _framework_pb2()
    attr = next((a for a in op.attrs if a.name == name), None) or op.attrs.add()
    attr.Clear()
    attr.name, attr.type = name, attr_type
    if attr_type == fp.STRING:
        attr.s = value
    elif attr_type == fp.INT:
        attr.i = int(value)
    elif attr_type == fp.BOOLEAN:
        attr.b = bool(value)
    else:  # FLOATS
        attr.floats.extend(float(v) for v in np.asarray(value).reshape(-1))


class SimulatedWeights(Backend):
    """A Paddle inference model in Paddle's static executor, with chosen weights replaced by their int8-rounded
    values (:func:`dequantized`): what weights-only INT8 computes, without writing a model per choice.

    ``use(names)`` rounds exactly those weights (every other one float) for the following runs."""

    name = "paddle_static_simulated_weights"
    threads_effective = False  # the static executor takes no thread count; it ranks, it is not timed

    def __init__(self, path, threads: Optional[int] = None):
        super().__init__(path, threads)
        import paddle

        files, _ = read_checked_model(path)
        if files.model.with_suffix("") != files.params.with_suffix(""):
            raise EdgematteError(f"{files.model}: expected its params beside it under the same name")
        self._paddle = paddle
        self._place = paddle.CPUPlace()
        self._scope = paddle.static.Scope()
        with static_mode(), paddle.static.scope_guard(self._scope):
            self._executor = paddle.static.Executor(self._place)
            self._program, self._feeds, self._fetches = paddle.static.load_inference_model(
                str(files.model.with_suffix("")), self._executor)
        self._float: Dict[str, np.ndarray] = {}
        self._rounded: Dict[str, np.ndarray] = {}
        self._current: Tuple[str, ...] = ()
        self._input_shapes = {v.name: tuple(v.shape) for v in self._program.global_block().vars.values()
                              if v.name in self._feeds}

    def use(self, names: Sequence[str]) -> None:
        tensors = {n: self._scope.find_var(n).get_tensor() for n in set(self._current) | set(names)}
        for name in names:
            if name not in self._float:
                self._float[name] = np.array(tensors[name])
                self._rounded[name] = dequantized(self._float[name])
        for name in set(self._current) - set(names):
            tensors[name].set(self._float[name], self._place)
        for name in names:
            tensors[name].set(self._rounded[name], self._place)
        self._current = tuple(names)

    @property
    def inputs(self) -> List[TensorSpec]:
        return [TensorSpec(n, self._input_shapes[n], "float32") for n in self._feeds]

    @property
    def outputs(self) -> List[TensorSpec]:
        return [TensorSpec(v.name, (), "float32") for v in self._fetches]

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.run_feeds([x])[0]

    def run_feeds(self, feeds):
        self._check_feed_count(feeds)
        with static_mode(), self._paddle.static.scope_guard(self._scope):
            return [np.array(o) for o in self._executor.run(
                self._program, feed={n: np.ascontiguousarray(x, dtype=np.float32) for n, x in zip(self._feeds, feeds)},
                fetch_list=self._fetches, return_numpy=True)]
