"""Thread counts: one policy for every local ``--threads`` and every runtime backend.

A count below 1 is refused (one line naming the option). A count above the cores this process may run on
(``os.sched_getaffinity``, else ``os.cpu_count``) is clamped to them with one warning: asking LiteRT or ONNX
Runtime for 99999 threads makes them start a pool that size, which never finishes while memory grows, and
more threads than cores never makes one model run faster.

The commands resolve their ``--threads`` first and hand the clamped count down; the backends resolve again
for callers of the library. Each too-large count is warned about once per process, so a command that opens
several backends (``verify``) or a library caller that passes the same count twice sees one warning.
``bench --threads`` is not resolved here: it may name thread counts of a remote board.
"""

import numbers
import os
from typing import Optional, Set

from . import console
from .errors import EdgematteError

_warned: Set[int] = set()


def machine_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _label(option: str, value) -> str:
    """``--threads 8`` for a command-line option, ``threads=8`` for a keyword argument."""
    return f"{option} {value}" if option.startswith("-") else f"{option}={value}"


def resolve_threads(threads, option: str = "--threads") -> Optional[int]:
    """``threads`` as the count to use: ``None`` stays ``None`` (the runtime's default), below 1 raises
    :class:`EdgematteError`, above :func:`machine_cores` becomes that with one warning (once per count).

    ``option`` names the setting in messages: ``--threads`` for a command, ``threads`` for a library call.
    """
    if threads is None:
        return None
    whole = isinstance(threads, numbers.Integral) or (isinstance(threads, numbers.Real)
                                                        and float(threads).is_integer())
    if isinstance(threads, bool) or not whole:
        raise EdgematteError(f"{_label(option, repr(threads))}: the thread count must be a whole number")
    count = int(threads)
    if count < 1:
        raise EdgematteError(f"{_label(option, count)}: the thread count must be at least 1")
    cores = machine_cores()
    if count <= cores:
        return count
    if count not in _warned:
        _warned.add(count)
        console.warn(f"{_label(option, count)} is more than this machine's {cores} "
                     f"{'core' if cores == 1 else 'cores'}; using {cores}")
    return cores
