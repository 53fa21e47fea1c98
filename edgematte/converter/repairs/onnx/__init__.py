"""Repairs of paddle2onnx's ONNX graphs (one module each; see ``repairs/registry.py``), and ``graph.py``:
the small ONNX graph reading and editing helpers they share."""
