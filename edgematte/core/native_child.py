"""Native code on inputs nobody has verified yet, run in a child interpreter, so a signal costs one line.

ONNX shape inference and ONNX Runtime are C++: on a graph with an AveragePool or Conv of stride 0 (paddle2onnx's
adaptive pools with more bins than inputs) both divide by zero and the whole process dies with SIGFPE; Python
cannot catch it. :class:`NativeChild` is one child process per job (one ONNX export), started when the job
starts so its imports overlap the job's first step: :func:`run_native` sends it a module-level function and its
arguments (pickled, over pipes: parent and child are the same program), and when the child dies by a signal the
call raises :class:`NativeCrash`, ``"<what>: <step> died with SIGFPE (signal 8)"``. A Python exception in the
child is raised again in the parent. Outside a ``with NativeChild(...)`` block :func:`run_native` calls the
function in this process.

The child is this module: ``python -m edgematte.core.native_child [MODULE ...]`` imports the modules, then
serves calls until its stdin closes. What native code prints there goes to a temporary file: the last words a
crash line quotes.
"""

import contextlib
import contextvars
import importlib
import os
import pickle
import subprocess
import sys
import tempfile
from typing import Any, Callable, Optional, Sequence

from .errors import EdgematteError
from .tools import died_with, last_error_line, python_tool_env

STOP_TIMEOUT_S = 30
_ACTIVE: contextvars.ContextVar[Optional["NativeChild"]] = contextvars.ContextVar("edgematte_native_child",
                                                                                  default=None)


class NativeCrash(EdgematteError):
    """The child died (a signal, or an exit from native code) while it ran a step."""


def death_line(what, step: str, returncode: int, output: str = "") -> str:
    """The one line for a child that died running ``step`` on ``what``: ``"<what>: <step> died with SIGFPE
    (signal 8)"`` (an exit without a signal: ``"... exited with code 1"``), then its last words if it had any."""
    how = died_with(returncode) or f"exited with code {returncode}"
    words = last_error_line(output)
    return f"{what}: {step} {how}" + ("" if words == "no output" else f": {words}")


class NativeChild:
    """A child interpreter that runs functions for this process while the ``with`` block lasts; see the module
    docstring. ``what`` names the input in crash lines; ``preload``: modules the child imports at start."""

    def __init__(self, what, preload: Sequence[str] = ()):
        self.what = str(what)
        self.preload = tuple(preload)
        self._proc: Optional[subprocess.Popen] = None
        self._log = None
        self._token = None

    def __enter__(self) -> "NativeChild":
        self._start()
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        _ACTIVE.reset(self._token)
        self._stop(kill=exc_type is not None)  # Ctrl-C or an error: the child must not outlive the job

    def call(self, step: str, fn: Callable, *args) -> Any:
        """``fn(*args)`` in the child (a fresh one if the last one died); ``step`` names it in a crash line."""
        if self._proc is None:
            self._start()
        proc = self._proc
        try:
            pickle.dump((fn.__module__, fn.__qualname__, args), proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            proc.stdin.flush()
            ok, value = pickle.load(proc.stdout)
        except (EOFError, OSError, pickle.UnpicklingError):  # the child is gone: say how
            try:
                returncode = proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                returncode = None
            self._log.seek(0)
            output = self._log.read().decode("utf-8", errors="replace")
            self._stop(kill=True)
            if returncode is None:
                raise NativeCrash(f"{self.what}: {step}: the child process stopped answering") from None
            raise NativeCrash(death_line(self.what, step, returncode, output)) from None
        except BaseException:
            self._stop(kill=True)
            raise
        if ok:
            return value
        raise value

    def _start(self) -> None:
        self._log = tempfile.TemporaryFile(prefix="edgematte-native-")
        self._proc = subprocess.Popen([sys.executable, "-m", __name__, *self.preload], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._log, env=python_tool_env())

    def _stop(self, kill: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if kill:
                proc.kill()
            with contextlib.suppress(OSError):
                proc.stdin.close()  # end of calls: the child exits
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None


def run_native(step: str, fn: Callable, *args) -> Any:
    """``fn(*args)`` in the open :class:`NativeChild` (a crash there raises :class:`NativeCrash` naming ``step``),
    or in this process when none is open. ``fn`` must be a module-level function; arguments and result cross
    by pickle."""
    child = _ACTIVE.get()
    return fn(*args) if child is None else child.call(step, fn, *args)


def _portable(error: Exception) -> Exception:
    """``error`` if it survives pickling, else a RuntimeError that says what it was."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


def _serve(preload: Sequence[str]) -> int:
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what native code prints must not enter the replies
    for module in preload:
        importlib.import_module(module)
    requests = sys.stdin.buffer
    while True:
        try:
            module, qualname, args = pickle.load(requests)
        except EOFError:
            return 0
        try:
            fn = importlib.import_module(module)
            for part in qualname.split("."):
                fn = getattr(fn, part)
            reply = pickle.dumps((True, fn(*args)), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:
            reply = pickle.dumps((False, _portable(e)), protocol=pickle.HIGHEST_PROTOCOL)
        channel.write(reply)
        channel.flush()


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1:]))
