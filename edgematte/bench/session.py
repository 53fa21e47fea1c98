"""``edgematte bench``: every configuration on one target, partial results kept, reports written.

When some configurations fail, the report holds the others and lists the failures (the command then exits
1). When every configuration fails, no report is written at all: a previous report in the folder (bench.json,
bench.md, bench.png) stays exactly as it was, and the error line names each failure.
"""

from pathlib import Path
from typing import Dict, List, Optional

from ..core import console
from ..core.errors import EdgematteError, one_line
from ..core.fsutil import remove_recorded_outputs
from ..core.manifest import REFERENCE, read_manifest
from .profile_report import is_profile_file, write_profiles
from .report import bench_document, median_cell, write_reports
from .targets.base import Configuration, Target
from .targets.registry import parse_target

SHOWN_FAILURES = 3
"""Distinct failures named in the one-line error when every configuration failed (the rest are counted)."""


def all_failed_message(out: Path, target: str, failed: List[dict]) -> str:
    """The one-line error of a run in which every configuration failed: nothing was written to ``out``.

    Configurations of one artefact that failed alike are named together (``model_arm.nb x 1, 2 threads: ...``).
    """
    alike: Dict[tuple, List[str]] = {}
    for r in failed:
        alike.setdefault((r["artefact"], one_line(r["error"])), []).append(str(r["threads"]))
    named = [f"{artefact} x {', '.join(threads)} threads: {error}"
             for (artefact, error), threads in list(alike.items())[:SHOWN_FAILURES]]
    if len(alike) > SHOWN_FAILURES:
        named.append(f"and {len(alike) - SHOWN_FAILURES} more")
    kept = " (the previous report there is untouched)" if (out / "bench.json").exists() else ""
    return (f"{out}: {len(failed)} of {len(failed)} configurations failed on {target}, so no report was written"
            f"{kept}: " + "; ".join(named))


def _check_files(manifest, names) -> None:
    """Before anything runs: every file to benchmark is the one the conversion wrote (a one-line error names the
    first that is not), so a swapped or escaped artefact is never loaded on any target."""
    for name in sorted(names):
        if name == REFERENCE:
            manifest.reference_dir()
        else:
            manifest.file(manifest.find(name))


def profile_artefacts(tgt: Target, manifest, results: List[dict], threads: int, runs: int, warmup: int,
                      size) -> List[dict]:
    """Each artefact's per-op profile at ``threads`` (``bench --profile``), after every timed run and apart from
    them; an artefact whose timed runs all failed is not profiled (said as its ``error``)."""
    profiles = []
    for name in dict.fromkeys(r["artefact"] for r in results):
        config = Configuration(name, threads)
        if all("error" in r for r in results if r["artefact"] == name):
            profiles.append({"artefact": name, "threads": threads, "error": "not profiled: its timed runs failed"})
            continue
        try:
            profile = tgt.profile(manifest, config, runs, warmup, size)
        except EdgematteError as error:
            profile = {"artefact": name, "threads": threads, "error": str(error)}
        if "rows" in profile:
            console.info(f"  profile {name:<24} {threads} thr  {profile['total_ms']:.1f} ms of "
                         f"{len(profile['rows'])} ops per run ({profile['runtime']})")
        else:
            console.info(f"  profile {name:<24} none: {profile.get('unsupported') or profile.get('error')}")
        profiles.append(profile)
    return profiles


def benchmark(manifest_path, target: str = "local", threads: List[int] = (1, 2), artefacts: Optional[List[str]] = None,
              runs: int = 20, warmup: int = 3, size=(1920, 1080), out=None,
              adb_tools: Optional[Dict[str, Optional[str]]] = None, profile: bool = False) -> dict:
    """Run every (artefact, threads) configuration on ``target``; write bench.json/md/png to ``out``.

    ``adb_tools``: the phone's benchmark binaries for an ``adb:`` target (``{"tflite": path, "nb": path}``).
    ``profile``: then each artefact's per-op profile at the first thread count, where the target's runtime has
    a profiler, into ``profile_<artefact>.md/.json/.png`` (:func:`profile_artefacts`,
    :mod:`edgematte.bench.profile_report`), linked from bench.md.

    A configuration that fails is recorded with its error and the others still run; the call raises
    :class:`EdgematteError` at the end if any failed (after the reports are written). If all failed, it
    raises without writing anything (:func:`all_failed_message`). The returned document carries
    ``"_dir"`` (the report folder) and ``"_written"`` (:class:`~edgematte.bench.report.WrittenReport`),
    which are not part of bench.json.
    """
    with parse_target(target, adb_tools=adb_tools) as tgt:
        manifest = read_manifest(manifest_path)
        configs = tgt.configurations(manifest, artefacts, list(threads))
        _check_files(manifest, {config.artefact for config in configs})
        out = Path(out) if out else Path(manifest.dir) / "bench" / tgt.name
        results = []
        with console.progress(configs, label=f"bench on {tgt.name}") as bar:
            for config in bar:
                result = tgt.run(manifest, config, runs, warmup, size)
                results.append(result)
                if "error" in result:
                    console.warn(f"{config.artefact} x {config.threads} threads: {result['error']}")
                else:
                    console.info(f"  {config.artefact:<24} {config.threads} thr  model median "
                                 f"{median_cell(result['model_s'])} ms  end-to-end "
                                 f"{median_cell(result['end_to_end_s'])} ms")
        failed = [r for r in results if "error" in r]
        profiles = []
        if profile and len(failed) < len(results):
            profiles = profile_artefacts(tgt, manifest, results, list(threads)[0], runs, warmup, size)
        emulated = tgt.emulated
    if failed and len(failed) == len(results):
        raise EdgematteError(all_failed_message(out, target, failed))
    doc = bench_document(target, emulated, manifest, results,
                         {"runs": runs, "warmup": warmup, "size": list(size), "threads": list(threads)})
    profile_files = []
    if profile:
        doc["profiles"], profile_files = write_profiles(out, doc, profiles)
    remove_recorded_outputs(out, is_profile_file, keep=profile_files)  # an earlier run's, no longer linked
    written = write_reports(out, doc)
    written.files += profile_files
    doc["_dir"], doc["_written"] = str(out), written
    if failed:
        raise EdgematteError(f"{len(failed)} of {len(results)} configurations failed (first: {failed[0]['artefact']}: "
                             f"{failed[0]['error']}); partial results in {out} ({written.names()})")
    return doc
