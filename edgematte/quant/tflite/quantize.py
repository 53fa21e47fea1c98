"""The models TensorFlow makes (worker side): full integer from a calibrated model, dynamic range, its float twin.

``tensorflow.lite.python.convert.mlir_quantize`` quantizes a calibrated model exactly as
``converter.convert()`` does (same MAD, bit for bit on the tiny test net) and takes
``denylisted_nodes`` / ``denylisted_ops``, the mechanism behind
``tf.lite.experimental.QuantizationDebugOptions`` (what TF 2.19 does with them: see
:mod:`edgematte.quant.tflite`).
"""

from typing import Sequence


def mlir_quantize(calibrated: bytes, io_dtype: str, keep_float_nodes: Sequence[str] = (),
                  keep_float_ops: Sequence[str] = (), numeric_verify: bool = False) -> bytes:
    """The int8 model from a calibrated one, as ``converter.convert()`` would quantize it."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as tf_convert

    io_type = {"float32": tf.float32, "int8": tf.int8}[io_dtype]
    return tf_convert.mlir_quantize(calibrated, input_data_type=io_type, output_data_type=io_type,
                                    enable_numeric_verify=numeric_verify,
                                    denylisted_nodes=list(keep_float_nodes) or None,
                                    denylisted_ops=list(keep_float_ops) or None)


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
