"""``edgematte bench``: every configuration on one target, partial results kept, reports written."""

from pathlib import Path
from typing import Dict, List, Optional

from ..core import console
from ..core.errors import EdgematteError
from ..core.manifest import read_manifest
from .report import bench_document, median_cell, write_reports
from .targets.registry import parse_target


def benchmark(manifest_path, target: str = "local", threads: List[int] = (1, 2), artefacts: Optional[List[str]] = None,
              runs: int = 20, warmup: int = 3, size=(1920, 1080), out=None,
              adb_tools: Optional[Dict[str, Optional[str]]] = None) -> dict:
    """Run every (artefact, threads) configuration on ``target``; write bench.json/md/png to ``out``.

    ``adb_tools``: the phone's benchmark binaries for an ``adb:`` target (``{"tflite": path, "nb": path}``).

    A configuration that fails is recorded with its error and the others still run; the call raises
    :class:`EdgematteError` at the end if any failed (after the reports are written).
    """
    with parse_target(target, adb_tools=adb_tools) as tgt:
        manifest = read_manifest(manifest_path)
        configs = tgt.configurations(manifest, artefacts, list(threads))
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
        emulated = tgt.emulated
    doc = bench_document(target, emulated, manifest, results,
                         {"runs": runs, "warmup": warmup, "size": list(size), "threads": list(threads)})
    write_reports(out, doc)
    doc["_dir"] = str(out)
    failed = [r for r in results if "error" in r]
    if failed:
        raise EdgematteError(f"{len(failed)} of {len(results)} configurations failed (first: {failed[0]['artefact']}: "
                             f"{failed[0]['error']}); partial results in {out}")
    return doc
