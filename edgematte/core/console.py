"""Shared terminal conventions: quiet mode, one-line messages and progress bars.

Every command reports through these helpers so that ``--quiet`` and ``--json`` behave the same
everywhere: human text goes to stderr, machine-readable output (``--json``) alone goes to stdout.
click is imported only when used: the runtime (which warns through here) ships to boards without it.
"""

import contextlib
import json
import sys

_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = bool(quiet)


def is_quiet() -> bool:
    return _state["quiet"]


def _echo(message: str, err: bool) -> None:
    try:
        import click
    except ImportError:  # a board's runtime bundle
        print(message, file=sys.stderr if err else sys.stdout, flush=True)
        return
    click.echo(message, err=err)


def info(message: str) -> None:
    """Print a status line to stderr unless ``--quiet``."""
    if not _state["quiet"]:
        _echo(message, err=True)


def warn(message: str) -> None:
    """Print a warning to stderr (also under ``--quiet``: warnings are never silent)."""
    _echo(f"edgematte: warning: {message}", err=True)


def emit_json(obj) -> None:
    """Write ``obj`` as JSON to stdout (the only thing a ``--json`` command writes to stdout)."""
    _echo(json.dumps(obj, indent=2, sort_keys=False, default=str), err=False)


@contextlib.contextmanager
def progress(iterable=None, length=None, label="", unit=""):
    """A progress bar on stderr, hidden under ``--quiet`` or when stderr is not a terminal.

    Yields an iterable (when ``iterable`` is given) or a bar with ``update(n)``.
    """
    hidden = _state["quiet"] or not sys.stderr.isatty()
    if not hidden:
        import click
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
