"""Per-op times of a ``.tflite`` model on this host, each op timed alone (LiteRT's Python API has no profiler).

For every op of the model's main graph, a one-op model is cut from it with LiteRT's flatbuffer tools: that op,
its constant inputs (weights, shapes), its other inputs as graph inputs, its outputs as graph outputs. LiteRT runs
each with the artefact's thread count and XNNPACK (which takes the op or leaves it to TFLite's own kernel, as in the
whole model), on inputs of the op's shapes and types (floats in [-1, 1], int8 in [-100, 100], integer index
tensors 0), and the mean time of ``runs`` runs after ``warmup`` is the op's row.

What this measures is not what the op costs inside the model: nothing is fused across ops (XNNPACK folds a PAD into
the convolution that reads it: alone, PP-MattingV2's image PAD takes 1.3 ms, in the model nothing), each op reads
inputs that are warm in the cache and writes an output no one reads, and an op XNNPACK leaves out no longer cuts a
delegated graph in two. The sum of the rows is reported beside the model's own time (on PP-MattingV2 512x512:
22.0 ms of ops against 21.2 ms for the int8 model, 48.9 against 51.6 for fp32, AMD Zen 5, 2 threads). It says
where the time goes, op by op, for the runtime a phone runs. An op that cannot run alone (one that reads another
subgraph, a shape computed at run time) is listed as such, without a time.
"""

import time
from pathlib import Path
from typing import Iterator, List, Tuple

import numpy as np

from .tflite_flatbuffer import parse_model, submodel

FLOAT_RANGE = 1.0
INT8_RANGE = 100


def one_op_models(model_bytes: bytes) -> Iterator[Tuple[int, List[str], bytes]]:
    """For each op of the main graph: ``(index, its output tensor names, a model of that op alone)``."""
    model = parse_model(model_bytes)
    graph = model.subgraphs[0]
    for index, op in enumerate(graph.operators):
        outputs = [int(o) for o in op.outputs]
        yield index, [graph.tensors[o].name.decode() for o in outputs], submodel(model, [index], outputs)


def _fill(detail: dict, rng) -> np.ndarray:
    dtype, shape = np.dtype(detail["dtype"]), detail["shape"]
    if dtype.kind == "f":
        return rng.uniform(-FLOAT_RANGE, FLOAT_RANGE, shape).astype(dtype)
    if dtype == np.int8 or dtype == np.uint8:
        low = -INT8_RANGE if dtype == np.int8 else 0
        return rng.integers(low, low + 2 * INT8_RANGE, shape).astype(dtype)
    return np.zeros(shape, dtype)  # indices and shapes: 0 is valid wherever one is


def isolated_op_profile(path, threads: int, runs: int, warmup: int) -> dict:
    """``{"rows": [{"layer", "op_type", "ms", "index"}...], "not_run_alone": [{"index", "op_type", "error"}],
    ...}`` of the model at ``path`` (see the module docstring); ``rows`` in the model's order, ``ms`` the mean
    per run."""
    from .backends.litert import _import_interpreter

    interpreter_class, _, _ = _import_interpreter()
    whole = interpreter_class(model_path=str(path))
    op_types = [op["op_name"] for op in whole._get_ops_details()]  # LiteRT's only op-level view
    rng = np.random.default_rng(0)
    rows, failed = [], []
    for index, names, data in one_op_models(Path(path).read_bytes()):
        try:
            interpreter = interpreter_class(model_content=data, num_threads=threads)
            interpreter.allocate_tensors()
            for detail in interpreter.get_input_details():
                interpreter.set_tensor(detail["index"], _fill(detail, rng))
            for _ in range(1 + warmup):
                interpreter.invoke()
            started = time.perf_counter()
            for _ in range(runs):
                interpreter.invoke()
            ms = 1000 * (time.perf_counter() - started) / runs
        except Exception as e:  # each op on its own: one that cannot run alone must not end the profile
            failed.append({"index": index, "op_type": op_types[index], "error": str(e).splitlines()[0][:160]})
            continue
        rows.append({"layer": names[0] if names else f"op {index}", "op_type": op_types[index], "ms": ms,
                     "index": index})
    return {"rows": rows, "not_run_alone": failed}
