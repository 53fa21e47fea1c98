"""Which edgematte modules a source file imports: module level and inside functions, relative imports resolved.

One reading of imports for the two places that need it: the layer check (``tools/layers.py``) and the list of
code shipped to a board (:mod:`edgematte.device.runtime_code`).
"""

import ast
from pathlib import Path
from typing import Iterator, Optional, Tuple


def module_name(path: Path, package_dir: Path) -> str:
    """``edgematte.core.manifest`` for ``package_dir/core/manifest.py`` (a package's ``__init__.py`` names it)."""
    parts = [package_dir.name, *Path(path).relative_to(package_dir).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(name: str, package_dir: Path) -> Optional[Path]:
    """The source file of module ``name`` of ``package_dir``'s package (a package's ``__init__.py``), or ``None``."""
    parts = name.split(".")[1:]
    candidates = [package_dir.joinpath(*parts, "__init__.py")]
    if parts:
        candidates.insert(0, package_dir.joinpath(*parts[:-1], parts[-1] + ".py"))
    return next((c for c in candidates if c.is_file()), None)


def package_imports(path: Path, package_dir: Path) -> Iterator[Tuple[int, str]]:
    """(line, module) for every import of ``package_dir``'s package in the file ``path``.

    ``from X import name`` gives ``X.name`` when that is a module (``from . import console``), else ``X``.
    """
    path, package_dir = Path(path), Path(package_dir)
    top = package_dir.name
    module = module_name(path, package_dir)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == top:
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            if origin.split(".")[0] != top:
                continue
            for alias in node.names:
                candidate = f"{origin}.{alias.name}"
                yield node.lineno, candidate if module_file(candidate, package_dir) else origin
