"""onnx2tf's TFLite step, redone in a process of its own from the SavedModel onnx2tf wrote.

onnx2tf writes its SavedModel first and then, in the same process, converts it to TFLite float32 and float16.
That process still holds the Keras model and onnx2tf's per-op check tensors, so on a deep net at full size it can
be killed for memory after its SavedModel is complete (MODNet-ResNet50_vd: 14.9 GB at 288x480 in the float16
step, 18.2 GB at 512x512 in the float32 one; docs/toolchain.md, onnx2tf). A fresh process holding only the
SavedModel needs a fraction of that. The converter settings are onnx2tf's own (``onnx2tf.py``: builtin ops plus
select TF ops; float16: ``Optimize.DEFAULT`` with float16 as the supported type), so the file is the one onnx2tf
would have written up to TensorFlow's tracing of the SavedModel instead of the Keras model; like any artefact it
is then run and compared against the reference before it is kept.

Run as ``python -c "from edgematte.converter.saved_model_tflite import main; main()" SAVED_MODEL PRECISION OUT
[OUTPUT_NAME ...]`` (what :func:`convert_saved_model` does).
"""

import re
import sys
from pathlib import Path
from typing import Sequence

from ..core.errors import EdgematteError
from ..core.tools import clean_log, died_with, last_error_line, run_package_worker

PRECISIONS = ("fp32", "fp16")
_WORKER_CODE = "from edgematte.converter.saved_model_tflite import main; main()"


def convert_saved_model(saved_model_dir, precision: str, out: Path, output_names: Sequence[str],
                        timeout_s: float) -> Path:
    """Write the ``precision`` TFLite model of ``saved_model_dir`` to ``out`` in a subprocess, its signature
    outputs named ``output_names`` (in the SavedModel's output order). Returns ``out``.

    Raises :class:`EdgematteError` (one line, naming a signal when the process died of one) when the process
    fails or writes nothing; ``out`` then does not exist.
    """
    if precision not in PRECISIONS:
        raise EdgematteError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    out = Path(out)
    done = run_package_worker(_WORKER_CODE, [Path(saved_model_dir).resolve(), precision, out.resolve(), *output_names],
                              what=f"TFLite {precision} from the SavedModel", timeout_s=timeout_s, cwd=out.parent)
    if done.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        out.unlink(missing_ok=True)
        how = died_with(done.returncode) or f"exited with {done.returncode}"
        raise EdgematteError(f"TFLite {precision} from the SavedModel {how}: {last_error_line(clean_log(done.output))}")
    return out


def tflite_bytes(saved_model_dir: str, precision: str) -> bytes:
    """The ``precision`` TFLite model of ``saved_model_dir`` with onnx2tf's converter settings (worker side)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def rename_outputs(model: bytes, names: Sequence[str]) -> bytes:
    """``model`` with its signature outputs ``output_0``... ``output_{n-1}`` (TensorFlow's names for a SavedModel's
    outputs) renamed ``names[0]``... ``names[n-1]``; a signature named otherwise is left as it is (worker side)."""
    from tensorflow.lite.tools import flatbuffer_utils

    if not names:
        return model
    parsed = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    renamed = False
    for signature in parsed.signatureDefs or []:
        keys = [o.name.decode() if isinstance(o.name, bytes) else str(o.name) for o in signature.outputs]
        found = [re.fullmatch(r"output_(\d+)", key) for key in keys]
        if not all(found) or sorted(int(m.group(1)) for m in found) != list(range(len(names))):
            continue
        for output, match in zip(signature.outputs, found):
            output.name = names[int(match.group(1))]
        renamed = True
    return bytes(flatbuffer_utils.convert_object_to_bytearray(parsed)) if renamed else model


def main() -> None:
    saved_model_dir, precision, out, *names = sys.argv[1:]
    data = rename_outputs(tflite_bytes(saved_model_dir, precision), names)
    partial = Path(out + ".part")
    partial.write_bytes(data)
    partial.replace(out)  # a process killed mid-write leaves no file the caller could take for a model
