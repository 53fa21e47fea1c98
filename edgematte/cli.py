"""The ``edgematte`` command line: one small function per command, each calling the library.

Errors the user can fix (:class:`edgematte.core.errors.EdgematteError`) print one line and exit non-zero;
usage mistakes exit 2; anything else is a bug and prints a traceback only with ``--debug``.
"""

import os
import sys

import click

from . import __version__
from .core import console
from .core.errors import EdgematteError

_debug = {"on": False}


def _print_report_and_exit(report, as_json: bool) -> None:
    """A verification report (``as_dict``, ``summary_lines``, ``exit_code``) to stdout; exit with its code."""
    if as_json:
        console.emit_json(report.as_dict())
    else:
        for line in report.summary_lines():
            click.echo(line)
    if report.exit_code:
        sys.exit(report.exit_code)




@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110, "terminal_width": 110})
@click.version_option(__version__, "--version", prog_name="edgematte")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings, errors and requested output.")
def cli(debug, quiet):
    """edgematte: PaddleSeg portrait matting models on phones and ARM boards, with measured proof.

    Typical flow: `edgematte convert ppmattingv2 --seed 0 --int8 -o out/` then
    `edgematte matte photo.jpg --model out/ -o mattes/` and `edgematte bench out/`.
    """
    _debug["on"] = debug
    console.set_quiet(quiet)


# ------------------------------------------------------------------------------------------ zoo
@cli.group()
def zoo():
    """List the built-in official architectures and inspect their layouts."""


@zoo.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def zoo_list(as_json):
    """List the models edgematte can build."""
    from .zoo.registry import MODELS

    rows = [
        {"name": s.name, "config": s.config, "native_input": list(s.native_hw), "description": s.description}
        for s in MODELS.values()
    ]
    if as_json:
        console.emit_json(rows)
        return
    for r in rows:
        h, w = r["native_input"]
        click.echo(f"{r['name']:<14} {r['config']:<30} {h}x{w}  {r['description']}")


@zoo.command("info")
@click.argument("name")
@click.option("--width", type=float, default=1.0, show_default=True, help="Channel width multiplier (<1: tiny test variants).")
@click.option("--state-dict", "state_dict", is_flag=True, help="Print the checkpoint layout as key<TAB>shape<TAB>dtype lines.")
@click.option("--input-size", nargs=2, type=int, default=None, metavar="H W", help="Size for the FLOPs count (default: native).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def zoo_info(name, width, state_dict, input_size, as_json):
    """Input size, transforms, parameter count, FLOPs and outputs of model NAME."""
    from .zoo import info as zoo_info_lib
    from .zoo.registry import get_model_spec
    from .zoo.weights import format_layout

    spec = get_model_spec(name)
    if state_dict:
        click.echo(format_layout(zoo_info_lib.model_layout(spec, width)), nl=False)
        return
    facts = zoo_info_lib.describe(spec, width=width, input_hw=tuple(input_size) if input_size else None)
    if as_json:
        console.emit_json(facts)
        return
    click.echo(zoo_info_lib.format_facts(facts))


@zoo.command("check-weights")
@click.argument("name")
@click.argument("weights", type=click.Path(dir_okay=False))
@click.option("--width", type=float, default=1.0, show_default=True, help="Channel width multiplier of the model.")
def zoo_check_weights(name, weights, width):
    """Report missing, unexpected and mis-shaped keys of WEIGHTS (.pdparams) for model NAME."""
    from .zoo import info as zoo_info_lib
    from .zoo.registry import get_model_spec
    from .zoo.weights import check_layout, read_pdparams

    spec = get_model_spec(name)
    state = read_pdparams(weights)
    check = check_layout(zoo_info_lib.model_layout(spec, width), state)
    for key in check.missing:
        click.echo(f"missing\t{key}")
    for key in check.unexpected:
        click.echo(f"unexpected\t{key}")
    for key, want, got in check.misshaped:
        click.echo(f"mis-shaped\t{key}\texpects {list(want)}\tfile has {list(got)}")
    if not check.ok:
        raise EdgematteError(f"{weights}: {check.summary()}")
    console.info(f"{weights}: {check.summary()}")


# ------------------------------------------------------------------------------------------ export
@cli.command()
@click.argument("model")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Deploy folder to write.")
@click.option("--weights", type=click.Path(dir_okay=False), help="Official .pdparams checkpoint (read safely, no code runs).")
@click.option("--seed", type=int, default=None, help="Seeded weights (the project-wide formula) instead of --weights.")
@click.option("--width", type=float, default=1.0, show_default=True, help="Channel width multiplier (<1: tiny test variants).")
@click.option("--input-shape", nargs=4, type=int, default=None, metavar="N C H W", help="Fix the input shape (default: dynamic [None,3,None,None]).")
def export(model, out, weights, seed, width, input_shape):
    """Export a zoo MODEL to a PaddleSeg-style deploy folder (model.pdmodel, model.pdiparams, deploy.yaml)."""
    from .zoo.export import export_deploy_folder

    folder = export_deploy_folder(model, out, weights=weights, seed=seed, width=width, input_shape=input_shape)
    console.info(f"wrote {folder}")


# ------------------------------------------------------------------------------------------ not yet built
def _csv(choices):
    def parse(ctx, param, value):
        items = [v.strip().lower() for v in value.split(",") if v.strip()] if value else []
        bad = [v for v in items if v not in choices]
        if bad:
            raise click.BadParameter(f"{', '.join(bad)} (choose from {', '.join(choices)})")
        return items

    return parse


@cli.command()
@click.argument("model")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output folder (replaced only when the new one is complete).")
@click.option("--to", "formats", default="lite,onnx,tflite", show_default=True, callback=_csv(("lite", "onnx", "tflite")), help="Artefact formats.")
@click.option("--lite-targets", default="arm,x86", show_default=True, callback=_csv(("arm", "x86", "opencl")), help="Paddle Lite targets.")
@click.option("--input-shape", nargs=4, type=int, default=None, metavar="N C H W", help="Fixed input shape (default: deploy.yaml's, else the model's native size).")
@click.option("--fp16/--no-fp16", default=None, help="Also write an fp16 TFLite model (default: yes, except for models whose weights do not survive fp16, e.g. PP-HumanMatting).")
@click.option("--layout", type=click.Choice(["nhwc", "nchw"]), default="nhwc", show_default=True, help="TFLite input/output layout.")
@click.option("--weights", type=click.Path(dir_okay=False), help="For a zoo MODEL name: official .pdparams checkpoint.")
@click.option("--seed", type=int, default=None, help="For a zoo MODEL name: seeded weights.")
@click.option("--width", type=float, default=1.0, show_default=True, help="For a zoo MODEL name: channel width multiplier.")
@click.option("--images", type=click.Path(exists=True, file_okay=False), default=None, help="Folder of photos for the parity checks (default: the bundled samples).")
@click.option("--profile", default="android", show_default=True, help="Pre/post-processing profile recorded with the artefacts.")
@click.option("--threads", type=int, default=2, show_default=True, help="CPU threads for the host runs.")
@click.option("--int8", is_flag=True, help="Also build INT8 artefacts (Lite int8 .nb, full-integer and dynamic-range TFLite), each measured against fp32.")
@click.option("--calib", type=click.Path(exists=True, file_okay=False), default=None, help="INT8: folder of calibration photos (default: built-in set).")
@click.option("--calib-count", type=int, default=None, help="INT8: number of calibration images (default 32).")
@click.option("--algo", type=click.Choice(["avg", "abs_max", "hist", "mse", "KL"]), default="avg", show_default=True, help="INT8: Paddle PTQ activation-range algorithm.")
@click.option("--budget-mad", type=float, default=0.02, show_default=True, help="INT8: max mean abs alpha difference vs fp32 on held-out images; TFLite keeps the most sensitive layers float until it holds.")
@click.option("--keep-float", multiple=True, metavar="LAYER", help="INT8: a layer (Paddle tensor / TFLite node name) to keep in float; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest summary as JSON on stdout.")
def convert(model, out, formats, lite_targets, input_shape, fp16, layout, weights, seed, width, images, profile, threads,
            int8, calib, calib_count, algo, budget_mad, keep_float, as_json):
    """Convert MODEL to Paddle Lite .nb, ONNX and TFLite, each proven against a checked reference.

    MODEL is a PaddleSeg/FastDeploy deploy folder, a .zip/.tar.gz of one, or a zoo name (ppmattingv2,
    humanmatting) with --seed or --weights. OUT gets the artefacts, manifest.json and report.md.
    """
    from .pipeline import ConvertOptions
    from .pipeline import convert as run_convert
    from .quant.int8 import Int8Options

    if not int8 and (calib or calib_count or keep_float):
        raise click.UsageError("--calib, --calib-count and --keep-float need --int8")

    photos = None
    if images:
        from .quant.calibration import load_calibration_images

        loaded, report = load_calibration_images(images, minimum=1)
        photos = dict(zip(report.used, loaded))
    manifest = run_convert(
        model,
        out,
        ConvertOptions(
            formats=formats, lite_targets=lite_targets, input_shape=input_shape, fp16=fp16, layout=layout,
            profile=profile, images=photos, threads=threads, weights=weights, seed=seed, width=width,
            int8=Int8Options(calib=calib, calib_count=calib_count, algo=algo, budget_mad=budget_mad,
                             keep_float=keep_float) if int8 else None,
        ),
    )
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


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output folder (keeps the inputs' relative paths).")
@click.option("--model", required=True, type=click.Path(exists=True), help="A conversion's folder or its manifest.json.")
@click.option("--artefact", default=None, help="Artefact path in the manifest (default: the preferred host-runnable one).")
@click.option("--background", default=None, help="Composite over an image file, a colour (#00b140, 0,177,64, green) or 'blur'.")
@click.option("--save", default=None, help="Comma-separated: alpha, rgba, composite (default: alpha, plus composite with --background).")
@click.option("--fg-estimate", is_flag=True, help="Estimate foreground colours (pymatting's multilevel method) for rgba/composite.")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
def matte(inputs, out, model, artefact, background, save, fg_estimate, threads, as_json):
    """Matte images, folders (recursive) or videos with a converted model: alpha, RGBA or composite.

    A bad file is reported and skipped; the exit status is 1 if any input failed.
    """
    from .runtime.batch import matte_inputs, parse_background, parse_save
    from .runtime.matter import Matter

    matter = Matter.from_manifest(model, artefact=artefact, threads=threads)
    report = matte_inputs(list(inputs), out, matter,
                          background=parse_background(background) if background else None,
                          save=parse_save(save) if save else None, fg_estimate=fg_estimate)
    if as_json:
        console.emit_json(report.as_dict())
    console.info(report.summary())
    if report.exit_code:
        sys.exit(report.exit_code)


def _zoo_boundary_share(manifest_path) -> float:
    """For manifests written before the converter recorded it: the zoo's boundary-pixel share of the model."""
    from .core.manifest import Manifest
    from .zoo.registry import get_model_spec

    try:
        return get_model_spec(Manifest.read(manifest_path).model.name).boundary_pixel_share
    except EdgematteError:  # a model from outside the zoo: continuous unless the manifest says otherwise
        return 0.0


@cli.command()
@click.argument("manifest", type=click.Path(exists=True))
@click.option("--images", type=click.Path(exists=True), default=None, help="Photos to check on (default: the bundled samples).")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the verification report as JSON.")
def verify(manifest, images, threads, as_json):
    """Run every artefact this host can run through its profile and compare it with the reference.

    Exits 1 if any artefact is beyond its threshold (its manifest parity bound, or its INT8 budget).
    """
    from .runtime.verify import verify_manifest

    report = verify_manifest(manifest, images_dir=images, threads=threads,
                             default_boundary_share=_zoo_boundary_share(manifest))
    _print_report_and_exit(report, as_json)


@cli.group()
def quant():
    """INT8 accuracy tools: evaluate any artefact in the matting metrics (SAD, MSE, Grad, Conn)."""


@quant.command("eval")
@click.argument("manifest", type=click.Path(exists=True))
@click.option("--artefact", default=None, help="Artefact path in the manifest (default: the preferred host-runnable one).")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False), help="Folder of images (recursive).")
@click.option("--gt", type=click.Path(exists=True, file_okay=False), default=None, help="Folder of ground-truth alpha mattes, same relative paths as --data.")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def quant_eval(manifest, artefact, data, gt, threads, as_json):
    """MAD, max, share off by > 8/255, SAD, MSE, Grad, Conn of an artefact against fp32 (and ground truth)."""
    from .quant.evaluate import evaluate_artefact

    result = evaluate_artefact(manifest, artefact, data, gt, threads=threads)
    if as_json:
        console.emit_json(result)
        return
    click.echo(f"{result['artefact']} ({result['precision']}) on {result['images']} images")
    for key, label in (("vs_fp32", f"vs {result['vs_fp32']['reference']}"), ("vs_ground_truth", "vs ground truth")):
        if key in result:
            n = result[key]
            click.echo(f"  {label}: MAD {n['mad']:.4f}  max {n['max_abs']:.3f}  >8/255 {n['frac_over_8_255']:.2%}  "
                       f"SAD {n['sad']:.2f}  MSE {n['mse']:.5f}  Grad {n['grad']:.2f}  Conn {n['conn']:.2f}")


def _size(ctx, param, value):
    try:
        w, h = (int(v) for v in value.lower().split("x"))
        assert w > 0 and h > 0
        return w, h
    except (ValueError, AssertionError):
        raise click.BadParameter(f"{value!r} is not WxH (e.g. 1920x1080)") from None


def _ints(ctx, param, value):
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
        assert items and min(items) > 0
        return items
    except (ValueError, AssertionError):
        raise click.BadParameter(f"{value!r} is not a list of positive integers (e.g. 1,2,4)") from None


@cli.command()
@click.argument("manifest", type=click.Path(exists=True))
@click.option("--target", default="local", show_default=True, help="local | ssh://user@host[:port] | adb:SERIAL | qemu:CPU")
@click.option("--threads", default="1,2", show_default=True, callback=_ints, help="Thread counts to try.")
@click.option("--artefacts", default=None, help="Comma-separated artefact paths (default: every one the target runs; 'reference' = Paddle Inference).")
@click.option("--runs", type=click.IntRange(1), default=20, show_default=True, help="Timed runs per configuration.")
@click.option("--warmup", type=click.IntRange(0), default=3, show_default=True, help="Untimed runs first.")
@click.option("--size", default="1920x1080", show_default=True, callback=_size, help="End-to-end input image size WxH.")
@click.option("-o", "--out", type=click.Path(file_okay=False), default=None, help="Report folder (default: MANIFEST_DIR/bench/TARGET).")
@click.option("--json", "as_json", is_flag=True, help="Print bench.json to stdout.")
@click.option("--adb-benchmark-model", type=click.Path(), envvar="EDGEMATTE_ADB_BENCHMARK_MODEL", default=None, help="adb: TFLite's benchmark_model built for the phone, runs the .tflite artefacts (default: $EDGEMATTE_ADB_BENCHMARK_MODEL).")
@click.option("--adb-benchmark-bin", type=click.Path(), envvar="EDGEMATTE_ADB_BENCHMARK_BIN", default=None, help="adb: Paddle Lite's benchmark_bin (same version as the converter's paddlelite), runs the arm/opencl .nb artefacts (default: $EDGEMATTE_ADB_BENCHMARK_BIN).")
def bench(manifest, target, threads, artefacts, runs, warmup, size, out, as_json, adb_benchmark_model, adb_benchmark_bin):
    """Benchmark latency and memory of a conversion's artefacts on the host, an ARM board, Android or qemu.

    Each configuration (artefact x threads) runs in a fresh process; reports: bench.json, bench.md, bench.png.
    On adb:SERIAL the phone runs the benchmark tools you give (--adb-benchmark-model / --adb-benchmark-bin):
    model latency and memory only; an artefact without its tool, or one no phone tool runs (.onnx, x86 .nb),
    is reported as a failed configuration and the others are still written.
    """
    from .bench.session import benchmark

    doc = benchmark(manifest, target=target, threads=threads,
                    artefacts=[a.strip() for a in artefacts.split(",")] if artefacts else None,
                    runs=runs, warmup=warmup, size=size, out=out,
                    adb_tools={"tflite": adb_benchmark_model, "nb": adb_benchmark_bin})
    if as_json:
        console.emit_json({k: v for k, v in doc.items() if k != "_dir"})
    console.info(f"wrote {doc['_dir']}/bench.md, bench.json, bench.png")


# `bench MANIFEST` takes a positional argument, so it cannot also be a group with a `merge` subcommand.
@cli.command("bench-merge")
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Folder for the merged bench.json, bench.md, bench.png.")
@click.option("--json", "as_json", is_flag=True, help="Print the merged bench.json to stdout.")
def bench_merge(reports, out, as_json):
    """Merge `edgematte bench` reports (REPORT_DIR or bench.json each) from several targets into one table.

    One row per target, artefact and thread count; emulated (qemu) timings get their own table and plot panel.
    """
    from .bench.report import merge_reports

    doc = merge_reports(reports, out)
    if as_json:
        console.emit_json(doc)
    console.info(f"wrote {out}/bench.md, bench.json, bench.png ({len(doc['sources'])} reports, {len(doc['results'])} rows)")


@cli.group()
def device():
    """Android and ARM devices: verify on a phone over adb, prepare an arm64 root for qemu."""


@device.command("verify")
@click.option("--serial", envvar="ANDROID_SERIAL", default=None, help="Device serial from 'adb devices -l' (default: $ANDROID_SERIAL, else the only attached device).")
@click.option("--manifest", required=True, type=click.Path(exists=True), help="A conversion's folder or its manifest.json.")
@click.option("--images", type=click.Path(exists=True), default=None, help="Photos to check on, a folder (recursive) or one file (default: the bundled samples).")
@click.option("-o", "--out", type=click.Path(file_okay=False), default=None, help="Report folder (default: MANIFEST_DIR/device-verify/SERIAL-ARTEFACT).")
@click.option("--artefact", default=None, help="Artefact path or file name (default: the manifest's first phone artefact: .tflite or arm/opencl .nb).")
@click.option("--accelerator", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True, help="LiteRT CPU (XNNPACK) or GPU delegate; Paddle Lite runs on its artefact's target.")
@click.option("--threads", type=click.IntRange(1), default=4, show_default=True, help="Threads on the device (and for this host's runs).")
@click.option("--repeats", type=click.IntRange(1), default=3, show_default=True, help="Timed inferences per image on the device (the median is reported).")
@click.option("--warmup", type=click.IntRange(0), default=1, show_default=True, help="Untimed inferences per image first.")
@click.option("--timeout", type=click.FloatRange(1), default=600, show_default=True, help="Seconds to wait for the app's DONE marker.")
@click.option("--json", "as_json", is_flag=True, help="Print report.json to stdout.")
def device_verify(serial, manifest, images, out, artefact, accelerator, threads, repeats, warmup, timeout, as_json):
    """Run the Android app's verification mode on a phone over adb and compare with the Python runtime.

    Needs the app installed (android_demo/README.md) and the real adb client. Writes report.md,
    report.json and the device's raw output to the report folder; exits 1 when the device's alphas
    are beyond the artefact's threshold or its model input differs from the Python profile's.
    """
    from .device.android_verify import verify_on_device

    report = verify_on_device(manifest, images_dir=images, serial=serial, out_dir=out, artefact=artefact,
                              accelerator=accelerator, threads=threads, warmup=warmup, repeats=repeats, timeout=timeout)
    _print_report_and_exit(report, as_json)


@device.command("arm-check")
@click.argument("manifest", type=click.Path(exists=True))
@click.option("--cpu", default="cortex-a72", show_default=True, help="Emulated core (qemu -cpu name of a real core; 'max' is refused).")
@click.option("--artefacts", default=None, help="Comma-separated .tflite artefacts (default: every one in the manifest).")
@click.option("--kernels", type=click.Choice(["default", "builtin", "reference"]), default="default", show_default=True,
              help="LiteRT kernels on both sides: default (XNNPACK), builtin (optimized, no XNNPACK) or reference (plain C++: must agree exactly).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def device_arm_check(manifest, cpu, artefacts, kernels, as_json):
    """Run TFLite artefacts on an emulated ARM CPU (qemu) and on this host with the same input; compare.

    The correctness check for ARM kernels when no board is at hand (`device arm-rootfs` first; emulation
    is 50-250x slower than the real CPU). Exits 1 when an output differs beyond its limit: 1e-5 for float
    models, 1e-3 for dynamic-range ones; for int8 outputs a few steps with optimized kernels, none with
    reference kernels.
    """
    from .device.arm_check import arm_verdict, compare_with_host
    from .core.manifest import read_manifest

    names = [a for a in artefacts.split(",") if a] if artefacts else None
    reports = compare_with_host(read_manifest(manifest), names, cpu=cpu, kernels=kernels)
    verdicts = [arm_verdict(r) for r in reports]
    if as_json:
        console.emit_json([{**{k: v for k, v in r.items() if k not in ("host", "emulated")}, "passed": ok, "verdict": why}
                           for r, (ok, why) in zip(reports, verdicts)])
    else:
        for r, (ok, why) in zip(reports, verdicts):
            click.echo(f"{r['artefact']:<24} {'ok ' if ok else 'FAIL'} {cpu} vs x86: {why}")
    failed = [r["artefact"] for r, (ok, _) in zip(reports, verdicts) if not ok]
    if failed:
        raise EdgematteError(f"{manifest}: {', '.join(failed)} differ on the emulated {cpu} beyond the limits")


@device.command("arm-rootfs")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Where to build and keep it (default: $EDGEMATTE_ARM_ROOTFS or ~/.cache/edgematte/arm64-rootfs).")
@click.option("--mirror", default=None, help="Debian mirror (default: $EDGEMATTE_DEBIAN_MIRROR or deb.debian.org).")
@click.option("--force", is_flag=True, help="Rebuild even if the cached one is current.")
def device_arm_rootfs(cache_dir, mirror, force):
    """Prepare and cache an arm64 root file system for qemu emulation (about 30 s and 360 MB, once)."""
    from .device.qemu import rootfs_location
    from .device.rootfs import prepare_arm_rootfs

    click.echo(str(prepare_arm_rootfs(rootfs_location(cache_dir), mirror=mirror, force=force, log=console.info)))


@cli.group()
def runtime():
    """Runtime tools: golden vectors shared with the Android app."""


@runtime.command("samples")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Folder to write the photos to.")
def runtime_samples(out):
    """Write the bundled sample photos (public-domain, from scikit-image) as PNG files."""
    from pathlib import Path

    from .runtime.imageio import write_image
    from .core.samples import sample_photos

    for name, rgb in sample_photos().items():
        write_image(Path(out) / f"{name}.png", rgb)
    console.info(f"wrote {len(sample_photos())} photos to {out}")


@runtime.command("vectors")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Folder for index.json and the .npy files.")
@click.option("--model", default=None, help="Model file, converter folder or manifest.json (default: a documented stand-in model).")
@click.option("--profile", "profiles", multiple=True, help="Profiles to cover (repeatable; default: android, paddleseg-android).")
@click.option("--input-size", nargs=2, type=int, default=None, metavar="H W", help="Model input size (default: the model's, or 256 256).")
def runtime_vectors(out, model, profiles, input_size):
    """Write each profile's intermediate tensors for the shipped images (golden vectors shared with Java)."""
    from .runtime.vectors import DEFAULT_PROFILES, write_golden_vectors
    from .zoo.registry import get_model_spec

    index = write_golden_vectors(out, tuple(profiles) or DEFAULT_PROFILES, model, tuple(input_size) if input_size else None,
                                 transforms=get_model_spec("ppmattingv2").transforms)
    console.info(f"wrote golden vectors to {index.parent}")


# ------------------------------------------------------------------------------------------ entry point
def main(argv=None):
    """Console entry point: run the CLI and turn failures into one-line messages and exit codes."""
    args = sys.argv[1:] if argv is None else list(argv)
    if "--debug" not in args:
        os.environ.setdefault("GLOG_minloglevel", "2")  # paddle's C++ logging, read when paddle loads
        os.environ.setdefault("TQDM_DISABLE", "1")  # paddle's PTQ bars; our steps report progress
    try:
        cli.main(args=args, prog_name="edgematte", standalone_mode=False)
    except click.exceptions.UsageError as e:
        where = f" (see 'edgematte {e.ctx.command_path.split(' ', 1)[1]} --help')" if e.ctx and " " in e.ctx.command_path else " (see 'edgematte --help')"
        click.echo(f"edgematte: error: {e.format_message().rstrip('.')}{where}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("edgematte: aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        click.echo(f"edgematte: error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except EdgematteError as e:
        if _debug["on"]:
            raise
        click.echo(f"edgematte: error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("edgematte: interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # a bug: keep it to one line unless asked
        if _debug["on"]:
            raise
        click.echo(f"edgematte: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)", err=True)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
