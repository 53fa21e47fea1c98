"""Paddle post-training static quantization: a legacy inference model + calibration tensors -> INT8 model.

Wraps ``paddle.static.quantization.PostTrainingQuantization`` (paddlepaddle 2.6): weights int8
per channel (or per tensor), activations int8 with ranges from the calibration tensors by one of
:data:`ALGORITHMS`. The result is a legacy inference model (``model.pdmodel`` + ``model.pdiparams``)
that Paddle Inference runs with simulated quantization and Paddle Lite's opt turns into an int8
``.nb`` (:func:`edgematte.converter.paddle_lite.optimize`).

Traps handled here:

- Paddle 2.6's PTQ wants a real ``paddle.io.DataLoader`` (a generator gives ``AssertionError:
  data_loader cannot be None``): the tensors are served by a small DataLoader subclass.
- It observes the outputs of every "observer" op, including integer shape arithmetic (``shape`` ->
  ``slice`` -> ``cast``), and the ``avg`` sampler crashes on those 0-d tensors (``IndexError: tuple
  index out of range``). Only float tensors of rank >= 1 are observed here; the others are left
  without a scale, as Paddle itself does for tensors it cannot calibrate.
- ``onnx_format=True`` saves int8 weights the program still declares float32, and scales stored 0-d
  but declared ``[1]``; Paddle loads that, edgematte's parameter check (and any strict reader) does
  not. The declarations are made to match the stored tensors before saving.
- **Paddle Lite 2.13rc0's x86 int8 .nb segfaults on its first run** (docs/toolchain.md, Paddle Lite: in
  ``generate_gemm_s8u8_x86_kern<float>::repack_bias``) when a quantized *depthwise* conv ends up
  without a bias. opt gives a conv a bias by fusing the BatchNorm, or the ``elementwise_add`` of a
  constant, that is its output's only consumer; a bias exported as ``reshape2(b) -> elementwise_add``
  is not fused. Ordinary convs without a bias run fine in int8 (checked one by one on PP-MattingV2:
  of its six convs without BatchNorm or bias only the three depthwise ones crash).
  :func:`convs_without_bias` finds such convs from the program's dataflow; the depthwise ones are
  kept float (``keep_float_depthwise_without_bias``).

Paddle is imported lazily; the quantization runs in this process with its own scope, in static
mode, restoring the caller's mode afterwards.
"""

import contextlib
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..converter.program import ModelFiles, parse_program, read_checked_model, static_mode
from ..core.errors import EdgematteError
from ..core.fsutil import atomic_dir
from .calibration import check_calibration_tensors

ALGORITHMS = ("avg", "abs_max", "hist", "mse", "KL")
"""Activation-range algorithms (Paddle's names). avg, the default, is the fastest (docs/toolchain.md, Paddle PTQ: 6.5 s
against 532 s for KL on a small net, where KL was also the least accurate)."""
QUANTIZABLE_OP_TYPES = ("conv2d", "depthwise_conv2d", "conv2d_transpose", "mul", "matmul", "matmul_v2")
"""Ops quantized (Paddle's own default set): weights and inputs of the weight ops, inputs of matmuls."""
CONV_OP_TYPES = ("conv2d", "depthwise_conv2d")

REASON_NO_BIAS = "depthwise conv without bias after fusion (Paddle Lite 2.13 x86 int8 segfaults on it)"
REASON_KEEP_FLOAT = "kept float on request"
REASON_NOT_QUANTIZED = "left float by Paddle"

# Ops that follow a conv's output and end up as its bias in Paddle Lite's fusion passes.
_BIAS_FUSING_CONSUMERS = ("batch_norm", "elementwise_add")
# After the freeze pass (fake-quant format) a quantized weight op's output is rescaled by one of these.
_FAKE_WEIGHT_DEQUANT_OPS = ("fake_channel_wise_dequantize_max_abs", "fake_dequantize_max_abs")
_PTQ_LOGGERS = ("paddle.static.quantization.post_training_quantization", "paddle.static.io")


# ----------------------------------------------------------------------------- program dataflow
@dataclass(frozen=True)
class _Op:
    index: int
    type: str
    inputs: Dict[str, Tuple[str, ...]]
    outputs: Dict[str, Tuple[str, ...]]
    groups: int = 1

    def input_names(self) -> List[str]:
        return [name for names in self.inputs.values() for name in names]

    def output_names(self) -> List[str]:
        return [name for names in self.outputs.values() for name in names]


class _Dataflow:
    """Block 0 of a program: its ops, which op produces each variable, which ops consume it."""

    def __init__(self, program_bytes: bytes, source_name: str):
        program = parse_program(program_bytes, source_name)
        block = program.blocks[0]
        self.persistable = {var.name for var in block.vars if var.persistable}
        self.shapes = {var.name: tuple(int(d) for d in var.type.lod_tensor.tensor.dims) for var in block.vars}
        self.ops = [
            _Op(i, op.type, {v.parameter: tuple(v.arguments) for v in op.inputs if v.arguments},
                {v.parameter: tuple(v.arguments) for v in op.outputs if v.arguments},
                next((a.i for a in op.attrs if a.name == "groups"), 1))
            for i, op in enumerate(block.ops)
        ]
        self.producer: Dict[str, _Op] = {}
        self.consumers: Dict[str, List[_Op]] = {}
        for op in self.ops:
            for name in op.output_names():
                self.producer[name] = op
            for name in op.input_names():
                self.consumers.setdefault(name, []).append(op)

    def weight_of(self, op: _Op) -> Optional[str]:
        """The persistable weight an op multiplies by (``Filter`` or ``Y``), traced back through a
        ``dequantize_linear`` (onnx-format quantized weights); None for activation-only ops."""
        for slot in ("Filter", "Y"):
            for name in op.inputs.get(slot, ()):
                if name in self.persistable:
                    return name
                producer = self.producer.get(name)
                if producer is not None and producer.type == "dequantize_linear":
                    source = producer.inputs.get("X", ())
                    if source and source[0] in self.persistable:
                        return source[0]
        return None

    def is_depthwise(self, conv: _Op) -> bool:
        """``depthwise_conv2d``, or a grouped ``conv2d`` with one input channel per group (its twin)."""
        if conv.type == "depthwise_conv2d":
            return True
        weight = self.weight_of(conv)
        shape = self.shapes.get(weight, ()) if weight else ()
        return conv.groups > 1 and len(shape) == 4 and shape[1] == 1

    def gets_bias(self, conv: _Op) -> bool:
        """Whether Paddle Lite's fusions leave ``conv`` with a bias (see the module doc)."""
        if conv.inputs.get("Bias"):
            return True
        (output,) = conv.outputs["Output"]
        consumers = self.consumers.get(output, [])
        if len(consumers) != 1 or consumers[0].type not in _BIAS_FUSING_CONSUMERS:
            return False
        consumer = consumers[0]
        if consumer.type == "batch_norm":
            return True
        others = [name for name in consumer.input_names() if name != output]
        return len(others) == 1 and others[0] in self.persistable


@dataclass(frozen=True)
class ConvWithoutBias:
    """A conv that keeps no bias through Paddle Lite's fusions: op index, type, weight and output."""

    op_index: int
    op_type: str
    weight: str
    output: str
    depthwise: bool


def convs_without_bias(source, depthwise_only: bool = False) -> List[ConvWithoutBias]:
    """The conv2d / depthwise_conv2d ops of a model whose output Paddle Lite does not fold into a bias.

    ``source`` is anything :func:`edgematte.converter.program.locate_model_files` takes. A conv gets
    a bias from a ``Bias`` input, or when its output's only consumer is a ``batch_norm`` or an
    ``elementwise_add`` whose other operand is a parameter; every other conv is listed
    (``depthwise_only``: only the depthwise ones, those Lite's x86 int8 kernels crash on).
    PP-MattingV2 has six, three of them depthwise: five feed a residual add, one is the final 1x1 conv.
    """
    files, info = read_checked_model(source)
    return _convs_without_bias(_Dataflow(info.program_bytes, str(files.model)), depthwise_only)


def weights_of_convs_reading_input(source) -> List[str]:
    """Weights of the conv ops that read the model's input directly (the image: the layer where the
    int8 input scale, shared with whatever the image is concatenated with, costs most)."""
    files, info = read_checked_model(source)
    flow = _Dataflow(info.program_bytes, str(files.model))
    feeds = set(info.feed_names)
    return [flow.weight_of(op) for op in flow.ops
            if op.type in ("conv2d", "depthwise_conv2d") and feeds & set(op.inputs.get("Input", ()))
            and flow.weight_of(op)]


def _convs_without_bias(flow: _Dataflow, depthwise_only: bool) -> List[ConvWithoutBias]:
    found = []
    for op in flow.ops:
        if op.type in CONV_OP_TYPES and not flow.gets_bias(op):
            depthwise = flow.is_depthwise(op)
            if depthwise or not depthwise_only:
                found.append(ConvWithoutBias(op.index, op.type, flow.weight_of(op), op.outputs["Output"][0],
                                             depthwise))
    return found


# ----------------------------------------------------------------------------- what got quantized
@dataclass(frozen=True)
class OpQuantization:
    """One quantizable op of the result: ``weight`` is None for activation-only ops (matmul of two
    activations); ``reason`` says why a float op stayed float."""

    op_type: str
    output: str
    weight: Optional[str]
    quantized: bool
    reason: Optional[str] = None

    def as_dict(self) -> dict:
        return {"op": self.op_type, "output": self.output, "weight": self.weight, "quantized": self.quantized,
                "reason": self.reason}


def _quantization_of_ops(flow: _Dataflow, no_bias_weights, requested_float) -> List[OpQuantization]:
    """Read back from the quantized program which quantizable ops really are quantized.

    A weight op is quantized when its weight comes through ``dequantize_linear`` (onnx format) or
    its output goes through a fake weight-dequantize op (fake-quant format); an activation-only op
    when every input comes through a quantize-dequantize op. (In the onnx format every observed
    tensor carries such a pair, so there an activation-only op counts as quantized whenever its
    inputs have scales, which is also what Paddle Lite reads.)
    """
    results = []
    for op in flow.ops:
        if op.type not in QUANTIZABLE_OP_TYPES:
            continue
        weight = flow.weight_of(op)
        outputs = op.output_names()
        if weight is not None:
            direct = [name for slot in ("Filter", "Y") for name in op.inputs.get(slot, ())]
            quantized = any(flow.producer.get(name) is not None and flow.producer[name].type == "dequantize_linear"
                            for name in direct) or \
                any(consumer.type in _FAKE_WEIGHT_DEQUANT_OPS for name in outputs
                    for consumer in flow.consumers.get(name, []))
        else:
            producers = [flow.producer.get(name) for name in op.input_names()]
            quantized = bool(producers) and all(
                p is not None and (p.type == "dequantize_linear" or p.type.startswith("fake_quantize_dequantize"))
                for p in producers)
        reason = None
        if not quantized:
            if weight in no_bias_weights:
                reason = REASON_NO_BIAS
            elif weight in requested_float or any(name in requested_float for name in op.input_names()):
                reason = REASON_KEEP_FLOAT
            else:
                reason = REASON_NOT_QUANTIZED
        results.append(OpQuantization(op.type, outputs[0] if outputs else "", weight, quantized, reason))
    return results


@dataclass(frozen=True)
class PaddlePTQInfo:
    """What :func:`quantize_paddle_model` wrote and how."""

    model: ModelFiles
    source: ModelFiles
    algo: str
    per_channel: bool
    onnx_format: bool
    calibration_count: int
    input_shape: Tuple[int, ...]
    skip_tensors: Tuple[str, ...]
    ops: Tuple[OpQuantization, ...]
    seconds: float

    @property
    def quantized_ops(self) -> List[OpQuantization]:
        return [op for op in self.ops if op.quantized]

    @property
    def float_ops(self) -> List[OpQuantization]:
        return [op for op in self.ops if not op.quantized]

    def as_dict(self) -> dict:
        return {
            "model": str(self.model.model),
            "params": str(self.model.params),
            "source": str(self.source.model),
            "algo": self.algo,
            "weights": "per-channel" if self.per_channel else "per-tensor",
            "format": "quantize_linear/dequantize_linear" if self.onnx_format else "fake-quant",
            "calibration_count": self.calibration_count,
            "input_shape": list(self.input_shape),
            "skip_tensors": list(self.skip_tensors),
            "quantized_count": len(self.quantized_ops),
            "float_count": len(self.float_ops),
            "ops": [op.as_dict() for op in self.ops],
            "seconds": round(self.seconds, 3),
        }


# ----------------------------------------------------------------------------- running Paddle's PTQ
def _tensor_loader(samples: Sequence[Dict[str, np.ndarray]]):
    """A ``paddle.io.DataLoader`` that feeds each sample ``{feed name: tensor}`` as one batch."""
    import paddle

    class TensorLoader(paddle.io.DataLoader):
        # DataLoader.__init__ wants a Dataset and worker settings this loader has no use for; PTQ only
        # checks the type, calls the loader and takes its len().
        def __init__(self):  # pylint: disable=super-init-not-called
            self.samples = samples

        def __call__(self):
            for sample in self.samples:
                yield dict(sample)

        def __iter__(self):
            return self()

        def __len__(self):
            return len(self.samples)

    return TensorLoader()


def _calibration_samples(calib_tensors, feeds, model) -> List[Dict[str, np.ndarray]]:
    """Checked calibration samples ``{feed name: tensor}``: from tensors of a one-input model, or from samples
    (dicts) feeding every input of a model with several (a recurrent one: the image and its states)."""
    named = isinstance(calib_tensors, (list, tuple)) and calib_tensors and isinstance(calib_tensors[0], dict)
    if not named:
        if len(feeds) != 1:
            raise EdgematteError(f"{model}: quantization of a model with several inputs {[f.name for f in feeds]} "
                                 "needs calibration samples feeding each by name")
        feed = feeds[0]
        tensors = check_calibration_tensors(calib_tensors, feed.shape, source=f"calibration data for {model}")
        return [{feed.name: t} for t in tensors]
    names = [f.name for f in feeds]
    for index, sample in enumerate(calib_tensors):
        if sorted(sample) != sorted(names):
            raise EdgematteError(f"calibration sample {index} for {model} feeds {sorted(sample)}; the model's "
                                 f"inputs are {sorted(names)}")
    checked = {f.name: check_calibration_tensors([s[f.name] for s in calib_tensors], f.shape,
                                                 source=f"calibration data for {model} input {f.name!r}")
               for f in feeds}
    return [{name: checked[name][k] for name in names} for k in range(len(calib_tensors))]


def _observing_float_tensors_only(ptq_class):
    """``PostTrainingQuantization`` that does not observe integer or 0-d tensors (see the module doc)."""

    class FloatObservingPTQ(ptq_class):
        def _collect_target_varnames(self):
            super()._collect_target_varnames()
            block = self._program.global_block()
            for name in list(self._quantized_act_var_name):
                var = block._find_var_recursive(name)
                if var is None or not _is_float_tensor(var):
                    self._quantized_act_var_name.discard(name)
                    # Paddle's own set for "could not be calibrated": no scale, no assertion later
                    self._zero_size_var_names.add(name)

    return FloatObservingPTQ


def _is_float_tensor(var) -> bool:
    import paddle

    return var.dtype in (paddle.float32, paddle.float16, paddle.float64) and len(var.shape) >= 1


def _declare_tensors_as_stored(program, scope, place) -> int:
    """Make the program declare every persistable tensor as the scope holds it; return how many changed.

    Paddle's own loader ignores the declarations, so its PTQ leaves two disagreements that a strict
    reader (and :func:`~edgematte.converter.program.check_params_file`) refuses: onnx-format int8
    weights still declared float32 (the declaration follows the data: int8 is the point), and scales
    stored 0-d but declared ``[1]`` (the data is reshaped to the declaration: same bytes).
    """
    from paddle.base import core
    from paddle.base.framework import convert_np_dtype_to_dtype_

    changed = 0
    for var in program.list_vars():
        if not var.persistable or var.type != core.VarDesc.VarType.LOD_TENSOR:
            continue
        found = scope.find_var(var.name)
        declared = tuple(int(d) for d in var.shape)
        if found is None or any(d < 0 for d in declared):
            continue
        tensor = found.get_tensor()
        if not tensor._is_initialized():
            continue
        value = np.array(tensor)
        if value.shape != declared and value.size == int(np.prod(declared, dtype=np.int64)):
            tensor.set(value.reshape(declared), place)
            changed += 1
        stored_dtype = convert_np_dtype_to_dtype_(value.dtype)
        if var.dtype != stored_dtype:
            var.desc.set_dtype(stored_dtype)
            changed += 1
    return changed


@contextlib.contextmanager
def _quiet_ptq_logger():
    """Paddle logs one warning per uncalibrated integer tensor, and PTQ loads the model the way paddle.static.io
    calls deprecated (a warning naming the temporary folder); both are expected here."""
    loggers = [logging.getLogger(name) for name in _PTQ_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def quantize_paddle_model(model_dir, out_dir, calib_tensors, algo: str = "avg", per_channel: bool = True,
                          skip_tensors: Sequence[str] = (), onnx_format: bool = False,
                          keep_float_depthwise_without_bias: bool = True) -> PaddlePTQInfo:
    """Post-training INT8 quantization of a legacy Paddle inference model; writes ``out_dir`` atomically.

    ``model_dir``: anything :func:`~edgematte.converter.program.locate_model_files` takes.
    ``calib_tensors``: float32 ``[K, *input_shape]`` or K arrays of the input shape,
    pre-processed exactly as deployed (:func:`edgematte.quant.calibration.calibration_tensors`);
    each is one calibration batch. A model with several inputs (a recurrent one: the image and its
    states) takes K dicts ``{feed name: tensor}`` instead, each feeding every input. ``algo``: one
    of :data:`ALGORITHMS`. ``per_channel``: int8 weights with one scale per output channel (else
    one per tensor). ``skip_tensors``: tensor names (weights such as ``conv2d_3.w_0`` or
    activations) whose consuming ops stay float.
    ``onnx_format``: write ``quantize_linear``/``dequantize_linear`` pairs with int8 weights instead
    of Paddle's fake-quant ops; both convert to int8 ``.nb``. ``keep_float_depthwise_without_bias``:
    the Paddle Lite x86 workaround (module doc).

    ``out_dir`` gets ``model.pdmodel`` + ``model.pdiparams`` (and a copy of ``deploy.yaml`` when the
    source folder has one); it appears complete or not at all, and must not be the source folder.
    """
    if algo not in ALGORITHMS:
        raise EdgematteError(f"--algo {algo}: choose one of {', '.join(ALGORITHMS)}")
    files, info = read_checked_model(model_dir)
    out_dir = Path(out_dir)
    if out_dir.resolve() in (files.model.parent.resolve(), *files.model.resolve().parents):
        raise EdgematteError(f"{out_dir}: the quantized model must go to a new folder, not the model's own folder")
    samples = _calibration_samples(calib_tensors, info.feeds, files.model)

    unknown = [name for name in skip_tensors if name not in info.variables]
    if unknown:
        weights = [v.name for v in info.parameters if len(v.shape) == 4][:3]
        raise EdgematteError(f"--keep-float {' '.join(unknown)}: no such tensor in {files.model} "
                             f"(weights are named like {', '.join(weights)})")
    source_flow = _Dataflow(info.program_bytes, str(files.model))
    no_bias = [conv.weight for conv in _convs_without_bias(source_flow, depthwise_only=True) if conv.weight] \
        if keep_float_depthwise_without_bias else []
    skip = sorted(set(skip_tensors) | set(no_bias))

    import paddle
    from paddle.static.quantization import PostTrainingQuantization

    start = time.perf_counter()
    with static_mode(), _quiet_ptq_logger():
        scope = paddle.static.Scope()
        place = paddle.CPUPlace()
        executor = paddle.static.Executor(place)
        with paddle.static.scope_guard(scope):
            ptq = _observing_float_tensors_only(PostTrainingQuantization)(
                executor=executor,
                scope=scope,
                model_dir=str(files.model.parent),
                model_filename=files.model.name,
                params_filename=files.params.name,
                data_loader=_tensor_loader(samples),
                batch_size=1,
                batch_nums=len(samples),
                algo=algo,
                quantizable_op_type=list(QUANTIZABLE_OP_TYPES),
                weight_quantize_type="channel_wise_abs_max" if per_channel else "abs_max",
                onnx_format=onnx_format,
                skip_tensor_list=skip or None,
            )
            program = ptq.quantize()
            _declare_tensors_as_stored(program, scope, place)
            with atomic_dir(out_dir) as work:
                ptq.save_quantized_model(str(work), model_filename="model.pdmodel",
                                         params_filename="model.pdiparams")
                deploy_yaml = files.model.parent / "deploy.yaml"
                if deploy_yaml.is_file():
                    shutil.copyfile(deploy_yaml, work / "deploy.yaml")
                written, written_info = read_checked_model(work)  # the result must pass our own reader
                ops = _quantization_of_ops(_Dataflow(written_info.program_bytes, str(written.model)),
                                           set(no_bias), set(skip_tensors))
    seconds = time.perf_counter() - start
    if not any(op.quantized for op in ops):
        raise EdgematteError(f"{files.model}: post-training quantization left every op float "
                             f"(skip list: {', '.join(skip) or 'none'})")
    return PaddlePTQInfo(
        model=ModelFiles(out_dir / "model.pdmodel", out_dir / "model.pdiparams"),
        source=files,
        algo=algo,
        per_channel=per_channel,
        onnx_format=onnx_format,
        calibration_count=len(samples),
        input_shape=tuple(info.feeds[0].shape),
        skip_tensors=tuple(skip),
        ops=tuple(ops),
        seconds=seconds,
    )
