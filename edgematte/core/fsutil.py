"""Atomic outputs: a failure never leaves a half-written artefact or replaces a good one.

Files are written to a temporary sibling and renamed into place (``os.replace`` is atomic on POSIX
within one file system). Folders are built in a temporary sibling folder and swapped in at the end.
"""

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from .errors import EdgematteError
from .userfiles import read_user_text


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create owner-only entries; published outputs get the usual permissions instead.
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


# ------------------------------------------------------------------------------------------ work names
# Temporary entries are named ".NAME.edgematte-PID-START.RANDOM": the owner's pid and its start time (from
# /proc, so a reused pid is not mistaken for the owner), so a later run can tell a dead run's leftovers
# (SIGKILL, a power cut) from a live run's work and remove only the former.
WORK_TAG = "edgematte"
_WORK_NAME = re.compile(r"^\.(?P<name>.+)\.edgematte-(?P<pid>\d+)-(?P<start>\d+)\.")


def _start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat); 0 where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read(4096).rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def _work_prefix(name: str) -> str:
    pid = os.getpid()
    return f".{name}.{WORK_TAG}-{pid}-{_start_time(pid)}."


def _owner_alive(pid: int, start: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return start == 0 or _start_time(pid) in (0, start)


def remove_stale_work(parent, name: str) -> List[Path]:
    """Remove the temporary entries for output ``name`` in ``parent`` that dead edgematte runs left.

    Only entries named as :func:`atomic_dir` / :func:`atomic_path` name them, owned by this user, whose
    owning process is gone. Returns what was removed.
    """
    removed = []
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _WORK_NAME.match(entry.name)
        if not match or match["name"] != name:
            continue
        try:
            info = entry.lstat()
        except OSError:
            continue
        if info.st_uid != os.getuid() or _owner_alive(int(match["pid"]), int(match["start"])):
            continue
        if stat.S_ISDIR(info.st_mode):
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_path(target, suffix=""):
    """Yield a temporary path beside ``target``; on success rename it to ``target``.

    On any exception (SIGTERM included, see :mod:`edgematte.core.signals`) the temporary file is removed and
    ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_work_prefix(target.name), suffix=suffix or ".tmp", dir=target.parent)
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


# ------------------------------------------------------------------------------------------ output folders
# Every folder atomic_dir publishes holds this marker, listing every file and folder edgematte put there
# (relative paths). A folder is replaced only when everything in it is ours: listed in its marker, or inside
# a folder that is itself ours (a benchmark report folder inside a conversion folder).
OUTPUT_MARKER = ".edgematte-output.json"
OUTPUT_SCHEMA = "edgematte.output/1"
MAX_MARKER_BYTES = 16 << 20


def _marker_entries(folder: Path) -> Optional[set]:
    marker = folder / OUTPUT_MARKER
    try:
        if not marker.is_file() or marker.is_symlink() or marker.stat().st_size > MAX_MARKER_BYTES:
            return None
        document = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("schema") != OUTPUT_SCHEMA:
        return None
    entries = document.get("entries")
    return {e for e in entries if isinstance(e, str)} if isinstance(entries, list) else None


def _written_entries(folder: Path) -> List[str]:
    """Every file and folder under ``folder`` as relative POSIX paths (symbolic links not followed)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.name != OUTPUT_MARKER
                  or p.parent != folder)


def _unlisted(root: Path, current: Path, listed: set, recognise) -> List[str]:
    foreign = []
    for entry in sorted(current.iterdir()):
        relative = entry.relative_to(root).as_posix()
        if current == root and entry.name == OUTPUT_MARKER:
            continue
        if entry.is_dir() and not entry.is_symlink():
            if relative not in listed and (_marker_entries(entry) is not None or recognise and recognise(entry)):
                foreign += [f"{relative}/{name}" for name in foreign_entries(entry, recognise)]
            else:
                foreign += _unlisted(root, entry, listed, recognise)
        elif relative not in listed:
            foreign.append(relative)
    return foreign


def foreign_entries(folder, recognise: Optional[Callable[[Path], bool]] = None) -> List[str]:
    """The files under ``folder`` that edgematte did not write (relative paths, sorted; empty: all ours).

    Ours: the marker, what the marker lists, and what is inside folders that are ours in turn; folders
    themselves hold nothing of the user's, so an empty one is never foreign. ``recognise``: a check for a
    folder written before outputs were marked (e.g. it holds a manifest of ours); it counts as ours whole.
    """
    folder = Path(folder)
    listed = _marker_entries(folder)
    if listed is None and recognise is not None and recognise(folder):
        return []
    return _unlisted(folder, folder, listed or set(), recognise)


def record_outputs(folder, names: Sequence[str]) -> None:
    """Add ``names`` (files edgematte just wrote into ``folder`` one by one, e.g. a benchmark's reports) to the
    folder's marker, creating it, so the folder counts as edgematte's and a conversion folder holding it can
    still be replaced. Entries already listed stay; a marker that is not ours is never touched."""
    folder = Path(folder)
    marker = folder / OUTPUT_MARKER
    listed = _marker_entries(folder)
    if listed is None and (marker.exists() or marker.is_symlink()):
        return
    entries = sorted((listed or set()) | {str(n) for n in names})
    write_text_atomic(marker, json.dumps({"schema": OUTPUT_SCHEMA, "entries": entries}) + "\n")


def remove_recorded_outputs(folder, keep_matching: Callable[[str], bool], keep: Sequence[str] = ()) -> List[str]:
    """Delete the files of ``folder`` that its marker lists as edgematte's own (written there by an earlier run), that
    ``keep_matching(name)`` selects and that are not in ``keep``; drop them from the marker. Returns the names
    removed. Nothing the marker does not list (a user's file) is touched; without a marker of ours, nothing is."""
    folder = Path(folder)
    listed = _marker_entries(folder)
    if not listed:
        return []
    removed = sorted(n for n in listed if keep_matching(n) and n not in set(keep) and "/" not in n)
    for name in removed:
        path = folder / name
        if path.is_file() and not path.is_symlink():
            path.unlink()
    if removed:
        write_text_atomic(folder / OUTPUT_MARKER,
                          json.dumps({"schema": OUTPUT_SCHEMA, "entries": sorted(listed - set(removed))}) + "\n")
    return removed


def check_output_folder(target, inputs: Sequence = (), recognise: Optional[Callable[[Path], bool]] = None,
                        what: str = "output folder") -> None:
    """Refuse (one line naming ``target``) to replace a folder that holds anything edgematte did not write,
    or that holds one of ``inputs`` or the current directory. A missing or empty ``target`` is always fine."""
    target = Path(target)
    if target.is_symlink():
        raise EdgematteError(f"{target}: the {what} is a symbolic link; give the real folder")
    if not target.exists():
        return
    if not target.is_dir():
        raise EdgematteError(f"{target}: the {what} exists and is not a folder")
    resolved = target.resolve()
    for held, name in [*((p, str(p)) for p in inputs), (Path.cwd(), "the current directory")]:
        held_resolved = Path(held).resolve()
        if held_resolved == resolved or resolved in held_resolved.parents:
            raise EdgematteError(f"{target}: refusing to replace the {what}: it holds {name}, which would be lost")
    try:
        foreign = foreign_entries(target, recognise)
    except OSError as e:
        raise EdgematteError(f"{target}: cannot read the {what} ({e.strerror or e})") from None
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise EdgematteError(f"{target}: refusing to replace the {what}: it holds files edgematte did not write "
                             f"({shown}); choose another folder or remove them")


def _writable_parent(target: Path, what: str) -> None:
    blocker = next((p for p in [target.parent, *target.parent.parents] if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise EdgematteError(f"{blocker}: is a file, not a folder, so the {what} cannot be written in it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgematteError(f"{target.parent}: cannot create the folder for the {what} ({e.strerror or e})") from None
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise EdgematteError(f"{target.parent}: not writable, so the {what} cannot be written there")


@contextlib.contextmanager
def atomic_dir(target, inputs: Sequence = (), recognise: Optional[Callable[[Path], bool]] = None,
               what: str = "output folder"):
    """Yield a fresh temporary folder beside ``target``; on success it replaces ``target``.

    Before any work: ``target`` is checked by :func:`check_output_folder` (``inputs``: paths that must not be
    inside it; ``recognise``: see :func:`foreign_entries`), and leftovers of dead runs are removed
    (:func:`remove_stale_work`). A previous ``target`` is kept until the new one is complete, then removed.
    On failure or interruption the temporary folder is deleted and the previous ``target`` is untouched.
    """
    target = Path(target)
    check_output_folder(target, inputs, recognise, what)
    _writable_parent(target, what)
    remove_stale_work(target.parent, target.name)
    tmp = Path(tempfile.mkdtemp(prefix=_work_prefix(target.name), dir=target.parent))
    try:
        yield tmp
        entries = _written_entries(tmp)
        (tmp / OUTPUT_MARKER).write_text(json.dumps({"schema": OUTPUT_SCHEMA, "entries": entries}) + "\n")
        check_output_folder(target, inputs, recognise, what)  # what changed while we worked is kept too
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.chmod(tmp, DIR_MODE)
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=_work_prefix(target.name), dir=target.parent)) / "old"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old.parent, ignore_errors=True)


def sha256_file(path, chunk=1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def read_json_document(path, schema: str, what: str, hint: str = "") -> dict:
    """A JSON file that must declare ``"schema": schema``; failures are one-line errors naming ``path``.

    Read as a user's file (:mod:`edgematte.core.userfiles`): regular, at most the manifest size limit."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise EdgematteError(f"{path}: no {what} here{hint}")
    text = read_user_text(path, "manifest")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise EdgematteError(f"{path}: not a readable {what} ({reason})") from None
    if not isinstance(document, dict) or document.get("schema") != schema:
        found = document.get("schema") if isinstance(document, dict) else None
        raise EdgematteError(f"{path}: unknown schema {found!r} for a {what} (expected {schema})")
    return document
