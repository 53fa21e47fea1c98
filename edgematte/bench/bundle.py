"""The self-contained bundle that the ``ssh`` bench target takes to an ARM board.

A bundle is a folder laid out so that ``PYTHONPATH=BUNDLE python3 -m edgematte.runtime.bench_runner`` runs
there with nothing of edgematte installed::

    BUNDLE/edgematte/__init__.py  \\
    BUNDLE/edgematte/core/...      > the runtime code, exactly these (edgematte.device.runtime_code)
    BUNDLE/edgematte/runtime/...  /
    BUNDLE/model/manifest.json    the conversion manifest, unchanged
    BUNDLE/model/<artefact>       the chosen artefacts at their manifest-relative paths

No converter, quant, pipeline, zoo, device or bench module ships: the runner imports only core and runtime,
which :func:`edgematte.device.runtime_code.runtime_code_files` checks. What the board needs besides the
bundle is Python 3.8+, numpy, OpenCV and the artefact's runtime library (ai-edge-litert for .tflite,
paddlelite for .nb, onnxruntime for .onnx).
"""

import shutil
from pathlib import Path
from typing import Dict, Iterable

from ..core.errors import EdgematteError
from ..core.manifest import MANIFEST_NAME, Manifest
from ..device.runtime_code import copy_runtime_code, runtime_code_files

MODEL_DIR = "model"


def bundle_modules() -> Dict[str, Path]:
    """Module name -> source file of the code a bundle holds."""
    return dict(runtime_code_files())


def make_runner_bundle(dest, manifest: Manifest, artefacts: Iterable[str]) -> Path:
    """Write a complete bundle into ``dest``: the runtime code, the manifest and ``artefacts``.

    ``artefacts``: manifest paths or file names (``"reference"`` is not shippable). Returns the bundle's
    manifest folder (``dest/model``), to pass as the runner's ``--manifest``.
    """
    dest = Path(dest)
    model_dir = dest / MODEL_DIR
    model_dir.mkdir(parents=True, exist_ok=True)
    copy_runtime_code(dest)
    shutil.copyfile(Path(manifest.dir) / MANIFEST_NAME, model_dir / MANIFEST_NAME)
    for name in dict.fromkeys(artefacts):
        artefact = manifest.find(name)
        source = manifest.file(artefact)
        if not source.is_file():
            raise EdgematteError(f"{source}: artefact listed in the manifest but missing")
        (model_dir / artefact.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, model_dir / artefact.path)
    return model_dir
