"""Fetching the official checkpoints and deploy zips into a per-user cache, each checked before it is kept.

Cache (``$EDGEMATTE_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgematte``, else ``~/.cache/edgematte``)::

    CACHE/models/ppmattingv2-stdc1-human_512.pdparams        a fetched file, at its path below the base URL
    CACHE/models/deploy/ppmattingv2-stdc1-human_512.zip
    CACHE/models/lock.json                                   per file: the URL and sha256 of its first fetch
    CACHE/models/NAME.pdparams.part (+ .part.json)           an interrupted download, resumed by the next fetch

A download goes to ``FILE.part`` (its ``.part.json`` says which URL and validator it holds, so a resume never
mixes two files) and is renamed to ``FILE`` only after every check passed: the size announced was received, the
sha256 equals a digest pinned in :mod:`.official_files` and the one the lock file recorded, and the content is
what it claims (a ``.pdparams`` passes the restricted unpickler and the exact official layout of its zoo model at
width 1; a zip passes the safe extractor and the deploy-folder loader). Only ``FILE`` is ever used: a ``.part``
is never mistaken for a fetched file.

When a fetch fails nothing new is kept, with one exception: when the network broke off mid-body (connection
reset, read timeout) the bytes received stay in ``FILE.part`` for the next fetch to resume with an HTTP ``Range``
request. A network failure before any data (no route, DNS, refused, TLS, no answer) leaves an earlier ``.part`` as
it was. An HTTP error status, a body shorter than announced that the server ended itself (truncation), a size over
the limit, a digest that differs and a file that fails its content check remove the ``.part`` too.

Transport: the standard library's ``http.client`` over sockets this module opens, so that name resolution,
connecting and the TLS handshake are bounded by the connect timeout and every read by the read timeout (both
``$EDGEMATTE_FETCH_TIMEOUT`` seconds, default 30). Only ``https`` (certificates verified); plain ``http`` only for
a mirror on the loopback interface (127.0.0.0/8, ::1, localhost: a local test server). Redirects are followed
(at most 5) only within the same scheme. No proxy support: a mirror is the way through a closed network.
``$EDGEMATTE_OFFLINE=1`` allows no network at all (cached files are still used).
"""

import datetime
import fcntl
import http.client
import ipaddress
import json
import math
import os
import re
import socket
import ssl
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple
from urllib.parse import urljoin, urlsplit

from .. import __version__
from ..core import console
from ..core.errors import EdgematteError, one_line
from ..core.fsutil import FILE_MODE, read_json_document, sha256_file, write_text_atomic
from ..core.userfiles import GiB, check_user_file
from .official_files import BASE_URL, OfficialFile, fetch_command, official_file

ENV_CACHE = "EDGEMATTE_CACHE_DIR"
ENV_MIRROR = "EDGEMATTE_MODEL_MIRROR"
ENV_OFFLINE = "EDGEMATTE_OFFLINE"
ENV_TIMEOUT = "EDGEMATTE_FETCH_TIMEOUT"
DEFAULT_TIMEOUT = 30.0  # seconds: to resolve + connect + handshake, and for each read
MAX_DOWNLOAD_BYTES = 4 * GiB  # far above any official file (the largest checkpoint holds 92 M floats)
MAX_REDIRECTS = 5
LOCK_NAME = "lock.json"
LOCK_SCHEMA = "edgematte.weights-lock/1"
PART_SUFFIX = ".part"
META_SUFFIX = ".part.json"
CHUNK = 1 << 16
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_REDIRECTS = (301, 302, 303, 307, 308)


# ------------------------------------------------------------------------------------------ settings
def cache_root() -> Path:
    """The edgematte cache folder: ``$EDGEMATTE_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgematte`` (an absolute
    XDG path only, as the XDG spec says), else ``~/.cache/edgematte``."""
    explicit = os.environ.get(ENV_CACHE, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "edgematte"


def models_dir(root=None) -> Path:
    """Where fetched files, their ``.part`` downloads and the lock file live: ``CACHE/models``."""
    return (Path(root) if root is not None else cache_root()) / "models"


def cached_path(official: OfficialFile, root=None) -> Path:
    """The cache path of ``official`` (its path below the base URL, below :func:`models_dir`)."""
    return models_dir(root).joinpath(*official.path.split("/"))


def is_offline() -> bool:
    """Whether ``$EDGEMATTE_OFFLINE`` forbids the network (1/true/yes/on; 0/false/no/off or unset allow it;
    anything else is a one-line error rather than a guess)."""
    value = os.environ.get(ENV_OFFLINE, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise EdgematteError(f"{ENV_OFFLINE}={os.environ[ENV_OFFLINE]!r}: expected 1 (no network) or 0")


def fetch_timeout() -> float:
    """The connect and read timeout in seconds: ``$EDGEMATTE_FETCH_TIMEOUT`` or :data:`DEFAULT_TIMEOUT`."""
    value = os.environ.get(ENV_TIMEOUT, "").strip()
    if not value:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise EdgematteError(f"{ENV_TIMEOUT}={value!r}: expected a number of seconds above 0")
    return seconds


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: str, what: str) -> Tuple[str, str, int, str]:
    """``(scheme, host, port, path?query)`` of a URL edgematte may fetch: https, or http on a loopback host; no
    credentials or fragment. ``what`` names where the URL came from in the one-line error."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise EdgematteError(f"{what}: not a valid URL ({e})") from None
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme not in ("https", "http") or not host:
        raise EdgematteError(f"{what}: not an https:// URL")
    if scheme == "http" and not _is_loopback(host):
        raise EdgematteError(f"{what}: plain http is allowed only for a mirror on this machine's loopback interface "
                             "(127.0.0.1, ::1, localhost); use https")
    if parts.username is not None or parts.password is not None:
        raise EdgematteError(f"{what}: credentials in the URL are not supported")
    if parts.fragment:
        raise EdgematteError(f"{what}: a URL with a #fragment names no file")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port or (443 if scheme == "https" else 80), target


def base_url() -> str:
    """The base URL the official paths are fetched below: ``$EDGEMATTE_MODEL_MIRROR`` (checked as
    :func:`_check_url` checks any URL) or :data:`~.official_files.BASE_URL`; always ending in ``/``."""
    mirror = os.environ.get(ENV_MIRROR, "").strip()
    if not mirror:
        return BASE_URL
    _check_url(mirror, f"{ENV_MIRROR}={mirror}")
    if urlsplit(mirror).query:
        raise EdgematteError(f"{ENV_MIRROR}={mirror}: a base URL takes no ?query")
    return mirror.rstrip("/") + "/"


def file_url(official: OfficialFile) -> str:
    """Where ``official`` is fetched from: its path below :func:`base_url`."""
    return base_url() + official.path


# ------------------------------------------------------------------------------------------ the lock file
def lock_path(root=None) -> Path:
    return models_dir(root) / LOCK_NAME


def read_lock(root=None) -> Dict[str, dict]:
    """The lock file's records, ``{path below the base URL: {"url", "sha256", "size", "recorded"}}`` (empty
    when there is no lock file yet); a lock file that is not one is a one-line error naming it."""
    path = lock_path(root)
    if not path.exists() and not path.is_symlink():
        return {}
    document = read_json_document(path, LOCK_SCHEMA, "weights lock file")
    files = document.get("files")
    if not isinstance(files, dict):
        raise EdgematteError(f"{path}: 'files' is not a mapping; fix or delete the lock file")
    for key, entry in files.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("url"), str)
                and isinstance(entry.get("sha256"), str) and _SHA256.match(entry["sha256"])):
            raise EdgematteError(f"{path}: the entry for {key!r} is not {{'url': URL, 'sha256': 64 hex digits}}; "
                                 "fix or delete it")
    return files


def _record(root, official: OfficialFile, url: str, sha256: str, size: int) -> None:
    files = read_lock(root)
    files[official.path] = {"url": url, "sha256": sha256, "size": size,
                            "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    document = {"schema": LOCK_SCHEMA, "files": dict(sorted(files.items()))}
    write_text_atomic(lock_path(root), json.dumps(document, indent=2) + "\n")


@contextmanager
def _cache_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the cache's models folder: two fetches never write the same ``.part`` or
    the lock file at once (a second one says it waits)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            console.info(f"waiting for another edgematte fetch into {folder}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------ transport
class _Failure(EdgematteError):
    """A failed download; ``keep_part``: the network broke off and the ``.part`` may be resumed."""

    def __init__(self, message: str, keep_part: bool = False):
        super().__init__(message)
        self.keep_part = keep_part


def _resolve(host: str, port: int, timeout: float, url: str):
    """``getaddrinfo`` bounded by ``timeout`` (the resolver's own retries can take minutes without a network)."""
    answer: dict = {}

    def run():
        try:
            answer["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as e:
            answer["error"] = e

    worker = threading.Thread(target=run, name="edgematte-resolve", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise _Failure(f"{url}: no answer resolving {host} within {timeout:g} s (is there a network? "
                       f"{ENV_TIMEOUT} sets the timeout)")
    if "error" in answer:
        e = answer["error"]
        raise _Failure(f"{url}: cannot resolve {host} ({getattr(e, 'strerror', None) or e})")
    return answer["infos"]


def _connect(url: str, scheme: str, host: str, port: int, timeout: float) -> socket.socket:
    """A connected socket (TLS-wrapped with verified certificates for https), reads bounded by ``timeout``."""
    error: Optional[OSError] = None
    sock = None
    for family, kind, proto, _, address in _resolve(host, port, timeout, url):
        candidate = socket.socket(family, kind, proto)
        candidate.settimeout(timeout)
        try:
            candidate.connect(address)
        except OSError as e:
            candidate.close()
            error = e
            continue
        sock = candidate
        break
    if sock is None:
        if isinstance(error, (socket.timeout, TimeoutError)):
            raise _Failure(f"{url}: no connection to {host}:{port} within {timeout:g} s ({ENV_TIMEOUT} sets the "
                           "timeout)")
        reason = getattr(error, "strerror", None) or error or "no address"
        raise _Failure(f"{url}: cannot connect to {host}:{port} ({reason})")
    if scheme == "https":
        try:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        except ssl.SSLCertVerificationError as e:
            sock.close()
            raise _Failure(f"{url}: TLS failure: the server's certificate is not trusted "
                           f"({(e.verify_message or one_line(e)).rstrip('.')})") from None
        except (ssl.SSLError, OSError) as e:
            sock.close()
            if isinstance(e, (socket.timeout, TimeoutError)):
                raise _Failure(f"{url}: TLS failure: no handshake within {timeout:g} s") from None
            raise _Failure(f"{url}: TLS failure ({one_line(getattr(e, 'reason', None) or e)})") from None
    sock.settimeout(timeout)
    return sock


def _get(url: str, timeout: float, headers: Dict[str, str]):
    """``GET url`` following same-scheme redirects; returns ``(connection, response)`` with the headers read.

    Every URL in the chain passes :func:`_check_url`; a redirect to another scheme (https -> http) is refused."""
    first_scheme = _check_url(url, url)[0]
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        if current != url:
            scheme = urlsplit(current).scheme.lower()
            if scheme != first_scheme:
                raise _Failure(f"{url}: redirected to {current}, another scheme ({scheme or 'none'} instead of "
                               f"{first_scheme}); refusing it")
        scheme, host, port, target = _check_url(current, url if current == url else f"{url}: redirected to {current}")
        try:
            sock = _connect(url, scheme, host, port, timeout)
        except _Failure as e:
            e.keep_part = True  # the network failed before any data: an earlier .part stays as it was
            raise
        connection = http.client.HTTPConnection(host, port)
        connection.sock = sock
        try:
            connection.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
            connection.putheader("Host", urlsplit(current).netloc)
            connection.putheader("Accept-Encoding", "identity")
            connection.putheader("User-Agent", f"edgematte/{__version__}")
            for key, value in headers.items():
                connection.putheader(key, value)
            connection.endheaders()
            response = connection.getresponse()
        except (socket.timeout, TimeoutError):
            connection.close()
            raise _Failure(f"{url}: no answer within {timeout:g} s ({ENV_TIMEOUT} sets the timeout)",
                           keep_part=True) from None
        except (http.client.HTTPException, OSError) as e:
            connection.close()
            reason = getattr(e, "strerror", None) or one_line(e) or type(e).__name__
            raise _Failure(f"{url}: the connection failed before an answer ({reason})", keep_part=True) from None
        if response.status not in _REDIRECTS:
            return connection, response
        location = response.getheader("Location")
        connection.close()
        if not location:
            raise _Failure(f"{url}: HTTP {response.status} redirect without a Location")
        current = urljoin(current, location)
    raise _Failure(f"{url}: more than {MAX_REDIRECTS} redirects")


def _human(n: Optional[int]) -> str:
    return "?" if n is None else f"{n:,} bytes"


def _read_meta(meta: Path) -> dict:
    try:
        document = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def _meta_path(part: Path) -> Path:
    """``FILE.part.json`` beside ``FILE.part``: the URL and validator (ETag or Last-Modified) its bytes are from."""
    return Path(str(part)[: -len(PART_SUFFIX)] + META_SUFFIX)


def _discard(part: Path) -> None:
    """Remove a ``.part`` download and its ``.part.json``."""
    part.unlink(missing_ok=True)
    _meta_path(part).unlink(missing_ok=True)


class _NoBar:
    """Stands in for a progress bar when the size is unknown."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        pass


def _download(url: str, part: Path, timeout: float, label: str) -> None:
    """Download ``url`` into ``part``, resuming what a previous broken-off download left there (same URL).

    Raises :class:`_Failure`: ``keep_part`` only when the network broke off (the bytes kept are a prefix the
    server sent); the caller removes the ``.part`` otherwise."""
    meta_file = _meta_path(part)
    meta = _read_meta(meta_file)
    start = part.stat().st_size if part.is_file() and meta.get("url") == url else 0
    if start == 0:
        _discard(part)
    for _attempt in range(2):
        headers = {}
        if start:
            headers["Range"] = f"bytes={start}-"
            if isinstance(meta.get("validator"), str):
                headers["If-Range"] = meta["validator"]
        connection, response = _get(url, timeout, headers)
        try:
            if response.status == 416 and start:  # the part no longer fits the file: start again
                _discard(part)
                start = 0
                continue
            if response.status == 206 and start:
                match = _CONTENT_RANGE.match(response.getheader("Content-Range") or "")
                if not match or int(match[1]) != start:
                    raise _Failure(f"{url}: asked to resume at byte {start}, the server answered Content-Range "
                                   f"{response.getheader('Content-Range')!r}")
                total = None if match[3] == "*" else int(match[3])
            elif response.status == 200:
                start = 0  # a server that ignores Range sends the whole file
                length = response.getheader("Content-Length")
                total = int(length) if length and length.isdigit() else None
            else:
                raise _Failure(f"{url}: HTTP {response.status} {response.reason}".rstrip())
            if total is not None and total > MAX_DOWNLOAD_BYTES:
                raise _Failure(f"{url}: {_human(total)}, more than the {MAX_DOWNLOAD_BYTES // GiB} GiB limit for a "
                               "model file")
            validator = response.getheader("ETag") or response.getheader("Last-Modified")
            if validator and validator.startswith("W/"):
                validator = response.getheader("Last-Modified")
            console.info(f"resuming {url} at byte {start:,}" if start else f"fetching {url}")
            _stream(url, response, part, start, total, validator, timeout, label)
            return
        finally:
            connection.close()
    raise _Failure(f"{url}: the server refused to resume the download and then to send the file whole")


def _stream(url, response, part: Path, start: int, total: Optional[int], validator, timeout: float, label: str):
    """Append the response body to ``part`` (truncated first when ``start`` is 0), within the size limit; the
    ``.part.json`` is written before the first byte so a resume knows what the bytes are."""
    received = start
    out = None
    try:
        with console.progress(length=total, label=label) if total else _NoBar() as bar:
            if start:
                bar.update(start)
            while True:
                try:
                    block = response.read1(CHUNK)
                except (socket.timeout, TimeoutError):
                    raise _Failure(f"{url}: the server stopped sending after {_human(received)} of "
                                   f"{_human(total)} (no data for {timeout:g} s)", keep_part=True) from None
                except http.client.IncompleteRead:
                    raise _Failure(f"{url}: truncated: the chunked body ended after {_human(received)}") from None
                except (http.client.HTTPException, OSError) as e:
                    reason = getattr(e, "strerror", None) or one_line(e) or type(e).__name__
                    raise _Failure(f"{url}: connection lost after {_human(received)} of {_human(total)} ({reason})",
                                   keep_part=True) from None
                if not block:
                    break
                if out is None:
                    part.parent.mkdir(parents=True, exist_ok=True)
                    write_text_atomic(_meta_path(part), json.dumps({"url": url, "validator": validator,
                                                                    "total": total}) + "\n")
                    out = open(part, "ab" if start else "wb")
                out.write(block)
                received += len(block)
                if received > MAX_DOWNLOAD_BYTES:
                    raise _Failure(f"{url}: more than the {MAX_DOWNLOAD_BYTES // GiB} GiB limit for a model file")
                bar.update(len(block))
    finally:
        if out is not None:
            out.close()
    if total is not None and received < total:
        raise _Failure(f"{url}: truncated: the server ended the body after {_human(received)} of the "
                       f"{_human(total)} it announced")
    if total is not None and received > total:  # http.client stops at Content-Length; a Content-Range can lie
        raise _Failure(f"{url}: {_human(received)} received, more than the {_human(total)} announced")
    if received == 0:
        raise _Failure(f"{url}: empty file")


# ------------------------------------------------------------------------------------------ checks
def _check_content(official: OfficialFile, path: Path, url: str) -> None:
    """Refuse (one line naming ``url``) a file that is not what ``official`` claims: a checkpoint must pass the
    restricted unpickler and the exact official layout of its zoo model (width 1); a deploy zip the safe
    extractor and the deploy-folder loader, declaring the model's class if it declares one."""
    from .info import model_layout
    from .registry import get_model_spec
    from .source import extract_archive, read_deploy_folder
    from .weights import check_layout, read_pdparams

    spec = get_model_spec(official.model)
    if official.kind == "checkpoint":
        try:
            state = read_pdparams(path)
        except EdgematteError as e:
            raise EdgematteError(str(e).replace(str(path), url)) from None
        check = check_layout(model_layout(spec, 1.0), state)
        if not check.ok:
            raise EdgematteError(f"{url}: not the official layout of {spec.name}: {check.summary()}")
        return
    with tempfile.TemporaryDirectory(prefix="edgematte-fetch-") as tmp:
        try:
            folder = extract_archive(path, Path(tmp) / "deploy")
            source = read_deploy_folder(folder)
        except EdgematteError as e:
            message = str(e).replace(str(path), url).replace(str(Path(tmp) / "deploy") + os.sep, "")
            raise EdgematteError(message if message.startswith(url) else f"{url}: {message}") from None
        if source.spec is not None and source.spec.paddleseg_class != spec.paddleseg_class:
            raise EdgematteError(f"{url}: its deploy.yaml declares ModelName {source.spec.paddleseg_class}, not "
                                 f"{spec.paddleseg_class} ({spec.name})")


def _check_digest(official: OfficialFile, url: str, sha256: str, lock: Dict[str, dict], lock_file: Path) -> None:
    if official.sha256 and sha256 != official.sha256:
        raise EdgematteError(f"{url}: sha256 {sha256}, not the published {official.sha256} pinned for "
                             f"{official.path}")
    recorded = lock.get(official.path)
    if recorded is not None and recorded["sha256"] != sha256:
        raise EdgematteError(f"{url}: sha256 {sha256} differs from {recorded['sha256']}, recorded in {lock_file} when "
                             f"it was first fetched (from {recorded['url']}); refusing the changed file (delete that "
                             "entry to accept it)")


# ------------------------------------------------------------------------------------------ fetch
@dataclass
class Fetched:
    """A checked official file in the cache: ``url`` it came from (as the lock file recorded it), its
    ``sha256``, and whether this call ``downloaded`` it."""

    official: OfficialFile
    path: Path
    url: str
    sha256: str
    downloaded: bool


def fetch(official: OfficialFile, root=None, timeout: Optional[float] = None) -> Fetched:
    """The cached, checked copy of ``official``, downloaded first when the cache has none.

    A cached file is used when its sha256 equals the lock file's record (and any pinned digest); one without a
    record is checked as a download is, then recorded. ``root``: the cache folder (default :func:`cache_root`);
    ``timeout``: seconds (default :func:`fetch_timeout`). Raises :class:`EdgematteError` with one line; on
    failure the cache holds nothing new but a resumable ``.part`` (see the module docstring)."""
    url = file_url(official)
    timeout = fetch_timeout() if timeout is None else float(timeout)
    target = cached_path(official, root)
    folder = models_dir(root)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgematteError(f"{target.parent}: cannot create the model cache ({e.strerror or e}); set "
                             f"{ENV_CACHE} to a writable folder") from None
    lock_file = lock_path(root)
    with _cache_lock(folder):
        lock = read_lock(root)
        if target.exists() or target.is_symlink():
            return _reuse(official, target, url, lock, lock_file, root)
        if is_offline():
            raise EdgematteError(f"{url}: not in the cache ({target}) and {ENV_OFFLINE}=1 allows no download; "
                                 f"unset it, or fetch it where there is a network ('{fetch_command(official)}') and "
                                 f"copy {folder}")
        part = target.with_name(target.name + PART_SUFFIX)
        try:
            _download(url, part, timeout, label=official.path)
            sha256 = sha256_file(part)
            _check_digest(official, url, sha256, lock, lock_file)
            _check_content(official, part, url)
        except _Failure as e:
            if not (e.keep_part and part.is_file() and part.stat().st_size > 0):
                _discard(part)
                raise EdgematteError(f"{e}; nothing was kept") from None
            raise EdgematteError(f"{e}; the {part.stat().st_size:,} bytes received are kept in {part}: fetch again "
                                 "to resume") from None
        except EdgematteError as e:
            _discard(part)
            raise EdgematteError(f"{e}; nothing was kept") from None
        except BaseException:  # Ctrl-C, SIGTERM, a bug: what arrived is a prefix of the file, kept for a resume
            if not part.is_file() or part.stat().st_size == 0:
                _discard(part)
            raise
        size = part.stat().st_size
        _record(root, official, url, sha256, size)
        os.chmod(part, FILE_MODE)
        os.replace(part, target)
        _meta_path(part).unlink(missing_ok=True)
    console.info(f"kept {target} ({size:,} bytes, sha256 {sha256}; recorded in {lock_file})")
    return Fetched(official, target, url, sha256, downloaded=True)


def _reuse(official: OfficialFile, target: Path, url: str, lock: Dict[str, dict], lock_file: Path,
           root) -> Fetched:
    kind = "weights" if official.kind == "checkpoint" else "archive"
    check_user_file(target, kind)  # a regular file within the size limit, not a FIFO or a folder
    sha256 = sha256_file(target)
    recorded = lock.get(official.path)
    if official.sha256 and sha256 != official.sha256:
        raise EdgematteError(f"{target}: sha256 {sha256}, not the published {official.sha256} pinned for "
                             f"{official.path}; delete it to fetch it again")
    if recorded is None:  # the lock file was deleted: check the file as a download, then record it
        try:
            _check_content(official, target, str(target))
        except EdgematteError as e:
            raise EdgematteError(f"{e}; delete it to fetch it again") from None
        _record(root, official, url, sha256, target.stat().st_size)
        return Fetched(official, target, url, sha256, downloaded=False)
    if recorded["sha256"] != sha256:
        raise EdgematteError(f"{target}: sha256 {sha256} differs from {recorded['sha256']}, recorded in {lock_file} "
                             f"when it was fetched from {recorded['url']}: the cached file changed; delete it to fetch "
                             "it again")
    return Fetched(official, target, recorded["url"], sha256, downloaded=False)


def fetch_by_name(name: str, deploy: bool = False, root=None, timeout: Optional[float] = None) -> Fetched:
    """:func:`fetch` of :func:`~.official_files.official_file` ``(name, deploy)``."""
    return fetch(official_file(name, deploy=deploy), root=root, timeout=timeout)


def pretrained_checkpoint(model: str) -> Fetched:
    """The official checkpoint of zoo ``model`` (name or alias) from the cache, fetched if missing: what
    ``--pretrained`` uses."""
    return fetch(official_file(model))
