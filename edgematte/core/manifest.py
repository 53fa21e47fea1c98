"""The conversion manifest (``OUT/manifest.json``): the one contract between converter, runtime,
benchmarks and device verification.

Stable minimum scripts may rely on: top-level ``model`` (``name``, ``source_sha256``, ``input_shape``) and
``artefacts``, a list of objects each with ``path`` (relative to the manifest), ``format``
(``nb``|``onnx``|``tflite``), ``target`` (``arm``|``x86``|``opencl``|``any``), ``precision``, ``size_bytes``,
``sha256`` and ``parity`` = ``{max_abs, mean_abs, frac_over_1_255, compared_to, runs_on_host}``.
Everything else is documented in ``docs`` of :func:`new_manifest`.
"""

import datetime
import json
from importlib import metadata
from pathlib import Path
from typing import Optional

from .. import __version__
from .fsutil import read_json_document, sha256_file, write_text_atomic

SCHEMA = "edgematte.manifest/1"
MANIFEST_NAME = "manifest.json"
TOOL_DISTRIBUTIONS = (
    "paddlepaddle",
    "paddlelite",
    "paddle2onnx",
    "onnx",
    "onnxsim",
    "onnx2tf",
    "tensorflow",
    "onnxruntime",
    "ai-edge-litert",
    "numpy",
    "opencv-python",
)


def tool_versions() -> dict:
    """Installed versions of the toolchain (``None`` for what is not installed)."""
    versions = {}
    for dist in TOOL_DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    versions["edgematte"] = __version__
    return versions


def new_manifest(model: dict, reference: dict) -> dict:
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "reference": reference,
        "tools": tool_versions(),
        "steps": [],
        "artefacts": [],
    }


def artefact_entry(
    out_dir,
    path,
    *,
    format: str,
    target: str,
    precision: str,
    runtime: str,
    layout: str,
    inputs: list,
    outputs: list,
    profile: str,
    parity: dict,
    extra: Optional[dict] = None,
) -> dict:
    """One ``artefacts`` entry; ``path`` is stored relative to ``out_dir`` with its size and sha256."""
    path = Path(path)
    entry = {
        "path": str(path.relative_to(out_dir)),
        "format": format,
        "target": target,
        "precision": precision,
        "size_bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "runtime": runtime,
        "layout": layout,
        "inputs": inputs,
        "outputs": outputs,
        "profile": profile,
        "parity": parity,
    }
    if extra:
        entry.update(extra)
    return entry


def write_manifest(out_dir, manifest: dict) -> Path:
    path = Path(out_dir) / MANIFEST_NAME
    write_text_atomic(path, json.dumps(manifest, indent=2) + "\n")
    return path


def read_manifest(path_or_dir) -> dict:
    """Load a manifest from its file or its folder; checks the schema and that artefacts exist."""
    path = Path(path_or_dir)
    if path.is_dir():
        path = path / MANIFEST_NAME
    manifest = read_json_document(path, SCHEMA, "manifest", hint=" (run 'edgematte convert' first)")
    manifest["_dir"] = str(path.parent)
    return manifest
