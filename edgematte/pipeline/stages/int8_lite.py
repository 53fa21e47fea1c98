"""Stage 5: Paddle Lite INT8 ``.nb`` per target (Paddle PTQ, per-channel weights), with the float fallback
ladder when the budget is missed (:func:`edgematte.quant.int8.paddle_lite_int8`). When even the ladder misses
it, also a weights-only INT8 ``.nb`` per target (``model_<target>_int8_weights.nb``, precision ``int8_weights``:
int8 conv weights made float as Lite loads them, the costliest kept float until the budget holds;
:func:`edgematte.quant.int8.paddle_lite_weight_int8`): smaller files at fp32 speed, within the budget.

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
                            [f"model_{target}_int8{kind}.nb" for target in ctx.options.lite_targets
                             for kind in ("", "_weights")])


def _build(ctx: Context, state) -> List[Artefact]:
    from ...quant.int8 import paddle_lite_int8, paddle_lite_weight_int8

    frozen_dir, options = ctx.frozen.files.model.parent, ctx.options.int8
    records, x86_outputs = paddle_lite_int8(frozen_dir, ctx.work, ctx.out, ctx.options.lite_targets,
                                            state.evaluation, options, ctx.step, threads=ctx.options.threads)
    state.x86_parity = parity_lib.compare(x86_outputs, state.reference, HELD_OUT)
    recorded = [_record(ctx, r, "int8", {"quantization": r["ptq"]}) for r in records]
    if records and records[0]["numerics"]["mad"] > options.budget_mad:
        weights, x86_weights_outputs = paddle_lite_weight_int8(frozen_dir, ctx.work, ctx.out, ctx.options.lite_targets,
                                                               state.evaluation, options, ctx.step,
                                                               threads=ctx.options.threads)
        host = parity_lib.compare(x86_weights_outputs, state.reference, HELD_OUT)
        recorded += [_record(ctx, r, "int8_weights", {"quantization": r["weights"]}, host) for r in weights]
    return recorded


def _record(ctx: Context, r: dict, precision: str, extra: dict, host_parity=None) -> Artefact:
    ctx.add_repairs(r["repairs"], r["path"].name)
    inputs, outputs = r["tensor_specs"]
    return record_int8(ctx, r["path"], r["outputs"], r["numerics"], format="nb", target=r["target"],
                       precision=precision, runtime="paddle_lite", layout="nchw", runs_on_host=r["runs_on_host"],
                       extra=dict(extra, kernels=r["kernels"]), host_parity=host_parity,
                       io={"inputs": tensor_entries(inputs), "outputs": tensor_entries(outputs)})

