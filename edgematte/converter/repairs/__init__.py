"""Graph repairs: one module per tool bug worked around, one signature, one registry.

``base.py`` is the protocol (:class:`~.base.Repair`, :class:`~.base.Match`, :class:`~.base.RepairContext`),
``registry.py`` the ordered list per kind (:func:`~.registry.repairs_for`, :func:`~.registry.apply_all`);
``paddle_program/`` holds the repairs of Paddle programs (before Paddle Lite's opt), ``onnx/`` those of
paddle2onnx's ONNX graphs, ``onnx2tf_input/`` those of the private ONNX copy onnx2tf reads (never the ONNX
artefact), ``onnx_artefact/`` those of the published ONNX artefact alone (for ONNX Runtime's kernels), ``tflite/``
those of the ``.tflite`` files. Layer: converter (may import edgematte.core, edgematte.runtime and converter
modules only).
"""
