"""Stage 6: TFLite INT8 from onnx2tf's SavedModel: full integer with float and int8 I/O, and dynamic range,
with the ranked keep-float search when the budget is missed (:func:`edgematte.quant.tflite_int8.build_tflite_int8`).
Each artefact's numerics are those of a fresh LiteRT run through the deployment profile."""

from pathlib import Path
from typing import List

from ...core.manifest import Artefact
from ..context import Context, tensor_entries
from ..int8_setup import int8_state, record_int8

NAME = "int8_tflite"


def applies(ctx: Context) -> bool:
    return ctx.options.int8 is not None and "tflite" in ctx.formats and ctx.saved_model is not None


def run(ctx: Context) -> List[Artefact]:
    from ...quant.tflite_int8 import build_tflite_int8
    from ...runtime.backends.litert import LiteRTBackend
    from ...runtime.matter import Matter

    state, opts, layout = int8_state(ctx), ctx.options.int8, ctx.options.layout
    evaluation = state.evaluation
    measured = {}

    def evaluate(path):
        matter = Matter(LiteRTBackend(path, threads=ctx.options.threads), ctx.profile, layout=layout,
                        input_hw=ctx.input_hw)
        outputs = [matter.run_tensor(x) for x in evaluation.inputs[layout]]
        measured[str(path)] = (outputs, matter)
        return evaluation.numerics(outputs)

    with ctx.step("TFLite INT8 (full integer, float and int8 I/O; dynamic range) with the accuracy budget"):
        records = build_tflite_int8(ctx.saved_model, evaluation.calibration["nhwc" if layout == "nhwc" else "nchw"],
                                    ctx.out, evaluate, budget_mad=opts.budget_mad, keep_float=tuple(opts.keep_float),
                                    dynamic_range=opts.dynamic_range, latency_runs=opts.latency_runs,
                                    threads=ctx.options.threads)
    recorded = []
    for r in records:
        path = Path(r["path"])
        outputs, matter = measured.get(str(path)) or (None, None)
        if outputs is None:
            numerics = evaluate(path)
            outputs, matter = measured[str(path)]
        else:
            numerics = r["numerics"]
        io = {"inputs": tensor_entries([matter.input_spec]), "outputs": tensor_entries([matter.output_spec])}
        recorded.append(record_int8(
            ctx, path, outputs, numerics, format="tflite", target="any", precision=r["precision"], runtime="litert",
            layout=layout, runs_on_host=True, io=io,
            extra={"quantization": {k: v for k, v in r.items() if k not in ("path", "numerics", "precision")}}))
    return recorded
