"""One ONNX Runtime CPU session for the ``onnx_artefact`` repair tests: run a graph, optionally keeping the graph
ONNX Runtime optimized (``optimized_model_filepath``), which is where those tests read what it did with it."""

from typing import Dict, List

import numpy as np


def run_onnx(model, feed: Dict[str, np.ndarray], optimized=None, level=None) -> List[np.ndarray]:
    """``model``'s outputs on ``feed`` in ONNX Runtime's CPU provider, one thread; ``level`` is a
    ``GraphOptimizationLevel`` (default: all); with ``optimized`` (a path) the optimized graph is written there."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    if level is not None:
        options.graph_optimization_level = level
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feed)
