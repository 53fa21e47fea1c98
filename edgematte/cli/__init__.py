"""The ``edgematte`` command line: one small function per command, each calling the library.

Errors the user can fix (:class:`edgematte.core.errors.EdgematteError`) print one line and exit non-zero;
usage mistakes exit 2; anything else is a bug and prints a traceback only with ``--debug``. The root group and
the entry point are in :mod:`.app`; each ``*_commands`` module adds its commands to the group when imported.
"""

from . import (  # noqa: F401
    bench_commands,
    convert_command,
    device_commands,
    quant_commands,
    runtime_commands,
    zoo_commands,
)
from .app import cli, main

__all__ = ["cli", "main"]
