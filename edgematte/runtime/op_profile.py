"""Per-op profiles where a runtime's own profiler can say which op of the model took how long.

``python -m edgematte.runtime.bench_runner ... --profile`` runs this in a process of its own, apart from the timed
runs (a profiler costs time, so the latency figures never come from a profiled run). Two runtimes say it here:

- ONNX Runtime (``.onnx``): ``SessionOptions.enable_profiling``, the JSON written into a temporary folder and
  removed once read. The session is the timed one (same graph optimizations), so its kernels are ONNX Runtime's:
  a node it kept has its ONNX name (``Conv.12``, paddle2onnx's), a fused one the name of the node it started from
  (``MatMul.4/MatmulTransposeFusion/``), a node its NCHWc layout pass rewrote is named after its output
  (``relu_3.tmp_0_nchwc``), ``ReorderInput``/``ReorderOutput`` nodes are that pass's layout copies. Where the
  ``onnx`` package is installed, each kernel is mapped back to the model's node and the tensor it writes, which for
  a converted model is the Paddle variable (``relu_3.tmp_0``): the source layer.
- Paddle Inference (the ``reference`` model): ``paddle.profiler`` around the predictor's runs; the ops come in the
  order of the program the predictor runs after its fusion passes, saved beside it, whose output variables
  (the source model's names) label them.

- LiteRT (``.tflite``): its Python interpreter has no per-op profiler, so each op is timed alone, in a one-op
  model cut from the artefact (:mod:`edgematte.runtime.tflite_isolated_ops`; needs LiteRT's flatbuffer tools),
  and the whole model is timed beside it (``whole_model_ms``): the sum of the ops is not the model's time.

Paddle Lite's Python API has no per-op profiler (:data:`UNSUPPORTED`); on a phone the benchmark tools print one for
both (:mod:`edgematte.bench.op_profile`).

Every profile has the same rows: ``{"layer", "op_type", "ms", "share", ...}``, ``ms`` the mean per run of the
profiled runs (warm-up excluded) and ``share`` its part of the sum of the rows (:func:`summarize`).
"""

import glob
import json
import os
import re
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

from ..core.manifest import REFERENCE, read_manifest

ORT_KERNEL_SUFFIX = "_kernel_time"
ORT_NCHWC_SUFFIX = "_nchwc"
PADDLE_SKIPPED_OPS = ("feed", "fetch")
PADDLE_OUTPUT_SLOTS = ("Out", "Output", "Y")  # an op's main output, before its other ones (batch_norm's MeanOut)

UNSUPPORTED = {
    "tflite": "LiteRT: no per-op profiler in its Python interpreter, and timing each op alone needs LiteRT's "
              "flatbuffer tools (ai-edge-litert), not installed here (on a phone, bench --target adb: runs "
              "benchmark_model --enable_op_profiling=true)",
    "nb": "Paddle Lite (Python API): no per-op profiler (the paddlelite wheel is built without LITE_WITH_PROFILE; "
          "on a phone, a benchmark_bin built with --with_profile=ON prints one)",
}


def summarize(rows: List[dict]) -> dict:
    """``rows`` (each with ``layer``, ``op_type``, ``ms``) with their ``share`` of the total set, and the same per
    op type (``by_type``: ``op_type``, ``count``, ``ms``, ``share``, slowest first); ``total_ms`` their sum."""
    total = sum(r["ms"] for r in rows)
    types: Dict[str, dict] = {}
    for r in rows:
        r["share"] = r["ms"] / total if total > 0 else 0.0
        kind = types.setdefault(r["op_type"], {"op_type": r["op_type"], "count": 0, "ms": 0.0})
        kind["count"] += 1
        kind["ms"] += r["ms"]
    by_type = sorted(types.values(), key=lambda t: -t["ms"])
    for kind in by_type:
        kind["share"] = kind["ms"] / total if total > 0 else 0.0
    return {"rows": rows, "by_type": by_type, "total_ms": total}


# ---------------------------------------------------------------------------------------------- ONNX Runtime

def onnx_names(path) -> Optional[Tuple[Dict[str, Tuple[str, List[str]]], Dict[str, str]]]:
    """``({node: (op_type, outputs)}, {tensor: node writing it})`` of an ONNX model, or ``None`` without the
    ``onnx`` package (a board: the kernels keep ONNX Runtime's names)."""
    try:
        import onnx
    except ImportError:
        return None
    graph = onnx.load(str(path), load_external_data=False).graph
    nodes = {n.name: (n.op_type, list(n.output)) for n in graph.node if n.name}
    producers = {out: n.name for n in graph.node if n.name for out in n.output}
    return nodes, producers


def _source(kernel: str, names) -> Tuple[Optional[str], str]:
    """(the model's node, its output tensor) that ONNX Runtime's kernel ``kernel`` runs: ``(None, kernel)`` for a
    node of ONNX Runtime's own (a layout copy) or when the model's names are unknown.

    ONNX Runtime names what its optimizers make after what they replaced: ``NODE/FusionName/`` (a fusion),
    ``TENSOR_nchwc`` (the NCHWc pass, after the tensor the node writes), ``_token_N`` added where a name is taken.
    """
    if names is None:
        return None, kernel
    nodes, producers = names
    base = re.sub(r"_token_\d+$", "", kernel)
    for candidate in (base, base.split("/", 1)[0]):
        if candidate in nodes:
            outputs = nodes[candidate][1]
            return candidate, outputs[0] if outputs else candidate
    stem = base[: -len(ORT_NCHWC_SUFFIX)] if base.endswith(ORT_NCHWC_SUFFIX) else None
    if stem in producers:
        return producers[stem], stem
    return None, kernel


def ort_profile(events: List[dict], skip_runs: int, names=None) -> dict:
    """The profile in ONNX Runtime's profiler JSON ``events`` (a list of trace events), its first ``skip_runs``
    runs (``model_run`` events: the first run and the warm-up) left out.

    Each ``Node`` event named ``<node>_kernel_time`` is one kernel call (``dur`` in microseconds, ``args.op_name``
    its op type); rows come in the order of the first profiled run. ``names``: :func:`onnx_names` of the model, to
    give each row its ``node`` and ``layer`` (the tensor it writes). Raises ``ValueError`` when no run is left.
    """
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])
    kept = runs[skip_runs:]
    if not kept:
        raise ValueError(f"the ONNX Runtime profile holds {len(runs)} runs, none after the {skip_runs} warm-up runs")
    start = kept[0]["ts"]
    kernels: Dict[str, dict] = {}
    for e in sorted(events, key=lambda e: e.get("ts", 0)):
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith(ORT_KERNEL_SUFFIX) or e["ts"] < start:
            continue
        kernel = e["name"][: -len(ORT_KERNEL_SUFFIX)]
        args = e.get("args", {})
        entry = kernels.setdefault(kernel, {"op_type": args.get("op_name", "?"), "us": 0.0, "calls": 0,
                                            "provider": args.get("provider")})
        entry["us"] += float(e["dur"])
        entry["calls"] += 1
    rows = []
    for kernel, entry in kernels.items():
        node, layer = _source(kernel, names)
        rows.append({"layer": layer, "op_type": entry["op_type"], "ms": entry["us"] / len(kept) / 1000.0,
                     "node": node, "kernel": kernel, "calls": entry["calls"] / len(kept),
                     "provider": entry["provider"]})
    run_ms = sum(float(e["dur"]) for e in kept) / len(kept) / 1000.0
    return {**summarize(rows), "runs": len(kept), "run_ms": run_ms}


def _ort(manifest, entry, threads: int, runs: int, warmup: int, make_call) -> dict:
    from .backends.onnxruntime import OnnxRuntimeBackend

    path = manifest.file(entry)
    with tempfile.TemporaryDirectory(prefix="edgematte-ort-profile-") as folder:  # never the working directory
        engine = OnnxRuntimeBackend(path, threads=threads, profile_prefix=os.path.join(folder, "ort"))
        call = make_call(_matter(manifest, entry, engine))
        for _ in range(1 + warmup):
            call()
        for _ in range(runs):
            call()
        with open(engine.end_profiling(), encoding="utf-8") as f:
            events = json.load(f)
    profile = ort_profile(events, 1 + warmup, onnx_names(path))
    from ..core.versions import installed_version

    return {"runtime": "onnxruntime", "profiler": f"ONNX Runtime {installed_version('onnxruntime')} profiler "
                                                  "(SessionOptions.enable_profiling)", **profile}


# ------------------------------------------------------------------------------------------ LiteRT

def _litert(manifest, entry, threads: int, runs: int, warmup: int, make_call) -> dict:
    from ..core.versions import installed_version
    from .backends.litert import LiteRTBackend
    from .tflite_flatbuffer import flatbuffer_tools
    from .tflite_isolated_ops import isolated_op_profile

    if flatbuffer_tools() is None:
        return {"unsupported": UNSUPPORTED["tflite"]}
    path = manifest.file(entry)
    call = make_call(_matter(manifest, entry, LiteRTBackend(path, threads=threads)))
    for _ in range(1 + warmup):
        call()
    started = time.perf_counter()
    for _ in range(runs):
        call()
    whole_model_ms = 1000 * (time.perf_counter() - started) / runs
    profile = isolated_op_profile(path, threads, runs, warmup)
    return {"runtime": "litert",
            "profiler": f"each op timed alone in a one-op model cut from the artefact (LiteRT "
                        f"{installed_version('ai-edge-litert')}, XNNPACK, {threads} thread(s)): no fusion across "
                        "ops, warm inputs, so the sum of the ops is not the model's time",
            **summarize(profile["rows"]), "whole_model_ms": whole_model_ms, "runs": runs,
            "not_run_alone": profile["not_run_alone"]}


# ------------------------------------------------------------------------------------------ Paddle Inference

def _main_output(op) -> str:
    """The output variable that names a Paddle op (a ``core.OpDesc``)."""
    for slot in (*PADDLE_OUTPUT_SLOTS, *op.output_names()):
        if slot in op.output_names() and op.output(slot):
            return op.output(slot)[0]
    return op.type()


def paddle_program_ops(pdmodel: bytes) -> List[Tuple[str, str]]:
    """``[(op type, output variable)]`` of a Paddle program's main block, without feed and fetch (the
    predictor skips those)."""
    from paddle.framework import core

    desc = core.ProgramDesc(pdmodel)  # kept while its ops are read: they point into it
    block = desc.block(0)
    ops = [block.op(i) for i in range(block.op_size())]
    return [(op.type(), _main_output(op)) for op in ops if op.type() not in PADDLE_SKIPPED_OPS]


def paddle_profile(events: List[dict], program: Optional[List[Tuple[str, str]]] = None) -> dict:
    """The profile in a ``paddle.profiler`` chrome trace's ``events``: the ``Operator`` events of each profiled
    step (``ProfileStep``), ``dur`` in microseconds, ``name`` ``"<op type>[<dur> us]"``.

    ``program``: :func:`paddle_program_ops` of the program the predictor ran; when its ops match a step's one for
    one, each row is named by its output variable, else by its op type and position. Raises ``ValueError`` when
    no step holds an op.
    """
    steps = sorted((e for e in events if e.get("cat") == "ProfileStep"), key=lambda e: e["ts"])
    ops = sorted((e for e in events if e.get("cat") == "Operator"), key=lambda e: e["ts"])
    per_step = [[(o["name"].split("[")[0], float(o["dur"])) for o in ops if s["ts"] <= o["ts"] <= s["ts"] + s["dur"]]
                for s in steps]
    per_step = [step for step in per_step if step]
    if not per_step:
        raise ValueError("the paddle.profiler trace holds no operator in a profiled step")
    first = per_step[0]
    if any(len(step) != len(first) for step in per_step):
        raise ValueError("the profiled steps ran different numbers of ops")
    named = program is not None and [t for t, _ in program] == [t for t, _ in first]
    rows = []
    for index, (op_type, _) in enumerate(first):
        layer = program[index][1] if named else f"{op_type} #{index}"
        rows.append({"layer": layer, "op_type": op_type, "node": f"op {index}",
                     "ms": sum(step[index][1] for step in per_step) / len(per_step) / 1000.0})
    return {**summarize(rows), "runs": len(per_step), "named_by_program": bool(named)}


def _paddle_inference(manifest, threads: int, runs: int, warmup: int, make_call) -> dict:
    import paddle.profiler as profiler

    from .backends.paddle_inference import PaddleInferenceBackend
    from .matter import Matter
    from .model_io import FeedPlan
    from .profiles import profile_for_model

    folder = manifest.reference_dir()
    with tempfile.TemporaryDirectory(prefix="edgematte-paddle-profile-") as work:
        engine = PaddleInferenceBackend(str(folder), threads=threads, optim_cache_dir=os.path.join(work, "optim"))
        profile = (manifest.artefacts[0].profile if manifest.artefacts else None) or "android"
        matter = Matter(engine, profile_for_model(profile, manifest.model.transforms), layout="nchw",
                        input_hw=manifest.model.input_hw, plan=FeedPlan.for_artefact(manifest.model, engine, "nchw"))
        call = make_call(matter)
        for _ in range(1 + warmup):
            call()
        trace = os.path.join(work, "trace")
        prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU],
                                 on_trace_ready=profiler.export_chrome_tracing(trace))
        prof.start()
        for _ in range(runs):
            call()
            prof.step()
        prof.stop()
        with open(sorted(glob.glob(os.path.join(trace, "*.json")))[-1], encoding="utf-8") as f:
            events = json.load(f)["traceEvents"]
        optimized = sorted(glob.glob(os.path.join(work, "optim", "*.pdmodel")))
        program = paddle_program_ops(open(optimized[-1], "rb").read()) if optimized else None
    from ..core.versions import installed_version

    return {"runtime": "paddle_inference",
            "profiler": f"paddle.profiler (paddlepaddle {installed_version('paddlepaddle')})",
            **paddle_profile(events, program)}


# ------------------------------------------------------------------------------------------------ the runner

def _matter(manifest, entry, engine):
    """A Matter on ``engine`` for the manifest artefact ``entry``, as :meth:`Matter.from_manifest` builds one."""
    from .matter import Matter
    from .model_io import FeedPlan
    from .profiles import profile_for_model

    layout = entry.layout or "nchw"
    return Matter(engine, profile_for_model(entry.profile or "android", manifest.model.transforms), layout=layout,
                  input_hw=manifest.model.input_hw, plan=FeedPlan.for_artefact(manifest.model, engine, layout, entry))


def profile_artefact(manifest_dir, artefact: str, threads: int, runs: int, warmup: int,
                     make_call: Callable) -> dict:
    """The per-op profile of one artefact (or ``"reference"``) at ``threads``: ``{"artefact", "threads",
    "runtime", "profiler", "rows", "by_type", "total_ms", "runs", ...}``, or ``{"artefact", "threads",
    "unsupported": why}`` where this runtime has no profiler here.

    ``make_call(matter)`` returns the zero-argument call that runs the model once, as the timed runs do; it runs
    once plus ``warmup`` times unprofiled (ONNX Runtime: profiled, then left out), then ``runs`` times profiled.
    """
    head = {"artefact": artefact, "threads": threads}
    manifest = read_manifest(manifest_dir)
    if artefact == REFERENCE:
        return {**head, **_paddle_inference(manifest, threads, runs, warmup, make_call)}
    entry = manifest.find(artefact)
    if entry.format == "onnx":
        return {**head, **_ort(manifest, entry, threads, runs, warmup, make_call)}
    if entry.format == "tflite":
        return {**head, **_litert(manifest, entry, threads, runs, warmup, make_call)}
    return {**head, "unsupported": UNSUPPORTED.get(entry.format, f"no per-op profiler for .{entry.format}")}
