"""Repairs of the private ONNX copy onnx2tf reads (one module each; see ``repairs/registry.py``): they only
rewrite what onnx2tf mistranslates, compute the same outputs bit for bit (``converter/tflite.py`` proves it
in ONNX Runtime) and never touch the ONNX artefact."""
