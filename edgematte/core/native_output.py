"""Native libraries' chatter kept off the user's terminal.

libpng ("libpng warning: iCCP: known incorrect sRGB profile"), FFmpeg ("[h264 @ 0x...] error while decoding")
and glog write straight to file descriptor 2 from C, past Python's ``sys.stderr``. Around such calls, fd 2 is
pointed at a temporary file; what the library said is returned to the caller (which may turn it into a
one-line reason) and shown as it was under ``--debug``.
"""

import contextlib
import os
import sys
import tempfile
from typing import Iterator, List

MAX_CAPTURED_BYTES = 1 << 16
# Not in console: this module ships to boards, which have no click.
_state = {"show": False}


def show_native_output(show: bool) -> None:
    """``--debug``: print what native libraries said after each captured call, as they said it."""
    _state["show"] = bool(show)


@contextlib.contextmanager
def captured_native_stderr() -> Iterator[List[str]]:
    """Capture what native code writes to fd 2 inside the block; yields a list that receives its lines
    (at most 64 KiB) when the block ends. Process-wide: Python's own ``sys.stderr`` output in the block
    is captured too, so keep the block to the native call."""
    lines: List[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no fd 2 (a daemon): nothing to protect
        yield lines
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read(MAX_CAPTURED_BYTES).decode("utf-8", errors="replace")
            lines.extend(line.rstrip() for line in text.splitlines() if line.strip())
            if _state["show"]:
                for line in lines:
                    print(line, file=sys.stderr)
