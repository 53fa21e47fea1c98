"""``edgematte bench`` and ``bench-merge``: latency and memory on a target, and reports merged."""

import click

from ..core import console
from .app import cli, positive_ints, size_wxh


@cli.command()
@click.argument("manifest", type=click.Path(exists=True))
@click.option(
    "--target", default="local", show_default=True,
    help="local | ssh://user@host[:port] | adb:SERIAL | qemu:CPU",
)
@click.option("--threads", default="1,2", show_default=True, callback=positive_ints, help="Thread counts to try.")
@click.option(
    "--artefacts", default=None,
    help="Comma-separated artefact paths (default: every one the target runs; 'reference' = Paddle Inference).",
)
@click.option("--runs", type=click.IntRange(1), default=20, show_default=True, help="Timed runs per configuration.")
@click.option("--warmup", type=click.IntRange(0), default=3, show_default=True, help="Untimed runs first.")
@click.option("--size", default="1920x1080", show_default=True, callback=size_wxh,
              help="End-to-end input image size WxH.")
@click.option(
    "-o", "--out", type=click.Path(file_okay=False), default=None,
    help="Report folder (default: MANIFEST_DIR/bench/TARGET).",
)
@click.option("--json", "as_json", is_flag=True, help="Print bench.json to stdout.")
@click.option(
    "--adb-benchmark-model", type=click.Path(), envvar="EDGEMATTE_ADB_BENCHMARK_MODEL", default=None,
    help="adb: TFLite's benchmark_model built for the phone, "
         "runs the .tflite artefacts (default: $EDGEMATTE_ADB_BENCHMARK_MODEL).",
)
@click.option(
    "--adb-benchmark-bin", type=click.Path(), envvar="EDGEMATTE_ADB_BENCHMARK_BIN", default=None,
    help="adb: Paddle Lite's benchmark_bin (same version as the converter's paddlelite), "
         "runs the arm/opencl .nb artefacts (default: $EDGEMATTE_ADB_BENCHMARK_BIN).",
)
@click.option(
    "--profile", is_flag=True,
    help="Then profile each artefact per op (at the first thread count, apart from the timed runs) where its "
         "runtime can: ONNX Runtime and Paddle Inference (reference) on this host and ssh boards (.onnx), LiteRT "
         "(.tflite) where TensorFlow is installed, each op timed alone in a one-op model, benchmark_model / a "
         "--with_profile=ON benchmark_bin on adb. Writes profile_<artefact>.md/.json/.png "
         "(time per op type, slowest layers), linked from bench.md; other artefacts get a line saying why not.",
)
def bench(manifest, target, threads, artefacts, runs, warmup, size, out, as_json, adb_benchmark_model,
          adb_benchmark_bin, profile):
    """Benchmark latency and memory of a conversion's artefacts on the host, an ARM board, Android or qemu.

    Each configuration (artefact x threads) runs in a fresh process; reports: bench.json, bench.md, bench.png
    (the plot needs matplotlib). If every configuration fails, nothing is written and a previous report stays.
    On adb:SERIAL the phone runs the benchmark tools you give (--adb-benchmark-model / --adb-benchmark-bin):
    model latency and memory only; an artefact without its tool, or one no phone tool runs (.onnx, x86 .nb),
    is reported as a failed configuration and the others are still written.
    """
    from ..bench.session import benchmark

    doc = benchmark(manifest, target=target, threads=threads,
                    artefacts=[a.strip() for a in artefacts.split(",")] if artefacts else None,
                    runs=runs, warmup=warmup, size=size, out=out,
                    adb_tools={"tflite": adb_benchmark_model, "nb": adb_benchmark_bin}, profile=profile)
    if as_json:
        console.emit_json({k: v for k, v in doc.items() if not k.startswith("_")})
    console.info(doc["_written"].summary())


# `bench MANIFEST` takes a positional argument, so it cannot also be a group with a `merge` subcommand.
@cli.command("bench-merge")
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "-o", "--out", required=True, type=click.Path(file_okay=False),
    help="Folder for the merged bench.json, bench.md, bench.png.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the merged bench.json to stdout.")
def bench_merge(reports, out, as_json):
    """Merge `edgematte bench` reports (REPORT_DIR or bench.json each) from several targets into one table.

    One row per target, artefact and thread count; emulated (qemu) timings get their own table and plot panel.
    bench.png is written when matplotlib is installed and some configuration ran; the last line says what was.
    """
    from ..bench.report import merge_reports

    doc, written = merge_reports(reports, out)
    if as_json:
        console.emit_json(doc)
    console.info(f"{written.summary()} ({len(doc['sources'])} reports, {len(doc['results'])} rows)")
