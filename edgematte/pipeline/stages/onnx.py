"""Stage 3: ONNX (paddle2onnx plus the exact graph repairs, onnxsim), run with ONNX Runtime and compared.

ONNX is also the bridge to TFLite: it is built whenever TFLite is asked for, and removed at the end when
ONNX itself was not (see :mod:`.tflite`).
"""

from typing import List

from ...core.manifest import Artefact
from ..context import Context, tensor_entries

NAME = "onnx"
ONNX_SUMMARY_KEYS = ("opset", "repairs", "normalizations", "normalization_check", "simplify")


def applies(ctx: Context) -> bool:
    return "onnx" in ctx.formats or "tflite" in ctx.formats


def run(ctx: Context) -> List[Artefact]:
    from ...converter.onnx import export_onnx
    from ...runtime.backends.onnxruntime import OnnxRuntimeBackend

    path = ctx.out / "model.onnx"
    with ctx.step("paddle2onnx + exact repairs + onnxsim -> model.onnx"):
        info = export_onnx(ctx.frozen.files.model.parent, path)
    ctx.onnx_path = path
    ctx.add_repairs(info.get("applied_repairs"), path.name)
    if "onnx" not in ctx.formats:
        return []
    with ctx.step("parity model.onnx (ONNX Runtime)"):
        backend = OnnxRuntimeBackend(path, threads=ctx.options.threads)
        outputs = ctx.run_cases(backend, "nchw", path.name)
        parity = ctx.compare(outputs)
    artefact = ctx.record(path, outputs, parity, bound=ctx.bounds["fp32"], format="onnx", target="any",
                          precision="fp32", runtime="onnxruntime", layout="nchw",
                          inputs=tensor_entries(backend.inputs), outputs=tensor_entries(backend.outputs),
                          profile=ctx.profile.name, extra={"onnx": {k: info[k] for k in ONNX_SUMMARY_KEYS}})
    return [artefact]
