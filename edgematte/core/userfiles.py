"""Reading files the user names: regular files only, sizes bounded before a byte is read.

Every path a user gives (an image, a video, ``--weights``, ``--background``, a deploy.yaml, a manifest) is
opened through here, so a FIFO never blocks, ``/dev/zero`` is never read until memory runs out, and a folder
given as a file gets one line naming it.

The file is opened with ``O_NONBLOCK`` (opening a FIFO for reading would otherwise wait for a writer) and
checked with ``fstat`` on the open descriptor, so what is checked is what is read.
"""

import errno
import fcntl
import os
import stat
from pathlib import Path
from typing import BinaryIO

from .errors import EdgematteError

MiB = 1 << 20
GiB = 1 << 30

# Upper bounds per kind of file, chosen far above any real input, low enough that reading one is harmless.
LIMITS = {
    "image": 512 * MiB,  # a 16-bit 100 MP TIFF is about 600 MB uncompressed; compressed photos are far smaller
    "weights": 4 * GiB,  # PP-Matting HRNet_W18's .pdparams is about 100 MB; a 1 B-parameter net is 4 GB
    "model": 4 * GiB,  # .pdmodel / .pdiparams / .onnx / .tflite / .nb
    "config": 1 * MiB,  # deploy.yaml and inference.yml are a few hundred bytes
    "manifest": 64 * MiB,  # a full --int8 manifest is about 100 KB
    "video": 64 * GiB,
    "archive": 16 * GiB,
}

_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _limit(kind: str, limit) -> int:
    if limit is not None:
        return int(limit)
    if kind not in LIMITS:
        raise ValueError(f"unknown file kind {kind!r} (known: {', '.join(LIMITS)})")
    return LIMITS[kind]


def _human(n: int) -> str:
    return f"{n / GiB:.0f} GiB" if n >= GiB else f"{n / MiB:.0f} MiB"


def open_user_file(path, kind: str, limit=None) -> BinaryIO:
    """Open ``path`` for binary reading after checking it is a regular file of at most the ``kind``'s limit.

    ``kind`` is a key of :data:`LIMITS` (it also names the file in errors); ``limit`` overrides its size
    bound in bytes. Raises :class:`EdgematteError` with one line naming ``path`` and the problem.
    """
    path = Path(path)
    bound = _limit(kind, limit)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise EdgematteError(f"{path}: no such {kind} file") from None
    except IsADirectoryError:
        raise EdgematteError(f"{path}: is a folder, not a {kind} file") from None
    except OSError as e:
        if e.errno == errno.ENXIO:  # a socket, or a FIFO opened for writing elsewhere
            raise EdgematteError(f"{path}: is {_kind(os.stat(path).st_mode)}, not a regular {kind} file") from None
        raise EdgematteError(f"{path}: cannot open {kind} file ({e.strerror or e})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise EdgematteError(f"{path}: is {_kind(info.st_mode)}, not a regular {kind} file")
        if info.st_size > bound:
            raise EdgematteError(f"{path}: {info.st_size} bytes, more than the {_human(bound)} limit for a {kind} file")
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_user_bytes(path, kind: str, limit=None) -> bytes:
    """The bytes of a user's file, bounded as :func:`open_user_file` bounds it (a file that grows while it is
    read is cut off at the limit and refused)."""
    bound = _limit(kind, limit)
    with open_user_file(path, kind, bound) as f:
        try:
            data = f.read(bound + 1)
        except OSError as e:
            raise EdgematteError(f"{path}: cannot read {kind} file ({e.strerror or e})") from None
    if len(data) > bound:
        raise EdgematteError(f"{path}: grew past the {_human(bound)} limit for a {kind} file while being read")
    return data


def read_user_text(path, kind: str, limit=None) -> str:
    """:func:`read_user_bytes` decoded as UTF-8; undecodable bytes are a one-line error."""
    data = read_user_bytes(path, kind, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EdgematteError(f"{path}: not a UTF-8 text {kind} file (byte {e.start})") from None


def check_user_file(path, kind: str, limit=None) -> Path:
    """Check ``path`` as :func:`open_user_file` does and return it, for libraries that open files by name
    (OpenCV, PyAV, Paddle, the runtimes)."""
    open_user_file(path, kind, limit).close()
    return Path(path)
