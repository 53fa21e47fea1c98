"""Run an int8 rewrite of :mod:`edgematte.quant.tflite` on a tiny model, as the converter does: a SavedModel of
``Model`` (a ``tf.Module`` defined by the test), calibrated and quantized to full integer, then rewritten; both
models run in LiteRT with XNNPACK. TensorFlow runs in a subprocess: it never loads into the test process."""

import json
import subprocess
import sys
import textwrap

_SCRIPT = """
import json
import sys

import numpy as np
import tensorflow as tf

from edgematte.quant.tflite.calibration import calibrate
from edgematte.quant.tflite.quantize import mlir_quantize
from {module} import {function} as rewrite

folder = sys.argv[1]
rng = np.random.default_rng(0)
{definition}
model = Model()
tf.saved_model.save(model, folder, signatures=model.__call__.get_concrete_function())
batches = rng.uniform(-1, 1, (8, 1, 32, 32, 3)).astype(np.float32)
quantized = mlir_quantize(calibrate(folder, batches), "int8")
rewritten, names = rewrite(quantized)
found = {{"rewritten": names}}
for label, data in (("before", quantized), ("after", rewritten)):
    interpreter = tf.lite.Interpreter(model_content=data, num_threads=1)
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()[0]
    outputs = {{}}
    for batch in batches[:3]:
        scale, zero = details["quantization"]
        interpreter.set_tensor(details["index"], np.clip(np.round(batch / scale) + zero, -128, 127).astype(np.int8))
        interpreter.invoke()
        for d in interpreter.get_output_details():
            outputs.setdefault(d["name"], []).append(interpreter.get_tensor(d["index"]).astype(int).tolist())
    # nodes beyond the model's own ops are XNNPACK partitions
    found[label] = {{"ops": ops, "partitions": interpreter._interpreter.NumNodes() - len(ops), "outputs": outputs}}
print(json.dumps(found))
"""


def quantize_and_rewrite(definition: str, module: str, function: str, folder) -> dict:
    """``{"rewritten": names, "before": run, "after": run}``, each run ``{"ops", "partitions", "outputs": {output
    name: [int8 values per input]}}``. ``definition``: Python source defining ``Model`` (a ``tf.Module`` whose
    ``__call__`` takes one ``[1, 32, 32, 3]`` float32 input named ``img``; ``np``, ``tf`` and ``rng`` are there);
    ``module``/``function``: the rewrite (``quantized bytes -> (bytes, names)``)."""
    script = _SCRIPT.format(module=module, function=function, definition=textwrap.dedent(definition))
    done = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
