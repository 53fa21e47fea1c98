"""Looking into a ``.tflite`` model with LiteRT: its ops, and whether the kept-float ones compute in float."""

from pathlib import Path
from typing import List, Sequence

import numpy as np

from ...core.errors import EdgematteError


def tflite_ops(path) -> List[dict]:
    """Every op of a ``.tflite`` model in execution order, read with LiteRT.

    Each op is ``{"index", "op", "inputs", "outputs"}``; each input/output tensor is ``{"index",
    "name", "dtype", "shape", "scale", "zero_point"}`` (``scale`` None for float tensors and
    per-channel weights show their first scale). Constant inputs (weights, biases, shapes) are
    listed too; optional inputs that are absent are left out.
    """
    from ...runtime.backends.litert import _import_interpreter

    interpreter_class, _, _ = _import_interpreter()
    interpreter = interpreter_class(model_path=str(path))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}

    def describe(index):
        detail = tensors[index]
        scales = detail.get("quantization_parameters", {}).get("scales")
        zero_points = detail.get("quantization_parameters", {}).get("zero_points")
        quantized = scales is not None and len(scales) > 0
        return {"index": int(index), "name": detail["name"], "dtype": np.dtype(detail["dtype"]).name,
                "shape": [int(d) for d in detail["shape"]],
                "scale": float(scales[0]) if quantized else None,
                "zero_point": int(zero_points[0]) if quantized else None}

    return [{"index": int(op["index"]), "op": op["op_name"],
             "inputs": [describe(i) for i in op["inputs"] if i >= 0],
             "outputs": [describe(i) for i in op["outputs"]]}
            for op in interpreter._get_ops_details()]  # the only op-level view LiteRT's Python API has


def check_kept_float(path: Path, keep_float_nodes: Sequence[str], keep_float_ops: Sequence[str]) -> None:
    """Raise :class:`EdgematteError` unless every kept node and op type of ``path`` computes in float."""
    ops = tflite_ops(path)
    by_output = {op["outputs"][0]["name"]: op for op in ops if op["outputs"]}
    for name in keep_float_nodes:
        op = by_output.get(name)
        if op is None:
            raise EdgematteError(f"keep-float node {name!r} is not the output of any op in the model")
        if op["outputs"][0]["dtype"] != "float32":
            raise EdgematteError(f"keep-float node {name!r} ({op['op']}) was quantized anyway "
                                 f"(its output is {op['outputs'][0]['dtype']})")
    for op_type in keep_float_ops:
        matching = [op for op in ops if op["op"] == op_type]
        if not matching:
            present = sorted({op["op"] for op in ops} - {"QUANTIZE", "DEQUANTIZE"})
            raise EdgematteError(f"keep-float op type {op_type!r} is not in the model (it has {', '.join(present)})")
        quantized = [op for op in matching if op["outputs"][0]["dtype"] != "float32"]
        if quantized:
            raise EdgematteError(f"keep-float op type {op_type!r}: {len(quantized)} of {len(matching)} ops were "
                                 f"quantized anyway (e.g. {quantized[0]['outputs'][0]['name']!r})")
