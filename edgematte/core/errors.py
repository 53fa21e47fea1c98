"""The one exception type that means "the user's input is wrong", not "edgematte is broken".

The CLI prints an :class:`EdgematteError` as a single line (``edgematte: error: ...``) and exits 1;
anything else is a bug and prints a traceback only with ``--debug``.
"""


class EdgematteError(Exception):
    """A problem the user can fix: a bad file, a wrong option, a missing tool.

    The message should name the file (or option) and the problem in one line.
    """

    exit_code = 1




def shown_value(value, limit: int = 60) -> str:
    """``repr(value)`` for a one-line message: newlines escaped, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text) -> str:
    """``text`` with every run of whitespace (newlines included) made one space: a message that stays one line."""
    return " ".join(str(text).split())
