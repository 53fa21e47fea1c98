"""The conversion stages in the order they run. Each module has ``NAME``, ``applies(ctx) -> bool`` and
``run(ctx) -> list of Artefact`` (the artefacts it added to the manifest)."""

from . import int8_lite, int8_onnx, int8_tflite, lite, onnx, reference, tflite

STAGES = (reference, lite, onnx, tflite, int8_lite, int8_tflite, int8_onnx)

__all__ = ["STAGES"]
