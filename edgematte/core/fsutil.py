"""Atomic outputs: a failure never leaves a half-written artefact or replaces a good one.

Files are written to a temporary sibling and renamed into place (``os.replace`` is atomic on POSIX
within one file system). Folders are built in a temporary sibling folder and swapped in at the end.
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create owner-only entries; published outputs get the usual permissions instead.
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


@contextlib.contextmanager
def atomic_path(target, suffix=""):
    """Yield a temporary path beside ``target``; on success rename it to ``target``.

    On any exception the temporary file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or ".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(target, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(target):
    """Yield a fresh temporary folder beside ``target``; on success it replaces ``target``.

    A previous ``target`` is kept until the new one is complete, then removed. On failure the
    temporary folder is deleted and the previous ``target`` (if any) is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.chmod(tmp, DIR_MODE)
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old.{os.getpid()}"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def sha256_file(path, chunk=1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def read_json_document(path, schema: str, what: str, hint: str = "") -> dict:
    """A JSON file that must declare ``"schema": schema``; failures are one-line errors naming ``path``."""
    from .errors import EdgematteError

    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise EdgematteError(f"{path}: no {what} here{hint}") from None
    except (OSError, ValueError) as e:
        raise EdgematteError(f"{path}: not a readable {what} ({e})") from e
    if not isinstance(document, dict) or document.get("schema") != schema:
        found = document.get("schema") if isinstance(document, dict) else None
        raise EdgematteError(f"{path}: unknown schema {found!r} for a {what} (expected {schema})")
    return document
