"""The edgematte code an ARM machine runs: exactly ``edgematte/__init__.py``, ``edgematte/core/`` and
``edgematte/runtime/``, nothing else.

The ``ssh`` bench target ships it to a board (:mod:`edgematte.bench.bundle`), the emulated arm64 Python
runs it under qemu (:mod:`edgematte.device.qemu`). What it runs there is :mod:`edgematte.runtime.bench_runner`
(timings) and :mod:`edgematte.runtime.raw_outputs` (raw outputs for a comparison); both, like all of core and
runtime, import no converter, quant, pipeline, zoo, device or bench module, so the board needs neither
paddle nor tensorflow: Python 3.8+, numpy, OpenCV and the artefact's runtime library (ai-edge-litert for
.tflite, paddlelite for .nb, onnxruntime for .onnx).

The list is fixed (:data:`SHIPPED_PACKAGES`), not derived from imports; :func:`runtime_code_files` checks
that every ``edgematte`` import in the shipped files (module level or inside a function) stays inside it,
so a stray import of a heavier layer is an error when the bundle is made, not an ImportError on the board.
"""

import functools
import shutil
from pathlib import Path
from typing import Dict, List, Set

from ..core.errors import EdgematteError
from ..core.imports import module_file, module_name, package_imports

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../edgematte
PACKAGE = PACKAGE_DIR.name
SHIPPED_PACKAGES = ("edgematte.core", "edgematte.runtime")  # with the top-level edgematte/__init__.py
RUNNER_MODULE = "edgematte.runtime.bench_runner"
OUTPUTS_MODULE = "edgematte.runtime.raw_outputs"


def imported_modules(path: Path) -> Set[str]:
    """Every ``edgematte`` module that the file ``path`` imports, anywhere in its code (functions too)."""
    return {name for _, name in package_imports(path, PACKAGE_DIR) if module_file(name, PACKAGE_DIR) is not None}


def is_shipped(module: str) -> bool:
    """Whether ``module`` is part of the shipped code."""
    return module == PACKAGE or any(module == p or module.startswith(p + ".") for p in SHIPPED_PACKAGES)


@functools.lru_cache(maxsize=1)
def runtime_code_files() -> Dict[str, Path]:
    """Module name -> source file of everything shipped; raises when a shipped file imports anything else."""
    files = {PACKAGE: PACKAGE_DIR / "__init__.py"}
    for package in SHIPPED_PACKAGES:
        folder = PACKAGE_DIR.joinpath(*package.split(".")[1:])
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" not in path.parts:
                files[module_name(path, PACKAGE_DIR)] = path
    outside = sorted(f"{name} imports {other}" for name, path in files.items()
                     for other in imported_modules(path) if not is_shipped(other))
    if outside:
        raise EdgematteError(f"runtime code: {'; '.join(outside)} (only {', '.join(SHIPPED_PACKAGES)} ship to a "
                             "board: move the import or the code)")
    for entry in (RUNNER_MODULE, OUTPUTS_MODULE):
        if entry not in files:
            raise EdgematteError(f"runtime code: {entry} not found under {PACKAGE_DIR}")
    return files


def copy_runtime_code(dest) -> List[Path]:
    """Copy the shipped code to ``dest/edgematte/...``; returns the files written (relative to ``dest``)."""
    dest = Path(dest)
    written = []
    for path in sorted(runtime_code_files().values()):
        relative = Path(PACKAGE) / path.relative_to(PACKAGE_DIR)
        (dest / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / relative)
        written.append(relative)
    return written
