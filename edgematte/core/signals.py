"""The signal policy of every command: SIGTERM and SIGHUP unwind like Ctrl-C.

Python turns SIGINT into ``KeyboardInterrupt``, so ``with`` blocks clean up (the atomic outputs of
:mod:`edgematte.core.fsutil` delete their temporary folders, :func:`edgematte.core.tools.run_tool` kills
its tool). SIGTERM (what ``kill``, ``timeout``, systemd and CI runners send) and SIGHUP (a closed
terminal) would kill the process on the spot and leave gigabytes of work behind; here they raise
:class:`Terminated`, a ``KeyboardInterrupt``, and unwind the same way. A second signal during that
cleanup is ignored so the cleanup finishes; SIGKILL still stops everything, and the next run removes
what it left (:func:`edgematte.core.fsutil.remove_stale_work`).
"""

import importlib.abc
import signal
import sys
import threading
from typing import List, Optional

HANDLED = (signal.SIGTERM, signal.SIGHUP)
REPLACED_ON_IMPORT = ("paddle",)
"""Packages whose import installs their own SIGTERM handler below Python (paddle: glog's failure handler, which
aborts the process on the spot). The policy is installed again the moment their import finishes."""


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM or SIGHUP arrives. ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum

    def __str__(self) -> str:
        return signal.Signals(self.signum).name


_received: List[int] = []
_installed: List[int] = []


def _raise_terminated(signum, frame):
    for sig in HANDLED:
        signal.signal(sig, signal.SIG_IGN)  # let the unwinding finish
    _received.append(signum)
    raise Terminated(signum)


def received_signal() -> Optional[Terminated]:
    """The termination this process received, if any: code that catches broad exceptions (a library's import
    does) may turn :class:`Terminated` into another error, and the exit must still say what happened."""
    return Terminated(_received[0]) if _received else None


def install_signal_policy() -> bool:
    """Make SIGTERM and SIGHUP raise :class:`Terminated`. Only the main thread can; returns whether it did.

    A signal the parent set to be ignored (``nohup``) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return False
    _received.clear()  # a new command (the tests run several in one process) starts with none received
    _installed.clear()
    for sig in HANDLED:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _raise_terminated)
            _installed.append(sig)
    if not any(isinstance(finder, _ReassertAfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _ReassertAfterImport(REPLACED_ON_IMPORT))
    return True


class _ReassertAfterImport(importlib.abc.MetaPathFinder):
    """Has :func:`reassert_signal_policy` run as soon as one of ``names`` has been imported, wherever the import
    happens. Measured: paddle replaces the handler when imported, not when it later builds predictors or
    executors, so this closes the window between its import and the next stage or tool."""

    def __init__(self, names):
        self.names = frozenset(names)

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        original = spec.loader.exec_module

        def exec_module(module):
            try:
                original(module)
            finally:
                reassert_signal_policy()

        spec.loader.exec_module = exec_module  # this spec's own loader instance: only this import is wrapped
        return spec


def reassert_signal_policy() -> None:
    """Install the policy's handlers again where :func:`install_signal_policy` installed them.

    A library may replace them below Python, where ``signal.getsignal`` does not see it: importing paddle installs
    its own SIGTERM handler, which aborts the process on the spot, so a ``convert`` stopped during onnx2tf died and
    left onnx2tf running (10 GB on MODNet-ResNet50_vd) and its work folder behind. Called the moment paddle's
    import finishes (:data:`REPLACED_ON_IMPORT`), and before every tool and every conversion stage against any
    other library doing the same; a no-op outside the main thread, without the policy, or once a signal is
    unwinding."""
    if _received or threading.current_thread() is not threading.main_thread():
        return
    for sig in _installed:
        signal.signal(sig, _raise_terminated)
