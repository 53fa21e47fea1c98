"""``edgematte convert`` as an ordered list of stages (reference, Lite, ONNX, TFLite, INT8 Lite, INT8 TFLite),
each taking the typed :class:`~edgematte.pipeline.context.Context` and returning the artefacts it recorded."""

from .context import ConvertOptions
from .run import convert

__all__ = ["ConvertOptions", "convert"]
