"""Repairs of the ``.tflite`` files onnx2tf and TensorFlow's quantizer write (one module each; see
``repairs/registry.py``): exact rewrites of patterns LiteRT's XNNPACK delegate does not take, so that the op runs in
XNNPACK instead of TFLite's own single-threaded kernel, between two delegated parts. They only move data: the
rewritten model computes the same outputs bit for bit (``converter/tflite_repairs.py`` proves it in LiteRT before a
file is kept)."""
