"""Stage 7: ONNX INT8 in QDQ form (``model_int8_qdq.onnx``) from the fp32 ONNX artefact, calibrated on the INT8
stages' shared samples, with the ranked keep-float search when the budget is missed
(:func:`edgematte.quant.onnx_int8.build_onnx_int8`). Its numerics are those of ONNX Runtime on the held-out images
through the deployment profile, as for every INT8 artefact.

A recurrent model (RVM) is calibrated on the clip steps (every input by name, the states the fp32 reference
carried) and evaluated on the held-out clips with its own states fed back; should ONNX Runtime's quantizer refuse
it, the manifest and console say so in one line and the conversion goes on."""

from pathlib import Path
from typing import List

from ...core.manifest import Artefact
from ..context import Context, tensor_entries
from ..int8_setup import built_or_skipped, int8_state, record_int8

NAME = "int8_onnx"
FP32_FILE = "model.onnx"


def applies(ctx: Context) -> bool:
    return ctx.options.int8 is not None and "onnx" in ctx.formats and ctx.onnx_path is not None


def run(ctx: Context) -> List[Artefact]:
    from ...quant.onnx_int8 import FILE_NAME

    return built_or_skipped(ctx, lambda: _build(ctx, int8_state(ctx)), "ONNX", [FILE_NAME])


def _build(ctx: Context, state) -> List[Artefact]:
    from ...quant.onnx_int8 import FILE_NAME, build_onnx_int8
    from ...runtime.backends.onnxruntime import OnnxRuntimeBackend

    opts, threads, evaluation = ctx.options.int8, ctx.options.threads, state.evaluation
    alpha_output = None
    if evaluation.recurrent:  # the ranking compares the alpha output, named as in the fp32 model
        fp32 = OnnxRuntimeBackend(ctx.onnx_path, threads=threads)
        alpha_output = fp32.outputs[evaluation.plan(fp32, "nchw").alpha_index].name
    measured = {}

    def evaluate(path):
        backend = OnnxRuntimeBackend(path, threads=threads)
        outputs = evaluation.run(backend, "nchw")
        measured[Path(path).name] = (outputs, backend)
        return evaluation.numerics(outputs)

    samples = "clip steps" if evaluation.recurrent else "images"
    with ctx.step(f"ONNX INT8 (QDQ: per-channel int8 weights, uint8 activations; {len(evaluation.calibration['nchw'])} "
                  f"calibration {samples}) with the accuracy budget"):
        record = build_onnx_int8(ctx.onnx_path, evaluation.calibration["nchw"], ctx.out / FILE_NAME, evaluate,
                                 algo=opts.algo, budget_mad=opts.budget_mad, keep_float=tuple(opts.keep_float),
                                 latency_runs=opts.latency_runs, threads=threads, work_dir=ctx.work / "int8_onnx",
                                 alpha_output=alpha_output)
    path = Path(record["path"])
    numerics = evaluate(path)  # the written file itself, fresh: the figures the manifest gives are its own
    outputs, backend = measured[path.name]
    # the QDQ model is made from model.onnx as written: the fp32 model's graph repairs are in it
    ctx.add_repairs([{k: v for k, v in r.items() if k != "artefact"} for r in ctx.manifest.repairs
                     if r.get("artefact") == FP32_FILE], path.name)
    quantization = {k: v for k, v in record.items() if k not in ("path", "numerics", "precision")}
    io = {"inputs": tensor_entries(backend.inputs), "outputs": tensor_entries(backend.outputs)}
    return [record_int8(ctx, path, outputs, numerics, format="onnx", target="any", precision="int8",
                        runtime="onnxruntime", layout="nchw", runs_on_host=True, io=io,
                        extra={"quantization": quantization})]
