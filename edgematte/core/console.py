"""Shared terminal conventions: quiet mode, one-line messages and progress bars.

Every command reports through these helpers so that ``--quiet`` and ``--json`` behave the same
everywhere: human text goes to stderr, machine-readable output (``--json``) alone goes to stdout.
"""

import contextlib
import json
import sys

import click

_state = {"quiet": False, "debug": False}


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = bool(quiet)


def set_debug(debug: bool) -> None:
    """``--debug``: tracebacks, and native libraries' own stderr lines (:mod:`.native_output`)."""
    _state["debug"] = bool(debug)


def is_debug() -> bool:
    return _state["debug"]


def is_quiet() -> bool:
    return _state["quiet"]


def info(message: str) -> None:
    """Print a status line to stderr unless ``--quiet``."""
    if not _state["quiet"]:
        click.echo(message, err=True)


def warn(message: str) -> None:
    """Print a warning to stderr (also under ``--quiet``: warnings are never silent)."""
    click.echo(f"edgematte: warning: {message}", err=True)


def emit_json(obj) -> None:
    """Write ``obj`` as JSON to stdout (the only thing a ``--json`` command writes to stdout)."""
    click.echo(json.dumps(obj, indent=2, sort_keys=False, default=str))


@contextlib.contextmanager
def progress(iterable=None, length=None, label="", unit=""):
    """A progress bar on stderr, hidden under ``--quiet`` or when stderr is not a terminal.

    Yields an iterable (when ``iterable`` is given) or a bar with ``update(n)``.
    """
    hidden = _state["quiet"] or not sys.stderr.isatty()
    with click.progressbar(
        iterable,
        length=length,
        label=label,
        file=sys.stderr,
        show_pos=True,
        show_eta=True,
        item_show_func=None,
    ) if not hidden else _NullBar(iterable) as bar:
        yield bar


class _NullBar:
    def __init__(self, iterable):
        self._iterable = iterable

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __iter__(self):
        return iter(self._iterable)

    def update(self, n, current_item=None):
        pass
