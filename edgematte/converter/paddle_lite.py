"""Paddle Lite's ``opt``: a legacy Paddle inference model -> a ``.nb`` for arm, x86 or opencl.

opt 2.13rc0 reports failures by aborting the process from C++ (``Check failed: ...`` then SIGABRT)
and prints its findings to stdout/stderr, so it always runs here in a child Python process
(:func:`edgematte.core.tools.run_tool`) whose merged output is turned into one-line
:class:`EdgematteError` messages.

Traps handled here:
- opt aborts on programs paddlepaddle 2.6 exports (relu6 without a ``threshold``): opt reads a copy of
  the ``.pdmodel`` with the Paddle program repairs of the registry applied
  (``edgematte/converter/repairs/paddle_program/``); the user's files are only read.
- opt appends ``.nb`` to its output name: it writes into a private folder beside the target and the
  result is moved into place atomically, so a failure never leaves a partial or stale ``.nb``.
"""

import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

from ..core.errors import EdgematteError
from ..core.fsutil import atomic_path, sha256_file
from ..core.tools import ToolResult, python_tool_env, run_tool
from ..runtime.backends.paddle_lite import nb_kernel_targets
from .program import ModelFiles, ProgramInfo, parse_program, read_checked_model
from .repairs import registry
from .repairs.base import PADDLE_PROGRAM, RepairContext

TARGETS = ("arm", "x86", "opencl")
OPT_TIMEOUT_SECONDS = 1800

# The child process: paddlelite's Python binding of opt, driven from argv. ``check_if_model_supported``
# prints the op table and then exits (status 1 even when every op is supported).
_OPT_CHILD = r"""
import sys
from paddlelite import lite
mode, model_file, param_file, target, optimize_out = sys.argv[1:6]
opt = lite.Opt()
opt.set_model_file(model_file)
opt.set_param_file(param_file)
opt.set_valid_places(target)
if mode == "ops":
    opt.check_if_model_supported(True)
else:
    opt.set_model_type("naive_buffer")
    opt.set_optimize_out(optimize_out)
    opt.run()
"""

_UNSUPPORTED_RE = re.compile(r"These unsupported ops are: '([^']*)'")
_CHECK_FAILED_RE = re.compile(r"Check failed: (.*)")
_ERROR_LINE_RE = re.compile(r"^(?:Error: |\[F [^\]]*\] )(.*)$", re.MULTILINE)


def _unsupported_ops(run: ToolResult) -> List[str]:
    """The op types opt says it has no kernel for (its ``These unsupported ops are: '...'`` line)."""
    match = _UNSUPPORTED_RE.search(run.output)
    return [op.strip() for op in match.group(1).split(",") if op.strip()] if match else []


def _opt_failure(run: ToolResult) -> str:
    """opt's own one-line reason for failing (its last fatal or error line), else the log's most telling line."""
    for pattern in (_CHECK_FAILED_RE, _ERROR_LINE_RE):
        found = pattern.findall(run.output)
        if found:
            return found[-1].strip()
    return run.error_line()


def _check_target(target: str) -> str:
    if target not in TARGETS:
        raise EdgematteError(f"--target {target}: Paddle Lite target must be one of {', '.join(TARGETS)}")
    return target


def _run_opt(mode: str, model_file: Path, param_file: Path, target: str, optimize_out: str = "") -> ToolResult:
    run = run_tool([sys.executable, "-c", _OPT_CHILD, mode, str(model_file), str(param_file), target, optimize_out],
                   what=f"{model_file}: Paddle Lite opt", timeout_s=OPT_TIMEOUT_SECONDS, env=python_tool_env())
    if run.timed_out:
        raise EdgematteError(f"{model_file}: Paddle Lite opt did not finish within {OPT_TIMEOUT_SECONDS} s")
    if "No module named 'paddlelite'" in run.output:
        raise EdgematteError("Paddle Lite conversion needs paddlelite 2.13rc0 (pip install 'edgematte[convert]')")
    return run


def _repaired_model(info: ProgramInfo, work_dir: Path) -> Tuple[Path, List[dict]]:
    """Write the program with every Paddle program repair of the registry applied into ``work_dir``.

    Returns its path and the :func:`~edgematte.converter.repairs.registry.apply_all` records. With nothing
    changed the program's bytes are written as read.
    """
    program = parse_program(info.program_bytes, str(info.path))
    applied = registry.apply_all(PADDLE_PROGRAM, program, RepairContext(where=str(info.path)))
    program_bytes = program.SerializeToString() if registry.changed(applied) else info.program_bytes
    model_file = work_dir / info.path.name
    model_file.write_bytes(program_bytes)
    return model_file, applied


def _parse_op_table(text: str) -> Dict[str, List[str]]:
    """opt's ``OPs in the input model include:`` table -> ``{op: [places with a kernel]}``.

    Columns are right-aligned under their place names (``kARM  kHost  kOpenCL``), a ``Y`` under each
    place that has a kernel for the op. Ops with no kernel anywhere are absent from the table.
    """
    lines = text.splitlines()
    try:
        header_index = next(i for i, line in enumerate(lines) if line.strip().startswith("OP_name"))
    except StopIteration:
        return {}
    header = lines[header_index]
    columns = [(m.group(0), m.end() - 1) for m in re.finditer(r"k\w+", header)]
    table = {}
    for line in lines[header_index + 1:]:
        parts = line.split()
        if not parts or parts[0].startswith(("Paddle-Lite", "Error")) or not set(parts[1:]) <= {"Y"}:
            break
        table[parts[0]] = [place for place, end in columns if len(line) > end and line[end] == "Y"]
    return table


def supported_ops_report(model_dir, target: str) -> dict:
    """Which of the model's ops Paddle Lite can run on ``target`` (opt's ``--print_model_ops=true``).

    Returns ``{"target", "model", "supported": bool, "unsupported": [op types],
    "ops": {op_type: {"count": n, "places": ["kARM", "kHost", ...]}}}``; ``places`` is empty for an op
    opt has no kernel for on this target. feed/fetch run on kHost everywhere.
    """
    target = _check_target(target)
    files, info = read_checked_model(model_dir)
    run = _run_opt("ops", files.model, files.params, target)
    table = _parse_op_table(run.output)
    if not table and not _unsupported_ops(run):
        raise EdgematteError(f"{files.model}: Paddle Lite opt could not list the model's ops: {_opt_failure(run)}")
    ops = {op: {"count": n, "places": table.get(op, [])} for op, n in info.op_counts.items()}
    unsupported = sorted(set(_unsupported_ops(run)) | {op for op, entry in ops.items() if not entry["places"]})
    return {
        "target": target,
        "model": str(files.model),
        "supported": not unsupported,
        "unsupported": unsupported,
        "ops": ops,
    }


@dataclass(frozen=True)
class OptimizeInfo:
    """What :func:`optimize` produced. ``kernel_targets`` are the places the .nb's kernels run on;
    ``applied_repairs`` the registry's records of the Paddle program repairs opt's input got."""

    nb_path: Path
    target: str
    source: ModelFiles
    nb_bytes: int
    sha256: str
    relu6_patched: int
    kernel_targets: Tuple[str, ...]
    seconds: float
    opt_log: str
    applied_repairs: Tuple[dict, ...] = ()

    def as_dict(self) -> dict:
        return {
            "path": str(self.nb_path),
            "target": self.target,
            "bytes": self.nb_bytes,
            "sha256": self.sha256,
            "relu6_patched": self.relu6_patched,
            "kernel_targets": list(self.kernel_targets),
            "opt_seconds": round(self.seconds, 3),
            "applied_repairs": registry.summary(list(self.applied_repairs)),
        }


def optimize(model_dir, out_nb_path, target: str) -> OptimizeInfo:
    """Convert a legacy Paddle inference model to a Paddle Lite ``.nb`` for ``target``.

    ``model_dir`` is anything :func:`~edgematte.converter.program.locate_model_files` takes;
    ``out_nb_path`` is the final file name and must end in ``.nb``. The model and params are checked
    first (a corrupt file gives an error naming it, not an opt crash), opt reads a copy of the program
    with the Paddle program repairs applied (relu6 threshold), and ``out_nb_path`` appears only when opt
    succeeded. Ops without a kernel on ``target`` raise :class:`EdgematteError` listing them.
    """
    target = _check_target(target)
    out_nb_path = Path(out_nb_path)
    if out_nb_path.suffix != ".nb":
        raise EdgematteError(f"{out_nb_path}: a Paddle Lite model file name must end in .nb")
    files, info = read_checked_model(model_dir)
    out_nb_path.parent.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix=f".{out_nb_path.stem}.opt.", dir=out_nb_path.parent))
    try:
        repaired_model, applied = _repaired_model(info, work_dir)
        optimize_prefix = work_dir / "model"  # opt writes model.nb
        run = _run_opt("optimize", repaired_model, files.params, target, str(optimize_prefix))
        produced = optimize_prefix.with_name("model.nb")
        unsupported = _unsupported_ops(run)
        if unsupported:
            raise EdgematteError(
                f"{files.model}: Paddle Lite has no {target} kernel for {len(unsupported)} op type(s): "
                f"{', '.join(unsupported)}"
            )
        if run.returncode != 0 or not produced.is_file() or produced.stat().st_size == 0:
            raise EdgematteError(f"{files.model}: Paddle Lite opt failed for {target}: {_opt_failure(run)}")
        with atomic_path(out_nb_path) as tmp:
            os.replace(produced, tmp)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return OptimizeInfo(
        nb_path=out_nb_path,
        target=target,
        source=files,
        nb_bytes=out_nb_path.stat().st_size,
        sha256=sha256_file(out_nb_path),
        relu6_patched=registry.changed(applied, "relu6_threshold"),
        kernel_targets=tuple(sorted(nb_kernel_targets(out_nb_path))),
        seconds=run.seconds,
        opt_log=run.output[-4000:],
        applied_repairs=tuple(applied),
    )
