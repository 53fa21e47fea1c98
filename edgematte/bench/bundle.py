"""The self-contained runner that the ``ssh`` and ``qemu`` bench targets take to an ARM machine.

A bundle is a folder laid out so that ``PYTHONPATH=BUNDLE python3 -m edgematte.bench.runner`` (and
``-m edgematte.bench.outputs``) run there with nothing of edgematte installed::

    BUNDLE/edgematte/...          only the modules the runner and the backends import (see below)
    BUNDLE/model/manifest.json    the conversion manifest, unchanged
    BUNDLE/model/<artefact>       the chosen artefacts at their manifest-relative paths

The modules are found, not listed: every ``edgematte`` import (module level or inside a function)
reachable from :data:`ROOT_MODULES` is followed, plus each package's ``__init__``. The backends are
roots because the runtime imports them by name (``importlib``) only when one is opened. What the
board needs besides the bundle is Python 3.8+, numpy, OpenCV and the artefact's runtime library
(ai-edge-litert for .tflite, paddlelite for .nb, onnxruntime for .onnx).
"""

import ast
import shutil
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set

from ..core.errors import EdgematteError

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../edgematte
PACKAGE = PACKAGE_DIR.name
MODEL_DIR = "model"
ROOT_MODULES = (
    "edgematte.bench.runner",
    "edgematte.bench.outputs",
    "edgematte.runtime.backends.litert",
    "edgematte.runtime.backends.onnxruntime",
    "edgematte.runtime.backends.paddle_lite",
    "edgematte.runtime.backends.paddle_inference",
)
# What an ARM board runs: the formats and manifest targets whose runtimes exist for aarch64 Linux.
BOARD_FORMATS = ("tflite", "nb", "onnx")
BOARD_TARGETS = ("arm", "any")


def _module_file(module: str) -> Optional[Path]:
    """The source file of an ``edgematte.*`` module (its ``__init__.py`` for a package), or ``None``."""
    parts = module.split(".")[1:]
    if not parts:
        return PACKAGE_DIR / "__init__.py"
    for candidate in (PACKAGE_DIR.joinpath(*parts[:-1], parts[-1] + ".py"), PACKAGE_DIR.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path, module: str) -> Set[str]:
    """Every ``edgematte.*`` module name that ``path`` (module ``module``) imports, anywhere in its code."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            # "from . import console" imports a module; "from .x import name" a name (or a submodule)
            found.update(f"{origin}.{alias.name}" for alias in node.names)
    return {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}


def runner_modules(roots: Sequence[str] = ROOT_MODULES) -> Dict[str, Path]:
    """Module name -> source file for everything the runner needs (the import closure of ``roots``)."""
    closure: Dict[str, Path] = {}
    pending = list(roots)
    while pending:
        module = pending.pop()
        if module in closure:
            continue
        path = _module_file(module)
        if path is None:
            continue  # "from .x import name": the name, not a module
        closure[module] = path
        parts = module.split(".")
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages' __init__
        pending.extend(_imported_modules(path, module))
    missing = [root for root in roots if root not in closure]
    if missing:
        raise EdgematteError(f"runner bundle: module(s) {', '.join(missing)} not found under {PACKAGE_DIR}")
    return closure


def copy_runner_code(dest) -> List[Path]:
    """Copy the runner's modules to ``dest/edgematte/...``; returns the files written (relative to ``dest``)."""
    dest = Path(dest)
    written = []
    for path in sorted(runner_modules().values()):
        relative = Path(PACKAGE) / path.relative_to(PACKAGE_DIR)
        (dest / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / relative)
        written.append(relative)
    return written


def make_runner_bundle(dest, manifest: dict, artefacts: Iterable[str]) -> Path:
    """Write a complete bundle into ``dest``: the runner code, the manifest and ``artefacts``.

    ``manifest``: as :func:`edgematte.core.manifest.read_manifest` returns it (its ``_dir`` is
    where the files are). ``artefacts``: manifest paths (``"reference"`` is not shippable). Returns
    the bundle's manifest folder (``dest/model``), to pass as the runner's ``--manifest``.
    """
    dest = Path(dest)
    source = Path(manifest["_dir"])
    model_dir = dest / MODEL_DIR
    model_dir.mkdir(parents=True, exist_ok=True)
    copy_runner_code(dest)
    shutil.copyfile(source / "manifest.json", model_dir / "manifest.json")
    known = {entry["path"] for entry in manifest["artefacts"]}
    for artefact in dict.fromkeys(artefacts):
        if artefact not in known:
            raise EdgematteError(f"{source}: no artefact '{artefact}' to ship (has: {', '.join(sorted(known))})")
        if not (source / artefact).is_file():
            raise EdgematteError(f"{source / artefact}: artefact listed in the manifest but missing")
        (model_dir / artefact).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / artefact, model_dir / artefact)
    return model_dir


def board_artefacts(manifest: dict, formats: Sequence[str] = BOARD_FORMATS) -> List[str]:
    """The manifest's artefacts an aarch64 Linux board can run: ``formats`` built for ``arm`` or ``any``."""
    return [entry["path"] for entry in manifest["artefacts"]
            if entry["format"] in formats and entry.get("target", "any") in BOARD_TARGETS]


def choose_artefacts(manifest: dict, requested: Optional[Sequence[str]], default: Sequence[str]) -> List[str]:
    """``requested`` (checked against the manifest) or ``default``; the Paddle reference never ships."""
    if not requested:
        return list(default)
    known = {entry["path"] for entry in manifest["artefacts"]}
    unknown = [a for a in requested if a not in known]
    if unknown:
        hint = " ('reference' is Paddle Inference on x86: bench it with --target local)" if "reference" in unknown else ""
        raise EdgematteError(f"--artefacts: not in the manifest: {', '.join(unknown)} "
                             f"(has: {', '.join(sorted(known))}){hint}")
    return list(requested)


def runner_result(returncode: int, stdout: str, stderr: str, config, where: str = "runner") -> dict:
    """The result of one runner process (``python -m edgematte.bench.runner`` somewhere) for ``config``.

    The ``EDGEMATTE_BENCH`` JSON line when there is one; otherwise an ``error`` entry naming how the
    process ended and the last line it wrote to stderr (a crash of the runtime shows up there).
    ``where`` names the process in those messages (``"runner"``, ``"emulated runner"``...).
    """
    from .targets import parse_runner_output

    result = parse_runner_output(stdout, config)
    last_line = (stderr.strip().splitlines() or [""])[-1].strip()
    if returncode < 0 or (returncode not in (0, 3) and not stdout.strip()):
        return {"artefact": config.artefact, "threads": config.threads,
                "error": f"{where} died (status {returncode}): {last_line}".rstrip(": ")}
    if returncode not in (0, 3) and "error" not in result:
        result["error"] = f"{where} exited with status {returncode}"
    return result
