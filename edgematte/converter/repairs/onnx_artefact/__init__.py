"""Repairs of the published ONNX artefact alone, for ONNX Runtime's CPU kernels (one module each; see
``repairs/registry.py``). They run after the graph is complete: onnx2tf and the int8 quantizer read the graph
before them, so the TFLite and QDQ files are not touched. They may re-associate float sums; ``converter/onnx.py``
(:func:`~edgematte.converter.onnx.tune_onnx_artefact`) proves each rewritten graph within rounding in ONNX Runtime,
and the artefact's parity against the reference then holds it to the fp32 bound."""
