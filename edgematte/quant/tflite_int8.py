"""TFLite INT8 artefacts that meet an accuracy budget: full-integer (float or int8 I/O) and dynamic range.

:func:`build_tflite_int8` takes onnx2tf's SavedModel and pre-processed calibration tensors and
writes, into one folder:

- ``model_int8.tflite``: full-integer (int8 weights and activations) with float input/output;
- ``model_int8_io.tflite``: the same network with int8 input/output (quantize the input and
  dequantize the output with :func:`edgematte.runtime.backends.litert.quantize` / ``dequantize``);
- ``model_dynamic.tflite``: dynamic range (int8 weights, float activations), optional.

Each file is measured against fp32 by the caller's ``evaluate(path) -> {"mad": ...}`` (on an
evaluation set disjoint from the calibration data). When the full-integer MAD exceeds the budget,
:mod:`edgematte.quant.budget` ranks layer groups by how much keeping each float lowers the MAD (on
a few calibration images, against the calibrated float model) and keeps the most sensitive ones
float, cumulatively, until the evaluated MAD meets the budget or the step cap is reached. When the
dynamic-range MAD exceeds it, the int8 weights whose quantization alone costs the most get their
float values back (:mod:`edgematte.quant.tflite.float_weights`), as few as the budget allows. The
records say what was kept float and what each step cost in MAD, bytes, float multiply-accumulates
and, with ``latency_runs``, median latency.

TensorFlow runs in subprocesses (:mod:`edgematte.quant.tflite`: its job runner): one calibration,
cached in a work folder, serves every variant. Before quantizing, narrow concatenation inputs get
their own scale (``untie_ratio``) and activation ranges are chosen by histogram MSE instead of
min/max (``activation_ranges``), see :mod:`edgematte.quant.tflite`: on PP-MattingV2 (512x512)
they take plain full int8 from MAD 0.0179 to 0.0072, adding only a few elementwise
requantizations to what runs. After quantizing, int8 average pools become depthwise convolutions so that XNNPACK
runs them (:mod:`edgematte.quant.tflite.average_pool_depthwise`; a large tiling window as a chain of small ones), and
channel means 1x1 convolutions, which it runs faster (:mod:`edgematte.quant.tflite.channel_mean_convolution`).
"""

import contextlib
import itertools
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from ..core.console import warn
from ..core.errors import EdgematteError
from ..core.fsutil import atomic_path, sha256_file
from ..core.metrics import alpha_difference_stats
from . import budget as budget_search
from .tflite.average_pool_depthwise import pools_rewritten
from .tflite.calibration import calibration_count, calibration_head, calibration_samples, stack_calibration
from .tflite.channel_mean_convolution import means_rewritten
from .tflite.float_weights import KeptFloatBuilder
from .tflite.jobs import INT8_IO_DTYPES, DynamicRangeJob, FloatTwinJob, FullIntegerJob, Int8Job, LayerErrorsJob
from .tflite.ops import tflite_ops
from .tflite.ranges import DEFAULT_ACTIVATION_RANGES
from .tflite.runner import run_int8_jobs
from .tflite.untie import DEFAULT_UNTIE_RATIO

FILE_NAMES = {("int8", "float32"): "model_int8.tflite", ("int8", "int8"): "model_int8_io.tflite",
              ("dynamic", "float32"): "model_dynamic.tflite"}
"""(precision, io dtype) -> file name in the output folder."""
DEFAULT_BUDGET_MAD = 0.01
DEFAULT_SENSITIVITY_IMAGES = 4
DEFAULT_THREADS = 2
MEASURE_CHUNK = 24
"""Fallback variants quantized per TensorFlow subprocess while ranking (each is a full model file)."""
_OP_TYPE = re.compile(r"^[A-Z][A-Z0-9_]*$")

Evaluate = Callable[[Path], dict]


# ---------------------------------------------------------------------------------------------
# Looking into a .tflite model


def model_ops(path) -> List[dict]:
    """Every op of a ``.tflite`` model in execution order.

    Each op is ``{"index", "op", "inputs", "outputs"}`` with ``op`` the builtin name
    (``"CONV_2D"``); each tensor ``{"index", "name", "dtype", "shape", "scale", "zero_point"}``.
    A node name for ``keep_float`` is an op's first output name.
    """
    return tflite_ops(path)


def float_compute_ops(path) -> List[dict]:
    """The ops of ``path`` that compute in float (first output float32), QUANTIZE/DEQUANTIZE excluded."""
    return [op for op in model_ops(path)
            if op["op"] not in ("QUANTIZE", "DEQUANTIZE") and op["outputs"] and op["outputs"][0]["dtype"] == "float32"]


def split_keep_float(names: Sequence[str]) -> Tuple[List[str], List[str]]:
    """``--keep-float`` names as ``(nodes, op types)``: all-capital identifiers (``BATCH_MATMUL``) are op types."""
    nodes = [n for n in names if not _OP_TYPE.match(n)]
    op_types = [n for n in names if _OP_TYPE.match(n)]
    return nodes, op_types


def litert_latency_ms(path, runs: int = 10, threads: int = DEFAULT_THREADS, warmup: int = 2) -> float:
    """:func:`edgematte.core.timing.median_latency_ms` of a LiteRT interpreter on ``path`` with ``threads``."""
    from ..core.timing import feeds_latency_ms, median_latency_ms
    from ..runtime.backends.litert import LiteRTBackend

    backend = LiteRTBackend(path, threads=threads)
    if len(backend.inputs) > 1:  # zeros for every input (content does not change the timing)
        return feeds_latency_ms(backend, runs=runs, warmup=warmup)
    return median_latency_ms(backend, runs=runs, warmup=warmup)


def run_float_io(path, batches: Sequence, threads: int = DEFAULT_THREADS,
                 output: Optional[str] = None) -> List[np.ndarray]:
    """The first output of ``path`` (or the one named ``output``) for each float batch, as float32 (int8 I/O
    quantized/dequantized). A batch is an array, or for a model with several inputs a dict ``{input name:
    array}`` (LiteRT's signature names) fed by name."""
    from ..runtime.backends.litert import LiteRTBackend, dequantize, quantize

    backend = LiteRTBackend(path, threads=threads)
    specs_in = backend.inputs
    index_out = _output_index([s.name for s in backend.outputs], output)
    spec_out = backend.outputs[index_out]
    outputs = []
    for batch in batches:
        values = [batch[s.name] for s in specs_in] if isinstance(batch, dict) else [batch]
        feeds = [quantize(x, s) if s.quant is not None else np.asarray(x, dtype=s.dtype)
                 for x, s in zip(values, specs_in)]
        y = backend.run_feeds(feeds)[index_out] if isinstance(batch, dict) else backend.run(feeds[0])
        outputs.append(dequantize(y, spec_out) if spec_out.quant is not None else y.astype(np.float32))
    return outputs


def _output_index(names: Sequence[str], output: Optional[str]) -> int:
    """The position of the output named ``output`` among a model's output ``names``; 0 when ``output`` is None."""
    if output is None:
        return 0
    if output not in names:
        raise EdgematteError(f"the model has no output named {output!r} (outputs: {list(names)})")
    return list(names).index(output)


def output_mad(outputs: Sequence[np.ndarray], references: Sequence[np.ndarray]) -> float:
    """MAD (mean absolute alpha difference, every pixel of every image pooled) of alpha outputs, each clipped to
    [0, 1] first as every deployment profile's post-processing does (a dequantized int8 alpha may reach 1.012)."""
    total, pixels = 0.0, 0
    for output, reference in zip(outputs, references):
        stats = alpha_difference_stats(np.clip(np.squeeze(output), 0, 1), np.clip(np.squeeze(reference), 0, 1))
        total += stats["mad"] * np.size(reference)
        pixels += np.size(reference)
    return total / pixels


def layer_quantization_errors(saved_model_dir, calib_nhwc, batches, keep_float: Sequence[str] = (),
                              calibrated_model=None, untie_ratio: Optional[float] = DEFAULT_UNTIE_RATIO,
                              activation_ranges: str = DEFAULT_ACTIVATION_RANGES) -> List[dict]:
    """TensorFlow QuantizationDebugger's per-tensor error of the int8 model, lowest SQNR first.

    ``calib_nhwc``: the calibration tensors (None to reuse ``calibrated_model`` unchecked);
    ``batches``: float32 ``[K, *input_shape]`` to run (a few calibration tensors). Each row:
    ``tensor_name``, ``op``, ``scale``, ``zero_point``, ``rmse_steps`` (RMS error in quantization
    steps; 0.29 is pure rounding), ``sqnr_db`` (float variance over squared error), ``float_variance``,
    ``mean_squared_error``, ``max_abs_error``, ``mean_error``, ``stddev``, ``num_elements``. Each
    quantized op is fed the same int8 input as its float twin, so a row is that op's own error.
    """
    nodes, op_types = split_keep_float(keep_float)
    job = LayerErrorsJob(batches=batches, keep_float_nodes=tuple(nodes), keep_float_ops=tuple(op_types))
    (rows,), _ = run_int8_jobs(saved_model_dir, calib_nhwc, [job], calibrated_model=calibrated_model,
                               untie_ratio=untie_ratio, activation_ranges=activation_ranges)
    return sorted(rows, key=lambda r: r["sqnr_db"])


# ---------------------------------------------------------------------------------------------
# Building the artefacts


def build_tflite_int8(saved_model_dir, calib_nhwc, out_dir, evaluate: Evaluate,
                      budget_mad: Optional[float] = DEFAULT_BUDGET_MAD, keep_float: Sequence[str] = (),
                      io_dtypes: Sequence[str] = INT8_IO_DTYPES, dynamic_range: bool = True,
                      untie_ratio: Optional[float] = DEFAULT_UNTIE_RATIO,
                      activation_ranges: str = DEFAULT_ACTIVATION_RANGES,
                      sensitivity_images: int = DEFAULT_SENSITIVITY_IMAGES,
                      max_steps: int = budget_search.DEFAULT_MAX_STEPS,
                      max_group_fraction: float = budget_search.MAX_GROUP_MACS_FRACTION, latency_runs: int = 0,
                      threads: int = DEFAULT_THREADS, work_dir=None, log_path=None,
                      alpha_output: Optional[str] = None, output_names: Sequence[str] = ()) -> List[dict]:
    """Write the INT8 TFLite artefacts into ``out_dir``; returns one record per file written.

    ``saved_model_dir``: onnx2tf's SavedModel (``convert_to_tflite(..., saved_model_dir=)``).
    ``calib_nhwc``: calibration tensors as the deployed model sees them, float32 ``[K, 1, H, W, 3]``
    (or K arrays ``[1, H, W, 3]``), already pre-processed by the deployment profile. A model with several
    inputs (a recurrent one: image and states) takes K dicts ``{input name: array}`` (LiteRT's signature names,
    each array in that input's layout), or one dict ``{input name: [K, *shape]}``; ``alpha_output`` then names
    the output the fallback ranking compares (default: the first), and ``output_names`` (the SavedModel's
    outputs in order, as onnx2tf's own TFLite names them) the outputs of every file written (TensorFlow would
    name them ``output_0``...; the runtime feeds a recurrent model's states back by name).
    ``evaluate(path) -> dict``: runs an artefact on the evaluation images (disjoint from the
    calibration set) and returns at least ``{"mad": float}`` against fp32.
    ``budget_mad``: the MAD the full-integer models must meet; ``None`` disables the search.
    ``keep_float``: ops kept float from the start: node names (an op's output tensor name, see
    :func:`model_ops`) or op types in capitals (``BATCH_MATMUL``).
    ``io_dtypes``: which full-integer flavours to write (``"float32"``, ``"int8"``);
    ``dynamic_range``: also write the dynamic-range model. ``untie_ratio``, ``activation_ranges``:
    see :func:`edgematte.quant.tflite.quantize_int8`. ``sensitivity_images``: calibration tensors
    used to rank layer groups; ``max_steps``: hard cap on fallback steps tried;
    ``max_group_fraction``: largest share of the model's multiply-accumulates one group kept
    float may hold (see :func:`edgematte.quant.budget.candidate_groups`). ``latency_runs``:
    when > 0, each step and file also gets ``latency_ms`` (median of that many LiteRT runs with
    ``threads`` threads). ``work_dir``: where the calibrated model and candidates live (default: a
    temporary folder, removed afterwards; give one to reuse the calibration across calls).

    Each record: ``path``, ``file``, ``precision`` (``"int8"`` full-integer or ``"dynamic"``),
    ``io_dtype``, ``kept_float`` (``{"nodes", "ops"}``: the kept nodes that compute in float in
    this file, and the op types kept float), ``numerics`` (what ``evaluate`` returned), ``mad``,
    ``budget_mad``, ``meets_budget``, ``size_bytes``, ``sha256``, ``latency_ms`` (or None), and for
    full-integer records ``quantization`` (``activation_ranges``, ``untie_ratio``,
    ``calibration_count``), ``untied`` (concatenation inputs given their own scale) and
    ``average_pools_as_depthwise`` (the pools XNNPACK runs as convolutions) and ``channel_means_as_convolutions``
    (the channel means it runs as 1x1 convolutions), both read from the file; every record
    ``fallback`` (``{"history": [steps], "ranking": [groups measured], "searched"}``; each step: ``step``,
    ``added``, ``kept_float_nodes``, ``mad``, ``size_bytes``, ``macs_float``, ``latency_ms``; a dynamic-range
    model's ops kept float read float weights and compute as in the float model).
    Files are written atomically; nothing else is left in ``out_dir``. When TensorFlow's quantizer refuses the
    calibrated model and ``dynamic_range`` is asked for, only the dynamic-range record comes back, with
    ``full_integer_not_built`` (the one-line reason); without ``dynamic_range`` the refusal is raised.
    """
    unknown = [d for d in io_dtypes if d not in INT8_IO_DTYPES]
    if unknown or not io_dtypes:
        raise EdgematteError(f"io_dtypes must be a non-empty subset of {', '.join(INT8_IO_DTYPES)}, "
                             f"got {list(io_dtypes)}")
    calibration = _as_batches(calib_nhwc)
    out_dir = Path(out_dir)
    base_nodes, base_ops = split_keep_float(keep_float)
    with _work_folder(work_dir) as work:
        calibrated = work / "calibrated.tflite"
        runner = _JobRunner(saved_model_dir, calibration, calibrated, untie_ratio, activation_ranges, log_path)
        runner.alpha_output, runner.output_names = alpha_output, tuple(output_names)

        def evaluate_file(path: Path) -> dict:
            latency = (lambda p: litert_latency_ms(p, latency_runs, threads)) if latency_runs > 0 else None
            return budget_search.measure_candidate(evaluate, path, latency)

        start_path = work / "step0.tflite"
        dynamic_target = out_dir / FILE_NAMES[("dynamic", "float32")] if dynamic_range else None
        try:
            runner.full_integer([(start_path, "float32", base_nodes)], base_ops, must_be_float=base_nodes)
        except EdgematteError as error:
            if dynamic_target is None:
                raise
            # TensorFlow's quantizer refused the calibrated model (e.g. a same-scale constraint it cannot meet,
            # docs/toolchain.md #int8-recurrent): the dynamic-range model needs no calibration, so it still comes.
            full_integer_error = str(error)
            warn(f"no full-integer TFLite model: {full_integer_error}")
            io_dtypes = ()
        else:
            full_integer_error = None
        records = []
        if io_dtypes:
            start = evaluate_file(start_path)
            search = _search(runner, calibrated, calibration, start_path, start, budget_mad, base_nodes, base_ops,
                             sensitivity_images, max_steps, max_group_fraction, evaluate_file, work, threads)
            kept_nodes = base_nodes + [n for n in search.kept_float_nodes if n not in base_nodes]
            fallback = {"searched": search.searched, "history": _public_history(search.history),
                        "ranking": search.ranking}
        else:
            kept_nodes = []
        targets = {io_dtype: out_dir / FILE_NAMES[("int8", io_dtype)] for io_dtype in io_dtypes}
        runner.finals(targets.get("int8"), kept_nodes, base_ops, base_nodes, dynamic_target)
        for io_dtype, target in targets.items():
            if io_dtype == "float32":  # the chosen step is this very model: publish it, measured already
                with atomic_path(target, suffix=".tflite") as tmp:
                    shutil.copyfile(search.chosen_path, tmp)
                evaluation = search.chosen_evaluation
            else:
                evaluation = evaluate_file(target)
            floating = {op["outputs"][0]["name"] for op in float_compute_ops(target)}
            records.append(_record(target, "int8", io_dtype, [n for n in kept_nodes if n in floating], base_ops,
                                   evaluation, budget_mad, untied=runner.untied, fallback=fallback,
                                   settings={"activation_ranges": activation_ranges, "untie_ratio": untie_ratio,
                                             "calibration_count": calibration_count(calibration)}))
        if dynamic_target is not None:
            evaluation = evaluate_file(dynamic_target)
            dynamic = _dynamic_search(runner, dynamic_target, evaluation, calibration, budget_mad, sensitivity_images,
                                      max_steps, evaluate_file, work, threads)
            records.append(_record(dynamic_target, "dynamic", "float32", dynamic.kept_float_nodes, [],
                                   dynamic.chosen_evaluation, budget_mad,
                                   fallback={"searched": dynamic.searched, "history": _public_history(dynamic.history),
                                             "ranking": dynamic.ranking}))
            if full_integer_error is not None:
                records[-1]["full_integer_not_built"] = full_integer_error
    return records


# ---------------------------------------------------------------------------------------------
# Helpers


def _as_batches(calib_nhwc):
    if isinstance(calib_nhwc, dict) or (isinstance(calib_nhwc, (list, tuple)) and calib_nhwc
                                        and isinstance(calib_nhwc[0], dict)):
        return stack_calibration(calib_nhwc)  # several inputs: {name: [K, *shape]}
    batches = np.stack([np.asarray(b, dtype=np.float32) for b in calib_nhwc])
    if batches.ndim < 2 or batches.shape[0] < 1 or not np.isfinite(batches).all():
        raise EdgematteError(f"calibration tensors must be finite float32 [K, *input_shape], got shape {batches.shape}")
    return batches


@contextlib.contextmanager
def _work_folder(work_dir):
    """The caller's work folder (kept), or a temporary one removed on exit."""
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        yield Path(work_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="edgematte-int8-work-") as temporary:
            yield Path(temporary)


class _JobRunner:
    """TensorFlow quantization jobs sharing one cached calibration."""

    def __init__(self, saved_model_dir, calibration, calibrated: Path,
                 untie_ratio: Optional[float], activation_ranges: str, log_path):
        self.saved_model_dir = saved_model_dir
        self.calibration = calibration
        self.calibrated = calibrated
        self.untie_ratio = untie_ratio
        self.activation_ranges = activation_ranges
        self.log_path = log_path
        self.untied: List[dict] = []
        self.alpha_output: Optional[str] = None  # the output the fallback ranking compares (None: the first)
        self.output_names: Tuple[str, ...] = ()  # the outputs' names in every file written (empty: TensorFlow's)

    def _run(self, jobs: List[Int8Job], fail_soft: bool = False) -> list:
        results, info = run_int8_jobs(self.saved_model_dir, self.calibration, jobs, calibrated_model=self.calibrated,
                                      untie_ratio=self.untie_ratio, activation_ranges=self.activation_ranges,
                                      log_path=self.log_path, fail_soft=fail_soft)
        if any(job.needs_calibrated for job in jobs):  # untying applies to these only
            self.untied = info["untied"]
        for index, message in info["errors"].items():
            warn(f"int8: {jobs[index].out.name} not written: {message}")
        return results

    def _full_integer_job(self, path: Path, io_dtype: str, nodes: Sequence[str], keep_float_ops: Sequence[str],
                          must_be_float: Sequence[str]) -> FullIntegerJob:
        return FullIntegerJob(out=path, io_dtype=io_dtype, keep_float_nodes=tuple(nodes),
                              keep_float_ops=tuple(keep_float_ops), check_float_nodes=tuple(must_be_float),
                              output_names=self.output_names)

    def full_integer(self, targets: Sequence[Tuple[Path, str, Sequence[str]]], keep_float_ops: Sequence[str],
                     must_be_float: Sequence[str] = (), fail_soft: bool = False) -> list:
        """Write ``(path, io dtype, kept nodes)`` full-integer models, each with ``keep_float_ops`` float.

        Only ``must_be_float`` (the caller's own names) are required to come out float: a
        scale-preserving op in a searched group may stay int8 (MLIR's choice), which is no error.
        With ``fail_soft`` a variant the quantizer refuses gives ``None`` instead of an error.
        """
        return self._run([self._full_integer_job(path, io_dtype, nodes, keep_float_ops, must_be_float)
                          for path, io_dtype, nodes in targets], fail_soft=fail_soft)

    def float_twin(self, target: Path) -> None:
        """The dynamic-range model's float twin (:class:`~edgematte.quant.tflite.jobs.FloatTwinJob`) at ``target``."""
        self._run([FloatTwinJob(out=target, output_names=self.output_names)])

    def finals(self, int8_io_target: Optional[Path], nodes: Sequence[str], keep_float_ops: Sequence[str],
               must_be_float: Sequence[str], dynamic_target: Optional[Path]) -> None:
        """The int8-I/O and dynamic-range files, in one TensorFlow run (either may be None)."""
        jobs = []
        if int8_io_target is not None:
            jobs.append(self._full_integer_job(int8_io_target, "int8", nodes, keep_float_ops, must_be_float))
        if dynamic_target is not None:
            jobs.append(DynamicRangeJob(out=dynamic_target, output_names=self.output_names))
        if jobs:
            self._run(jobs)


class _SearchOutcome:
    """The search's choice: kept nodes, the step file chosen and its evaluation, history and ranking.
    ``chosen_path``: where the chosen model is (default: the full-integer search's ``step<N>.tflite``)."""

    def __init__(self, result: Optional[budget_search.SearchResult], start: dict, work: Path,
                 chosen_path: Optional[Path] = None):
        self.searched = result is not None and len(result.history) > 1
        self.kept_float_nodes = result.kept_float_nodes if result else []
        self.history = result.history if result else [{"step": 0, "added": None, "kept_float_nodes": [],
                                                       "macs_float": 0, **start}]
        self.ranking = result.ranking if result else []
        chosen = next(h for h in self.history if h["kept_float_nodes"] == self.kept_float_nodes)
        self.chosen_path = chosen_path or work / f"step{chosen['step']}.tflite"
        self.chosen_evaluation = {k: chosen[k] for k in ("mad", "size_bytes", "numerics", "latency_ms") if k in chosen}


def _search(runner: _JobRunner, calibrated: Path, calibration, start_path: Path, start: dict,
            budget_mad: Optional[float], base_nodes: List[str], base_ops: List[str], sensitivity_images: int,
            max_steps: int, max_group_fraction: float, evaluate_file: Callable[[Path], dict], work: Path,
            threads: int) -> _SearchOutcome:
    """Run the budget search when the starting model misses the budget."""
    if budget_mad is None or start["mad"] <= budget_mad or max_steps == 0:
        return _SearchOutcome(None, start, work)
    # the raw calibrated model is the float network itself (ranges recorded, nothing quantized)
    images = calibration_samples(calibration_head(calibration, max(1, sensitivity_images)))
    alpha = runner.alpha_output
    # the calibrated model keeps TensorFlow's output names (output_K), the files written carry output_names
    in_calibrated = (f"output_{runner.output_names.index(alpha)}" if alpha in runner.output_names else alpha)
    references = run_float_io(calibrated, images, threads, in_calibrated)
    base_mad = output_mad(run_float_io(start_path, images, threads, alpha), references)
    # node names as the quantizer knows them: the calibrated model's (the int8 model renames its output)
    groups = [g for g in budget_search.candidate_groups(model_ops(calibrated), max_group_fraction)
              if not set(g.nodes) <= set(base_nodes) and g.anchor_op not in base_ops]

    def measure_fallbacks(node_sets: List[Tuple[str, ...]]) -> List[float]:
        mads = []
        for offset in range(0, len(node_sets), MEASURE_CHUNK):
            chunk = node_sets[offset:offset + MEASURE_CHUNK]
            paths = [work / f"rank{offset + i}.tflite" for i in range(len(chunk))]
            jobs = [(p, "float32", base_nodes + list(nodes)) for p, nodes in zip(paths, chunk)]
            # a variant the quantizer refuses ranks last instead of stopping the search
            for written in runner.full_integer(jobs, base_ops, must_be_float=base_nodes, fail_soft=True):
                if written is None:
                    mads.append(float("inf"))
                    continue
                mads.append(output_mad(run_float_io(written, images, threads, alpha), references))
                written.unlink()
        return mads

    ranked = budget_search.rank_groups(groups, base_mad, measure_fallbacks)

    def evaluate_steps(candidates: List[Tuple[str, ...]]) -> List[dict]:
        paths = [work / f"step{i + 1}.tflite" for i in range(len(candidates))]
        runner.full_integer([(p, "float32", base_nodes + list(nodes)) for p, nodes in zip(paths, candidates)], base_ops,
                            must_be_float=base_nodes)
        results = []
        for path in paths:
            results.append(evaluate_file(path))
            if results[-1]["mad"] <= budget_mad:
                break
        return results

    result = budget_search.search_fallback(start, ranked, budget_mad, evaluate_steps, max_steps=max_steps)
    return _SearchOutcome(result, start, work)


def _dynamic_search(runner: _JobRunner, dynamic_target: Path, start: dict, calibration, budget_mad: Optional[float],
                    sensitivity_images: int, max_steps: int, evaluate_file: Callable[[Path], dict], work: Path,
                    threads: int) -> _SearchOutcome:
    """Give the costliest int8 weights of the dynamic-range model their float values back until it meets the
    budget (:func:`edgematte.quant.budget.rank_by_cost`, :func:`~edgematte.quant.budget.search_prefix`); the
    chosen model replaces ``dynamic_target``. A model that meets the budget is left as it is."""
    if budget_mad is None or start["mad"] <= budget_mad or max_steps == 0:
        return _SearchOutcome(None, start, work, chosen_path=dynamic_target)
    twin_path = work / "dynamic_float_twin.tflite"
    runner.float_twin(twin_path)
    builder = KeptFloatBuilder(dynamic_target.read_bytes(), twin_path.read_bytes())
    images = calibration_samples(calibration_head(calibration, max(1, sensitivity_images)))
    alpha = runner.alpha_output
    references = run_float_io(twin_path, images, threads, alpha)
    nodes = list(dict.fromkeys(pair.node for pair in builder.pairs))
    if not nodes:  # no int8 weight to give back
        return _SearchOutcome(None, start, work, chosen_path=dynamic_target)

    def variant(kept_float: Sequence[str], path: Path) -> Path:
        path.write_bytes(builder.build(kept_float))
        return path

    # the swap is proven on the model itself: every op float must be the float twin, bit for bit
    check = run_float_io(variant(nodes, work / "dynamic_all_float.tflite"), images[:1], threads, alpha)
    if not np.array_equal(check[0], references[0]):
        warn(f"int8: {dynamic_target.name}: no layer kept float (with every layer float it differs from the float "
             f"model by {float(np.max(np.abs(check[0] - references[0]))):.2e})")
        return _SearchOutcome(None, start, work, chosen_path=dynamic_target)
    by_node = {op["outputs"][0]["name"]: op for op in model_ops(dynamic_target) if op["outputs"]}
    groups = [budget_search.LayerGroup(anchor=n, anchor_op=by_node[n]["op"], nodes=(n,), op_types=(by_node[n]["op"],),
                                       macs=budget_search.op_macs(by_node[n])) for n in nodes]

    def measure_alone(node_sets: List[Tuple[str, ...]]) -> List[float]:
        mads = []
        for index, alone in enumerate(node_sets):
            path = variant([n for n in nodes if n not in alone], work / f"alone{index}.tflite")
            mads.append(output_mad(run_float_io(path, images, threads, alpha), references))
            path.unlink()
        return mads

    ranked = budget_search.rank_by_cost(groups, measure_alone)

    steps = itertools.count(1)

    def evaluate(kept: Tuple[str, ...]) -> dict:
        return evaluate_file(variant(kept, work / f"dynamic_step{next(steps)}.tflite"))

    result = budget_search.search_prefix(start, ranked, budget_mad, evaluate, max_steps=max_steps)
    outcome = _SearchOutcome(result, start, work, chosen_path=dynamic_target)
    if outcome.kept_float_nodes:
        with atomic_path(dynamic_target, suffix=".tflite") as tmp:
            tmp.write_bytes(builder.build(outcome.kept_float_nodes))
    return outcome


def _public_history(history: List[dict]) -> List[dict]:
    """Fallback steps without the bulky per-step numerics (kept: mad, size, latency, what was added)."""
    keys = ("step", "added", "kept_float_nodes", "mad", "size_bytes", "macs_float", "latency_ms")
    return [{k: h.get(k) for k in keys} for h in history]


def _record(path: Path, precision: str, io_dtype: str, nodes: Sequence[str], op_types: Sequence[str],
            evaluation: dict, budget_mad: Optional[float], untied: Optional[List[dict]] = None,
            fallback: Optional[dict] = None, settings: Optional[dict] = None) -> dict:
    record = {
        "path": str(path), "file": path.name, "precision": precision, "io_dtype": io_dtype,
        "kept_float": {"nodes": list(nodes), "ops": list(op_types)},
        "numerics": evaluation["numerics"], "mad": evaluation["mad"], "budget_mad": budget_mad,
        "meets_budget": None if budget_mad is None else evaluation["mad"] <= budget_mad,
        "size_bytes": evaluation["size_bytes"], "sha256": sha256_file(path),
        "latency_ms": evaluation.get("latency_ms"),
    }
    if precision == "int8":
        record["quantization"] = settings
        record["untied"] = [u["tensor"] for u in (untied or [])]
        convs = [u["tensor"] for u in (untied or []) if u.get("identity") == "DEPTHWISE_CONV_2D"]
        if convs:  # TensorFlow refused the MUL identities after same-scale ops (worker.main)
            record["untied_by_convolution"] = convs
        # read from the file the worker wrote, not taken from its word
        ops = tflite_ops(path)
        record["average_pools_as_depthwise"] = pools_rewritten(ops)
        record["channel_means_as_convolutions"] = means_rewritten(ops)
    if fallback is not None:
        record["fallback"] = fallback
    return record
