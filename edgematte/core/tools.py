"""Running external tools: one runner for every subprocess edgematte starts (paddle2onnx, opt, onnx2tf,
the INT8 workers, qemu, adb, ssh), and one reading of their logs.

A tool's stdout and stderr are merged (C++ tools print straight to fd 1/2), kept whole in memory or in a
log file, and its failure becomes one line: what ran, and the most telling line of its log.
"""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Union

from .errors import EdgematteError
from .signals import reassert_signal_policy

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# glog / absl start-up lines ("I0000 00:00:..." or "2024-01-01 00:00:00.000: W ...") say nothing about a failure.
_LOG_NOISE = re.compile(r"^([EWIF]\d{4} \d\d:\d\d|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [EWIF] )")
_PYTHON_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt))(: .*)?$")
# onnx2tf's "ERROR:" lines that announce a traceback rather than say what went wrong.
_GENERIC_ERRORS = ("the trace log is below", "read this and deal with it")
MAX_ERROR_LINE = 300


@dataclass
class ToolResult:
    """What a finished tool left: exit code (-1 on a timeout), merged output, wall time, log file if any."""

    argv: Sequence[str]
    returncode: int
    output: str
    seconds: float
    log_path: Optional[Path] = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def error_line(self) -> str:
        """The most telling line of the output (see :func:`last_error_line`), after the signal that killed the
        tool if one did (a native abort or crash: ``"died with SIGABRT (signal 6): <last words>"``)."""
        if self.timed_out:
            return "timed out"
        line = last_error_line(self.output)
        died = died_with(self.returncode)
        if died:
            return died + ("" if line == "no output" else f": {line}")
        return line if line != "no output" else f"exit code {self.returncode}"


def died_with(returncode: Optional[int]) -> Optional[str]:
    """``"died with SIGFPE (signal 8)"`` when a signal killed the child (``None`` otherwise). SIGKILL says that
    the kernel's out-of-memory killer sends it: onnx2tf converting MODNet-ResNet50_vd at 512x512 reached 18 GB
    and was killed that way on a 23 GB host, with nothing else in its log."""
    name = signal_name(returncode)
    if name is None:
        return None
    hint = "; the out-of-memory killer sends it when memory runs out" if name == "SIGKILL" else ""
    return f"died with {name} (signal {-returncode}{hint})"


def signal_name(returncode: Optional[int]) -> Optional[str]:
    """``"SIGFPE"`` when ``returncode`` (subprocess's, ``-N`` for signal N) says a signal killed the child, else
    ``None``."""
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def python_tool_env(extra_pythonpath: Optional[Path] = None,
                    overrides: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The caller's environment with this interpreter's bin first on PATH (onnx2tf runs ``onnxsim``), unbuffered
    Python output, quiet glog, and ``extra_pythonpath`` first on PYTHONPATH."""
    env = dict(os.environ)
    # not resolved: in a venv, sys.executable is the venv's bin/python symlink, which is the point
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("GLOG_minloglevel", "2")
    if extra_pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(extra_pythonpath), env.get("PYTHONPATH")) if p)
    env.update(overrides or {})
    return env


# The folder holding the edgematte package (a checkout or site-packages): a worker started by run_package_worker
# imports edgematte from there even when the checkout is not installed.
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]


def run_package_worker(code: str, args: Sequence[str], *, what: str, timeout_s: Optional[float],
                       cwd: Optional[Path] = None, log_file: Optional[Path] = None) -> ToolResult:
    """``python -c code ARGS...`` with this interpreter and :func:`python_tool_env`, edgematte importable from where
    this process loaded it: the way a heavy or crash-prone step (TensorFlow's converter) runs in a process of its
    own. Returns :func:`run_tool`'s result."""
    return run_tool([sys.executable, "-c", code, *map(str, args)], what=what, timeout_s=timeout_s, cwd=cwd,
                    env=python_tool_env(extra_pythonpath=_PACKAGE_PARENT), log_file=log_file)


def run_tool(argv: Sequence[str], *, what: str, timeout_s: Optional[float], cwd: Optional[Path] = None,
             env: Optional[Mapping[str, str]] = None, log_file: Optional[Path] = None,
             input: Union[bytes, str, None] = None, check: bool = False) -> ToolResult:
    """Run ``argv`` to completion with stdout+stderr merged.

    ``log_file``: the output streams there (a tool that prints gigabytes never sits in memory) and is read
    back afterwards; else it is captured. ``input``: bytes or text for stdin (else stdin is /dev/null, so a
    tool never waits on the terminal). A timeout kills the tool and gives ``returncode`` -1. ``check``:
    a failure raises ``EdgematteError("<what> failed: <most telling log line>")``.
    """
    started = time.perf_counter()
    stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
    data = input.encode() if isinstance(input, str) else input
    timed_out = False
    reassert_signal_policy()  # a SIGTERM while the tool runs must reach the except below
    with open(log_file, "wb") if log_file is not None else contextlib.nullcontext() as log:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=None if env is None else dict(env), stdin=stdin,
                                stdout=log if log is not None else subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            raw, _ = proc.communicate(data, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            raw, _ = proc.communicate()
            timed_out = True
            if log is not None:
                log.write(f"\nERROR: {what} did not finish within {timeout_s:g} s\n".encode())
        except BaseException:  # Ctrl-C or SIGTERM (core.signals): the tool must not outlive us
            proc.kill()
            proc.wait()
            raise
    if log_file is not None:
        output = Path(log_file).read_text(encoding="utf-8", errors="replace")
    else:
        output = (raw or b"").decode("utf-8", errors="replace")
    result = ToolResult(argv=list(argv), returncode=-1 if timed_out else proc.returncode, output=output,
                        seconds=time.perf_counter() - started, log_path=None if log_file is None else Path(log_file),
                        timed_out=timed_out)
    if check and not result.ok:
        if timed_out:
            raise EdgematteError(f"{what}: did not finish within {timeout_s:g} s")
        raise EdgematteError(f"{what} failed: {result.error_line()}")
    return result


def clean_log(raw: str) -> str:
    """A tool log without ANSI colour codes."""
    return _ANSI_ESCAPE.sub("", raw)


def last_line(text: str) -> str:
    """The last non-empty line of ``text`` (stripped), or "no output"."""
    lines = [ln.strip() for ln in clean_log(text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def last_error_line(log_text: str) -> str:
    """The most telling error line of a tool log (one line, at most 300 characters).

    The tool's own last ``ERROR:`` line that names a cause (e.g. onnx2tf's ``FancyMatte OP is not yet
    implemented.``) plus the final Python exception (``ModuleNotFoundError: ...``) when both exist; else
    whichever exists; else the last line that is not glog/TensorFlow start-up noise.
    """
    lines = [ln.strip() for ln in clean_log(log_text or "").splitlines()]
    lines = [ln for ln in lines if ln and not _LOG_NOISE.match(ln)]
    tool_error = next(
        (ln for ln in reversed(lines)
         if ln.startswith("ERROR:") and not any(g in ln.lower() for g in _GENERIC_ERRORS)),
        None,
    )
    exception = next((ln for ln in reversed(lines) if _PYTHON_EXCEPTION.match(ln)), None)
    parts = [p for p in (tool_error, exception) if p]
    if not parts:
        parts = lines[-1:] or ["no output"]
    message = " / ".join(parts)
    return message if len(message) <= MAX_ERROR_LINE else message[:MAX_ERROR_LINE - 3] + "..."
