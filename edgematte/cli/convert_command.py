"""``edgematte convert``: a model to every artefact, each checked against the reference."""

import click

from ..core import console
from .app import cli, csv_choices, threads_option


@cli.command()
@click.argument("model")
@click.option(
    "-o", "--out", required=True, type=click.Path(file_okay=False),
    help="Output folder (replaced only when the new one is complete, and only if edgematte wrote all it holds).",
)
@click.option(
    "--to", "formats", default="lite,onnx,tflite", show_default=True, callback=csv_choices(("lite", "onnx", "tflite")),
    help="Artefact formats.",
)
@click.option(
    "--lite-targets", default="arm,x86", show_default=True, callback=csv_choices(("arm", "x86", "opencl")),
    help="Paddle Lite targets.",
)
@click.option(
    "--input-shape", nargs=4, type=int, default=None, metavar="N C H W",
    help="Fixed input shape (default: deploy.yaml's, else the model's native size).",
)
@click.option(
    "--downsample-ratio", type=float, default=None, metavar="R",
    help="Recurrent models (RVM): the frame's downsampling for the encoder, frozen into the artefacts "
         "(default: the config's 0.25; PaddleSeg's infer.py uses min(512 / max(H, W), 1)).",
)
@click.option(
    "--constant", "constants", multiple=True, metavar="NAME=VALUE",
    help="A scalar model input to freeze into the artefacts as a constant; repeatable.",
)
@click.option(
    "--alpha-only", is_flag=True,
    help="Artefacts compute only the alpha (and a recurrent model's states): other outputs, such as RVM's "
         "foreground, leave the program with the work only they need.",
)
@click.option(
    "--fp16/--no-fp16", default=None,
    help="Also write an fp16 TFLite model (default: yes, "
         "except for models whose weights do not survive fp16, e.g. PP-HumanMatting).",
)
@click.option(
    "--layout", type=click.Choice(["nhwc", "nchw"]), default="nhwc", show_default=True,
    help="TFLite input/output layout.",
)
@click.option("--weights", type=click.Path(dir_okay=False), help="For a zoo MODEL name: official .pdparams checkpoint.")
@click.option("--seed", type=int, default=None, help="For a zoo MODEL name: seeded weights.")
@click.option(
    "--pretrained", is_flag=True,
    help="For a zoo MODEL name: the official checkpoint from the cache, fetched first if missing (see `zoo fetch`).",
)
@click.option(
    "--width", type=float, default=1.0, show_default=True,
    help="For a zoo MODEL name: channel width multiplier.",
)
@click.option(
    "--images", type=click.Path(exists=True, file_okay=False), default=None,
    help="Folder of photos for the parity checks (default: the bundled samples).",
)
@click.option(
    "--profile", default="android", show_default=True,
    help="Pre/post-processing profile recorded with the artefacts.",
)
@threads_option(help="CPU threads for the host runs (at most this machine's cores).")
@click.option(
    "--int8", is_flag=True,
    help="Also build INT8 artefacts (Lite int8 .nb, "
         "full-integer and dynamic-range TFLite, QDQ ONNX), each measured against fp32.",
)
@click.option(
    "--calib", type=click.Path(exists=True, file_okay=False), default=None,
    help="INT8: folder of calibration photos (default: built-in set).",
)
@click.option("--calib-count", type=int, default=None, help="INT8: number of calibration images (default 32).")
@click.option(
    "--algo", type=click.Choice(["avg", "abs_max", "hist", "mse", "KL"]), default="avg", show_default=True,
    help="INT8: Paddle PTQ activation-range algorithm (QDQ ONNX: ONNX Runtime's counterpart; it has none "
         "for mse).",
)
@click.option(
    "--budget-mad", type=float, default=0.02, show_default=True,
    help="INT8: max mean abs alpha difference vs fp32 on held-out images; "
         "each INT8 artefact keeps its most sensitive layers float until it holds (dynamic-range TFLite: "
         "the weights whose int8 rounding costs the most).",
)
@click.option(
    "--keep-float", multiple=True, metavar="LAYER",
    help="INT8: a layer (Paddle tensor / TFLite or ONNX node name) to keep in float; repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest summary as JSON on stdout.")
def convert(model, out, formats, lite_targets, input_shape, downsample_ratio, constants, alpha_only, fp16, layout,
            weights, seed, pretrained, width, images, profile, threads, int8, calib, calib_count, algo, budget_mad,
            keep_float, as_json):
    """Convert MODEL to Paddle Lite .nb, ONNX and TFLite, each proven against a checked reference.

    MODEL is a PaddleSeg/FastDeploy deploy folder, a .zip/.tar.gz of one, or a zoo name (ppmattingv2,
    humanmatting) with --pretrained, --weights or --seed. OUT gets the artefacts, manifest.json and report.md.
    """
    from ..pipeline import ConvertOptions
    from ..pipeline import convert as run_convert
    from ..pipeline.run import validate_options
    from ..quant.int8 import Int8Options

    if not int8 and (calib or calib_count or keep_float):
        raise click.UsageError("--calib, --calib-count and --keep-float need --int8")

    options = ConvertOptions(
        formats=formats, lite_targets=lite_targets, input_shape=input_shape, fp16=fp16, layout=layout,
        constants=_constants(constants, downsample_ratio), alpha_only=alpha_only,
        profile=profile, threads=threads, weights=weights, seed=seed, pretrained=pretrained, width=width,
        int8=Int8Options(calib=calib, calib_count=calib_count, algo=algo, budget_mad=budget_mad,
                         keep_float=keep_float) if int8 else None,
    )
    validate_options(options)  # a wrong option is one line before any photo is read
    if images:
        from ..quant.calibration import load_calibration_images

        loaded, report = load_calibration_images(images, minimum=1, purpose="parity", option="--images")
        options.images = dict(zip(report.used, loaded))
    manifest = run_convert(model, out, options)
    if as_json:
        artefacts = [dict({"path": a.path, "format": a.format, "target": a.target, "precision": a.precision,
                           "size_bytes": a.size_bytes, "parity": a.parity.to_dict()},
                          **({"numerics": a.numerics} if a.numerics is not None else {}))
                     for a in manifest.artefacts]
        console.emit_json({"out": str(out), "model": manifest.model.to_dict(), "artefacts": artefacts})
        return
    for a in manifest.artefacts:
        figure = "n/a" if a.parity.max_abs is None else f"{a.parity.max_abs:.2e}"
        mad = f"  MAD vs fp32 {a.numerics['mad']:.4f}" if a.numerics is not None else ""
        console.info(f"  {a.path:<24} {a.precision:<7} {a.size_bytes / 1e6:6.1f} MB  max abs vs reference {figure}{mad}"
                     + ("" if a.runs_on_host else " (not run here)"))
    console.info(f"wrote {out}/manifest.json and {out}/report.md")


def _constants(pairs, downsample_ratio):
    """``--constant NAME=VALUE`` and ``--downsample-ratio`` as ``{input name: value}`` (None when neither)."""
    constants = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            constants[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise click.BadParameter(f"{pair!r} is not NAME=NUMBER", param_hint="--constant")
    if downsample_ratio is not None:
        constants["downsample_ratio"] = downsample_ratio
    return constants or None
