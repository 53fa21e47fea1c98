"""Per-tensor quantization error from TensorFlow's QuantizationDebugger (worker side)."""

from typing import List, Sequence

import numpy as np

from .quantize import mlir_quantize


def layer_errors(calibrated: bytes, batches: np.ndarray, keep_float_nodes: Sequence[str],
                 keep_float_ops: Sequence[str]) -> List[dict]:
    """One row per quantized tensor (see :class:`edgematte.quant.tflite.jobs.LayerErrorsJob`).

    The int8 model runs with a float reference beside every quantized op (each fed the same
    quantized input) on ``batches``.
    """
    import csv
    import io
    import math

    import tensorflow as tf

    debug_model = mlir_quantize(calibrated, "float32", keep_float_nodes, keep_float_ops, numeric_verify=True)

    def float_variance(float_values, quantized_values, scale, zero_point):
        return float(np.var(np.asarray(float_values, dtype=np.float64)))

    def dataset():
        for batch in batches:
            yield [batch]

    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_direct_compare_metrics={"float_variance": float_variance})
    debugger = tf.lite.experimental.QuantizationDebugger(quant_debug_model_content=debug_model,
                                                         debug_dataset=dataset, debug_options=options)
    debugger.run()
    table = io.StringIO()
    debugger.layer_statistics_dump(table)  # the public way to get names, op types and scales per tensor
    rows = []
    for row in csv.DictReader(io.StringIO(table.getvalue())):
        scale, mse = float(row["scale"]), float(row["mean_squared_error"])
        variance = float(row["float_variance"])
        rows.append({
            "tensor_name": row["tensor_name"], "op": row["op_name"], "tensor_index": int(row["tensor_idx"]),
            "scale": scale, "zero_point": int(row["zero_point"]),
            "num_elements": int(float(row["num_elements"])), "mean_error": float(row["mean_error"]),
            "stddev": float(row["stddev"]), "max_abs_error": float(row["max_abs_error"]),
            "mean_squared_error": mse, "float_variance": variance,
            "rmse_steps": math.sqrt(mse) / scale if scale > 0 else float("nan"),
            "sqnr_db": 10.0 * math.log10(variance / mse) if mse > 0 and variance > 0 else
            (float("inf") if mse == 0 else float("-inf")),
        })
    return rows
