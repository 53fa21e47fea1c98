"""Stage 4: TFLite fp32 (and fp16) with onnx2tf, each run with LiteRT and compared. An fp16 model that was not
asked for is kept only when it meets its bound (seeded MODNet weights lose 0.07 in fp16); a zoo model known not
to survive fp16 skips it up front, and one that could not be made at all (onnx2tf killed for memory, then
TensorFlow alone too) is said so. With ``--int8`` onnx2tf's SavedModel is kept for the INT8 TFLite stage."""

from pathlib import Path
from typing import List

from ...core import console
from ...core.errors import EdgematteError
from ...core.manifest import Artefact
from ..context import Context, tensor_entries

NAME = "tflite"
ONNX2TF_SUMMARY_KEYS = ("onnx_sha256", "onnx2tf_version", "tensorflow_version", "wall_time_s", "repairs",
                        "repair_check")


def applies(ctx: Context) -> bool:
    return "tflite" in ctx.formats


def run(ctx: Context) -> List[Artefact]:
    from ...converter.tflite import convert_to_tflite
    from ...converter.tflite_repairs import repairs_in_file
    from ...runtime.backends.litert import LiteRTBackend

    layout = ctx.options.layout
    with ctx.step(f"onnx2tf -> TFLite ({layout})"):
        if ctx.options.int8 is not None:
            ctx.saved_model = ctx.work / "saved_model"
        # No log_path: on failure onnx2tf's log is kept outside OUT (which is discarded) and named in the error.
        info = convert_to_tflite(ctx.onnx_path, ctx.out, layout=layout, fp16=ctx.fp16,
                                 saved_model_dir=ctx.saved_model, name=str(ctx.out))
    summary = {k: v for k, v in info.items() if k in ONNX2TF_SUMMARY_KEYS}
    if info["recovered"]:
        console.info(f"    {info['recovered']['onnx2tf']}: the TFLite files were made from its complete SavedModel")
        summary["recovered"] = info["recovered"]
    if "fp16" in info["not_built"]:
        _fp16_not_built(ctx, info["not_built"]["fp16"])
    recorded = []
    for item in info["files"].values():
        path = Path(item["path"])
        precision = item["precision"]
        with ctx.step(f"parity {path.name} (LiteRT)"):
            backend = LiteRTBackend(path, threads=ctx.options.threads)
            outputs = ctx.run_cases(backend, layout, path.name, {"inputs": item["inputs"], "outputs": item["outputs"]})
            parity = ctx.compare(outputs, precision)
        if precision == "fp16" and ctx.options.fp16 is None and not ctx.within(parity, ctx.bounds["fp16"]):
            # fp16 by default only where it is measured to hold; asked for (--fp16), a miss fails the conversion
            _drop_fp16(ctx, path, parity)
            continue
        ctx.add_repairs(info.get("applied_repairs"), path.name)  # those of the ONNX copy onnx2tf read
        ctx.add_repairs(repairs_in_file(path), path.name)  # those of the file itself, read from it
        recorded.append(ctx.record(
            path, outputs, parity, bound=ctx.bounds.get(precision), format="tflite", target="any",
            precision=precision, runtime="litert", layout=layout,
            inputs=tensor_entries(backend.inputs, item["inputs"]),
            outputs=tensor_entries(backend.outputs, item["outputs"]), profile=ctx.profile.name,
            extra={"onnx2tf": summary}))
    return recorded


def _fp16_not_built(ctx: Context, why: str) -> None:
    """An fp16 TFLite that could not be made (onnx2tf and then TensorFlow died): fatal only when asked for."""
    if ctx.options.fp16:
        raise EdgematteError(f"{ctx.out}: the fp16 TFLite asked for (--fp16) could not be made: {why}")
    note = f"fp16 TFLite not built: {why}"
    ctx.manifest.extra["fp16_skipped"] = note
    console.info(f"    {note}")


def _drop_fp16(ctx: Context, path: Path, parity) -> None:
    """Remove a default fp16 TFLite that missed its bound, and say so in the manifest and on the console."""
    path.unlink()
    note = (f"fp16 TFLite measured max abs {parity.max_abs:.2e} against the reference (bound {ctx.bounds['fp16']}): "
            "this model's weights do not survive fp16, so it was not kept (--fp16 asks for it regardless)")
    ctx.manifest.extra["fp16_skipped"] = note
    console.info(f"    {note}")
