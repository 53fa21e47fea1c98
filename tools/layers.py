"""edgematte's layers, and a checker that reads every import (module level and inside functions).

    core  <-  zoo, runtime  <-  converter  <-  quant  <-  pipeline  <-  device  <-  bench  <-  cli

A module may import its own subpackage and any lower layer; zoo and runtime are peers that never import
each other (a board gets core + runtime only; the zoo needs paddle). ``python tools/layers.py`` prints the
violations and exits 1 when there are any.
"""

import sys
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

from edgematte.core import imports as core_imports

LAYERS: Dict[str, int] = {
    "core": 0,
    "zoo": 1,
    "runtime": 1,
    "converter": 2,
    "quant": 3,
    "pipeline": 4,
    "device": 5,
    "bench": 6,
    "cli": 7,
}
TOP = "(top)"  # edgematte/__init__.py: the version and the public names, below everything


def module_name(path: Path, root: Path) -> str:
    return core_imports.module_name(path, root)


def subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else TOP


def imports(path: Path, root: Path) -> Iterator[Tuple[int, str]]:
    """(line, absolute module) for every edgematte import in ``path`` (:mod:`edgematte.core.imports`)."""
    return core_imports.package_imports(path, root)


def allowed(importer: str, imported: str) -> bool:
    a, b = subpackage(importer), subpackage(imported)
    if a == b or b == TOP:
        return True
    if a == TOP:
        return False
    rank_a, rank_b = LAYERS.get(a), LAYERS.get(b)
    if rank_a is None or rank_b is None:
        return False  # a subpackage nobody placed: place it in LAYERS
    return rank_b < rank_a


def violations(root: Path) -> List[str]:
    """Every upward or sideways import below ``root`` (the edgematte package folder), one line each."""
    found = []
    for path in sorted(root.rglob("*.py")):
        importer = module_name(path, root)
        sub = subpackage(importer)
        if sub != TOP and sub not in LAYERS:
            found.append(f"{path}: subpackage '{sub}' has no layer (add it to tools/layers.py LAYERS)")
            continue
        for line, imported in imports(path, root):
            if not allowed(importer, imported):
                found.append(f"{path.relative_to(root.parent)}:{line}: {sub} imports {imported} "
                             f"({subpackage(imported)} is not below {sub})")
    return found


if __name__ == "__main__":
    package = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "edgematte"
    problems = violations(package)
    print("\n".join(problems) or "layers: no violation")
    sys.exit(1 if problems else 0)
