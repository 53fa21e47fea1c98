"""The signal policy of every command: SIGTERM and SIGHUP unwind like Ctrl-C.

Python turns SIGINT into ``KeyboardInterrupt``, so ``with`` blocks clean up (the atomic outputs of
:mod:`edgematte.core.fsutil` delete their temporary folders, :func:`edgematte.core.tools.run_tool` kills
its tool). SIGTERM (what ``kill``, ``timeout``, systemd and CI runners send) and SIGHUP (a closed
terminal) would kill the process on the spot and leave gigabytes of work behind; here they raise
:class:`Terminated`, a ``KeyboardInterrupt``, and unwind the same way. A second signal during that
cleanup is ignored so the cleanup finishes; SIGKILL still stops everything, and the next run removes
what it left (:func:`edgematte.core.fsutil.remove_stale_work`).
"""

import signal
import threading
from typing import List, Optional

HANDLED = (signal.SIGTERM, signal.SIGHUP)


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
    return True


def reassert_signal_policy() -> None:
    """Install the policy's handlers again where :func:`install_signal_policy` installed them.

    A library may replace them below Python, where ``signal.getsignal`` does not see it: importing paddle installs
    its own SIGTERM handler, which aborts the process on the spot, so a ``convert`` stopped during onnx2tf died and
    left onnx2tf running (10 GB on MODNet-ResNet50_vd) and its work folder behind. Called before every tool and
    every conversion stage; a no-op outside the main thread, without the policy, or once a signal is unwinding."""
    if _received or threading.current_thread() is not threading.main_thread():
        return
    for sig in _installed:
        signal.signal(sig, _raise_terminated)
