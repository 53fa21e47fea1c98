"""``edgematte device ...``: the Android app on a phone, ARM kernels under emulation, the arm64 root."""

import click

from ..core import console
from ..core.errors import EdgematteError
from .app import cli, print_report_and_exit


@cli.group()
def device():
    """Android and ARM devices: verify on a phone over adb, prepare an arm64 root for qemu."""


@device.command("verify")
@click.option(
    "--serial", envvar="ANDROID_SERIAL", default=None,
    help="Device serial from 'adb devices -l' (default: $ANDROID_SERIAL, else the only attached device).",
)
@click.option(
    "--manifest", required=True, type=click.Path(exists=True),
    help="A conversion's folder or its manifest.json.",
)
@click.option(
    "--images", type=click.Path(exists=True), default=None,
    help="Photos to check on, a folder (recursive) or one file (default: the bundled samples).",
)
@click.option(
    "--sequence", "sequence", type=click.Path(exists=True), default=None,
    help="Instead of photos: a folder of one clip's frames, ordered by the number in their file names (no gaps, "
         "one size). Run in order on the phone and here, a recurrent model's states carried from frame to frame; "
         "every frame is compared.",
)
@click.option(
    "-o", "--out", type=click.Path(file_okay=False), default=None,
    help="Report folder (default: MANIFEST_DIR/device-verify/SERIAL-ARTEFACT).",
)
@click.option(
    "--artefact", default=None,
    help="Artefact path or file name (default: the manifest's first phone artefact: .tflite or arm/opencl .nb).",
)
@click.option(
    "--accelerator", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True,
    help="LiteRT CPU (XNNPACK) or GPU delegate; Paddle Lite runs on its artefact's target.",
)
@click.option(
    "--threads", type=click.IntRange(1), default=4, show_default=True,
    help="Threads on the device (and for this host's runs).",
)
@click.option(
    "--repeats", type=click.IntRange(1), default=3, show_default=True,
    help="Timed inferences per image on the device (the median is reported).",
)
@click.option(
    "--warmup", type=click.IntRange(0), default=1, show_default=True,
    help="Untimed inferences per image first.",
)
@click.option(
    "--timeout", type=click.FloatRange(1), default=600, show_default=True,
    help="Seconds to wait for the app's DONE marker.",
)
@click.option("--json", "as_json", is_flag=True, help="Print report.json to stdout.")
def device_verify(serial, manifest, images, sequence, out, artefact, accelerator, threads, repeats, warmup, timeout,
                  as_json):
    """Run the Android app's verification mode on a phone over adb and compare with the Python runtime.

    Needs the app installed (android_demo/README.md) and the real adb client. Writes report.md,
    report.json and the device's raw output to the report folder; exits 1 when the device's alphas
    are beyond the artefact's threshold or its model input differs from the Python profile's.
    """
    from ..device.android_verify import verify_on_device

    report = verify_on_device(manifest, images_dir=images, serial=serial, out_dir=out, artefact=artefact,
                              accelerator=accelerator, threads=threads, warmup=warmup, repeats=repeats, timeout=timeout,
                              sequence_dir=sequence)
    print_report_and_exit(report, as_json)


@device.command("arm-check")
@click.argument("manifest", type=click.Path(exists=True))
@click.option(
    "--cpu", default="cortex-a72", show_default=True,
    help="Emulated core (qemu -cpu name of a real core; 'max' is refused).",
)
@click.option(
    "--artefacts", default=None,
    help="Comma-separated .tflite artefacts (default: every one in the manifest).",
)
@click.option(
    "--kernels", type=click.Choice(["default", "builtin", "reference"]), default="default", show_default=True,
    help="LiteRT kernels on both sides: default (XNNPACK), builtin (optimized, no XNNPACK) "
         "or reference (plain C++: must agree exactly).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def device_arm_check(manifest, cpu, artefacts, kernels, as_json):
    """Run TFLite artefacts on an emulated ARM CPU (qemu) and on this host with the same input; compare.

    The correctness check for ARM kernels when no board is at hand (`device arm-rootfs` first; emulation
    is 50-250x slower than the real CPU). Exits 1 when an output differs beyond its limit: 1e-5 for float
    models, mean 5e-3 and max 8e-2 for dynamic-range ones; for int8 outputs a few steps with optimized
    kernels (mean 1.5), none with reference kernels.
    """
    from ..core.manifest import read_manifest
    from ..device.arm_check import arm_verdict, compare_with_host

    names = [a for a in artefacts.split(",") if a] if artefacts else None
    reports = compare_with_host(read_manifest(manifest), names, cpu=cpu, kernels=kernels)
    verdicts = [arm_verdict(r) for r in reports]
    if as_json:
        console.emit_json([{**{k: v for k, v in r.items() if k not in ("host", "emulated")},
                            "passed": ok, "verdict": why}
                           for r, (ok, why) in zip(reports, verdicts)])
    else:
        for r, (ok, why) in zip(reports, verdicts):
            click.echo(f"{r['artefact']:<24} {'ok ' if ok else 'FAIL'} {cpu} vs x86: {why}")
    failed = [r["artefact"] for r, (ok, _) in zip(reports, verdicts) if not ok]
    if failed:
        raise EdgematteError(f"{manifest}: {', '.join(failed)} differ on the emulated {cpu} beyond the limits")


@device.command("arm-rootfs")
@click.option(
    "--cache-dir", type=click.Path(file_okay=False), default=None,
    help="Where to build and keep it (default: $EDGEMATTE_ARM_ROOTFS or ~/.cache/edgematte/arm64-rootfs).",
)
@click.option("--mirror", default=None, help="Debian mirror (default: $EDGEMATTE_DEBIAN_MIRROR or deb.debian.org).")
@click.option("--force", is_flag=True, help="Rebuild even if the cached one is current.")
def device_arm_rootfs(cache_dir, mirror, force):
    """Prepare and cache an arm64 root file system for qemu emulation (about 30 s and 360 MB, once)."""
    from ..device.qemu import rootfs_location
    from ..device.rootfs import prepare_arm_rootfs

    click.echo(str(prepare_arm_rootfs(rootfs_location(cache_dir), mirror=mirror, force=force, log=console.info)))
