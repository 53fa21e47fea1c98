"""Stage 5: Paddle Lite INT8 ``.nb`` per target (Paddle PTQ, per-channel weights), with the float fallback
ladder when the budget is missed (:func:`edgematte.quant.int8.paddle_lite_int8`).

A recurrent model (RVM) is calibrated on clip steps (every input fed by name, the states the fp32 reference
carried) and evaluated on held-out clips with the .nb's own states fed back; should Paddle's tools refuse it,
the manifest and console say so in one line and the conversion goes on."""

from typing import List

from ...core import parity as parity_lib
from ...core.manifest import Artefact
from ..context import Context, tensor_entries
from ..int8_setup import HELD_OUT, built_or_skipped, int8_state, record_int8

NAME = "int8_lite"


def applies(ctx: Context) -> bool:
    return ctx.options.int8 is not None and "lite" in ctx.formats


def run(ctx: Context) -> List[Artefact]:
    return built_or_skipped(ctx, lambda: _build(ctx, int8_state(ctx)), "Paddle Lite",
                            [f"model_{target}_int8.nb" for target in ctx.options.lite_targets])


def _build(ctx: Context, state) -> List[Artefact]:
    from ...quant.int8 import paddle_lite_int8

    records, x86_outputs = paddle_lite_int8(ctx.frozen.files.model.parent, ctx.work, ctx.out, ctx.options.lite_targets,
                                            state.evaluation, ctx.options.int8, ctx.step, threads=ctx.options.threads)
    state.x86_parity = parity_lib.compare(x86_outputs, state.reference, HELD_OUT)
    recorded = []
    for r in records:
        ctx.add_repairs(r["repairs"], r["path"].name)
        inputs, outputs = r["tensor_specs"]
        recorded.append(record_int8(
            ctx, r["path"], r["outputs"], r["numerics"], format="nb", target=r["target"], precision="int8",
            runtime="paddle_lite", layout="nchw", runs_on_host=r["runs_on_host"],
            extra={"quantization": r["ptq"], "kernels": r["kernels"]},
            io={"inputs": tensor_entries(inputs), "outputs": tensor_entries(outputs)}))
    return recorded

