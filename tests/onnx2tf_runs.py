"""A small ONNX graph through onnx2tf, with and without the ``onnx2tf_input`` repairs, against ONNX Runtime (the
repair tests' shared harness: each repair's test shows the misread without it and the right outputs with it)."""

from typing import Dict, Optional, Tuple

import numpy as np
import pytest


def tflite_against_onnx(model, tmp_path, name: str, feed: Dict[str, np.ndarray],
                        expected: Optional[Dict[str, np.ndarray]] = None) -> Tuple[dict, Dict[str, float], float]:
    """Convert ``model`` with :func:`convert_to_tflite` (fp32) and run both on ``feed`` (ONNX layout); returns
    ``(conversion info, {output: max abs of TFLite against ONNX Runtime}, largest ONNX output magnitude)``;
    ``expected`` (outputs by name, e.g. a float64 evaluation) replaces ONNX Runtime's outputs.
    Each tensor is fed and read in the layout the converter recorded for it; the ONNX file stays as it was."""
    import hashlib

    import onnx
    import onnxruntime

    from edgematte.converter.tflite import convert_to_tflite
    from edgematte.runtime.backends.litert import LiteRTBackend
    from edgematte.runtime.model_io import layout_to_onnx, match_tensors, onnx_to_layout

    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    info = convert_to_tflite(path, tmp_path / name, fp16=False)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha == info["onnx_sha256"]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    if expected is None:
        expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
    entry = info["files"]["fp32"]
    backend = LiteRTBackend(entry["path"], threads=1)
    order = match_tensors([i["name"] for i in entry["inputs"]], [s.name for s in backend.inputs], "inputs")
    got = backend.run_feeds([onnx_to_layout(feed[entry["inputs"][i]["onnx_name"]], entry["inputs"][i]["layout"])
                             for i in order])
    errors = {o["onnx_name"]: float(np.abs(layout_to_onnx(value, o["layout"]) - expected[o["onnx_name"]]).max())
              for o, value in zip(entry["outputs"], got)}
    return info, errors, max(float(np.abs(v).max()) for v in expected.values())


def plain_and_repaired(model, tmp_path, feed: Dict[str, np.ndarray],
                       expected: Optional[Dict[str, np.ndarray]] = None):
    """:func:`tflite_against_onnx` twice: with no ``onnx2tf_input`` repair registered, and with the registry's."""
    from edgematte.converter.repairs import registry
    from edgematte.converter.repairs.base import ONNX2TF_INPUT

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry.ORDER, ONNX2TF_INPUT, ())
        plain = tflite_against_onnx(model, tmp_path, "plain", feed, expected)
    return plain, tflite_against_onnx(model, tmp_path, "repaired", feed, expected)
