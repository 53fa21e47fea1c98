"""Stage 3: ONNX (paddle2onnx plus the exact graph repairs, onnxsim), run with ONNX Runtime and compared.

The exported graph is the bridge the later stages read (onnx2tf for TFLite, the int8 quantizer for QDQ ONNX); it
stays in the work folder. The published ``model.onnx`` is that graph with the ``onnx_artefact`` repairs, which tune
it for ONNX Runtime's own kernels (:func:`~edgematte.converter.onnx.tune_onnx_artefact`) and touch nothing else.
"""

from typing import List

from ...core.manifest import Artefact
from ..context import Context, tensor_entries

NAME = "onnx"
ONNX_SUMMARY_KEYS = ("opset", "repairs", "normalizations", "normalization_check", "simplify")
BRIDGE_NAME = "bridge.onnx"


def applies(ctx: Context) -> bool:
    return "onnx" in ctx.formats or "tflite" in ctx.formats


def run(ctx: Context) -> List[Artefact]:
    from ...converter.onnx import export_onnx, tune_onnx_artefact
    from ...runtime.backends.onnxruntime import OnnxRuntimeBackend

    bridge, path = ctx.work / BRIDGE_NAME, ctx.out / "model.onnx"
    with ctx.step("paddle2onnx + exact repairs + onnxsim -> ONNX graph"):
        info = export_onnx(ctx.frozen.files.model.parent, bridge, name=path)  # errors name the file users know
    ctx.onnx_path = bridge
    ctx.add_repairs(info.get("applied_repairs"), path.name)  # the TFLite and QDQ files made from it carry them too
    if "onnx" not in ctx.formats:
        return []
    with ctx.step("repairs for ONNX Runtime -> model.onnx"):
        tuned = tune_onnx_artefact(bridge, path)
    ctx.add_repairs(tuned["applied_repairs"], path.name)
    with ctx.step("parity model.onnx (ONNX Runtime)"):
        backend = OnnxRuntimeBackend(path, threads=ctx.options.threads)
        outputs = ctx.run_cases(backend, "nchw", path.name)
        parity = ctx.compare(outputs)
    summary = dict({k: info[k] for k in ONNX_SUMMARY_KEYS}, runtime_repairs=tuned["records"],
                   runtime_repair_check=tuned["check"])
    artefact = ctx.record(path, outputs, parity, bound=ctx.bounds["fp32"], format="onnx", target="any",
                          precision="fp32", runtime="onnxruntime", layout="nchw",
                          inputs=tensor_entries(backend.inputs), outputs=tensor_entries(backend.outputs),
                          profile=ctx.profile.name, extra={"onnx": summary})
    return [artefact]
