"""ONNX INT8 in QDQ form (int8 per-channel weights, uint8 activations, float I/O) that meets an accuracy budget.

:func:`build_onnx_int8` takes the fp32 ONNX artefact and the conversion's shared calibration samples (the
tensors the Lite and TFLite INT8 stages calibrate on, NCHW) and writes ``model_int8_qdq.onnx``: the float graph
with QuantizeLinear/DequantizeLinear pairs around every op ONNX Runtime quantizes, as ONNX Runtime's
``quantize_static(quant_format=QuantFormat.QDQ, per_channel=True)`` writes it. ONNX Runtime's CPU provider fuses
the pairs into integer kernels; QDQ is also the form the NNAPI and QNN execution providers take.

- **The model quantized** is the fp32 artefact with its opset raised to 13 when lower: a per-channel
  DequantizeLinear takes an ``axis`` only from opset 13, and ``quantize_static`` raises only opsets below 10,
  so on paddle2onnx's opset 11 it writes a model ONNX Runtime refuses. ONNX Runtime's pre-processing
  (``quant_pre_process``) is not run: on PP-MattingV2 (onnxsim already ran) it changed neither the MAD nor the
  latency, and its optimizer renames the nodes ``--keep-float`` names.
- **Calibration** runs once (``create_calibrator`` + ``collect_data``, the first half of ``quantize_static``),
  so one calibration serves every fallback variant; ``--algo`` maps to ONNX Runtime's counterpart
  (:data:`ALGO_CALIBRATION`), and ``mse``, which has none, is refused.
- **Types.** Weights QInt8, symmetric, per output channel (axis 0 of a Conv weight). Activations QUInt8,
  asymmetric: x86's int8 instructions (VNNI's VPDPBUSD, AMX's TDPBUSD) multiply unsigned by signed bytes, which
  is what ONNX Runtime's U8S8 kernels use. Int8 activations ran at 1.8x the latency on the AVX-512 VNNI build
  host at the same MAD (docs/toolchain.md, ONNX INT8). NNAPI and QNN want uint8 activations too.
- **Budget.** When the evaluated MAD misses the budget, :mod:`edgematte.quant.budget` ranks layer groups by how
  much keeping each float lowers the MAD on a few calibration samples against the float model, and keeps the most
  sensitive float, cumulatively, until the budget holds or the step cap is reached, as for TFLite. A node is named
  by its first output (the TFLite convention). Kept float means ONNX Runtime's ``nodes_to_exclude`` plus float
  inputs (:func:`read_float_inputs`): excluded alone, ONNX Runtime still runs the node as an integer kernel. What
  ONNX Runtime runs in float is read back from its optimized graph (:func:`runtime_census`).
"""

import contextlib
import copy
import io
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core.console import warn
from ..core.errors import EdgematteError
from ..core.fsutil import atomic_path, sha256_file
from . import budget as budget_search
from .tflite_int8 import output_mad

FILE_NAME = "model_int8_qdq.onnx"
QDQ_OPSET = 13
ACTIVATION_TYPE, WEIGHT_TYPE = "QUInt8", "QInt8"
DEFAULT_BUDGET_MAD = 0.02
DEFAULT_SENSITIVITY_IMAGES = 4
DEFAULT_THREADS = 2

ALGO_CALIBRATION: Dict[str, Tuple[str, dict, str]] = {
    "avg": ("MinMax", {"moving_average": True},
            "each tensor's min and max averaged over the calibration samples (Paddle's avg averages each "
            "batch's abs max)"),
    "abs_max": ("MinMax", {}, "each tensor's min and max over all calibration samples"),
    "hist": ("Percentile", {"percentile": 99.999},
             "the 99.999th percentile of each tensor's absolute values (Paddle's hist_percent 0.99999)"),
    "KL": ("Entropy", {}, "the range of least KL divergence between the float and quantized histograms"),
}
"""``--algo`` -> (ONNX Runtime ``CalibrationMethod``, calibrator options, what the range is)."""
REFUSED_ALGOS = {"mse": "ONNX Runtime has no MSE-optimal calibration"}

SCALE_PRESERVING_OPS = frozenset({
    "AveragePool", "Clip", "Concat", "DepthToSpace", "Expand", "Flatten", "Gather", "GatherElements", "Identity",
    "MaxPool", "Pad", "ReduceMax", "ReduceMin", "Relu", "Reshape", "Resize", "Slice", "SpaceToDepth", "Split",
    "Squeeze", "Tile", "Transpose", "Unsqueeze",
})
"""ONNX ops that move, select or pool values (their QDQ output shares the input's scale), and the activations
ONNX Runtime folds into the op before them (Relu, Clip): in a layer group they go with the op they feed."""
TFLITE_OP_TYPES = {
    "CONV_2D": lambda op: op["op"] == "Conv" and not _depthwise(op),
    "DEPTHWISE_CONV_2D": lambda op: op["op"] == "Conv" and _depthwise(op),
    "TRANSPOSE_CONV": lambda op: op["op"] == "ConvTranspose",
    "BATCH_MATMUL": lambda op: op["op"] == "MatMul" and not any(op["constant_inputs"][1:2]),
    "ADD": lambda op: op["op"] == "Add", "MUL": lambda op: op["op"] == "Mul",
    "LOGISTIC": lambda op: op["op"] == "Sigmoid", "SOFTMAX": lambda op: op["op"] == "Softmax",
    "CONCATENATION": lambda op: op["op"] == "Concat",
}
"""``--keep-float`` TFLite op types (capitals) and the ONNX nodes they are in the model onnx2tf reads."""
FLOAT_COMPUTE_OPS = frozenset({"Add", "AveragePool", "Conv", "ConvTranspose", "FusedConv", "Gemm", "FusedGemm",
                               "GlobalAveragePool", "MatMul", "FusedMatMul", "Mul", "Sigmoid", "Softmax"})
"""Float ops that :func:`runtime_census` lists by name when ONNX Runtime runs them unfused (the costly ones)."""

Evaluate = Callable[[Path], dict]


def _depthwise(op: dict) -> bool:
    return op["group"] > 1 and len(op["inputs"]) > 1 and op["inputs"][1]["shape"][1:2] == [1]


def calibration_settings(algo: str) -> dict:
    """ONNX Runtime's calibration for ``--algo``; a one-line EdgematteError where it has no counterpart."""
    if algo in REFUSED_ALGOS:
        raise EdgematteError(f"--algo {algo}: {REFUSED_ALGOS[algo]}, so the INT8 ONNX model cannot be calibrated "
                             f"that way; choose {', '.join(ALGO_CALIBRATION)}, or leave onnx out of --to")
    if algo not in ALGO_CALIBRATION:
        raise EdgematteError(f"--algo {algo}: choose one of {', '.join(ALGO_CALIBRATION)} for the INT8 ONNX model")
    method, options, means = ALGO_CALIBRATION[algo]
    return {"algo": algo, "calibrate_method": method, "calibrator_options": dict(options), "range": means}


# ---------------------------------------------------------------------------------------------
# Looking into an ONNX model


def onnx_ops(model) -> List[dict]:
    """Every node of ``model`` (an ``onnx.ModelProto`` with shapes inferred) in graph order, as
    :func:`edgematte.quant.budget.layer_groups` reads ops: ``{"op", "name", "group", "trans_a", "inputs",
    "outputs", "constant_inputs"}``, each tensor ``{"name", "shape"}`` (-1 for an unknown dimension)."""
    import onnx

    graph = model.graph
    shapes = {}
    for info in (*graph.input, *graph.value_info, *graph.output):
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
    constants = {i.name for i in graph.initializer}
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    ops = []
    for node in graph.node:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute
                      if a.name in ("group", "transA")}
        ops.append({"op": node.op_type, "name": node.name, "group": int(attributes.get("group", 1)),
                    "trans_a": bool(attributes.get("transA", 0)),
                    "inputs": [{"name": n, "shape": shapes.get(n, [])} for n in node.input if n],
                    "outputs": [{"name": n, "shape": shapes.get(n, [])} for n in node.output if n],
                    "constant_inputs": [n in constants for n in node.input if n]})
    return ops


def onnx_op_macs(op: dict) -> int:
    """Multiply-accumulates of one ONNX node (as :func:`onnx_ops` lists it); elementwise ops count 1 per output."""
    if not op["outputs"]:
        return 0
    out = int(np.prod([max(int(d), 1) for d in op["outputs"][0]["shape"]]))
    inputs = op["inputs"]
    weight = inputs[1]["shape"] if len(inputs) > 1 else []
    if op["op"] == "Conv" and len(weight) >= 3:  # [out, in / group, k...]
        return out * int(np.prod([max(int(d), 1) for d in weight[1:]]))
    if op["op"] == "ConvTranspose" and len(weight) >= 3:  # [in, out / group, k...]: per input element
        return int(np.prod([max(int(d), 1) for d in inputs[0]["shape"]])) * int(np.prod(weight[1:]))
    if op["op"] in ("MatMul", "Gemm") and inputs and inputs[0]["shape"]:
        shape = inputs[0]["shape"]
        return out * max(int(shape[0] if op["trans_a"] else shape[-1]), 1)
    return out


def quantized_op_types() -> List[str]:
    """The op types ONNX Runtime's static quantizer handles (what ``quantize_static`` quantizes by default)."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted(set(QDQRegistry) | set(QLinearOpsRegistry))


def resolve_keep_float(ops: Sequence[dict], names: Sequence[str]) -> Tuple[List[str], List[str], List[str]]:
    """``--keep-float`` names as (node ids, op types matched, names matching nothing here). A name is a node's
    name, any of its outputs, a weight (initializer) it reads, an ONNX op type (``MatMul``) or a TFLite op type
    in capitals (:data:`TFLITE_OP_TYPES`); a node id is its first output's name."""
    nodes, op_types, unmatched = [], [], []
    present = {op["op"] for op in ops}
    for name in names:
        if name in TFLITE_OP_TYPES or name in present:
            matches = [op for op in ops if (TFLITE_OP_TYPES[name](op) if name in TFLITE_OP_TYPES else op["op"] == name)]
            (op_types if matches else unmatched).append(name)
        else:
            matches = [op for op in ops if name == op["name"] or name in {t["name"] for t in op["outputs"]}
                       or any(c and t["name"] == name for c, t in zip(op["constant_inputs"], op["inputs"]))]
            if not matches:
                unmatched.append(name)
        nodes += [op["outputs"][0]["name"] for op in matches if op["outputs"]]
    return list(dict.fromkeys(nodes)), op_types, unmatched


def qdq_census(path) -> dict:
    """What a QDQ file holds: QuantizeLinear and DequantizeLinear counts, the int8 weights (DequantizeLinear of an
    int8 initializer) and how many are per channel (one scale per output channel), the int32 biases, the opset."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    dequantized = {n.output[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}
    constants = [n for n in dequantized.values() if n.input[0] in initializers]
    weights = [n for n in constants if initializers[n.input[0]].data_type in (onnx.TensorProto.INT8,
                                                                               onnx.TensorProto.UINT8)]
    per_channel = [n for n in weights if any(a.name == "axis" for a in n.attribute) and
                   list(initializers[n.input[1]].dims) == [initializers[n.input[0]].dims[_axis(n)]]]
    return {"quantize_linear": sum(n.op_type == "QuantizeLinear" for n in graph.node),
            "dequantize_linear": len(dequantized), "int8_weights": len(weights),
            "int32_biases": sum(initializers[n.input[0]].data_type == onnx.TensorProto.INT32 for n in constants),
            "per_channel_weights": len(per_channel),
            "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None)}


def _axis(node) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


# ---------------------------------------------------------------------------------------------
# Calibrating once, quantizing each variant


def _feeds(sample, names: Sequence[str]) -> Dict[str, np.ndarray]:
    """One calibration sample (an array for a one-input model, a dict by input name) as ONNX feeds."""
    if not isinstance(sample, dict):
        if len(names) != 1:
            raise EdgematteError(f"a calibration tensor for a model with {len(names)} inputs ({', '.join(names)})")
        return {names[0]: np.asarray(sample, np.float32)}
    missing = [n for n in names if n not in sample]
    if missing:
        raise EdgematteError(f"the calibration samples have no {', '.join(missing)} (they have {', '.join(sample)})")
    return {n: np.asarray(sample[n], np.float32) for n in names}


class QdqQuantizer:
    """The float model prepared for quantization and its activation ranges, calibrated once; :meth:`write`
    quantizes it with some nodes kept float. ``work``: a folder for the prepared and augmented models."""

    def __init__(self, onnx_path, samples: Sequence, algo: str, work: Path):
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, create_calibrator
        from onnxruntime.quantization.quant_utils import load_model_with_shape_infer

        self.settings = calibration_settings(algo)
        model = onnx.load(str(onnx_path))
        opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=QDQ_OPSET)
        if opset < QDQ_OPSET:
            model = onnx.version_converter.convert_version(model, QDQ_OPSET)
        taken = set()
        for index, node in enumerate(model.graph.node):  # exclusion is by node name: every node gets its own
            if not node.name or node.name in taken:
                node.name = f"{node.op_type}_{index}"
            taken.add(node.name)
        self.prepared = Path(work) / "prepared.onnx"
        onnx.save(model, str(self.prepared))
        self.model = load_model_with_shape_infer(self.prepared)
        self.ops = onnx_ops(self.model)
        self.op_types = quantized_op_types()
        self.input_names = [i.name for i in self.model.graph.input if i.name not in
                            {t.name for t in self.model.graph.initializer}]
        feeds = iter([_feeds(s, self.input_names) for s in samples])

        class Reader(CalibrationDataReader):
            def get_next(self):
                return next(feeds, None)

        calibrator = create_calibrator(self.prepared, self.op_types, augmented_model_path=str(work / "augmented.onnx"),
                                       calibrate_method=getattr(CalibrationMethod, self.settings["calibrate_method"]),
                                       extra_options=self.settings["calibrator_options"])
        with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print progress on stdout
            calibrator.collect_data(Reader())
            self.ranges = calibrator.compute_data()
        del calibrator
        self.settings.update(opset={"fp32": opset, "quantized": max(opset, QDQ_OPSET)}, calibration_count=len(samples),
                             format="QDQ", per_channel=True, activation_type=ACTIVATION_TYPE, weight_type=WEIGHT_TYPE,
                             ort_pre_process=False)
        self.node_names = {op["outputs"][0]["name"]: op["name"] for op in self.ops if op["outputs"]}

    def write(self, path: Path, kept_float: Sequence[str] = ()) -> Path:
        """Quantize with the nodes ``kept_float`` (ids: first output names) excluded; write ``path``."""
        from onnxruntime.quantization import QDQQuantizer, QuantType

        excluded = [self.node_names[n] for n in kept_float]
        quantizer = QDQQuantizer(copy.deepcopy(self.model), per_channel=True, reduce_range=False,
                                 weight_qType=getattr(QuantType, WEIGHT_TYPE),
                                 activation_qType=getattr(QuantType, ACTIVATION_TYPE), tensors_range=self.ranges,
                                 nodes_to_quantize=[], nodes_to_exclude=excluded, op_types_to_quantize=self.op_types,
                                 extra_options={})
        quantizer.quantize_model()
        read_float_inputs(quantizer.model.model, self.model, excluded)
        quantizer.model.save_model_to_file(str(path), False)
        return path


def read_float_inputs(qdq, float_model, node_names: Sequence[str]) -> None:
    """Make the nodes ``node_names`` of ``qdq`` (a ModelProto, changed in place) read the float tensors their
    DequantizeLinear inputs were quantized from, and drop the Q/DQ pairs nobody reads any more.

    ONNX Runtime's ``nodes_to_exclude`` leaves an excluded node's weights float, but its activation inputs still
    come through DequantizeLinear and its output goes to a QuantizeLinear when a neighbour is quantized; the CPU
    provider then fuses DQ -> node -> Q into an integer kernel all the same (ONNX Runtime 1.23 even quantizes a
    Conv's float weights for it), so nothing would stay float. Read from the float tensor, the node cannot be
    fused. The float tensor is the one the QuantizeLinear read, except where the quantizer folded a Relu or Clip
    into that quantization (the tensor then holds the value before the activation): that activation is put back
    in front of the node, copied from ``float_model`` (the model quantized)."""
    graph = qdq.graph
    producer = {out: node for node in graph.node for out in node.output}
    float_producer = {out: node for node in float_model.graph.node for out in node.output}
    initializers = {i.name for i in graph.initializer}
    float_initializers = {i.name: i for i in float_model.graph.initializer}
    wanted, restored = set(node_names), {}
    for node in list(graph.node):
        if node.name not in wanted:
            continue
        for k, name in enumerate(node.input):
            dq = producer.get(name)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is None or q.op_type != "QuantizeLinear":
                continue
            source = q.input[0]
            before, now = float_producer.get(source), producer.get(source)
            if before is not None and (now is None or now.op_type != before.op_type) and source not in restored:
                if before.op_type not in ("Relu", "Clip"):
                    replaced = now.op_type if now is not None else "nothing"
                    raise EdgematteError(f"int8 ONNX: cannot tell the float value of {source} for {node.name} (the "
                                         f"quantizer replaced its {before.op_type} by {replaced})")
                activation = copy.deepcopy(before)  # the Relu/Clip the quantization stood for
                activation.input[0], activation.output[0] = source, f"{source}_float"
                activation.name = f"{before.name}_float"
                graph.initializer.extend(float_initializers[i] for i in activation.input[1:]
                                         if i in float_initializers and i not in initializers)
                initializers.update(activation.input[1:])
                graph.node.insert(list(graph.node).index(node), activation)
                restored[source] = activation.output[0]
            node.input[k] = restored.get(source, source)
    _drop_unread(graph)


def _drop_unread(graph) -> None:
    """Remove QuantizeLinear/DequantizeLinear nodes whose outputs nothing reads (not graph outputs)."""
    outputs = {o.name for o in graph.output}
    while True:
        read = {i for node in graph.node for i in node.input} | outputs
        unread = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                  and not any(o in read for o in n.output)]
        if not unread:
            return
        for node in unread:
            graph.node.remove(node)


def runtime_census(path, work: Path, kept_float: Sequence[str] = ()) -> dict:
    """What ONNX Runtime's CPU provider runs for ``path`` once its QDQ fusions are applied (graph optimization
    level *extended*, the one that fuses DQ -> op -> Q into QLinear kernels): how many integer kernels, the
    costly nodes left in float (by name, :data:`FLOAT_COMPUTE_OPS`) and the QuantizeLinear/DequantizeLinear left.
    An EdgematteError when a node named in ``kept_float`` became an integer kernel."""
    import onnx
    import onnxruntime as ort

    optimized = Path(work) / "runtime_graph.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(optimized)
    options.intra_op_num_threads, options.log_severity_level = 1, 3
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    nodes = onnx.load(str(optimized)).graph.node
    optimized.unlink()
    integer = [n for n in nodes if n.op_type.startswith("QLinear") or n.op_type.endswith("Integer")]
    conversions = [n for n in nodes if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    # ONNX Runtime leaves the nodes it inlines from functions (HardSwish -> HardSigmoid, Mul) unnamed: their output
    float_compute = [n.name or n.output[0] for n in nodes if n.op_type in FLOAT_COMPUTE_OPS]
    fused = [n for n in kept_float if n in {k.name for k in integer}]
    if fused:
        raise EdgematteError(f"{Path(path).name}: ONNX Runtime runs nodes kept float as integer kernels: "
                             f"{', '.join(fused[:5])}")
    return {"integer_kernels": len(integer), "float_compute_nodes": float_compute,
            "quantize_dequantize": len(conversions)}


def _run_alpha(path, samples, input_names, threads: int, alpha_output: Optional[str]) -> List[np.ndarray]:
    """The alpha output (the first, or the one named ``alpha_output``) of ``path`` on each sample."""
    from ..runtime.backends.onnxruntime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(path, threads=threads)
    names = [s.name for s in backend.outputs]
    index = names.index(alpha_output) if alpha_output in names else 0
    order = [s.name for s in backend.inputs]
    return [backend.run_feeds([_feeds(s, input_names)[n] for n in order])[index] for s in samples]


def onnx_latency_ms(path, runs: int = 10, threads: int = DEFAULT_THREADS) -> float:
    """Median ms of ONNX Runtime on ``path`` with ``threads``, zeros for every input (content does not change
    these models' timing)."""
    from ..core.timing import feeds_latency_ms
    from ..runtime.backends.onnxruntime import OnnxRuntimeBackend

    return feeds_latency_ms(OnnxRuntimeBackend(path, threads=threads), runs=runs)


# ---------------------------------------------------------------------------------------------
# Building the artefact


def build_onnx_int8(onnx_path, calibration: Sequence, out_path, evaluate: Evaluate, *, algo: str = "avg",
                    budget_mad: Optional[float] = DEFAULT_BUDGET_MAD, keep_float: Sequence[str] = (),
                    sensitivity_images: int = DEFAULT_SENSITIVITY_IMAGES,
                    max_steps: int = budget_search.DEFAULT_MAX_STEPS,
                    max_group_fraction: float = budget_search.MAX_GROUP_MACS_FRACTION, latency_runs: int = 0,
                    threads: int = DEFAULT_THREADS, work_dir=None, alpha_output: Optional[str] = None) -> dict:
    """Write the QDQ model of ``onnx_path`` to ``out_path`` (atomically); return its record.

    ``calibration``: the samples, each an NCHW float32 array ``[1, C, H, W]`` (or a dict by input name for a model
    with several inputs), pre-processed by the deployment profile. ``evaluate(path) -> dict`` runs a candidate on
    the evaluation set (disjoint from the calibration samples) and returns at least ``{"mad"}`` against fp32.
    ``algo``: ``--algo`` (:func:`calibration_settings`). ``budget_mad``: the MAD to meet (None: no search).
    ``keep_float``: names kept float from the start (:func:`resolve_keep_float`; names matching nothing here are
    warned about and listed, they may be meant for another format). ``sensitivity_images``, ``max_steps``,
    ``max_group_fraction``, ``latency_runs``, ``threads``: as for
    :func:`edgematte.quant.tflite_int8.build_tflite_int8`. ``alpha_output``: the output the ranking compares
    (default: the first).

    The record: ``path``, ``file``, ``precision`` ("int8"), ``numerics``, ``mad``, ``budget_mad``,
    ``meets_budget``, ``size_bytes``, ``sha256``, ``latency_ms``, ``kept_float`` (``{"nodes", "ops"}``; the
    ONNX node names excluded in ``quantization.excluded_nodes``), ``keep_float_unmatched``, ``quantization``
    (the settings), ``qdq`` (:func:`qdq_census`) and ``fallback`` (``{"history", "ranking", "searched"}`` as for
    TFLite)."""
    out_path = Path(out_path)
    with _work_folder(work_dir) as work:
        quantizer = QdqQuantizer(onnx_path, list(calibration), algo, work)
        base_nodes, base_ops, unmatched = resolve_keep_float(quantizer.ops, keep_float)
        if unmatched:
            warn(f"int8 ONNX: --keep-float {', '.join(unmatched)}: no such node, weight or op type in the ONNX "
                 "model (left to the other formats)")

        def evaluate_file(path: Path) -> dict:
            latency = (lambda p: onnx_latency_ms(p, latency_runs, threads)) if latency_runs > 0 else None
            return budget_search.measure_candidate(evaluate, path, latency)

        start_path = quantizer.write(work / "step0.onnx", base_nodes)
        start = evaluate_file(start_path)
        search = _search(quantizer, list(calibration), start, budget_mad, base_nodes, base_ops, sensitivity_images,
                         max_steps, max_group_fraction, evaluate_file, work, threads, alpha_output)
        chosen_step = next(h for h in search.history if h["kept_float_nodes"] == search.kept_float_nodes)
        chosen_path = work / f"step{chosen_step['step']}.onnx"
        kept = base_nodes + [n for n in search.kept_float_nodes if n not in base_nodes]
        excluded = [quantizer.node_names[n] for n in kept]
        runtime = runtime_census(chosen_path, work, excluded)
        with atomic_path(out_path, suffix=".onnx") as tmp:
            shutil.copyfile(chosen_path, tmp)
    keys = ("step", "added", "kept_float_nodes", "mad", "size_bytes", "macs_float", "latency_ms")
    return {
        "path": str(out_path), "file": out_path.name, "precision": "int8", "numerics": chosen_step["numerics"],
        "mad": chosen_step["mad"], "budget_mad": budget_mad,
        "meets_budget": None if budget_mad is None else chosen_step["mad"] <= budget_mad,
        "size_bytes": out_path.stat().st_size, "sha256": sha256_file(out_path),
        "latency_ms": chosen_step.get("latency_ms"), "kept_float": {"nodes": kept, "ops": base_ops},
        "keep_float_unmatched": unmatched, "qdq": dict(qdq_census(out_path), onnxruntime_cpu=runtime),
        "quantization": dict(quantizer.settings, excluded_nodes=excluded),
        "fallback": {"history": [{k: h.get(k) for k in keys} for h in search.history], "ranking": search.ranking,
                     "searched": len(search.history) > 1}}


def _search(quantizer: QdqQuantizer, calibration: list, start: dict, budget_mad: Optional[float],
            base_nodes: List[str], base_ops: List[str], sensitivity_images: int, max_steps: int,
            max_group_fraction: float, evaluate_file: Callable[[Path], dict], work: Path, threads: int,
            alpha_output: Optional[str]) -> budget_search.SearchResult:
    """The budget search (:func:`edgematte.quant.budget.search_fallback`) when the starting model misses the
    budget; else a result holding the start alone."""
    if budget_mad is None or start["mad"] <= budget_mad or max_steps == 0:
        history = [{"step": 0, "added": None, "kept_float_nodes": [], "macs_float": 0, **start}]
        return budget_search.SearchResult([], start["mad"], budget_mad is None or start["mad"] <= budget_mad, history)
    samples = calibration[:max(1, sensitivity_images)]
    names = quantizer.input_names
    references = _run_alpha(quantizer.prepared, samples, names, threads, alpha_output)
    base_mad = output_mad(_run_alpha(work / "step0.onnx", samples, names, threads, alpha_output), references)
    quantizable = set(quantizer.op_types) - SCALE_PRESERVING_OPS
    groups = [g for g in budget_search.candidate_groups(quantizer.ops, max_group_fraction, SCALE_PRESERVING_OPS,
                                                        onnx_op_macs)
              if g.anchor_op in quantizable and not set(g.nodes) <= set(base_nodes) and g.anchor_op not in base_ops]

    def measure_fallbacks(node_sets: List[Tuple[str, ...]]) -> List[float]:
        mads = []
        for nodes in node_sets:
            path = quantizer.write(work / "rank.onnx", base_nodes + [n for n in nodes if n not in base_nodes])
            mads.append(output_mad(_run_alpha(path, samples, names, threads, alpha_output), references))
        return mads

    ranked = budget_search.rank_groups(groups, base_mad, measure_fallbacks)

    def evaluate_steps(candidates: List[Tuple[str, ...]]) -> List[dict]:
        results = []
        for index, nodes in enumerate(candidates):
            kept = base_nodes + [n for n in nodes if n not in base_nodes]
            results.append(evaluate_file(quantizer.write(work / f"step{index + 1}.onnx", kept)))
            if results[-1]["mad"] <= budget_mad:
                break
        return results

    return budget_search.search_fallback(start, ranked, budget_mad, evaluate_steps, max_steps=max_steps)


@contextlib.contextmanager
def _work_folder(work_dir):
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        yield Path(work_dir)
        return
    with tempfile.TemporaryDirectory(prefix="edgematte_onnx_int8_") as folder:
        yield Path(folder)
