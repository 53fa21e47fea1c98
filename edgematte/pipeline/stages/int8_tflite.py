"""Stage 6: TFLite INT8 from onnx2tf's SavedModel: full integer with float and int8 I/O, and dynamic range,
with the ranked keep-float search when the budget is missed (:func:`edgematte.quant.tflite_int8.build_tflite_int8`).
Each artefact's numerics are those of a fresh LiteRT run through the deployment profile.

A recurrent model (RVM) is calibrated on clip steps fed in the fp32 TFLite model's own input order and layouts
(states included) and evaluated on held-out clips, each int8 model carrying its own states. Its int8-I/O flavour
is not built: the runtime feeds a model with several inputs float tensors only. Should TensorFlow refuse the
model, the manifest and console say so in one line and the conversion goes on."""

from pathlib import Path
from typing import List

from ...converter.tflite import DEFAULT_FILE_NAMES
from ...core.manifest import Artefact
from ..context import Context, tensor_entries
from ..int8_setup import built_or_skipped, int8_state, record_int8, tensor_layouts, tflite_layouts

NAME = "int8_tflite"
RECURRENT_IO_NOTE = ("int8 I/O not built: the runtime feeds a model with several inputs (image and recurrent "
                     "states) float tensors")


def applies(ctx: Context) -> bool:
    return ctx.options.int8 is not None and "tflite" in ctx.formats and ctx.saved_model is not None


def run(ctx: Context) -> List[Artefact]:
    from ...converter.repairs.base import TFLITE
    from ...converter.tflite_repairs import repairs_in_file
    from ...quant.tflite_int8 import FILE_NAMES

    recurrent = int8_state(ctx).evaluation.recurrent
    artefacts = built_or_skipped(ctx, lambda: _build_recurrent(ctx) if recurrent else _run_per_frame(ctx), "TFLite",
                                 FILE_NAMES.values())
    # the INT8 models come from the SavedModel onnx2tf wrote from the repaired copy: the fp32 model's repairs of
    # that copy; and each file's own TFLite repairs, read from it
    fp32_repairs = [{k: v for k, v in r.items() if k != "artefact"} for r in ctx.manifest.repairs
                    if r.get("artefact") == DEFAULT_FILE_NAMES["fp32"] and r.get("kind") != TFLITE]
    for artefact in artefacts:
        ctx.add_repairs(fp32_repairs, artefact.path)
        ctx.add_repairs(repairs_in_file(ctx.out / artefact.path), artefact.path)
    return artefacts


def _run_per_frame(ctx: Context) -> List[Artefact]:
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


def _build_recurrent(ctx: Context) -> List[Artefact]:
    from ...core.errors import EdgematteError
    from ...quant.tflite_int8 import build_tflite_int8
    from ...runtime.backends.litert import LiteRTBackend

    state, opts, layout, threads = ctx.int8, ctx.options.int8, ctx.options.layout, ctx.options.threads
    evaluation, recorded_layouts = state.evaluation, tflite_layouts(ctx)
    fp32_entry = next((a for a in ctx.manifest.artefacts if a.format == "tflite" and a.precision == "fp32"), None)
    if fp32_entry is None or recorded_layouts is None:
        raise EdgematteError("no fp32 TFLite model recorded to take the input order and layouts from")
    if fp32_entry.parity.within_bound is False:  # int8 figures would measure the float conversion's error
        raise EdgematteError(f"the fp32 TFLite model itself misses its parity bound (max abs "
                             f"{fp32_entry.parity.max_abs:.2e} > {fp32_entry.parity.bound}), so int8 figures would "
                             "measure onnx2tf's error, not quantization's")
    fp32 = LiteRTBackend(ctx.out / fp32_entry.path, threads=threads)
    fp32_plan = evaluation.plan(fp32, layout, tensor_layouts(recorded_layouts, fp32, layout))
    names = [s.name for s in fp32.inputs]
    # every input by the TFLite signature name, in its own layout: the image and the reference's states
    calibration = [dict(zip(names, fp32_plan.feeds(sample, sample))) for sample in evaluation.calibration["nchw"]]
    fp32_io = [(s.name, tuple(s.shape)) for s in (*fp32.inputs, *fp32.outputs)]
    measured = {}

    def evaluate(path):
        backend = LiteRTBackend(path, threads=threads)
        io = [(s.name, tuple(s.shape)) for s in (*backend.inputs, *backend.outputs)]
        if sorted(io) != sorted(fp32_io):  # the outputs are renamed as onnx2tf names them: check it held
            raise EdgematteError(f"{path.name} has tensors {sorted(io)}, the fp32 TFLite model {sorted(fp32_io)}")
        layouts = tensor_layouts(recorded_layouts, backend, layout)
        outputs = evaluation.run(backend, layout, layouts)
        measured[str(path)] = (outputs, backend, layouts)
        return evaluation.numerics(outputs)

    with ctx.step(f"TFLite INT8 of the recurrent model ({len(calibration)} clip steps; full integer with float "
                  "I/O, dynamic range) with the accuracy budget on held-out clips"):
        records = build_tflite_int8(ctx.saved_model, calibration, ctx.out, evaluate, budget_mad=opts.budget_mad,
                                    keep_float=tuple(opts.keep_float), io_dtypes=("float32",),
                                    dynamic_range=opts.dynamic_range, latency_runs=opts.latency_runs,
                                    threads=threads, alpha_output=fp32.outputs[fp32_plan.alpha_index].name,
                                    output_names=[r["name"] for r in ctx.manifest.model.output_roles()])
    recorded = []
    for r in records:
        path = Path(r["path"])
        numerics = r["numerics"] if str(path) in measured else evaluate(path)
        outputs, backend, (in_layouts, out_layouts) = measured[str(path)]
        io = {"inputs": tensor_entries(backend.inputs, [{"layout": x} for x in in_layouts]),
              "outputs": tensor_entries(backend.outputs, [{"layout": x} for x in out_layouts])}
        quantization = {k: v for k, v in r.items() if k not in ("path", "numerics", "precision")}
        if r["precision"] == "int8":
            quantization["int8_io"] = RECURRENT_IO_NOTE
        recorded.append(record_int8(
            ctx, path, outputs, numerics, format="tflite", target="any", precision=r["precision"], runtime="litert",
            layout=layout, runs_on_host=True, io=io, extra={"quantization": quantization}))
    return recorded
