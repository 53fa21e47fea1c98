"""The package's shape: one-way layers, module and function sizes, the runtime subset a board gets, the README's
package map, and no citation of a document the repository lacks."""

import ast
import re
import shutil
import subprocess
import sys

from .conftest import REPO, load_tool

PACKAGE = REPO / "edgematte"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 120


layers = load_tool("layers")


def test_no_import_points_up_or_sideways():
    assert layers.violations(PACKAGE) == []


def test_an_upward_import_is_caught_even_inside_a_function(tmp_path):
    copy = tmp_path / "edgematte"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "core" / "upward.py").write_text("def later():\n    from ..pipeline import run  # noqa\n")
    (copy / "runtime" / "sideways.py").write_text("import edgematte.zoo.registry\n")
    found = layers.violations(copy)
    assert found == [
        "edgematte/core/upward.py:2: core imports edgematte.pipeline.run (pipeline is not below core)",
        "edgematte/runtime/sideways.py:1: runtime imports edgematte.zoo.registry (zoo is not below runtime)",
    ]
    (copy / "newpkg").mkdir()
    (copy / "newpkg" / "__init__.py").write_text("")
    assert any("subpackage 'newpkg' has no layer" in f for f in layers.violations(copy))


def test_no_cycle_among_subpackages():
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        importer = layers.subpackage(layers.module_name(path, PACKAGE))
        for _, imported in layers.imports(path, PACKAGE):
            target = layers.subpackage(imported)
            if target != importer and target != layers.TOP:
                graph.setdefault(importer, set()).add(target)

    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, (*seen, n))) for n in graph.get(start, ()))

    assert [s for s in graph if reaches(s, s)] == []


def test_module_and_function_sizes():
    too_long, long_functions = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(REPO)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {length} lines")
    assert too_long == [] and long_functions == []


# Importing any of these fails in the child: what a board or phone host does not have.
BLOCKED = ("paddle", "paddlelite", "tensorflow", "onnx", "onnxsim", "onnx2tf", "paddle2onnx", "skimage",
           "edgematte.converter", "edgematte.quant", "edgematte.pipeline", "edgematte.zoo", "edgematte.device",
           "edgematte.bench", "edgematte.cli")
BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"blocked: {{name}}")
sys.meta_path.insert(0, Blocker())
import pkgutil, importlib, edgematte.core, edgematte.runtime
names = []
for package in (edgematte.core, edgematte.runtime):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
        names.append(info.name)
from edgematte.runtime import Matter
print(len(names), "modules")
"""


def test_the_runtime_subset_imports_without_paddle_tensorflow_or_the_converter():
    done = subprocess.run([sys.executable, "-c", BLOCKER.format(blocked=BLOCKED)], capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[0]) >= 20


def test_the_blocker_blocks():
    done = subprocess.run([sys.executable, "-c", BLOCKER.format(blocked=BLOCKED) + "import edgematte.zoo.registry"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode != 0 and "blocked: edgematte.zoo" in done.stderr


def test_public_names_the_readme_promises():
    from edgematte.runtime import Manifest, Matter, composite_with_profile, open_backend, read_image  # noqa: F401

    assert Matter.from_manifest and callable(composite_with_profile) and callable(open_backend)


def test_readme_package_map_is_the_tree():
    package_map = load_tool("package_map")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert package_map.block_in(readme) == package_map.render(PACKAGE), \
        "README package map is stale: run `python tools/package_map.py --write`"


def test_no_citation_of_a_document_the_repository_lacks():
    cited = re.compile(r"\b([A-Z][A-Z_]+\.md|(?:docs|benchmarks|android_demo)/[\w./-]+\.md)\b")
    outside = re.compile(r"\.\./shared\b|\bshared/models\b")  # the workplace's folder: users never get it
    missing = []
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    for name in files:
        if not name.endswith((".py", ".md", ".java", ".sh", ".cfg", ".toml")) or name.startswith("tests/data/"):
            continue
        path = REPO / name
        text = path.read_text(encoding="utf-8", errors="replace")
        missing += [f"{name}: {m.group(0)}" for m in outside.finditer(text)]
        for match in cited.finditer(text):
            doc = match.group(1)
            candidates = [REPO / doc, path.parent / doc, REPO / "docs" / doc]
            if not any(c.is_file() for c in candidates):
                missing.append(f"{name}: {doc}")
    assert missing == []
