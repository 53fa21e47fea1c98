"""The models TensorFlow makes (worker side): full integer from a calibrated model, dynamic range, its float twin.

``tensorflow.lite.python.convert.mlir_quantize`` quantizes a calibrated model exactly as
``converter.convert()`` does (same MAD, bit for bit on the tiny test net) and takes
``denylisted_nodes`` / ``denylisted_ops``, the mechanism behind
``tf.lite.experimental.QuantizationDebugOptions`` (what TF 2.19 does with them: see
:mod:`edgematte.quant.tflite`).
"""

import contextlib
import os
import re
import sys
import tempfile
from typing import Sequence

_MLIR_ERROR = re.compile(r"error: (.*)")


@contextlib.contextmanager
def _stderr_copied(into: list):
    """Collect what native code writes to file descriptor 2 while the block runs (into ``into[0]``), and pass it
    on to the real stderr afterwards: MLIR reports why it refuses a model there, and raises a bare RuntimeError."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            into.append(text)
            sys.stderr.write(text)


def mlir_quantize(calibrated: bytes, io_dtype: str, keep_float_nodes: Sequence[str] = (),
                  keep_float_ops: Sequence[str] = (), numeric_verify: bool = False) -> bytes:
    """The int8 model from a calibrated one, as ``converter.convert()`` would quantize it. A refusal raises
    RuntimeError with MLIR's own reason (which it writes to stderr only)."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as tf_convert

    io_type = {"float32": tf.float32, "int8": tf.int8}[io_dtype]
    native = []
    try:
        with _stderr_copied(native):
            return tf_convert.mlir_quantize(calibrated, input_data_type=io_type, output_data_type=io_type,
                                            enable_numeric_verify=numeric_verify,
                                            denylisted_nodes=list(keep_float_nodes) or None,
                                            denylisted_ops=list(keep_float_ops) or None)
    except RuntimeError as e:  # the reason is on stderr, the exception says only "RuntimeError"
        found = _MLIR_ERROR.search("".join(native))
        if found is None:
            raise
        raise RuntimeError(f"TensorFlow's quantizer refused the model: {found.group(1)}") from e


def dynamic_range_model(saved_model_dir: str) -> bytes:
    """Dynamic-range model: int8 weights, float activations (no calibration data)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def float_model(saved_model_dir: str) -> bytes:
    """The float model of the same converter run as :func:`dynamic_range_model`, without its quantization: the
    dynamic-range model's op-for-op twin."""
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_saved_model(saved_model_dir).convert()
