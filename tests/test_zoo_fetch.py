"""`edgematte zoo fetch` and `--pretrained` against a local mirror: a test HTTP server on 127.0.0.1 that serves,
resumes, cuts, stalls, truncates, redirects or refuses. No test reaches the internet: every test points
EDGEMATTE_MODEL_MIRROR at that server (or at a URL refused before any connection) and the cache at tmp_path."""

import dataclasses
import hashlib
import http.server
import io
import json
import os
import pickle
import re
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import zipfile
from pathlib import Path

import paddle
import pytest

from edgematte.zoo import official_files
from edgematte.zoo.registry import get_model_spec
from edgematte.zoo.weights import check_layout, seeded_state_dict

from .conftest import run_cli, run_main

CHECKPOINT = "ppmattingv2-stdc1-human_512.pdparams"
DEPLOY_ZIP = "deploy/ppmattingv2-stdc1-human_512.zip"
TIMEOUT = 0.5  # EDGEMATTE_FETCH_TIMEOUT in these tests: a stalled server costs half a second


# ------------------------------------------------------------------------------------------ the test server
class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers each path as ``server.routes[path]`` says (404 for any other path)."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        server.requests.append((self.path, dict(self.headers)))
        route = server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        kind, *args = route
        getattr(self, f"_{kind}")(*args)

    def _head(self, status, length, data=None, extra=()):
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        if data is not None:
            self.send_header("ETag", _etag(data))
        for key, value in extra:
            self.send_header(key, value)
        self.end_headers()

    def _file(self, data):
        """The file, honouring ``Range: bytes=N-`` (and ``If-Range`` with its ETag) as a static server does."""
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if_range = self.headers.get("If-Range")
        if match and (if_range is None or if_range == _etag(data)):
            start = int(match[1])
            if start >= len(data):
                self._head(416, 0, extra=[("Content-Range", f"bytes */{len(data)}")])
                return
            self._head(206, len(data) - start, data, [("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")])
            self.wfile.write(data[start:])
            return
        self._head(200, len(data), data)
        self.wfile.write(data)

    def _plain(self, data):
        """The whole file, whatever Range asks (a server without range support)."""
        self._head(200, len(data), data)
        self.wfile.write(data)

    def _cut(self, data, at):
        """``at`` bytes of the file, then the connection is reset (RST), as a dropped network does."""
        self._head(200, len(data), data)
        self.wfile.write(data[:at])
        time.sleep(0.3)  # the client reads what was sent before the reset arrives
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()
        self.close_connection = True

    def _truncate(self, data, at):
        """Announces the whole file, sends ``at`` bytes and ends the response cleanly."""
        self._head(200, len(data), data)
        self.wfile.write(data[:at])
        self.close_connection = True

    def _stall(self, seconds):
        """Sends nothing for ``seconds`` (or until the test ends)."""
        self.server.release.wait(seconds)

    def _length(self, length):
        """Announces ``length`` bytes and sends none."""
        self._head(200, length)

    def _redirect(self, location):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls_context=None, port=0):
        super().__init__(("127.0.0.1", port), _Handler)
        self.routes, self.requests, self.release = {}, [], threading.Event()
        if tls_context is not None:
            self.socket = tls_context.wrap_socket(self.socket, server_side=True)

    def handle_error(self, request, client_address):
        pass  # the client hung up on a stalled or cut answer: expected here

    @property
    def base(self):
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}/mirror/matting/models/"


def _etag(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'


def _start(tls_context=None, port=0) -> _Server:
    server = _Server(tls_context, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _stop(server: _Server) -> None:
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def server():
    server = _start()
    yield server
    _stop(server)


# ------------------------------------------------------------------------------------------ fixtures
def _pdparams(state) -> bytes:
    """What ``paddle.save(state)`` writes, as bytes."""
    buffer = io.BytesIO()
    paddle.save(state, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def official_layout():
    return get_model_spec("ppmattingv2").layout(1.0)


@pytest.fixture(scope="module")
def checkpoint(official_layout) -> bytes:
    """A .pdparams in PP-MattingV2's exact official layout (seed 0), as an official checkpoint is."""
    return _pdparams(seeded_state_dict(official_layout, 0))


@pytest.fixture
def mirror(server, tmp_path, monkeypatch):
    """The test server as EDGEMATTE_MODEL_MIRROR (fresh routes and request log), the cache in tmp_path, and
    short timeouts. Yields ``(server, cache folder)``."""
    server.routes.clear()
    server.requests.clear()
    server.release.clear()
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGEMATTE_MODEL_MIRROR", server.base)
    monkeypatch.setenv("EDGEMATTE_CACHE_DIR", str(cache))
    monkeypatch.setenv("EDGEMATTE_FETCH_TIMEOUT", str(TIMEOUT))
    monkeypatch.delenv("EDGEMATTE_OFFLINE", raising=False)
    yield server, cache
    server.release.set()


def serve(server, path, *route):
    server.routes["/mirror/matting/models/" + path] = route
    return server.base + path


def refused(capsys, expected, *args):
    """Run ``edgematte --quiet ARGS`` (no progress lines): it must exit 1 with exactly ``edgematte: error:
    EXPECTED`` as its one stderr line (``expected`` a str, or a compiled pattern the line must match whole);
    returns the line."""
    code, out, err = run_main(capsys, "--quiet", *args)
    assert code == 1, (code, err)
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    line = err.rstrip("\n")
    if isinstance(expected, str):
        assert line == f"edgematte: error: {expected}"
    else:
        assert expected.fullmatch(line[len("edgematte: error: "):]), line
    return line


def cache_files(cache: Path) -> dict:
    """Every file in the cache (relative path -> size): nothing else may be there."""
    return {p.relative_to(cache).as_posix(): p.stat().st_size for p in sorted(cache.rglob("*")) if p.is_file()}


def kept(cache: Path, path: str = CHECKPOINT) -> Path:
    return cache / "models" / path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def lock(cache: Path) -> dict:
    return json.loads((cache / "models" / "lock.json").read_text())


SIZE = "{:,} bytes"


# ------------------------------------------------------------------------------------------ success, resume
def test_fetch_checks_keeps_records_and_reuses(mirror, capsys, checkpoint):
    server, cache = mirror
    url = serve(server, CHECKPOINT, "file", checkpoint)
    code, out, err = run_main(capsys, "zoo", "fetch", "ppmattingv2")
    assert code == 0, err
    assert out == f"{kept(cache)}\n"
    assert kept(cache).read_bytes() == checkpoint
    assert cache_files(cache) == {"models/lock.json": (cache / "models/lock.json").stat().st_size,
                                  f"models/{CHECKPOINT}": len(checkpoint)}
    record = lock(cache)
    assert record["schema"] == "edgematte.weights-lock/1"
    assert {k: record["files"][CHECKPOINT][k] for k in ("url", "sha256", "size")} == \
        {"url": url, "sha256": sha(checkpoint), "size": len(checkpoint)}
    assert f"fetching {url}" in err and sha(checkpoint) in err
    # a second fetch (an alias) uses the cached file: checked against the lock file, no request
    code, out, err = run_main(capsys, "zoo", "fetch", "pp-mattingv2")
    assert code == 0 and out == f"{kept(cache)}\n"
    assert len(server.requests) == 1 and f"cached: {kept(cache)} (sha256 {sha(checkpoint)}, from {url})" in err
    # without its lock file, a cached file is checked as a download is, then recorded again (still no request)
    (cache / "models" / "lock.json").unlink()
    code, out, err = run_main(capsys, "zoo", "fetch", "ppmattingv2")
    assert code == 0 and out == f"{kept(cache)}\n" and len(server.requests) == 1, err
    assert lock(cache)["files"][CHECKPOINT]["sha256"] == sha(checkpoint)


@pytest.mark.parametrize("server_kind", ["file", "plain"])
def test_resume_after_a_cut_connection(mirror, capsys, checkpoint, server_kind):
    """A reset connection keeps the bytes received; the next fetch asks for the rest (a server that honours Range
    sends it; one that ignores Range sends the whole file and the download starts over)."""
    server, cache = mirror
    at = len(checkpoint) * 2 // 5
    url = serve(server, CHECKPOINT, "cut", checkpoint, at)
    part = kept(cache, CHECKPOINT + ".part")
    line = refused(capsys, re.compile(
        rf"{re.escape(url)}: connection lost after ([\d,]+) bytes of {SIZE.format(len(checkpoint))} \(Connection "
        rf"reset by peer\); the ([\d,]+) bytes received are kept in {re.escape(str(part))}: fetch again to resume"),
        "zoo", "fetch", "ppmattingv2")
    received = int(re.search(r"after ([\d,]+) bytes", line)[1].replace(",", ""))
    assert 0 < received <= at and part.read_bytes() == checkpoint[:received]
    # the .part is not a fetched file: only it and what it came from are there
    assert cache_files(cache) == {f"models/{CHECKPOINT}.part": received,
                                  f"models/{CHECKPOINT[:-len('.pdparams')]}.pdparams.part.json":
                                      kept(cache, CHECKPOINT + ".part.json").stat().st_size}
    assert json.loads(kept(cache, CHECKPOINT + ".part.json").read_text())["url"] == url
    server.routes.clear()
    serve(server, CHECKPOINT, server_kind, checkpoint)
    code, out, err = run_main(capsys, "zoo", "fetch", "ppmattingv2")
    assert code == 0, err
    headers = server.requests[-1][1]
    assert headers["Range"] == f"bytes={received}-" and headers["If-Range"] == _etag(checkpoint)
    resumed = f"resuming {url} at byte {received:,}"
    assert (resumed in err) == (server_kind == "file") and (f"fetching {url}" in err) == (server_kind == "plain")
    assert kept(cache).read_bytes() == checkpoint
    assert set(cache_files(cache)) == {"models/lock.json", f"models/{CHECKPOINT}"}


# ------------------------------------------------------------------------------------------ failures
def test_a_network_failure_before_any_data_keeps_an_earlier_part(mirror, capsys, checkpoint, monkeypatch):
    """A .part left by a reset connection survives a stalled answer and a fetch that cannot even connect (the
    server is gone); a 404 for the same URL then removes it."""
    server, cache = mirror
    own = _start()
    monkeypatch.setenv("EDGEMATTE_MODEL_MIRROR", own.base)
    url = own.base + CHECKPOINT
    own.routes["/mirror/matting/models/" + CHECKPOINT] = ("cut", checkpoint, 1_000_000)
    part = kept(cache, CHECKPOINT + ".part")
    assert run_main(capsys, "--quiet", "zoo", "fetch", "ppmattingv2")[0] == 1
    received = part.stat().st_size
    assert 0 < received <= 1_000_000
    own.routes["/mirror/matting/models/" + CHECKPOINT] = ("stall", 30)
    refused(capsys, f"{url}: no answer within {TIMEOUT:g} s (EDGEMATTE_FETCH_TIMEOUT sets the timeout); the "
                    f"{received:,} bytes received are kept in {part}: fetch again to resume",
            "zoo", "fetch", "ppmattingv2")
    _stop(own)
    refused(capsys, f"{url}: cannot connect to 127.0.0.1:{own.server_address[1]} (Connection refused); the "
                    f"{received:,} bytes received are kept in {part}: fetch again to resume",
            "zoo", "fetch", "ppmattingv2")
    assert part.read_bytes() == checkpoint[:received]
    back = _start(port=own.server_address[1])  # the same URL again, now without the file
    try:
        refused(capsys, f"{url}: HTTP 404 Not Found; nothing was kept", "zoo", "fetch", "ppmattingv2")
        assert back.requests[0][1]["Range"] == f"bytes={received}-"  # it did ask for the rest
    finally:
        _stop(back)
    assert cache_files(cache) == {}


def test_http_404_keeps_nothing(mirror, capsys):
    server, cache = mirror
    url = server.base + CHECKPOINT
    refused(capsys, f"{url}: HTTP 404 Not Found; nothing was kept", "zoo", "fetch", "ppmattingv2")
    assert cache_files(cache) == {}


def test_a_stalled_server_times_out(mirror, capsys):
    server, cache = mirror
    url = serve(server, CHECKPOINT, "stall", 30)
    started = time.monotonic()
    refused(capsys, f"{url}: no answer within {TIMEOUT:g} s (EDGEMATTE_FETCH_TIMEOUT sets the timeout); nothing was "
                    "kept", "zoo", "fetch", "ppmattingv2")
    assert time.monotonic() - started < 5 * TIMEOUT
    assert cache_files(cache) == {}


def test_a_truncated_body_keeps_nothing(mirror, capsys, checkpoint):
    server, cache = mirror
    url = serve(server, CHECKPOINT, "truncate", checkpoint, 100_000)
    refused(capsys, f"{url}: truncated: the server ended the body after 100,000 bytes of the "
                    f"{SIZE.format(len(checkpoint))} it announced; nothing was kept", "zoo", "fetch", "ppmattingv2")
    assert cache_files(cache) == {}


def test_a_file_over_the_size_limit_is_not_downloaded(mirror, capsys):
    server, cache = mirror
    url = serve(server, CHECKPOINT, "length", 5 << 30)
    refused(capsys, f"{url}: 5,368,709,120 bytes, more than the 4 GiB limit for a model file; nothing was kept",
            "zoo", "fetch", "ppmattingv2")
    assert cache_files(cache) == {}


def test_a_wrong_layout_is_refused(mirror, capsys):
    server, cache = mirror
    spec = get_model_spec("ppmattingv2")
    narrow = seeded_state_dict(spec.layout(0.25), 0)  # the right keys, a quarter of the channels
    url = serve(server, CHECKPOINT, "file", _pdparams(narrow))
    summary = check_layout(spec.layout(1.0), narrow).summary()
    assert summary.startswith("4") and "mis-shaped (first: " in summary
    refused(capsys, f"{url}: not the official layout of ppmattingv2: {summary}; nothing was kept",
            "zoo", "fetch", "ppmattingv2")
    assert cache_files(cache) == {}


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_is_refused_and_runs_nothing(mirror, capsys, tmp_path):
    server, cache = mirror
    marker = tmp_path / "pwned"
    url = serve(server, CHECKPOINT, "file", pickle.dumps({"stdc.weight": _Evil(marker)}, protocol=4))
    refused(capsys, f"{url}: not a safe .pdparams state_dict (refusing to load global "
                    f"'{os.system.__module__}.system'); nothing was kept", "zoo", "fetch", "ppmattingv2")
    assert not marker.exists()
    assert cache_files(cache) == {}


def test_a_changed_file_is_refused_on_the_next_fetch(mirror, capsys, checkpoint, official_layout):
    server, cache = mirror
    url = serve(server, CHECKPOINT, "file", checkpoint)
    assert run_main(capsys, "zoo", "fetch", "ppmattingv2")[0] == 0
    recorded = lock(cache)
    kept(cache).unlink()  # the next fetch downloads again
    state = seeded_state_dict(official_layout, 0)
    state[official_layout[0][0]].flat[0] += 1.0  # the official layout still, one weight changed
    changed = _pdparams(state)
    serve(server, CHECKPOINT, "file", changed)
    refused(capsys, f"{url}: sha256 {sha(changed)} differs from {sha(checkpoint)}, recorded in "
                    f"{cache / 'models' / 'lock.json'} when it was first fetched (from {url}); refusing the changed "
                    "file (delete that entry to accept it); nothing was kept", "zoo", "fetch", "ppmattingv2")
    assert cache_files(cache) == {"models/lock.json": (cache / "models/lock.json").stat().st_size}
    assert lock(cache) == recorded


def test_a_cached_file_that_changed_is_refused(mirror, capsys, checkpoint):
    server, cache = mirror
    serve(server, CHECKPOINT, "file", checkpoint)
    assert run_main(capsys, "zoo", "fetch", "ppmattingv2")[0] == 0
    tampered = checkpoint[:-1] + b"\0"
    kept(cache).write_bytes(tampered)
    refused(capsys, f"{kept(cache)}: sha256 {sha(tampered)} differs from {sha(checkpoint)}, recorded "
                    f"in {cache / 'models' / 'lock.json'} when it was fetched from {server.base + CHECKPOINT}: the "
                    "cached file changed; delete it to fetch it again", "zoo", "fetch", "ppmattingv2")


def test_a_pinned_digest_is_enforced(mirror, capsys, checkpoint, monkeypatch):
    server, cache = mirror
    url = serve(server, CHECKPOINT, "file", checkpoint)
    official = official_files.CHECKPOINTS["ppmattingv2"]
    assert official.sha256 == ""  # no published digest is known: none is pinned
    wrong = "0" * 64
    monkeypatch.setitem(official_files.CHECKPOINTS, "ppmattingv2", dataclasses.replace(official, sha256=wrong))
    refused(capsys, f"{url}: sha256 {sha(checkpoint)}, not the published {wrong} pinned for {CHECKPOINT}; nothing "
                    "was kept", "zoo", "fetch", "ppmattingv2")
    assert cache_files(cache) == {}
    monkeypatch.setitem(official_files.CHECKPOINTS, "ppmattingv2",
                        dataclasses.replace(official, sha256=sha(checkpoint)))
    code, out, err = run_main(capsys, "zoo", "fetch", "ppmattingv2")
    assert code == 0 and out == f"{kept(cache)}\n", err


def test_offline_makes_no_request(mirror, capsys, monkeypatch):
    server, cache = mirror
    monkeypatch.setenv("EDGEMATTE_OFFLINE", "1")
    url = server.base + CHECKPOINT
    refused(capsys, f"{url}: not in the cache ({kept(cache)}) and EDGEMATTE_OFFLINE=1 allows no download; unset "
                    "it, or fetch it where there is a network ('edgematte zoo fetch ppmattingv2') "
                    f"and copy {cache / 'models'}", "zoo", "fetch", "ppmattingv2")
    assert server.requests == [] and cache_files(cache) == {}


def test_redirects_stay_in_their_scheme(mirror, capsys):
    server, cache = mirror
    elsewhere = f"https://127.0.0.1:{server.server_address[1]}/elsewhere.pdparams"
    url = serve(server, CHECKPOINT, "redirect", elsewhere)
    refused(capsys, f"{url}: redirected to {elsewhere}, another scheme (https instead of http); refusing it; "
                    "nothing was kept", "zoo", "fetch", "ppmattingv2")
    serve(server, CHECKPOINT, "redirect", "/gone.pdparams")  # same scheme: followed, to a 404
    refused(capsys, f"{url}: HTTP 404 Not Found; nothing was kept", "zoo", "fetch", "ppmattingv2")
    assert [path for path, _ in server.requests[-2:]] == [f"/mirror/matting/models/{CHECKPOINT}", "/gone.pdparams"]
    assert cache_files(cache) == {}


@pytest.mark.parametrize("mirror_url, problem", [
    ("http://example.com/models", "plain http is allowed only for a mirror on this machine's loopback interface "
                                  "(127.0.0.1, ::1, localhost); use https"),
    ("ftp://127.0.0.1/models", "not an https:// URL"),
    ("https://user:secret@127.0.0.1/models", "credentials in the URL are not supported"),
])
def test_mirror_urls_are_checked_before_any_connection(mirror, capsys, monkeypatch, mirror_url, problem):
    server, cache = mirror
    monkeypatch.setenv("EDGEMATTE_MODEL_MIRROR", mirror_url)
    refused(capsys, f"EDGEMATTE_MODEL_MIRROR={mirror_url}: {problem}", "zoo", "fetch", "ppmattingv2")
    assert server.requests == [] and not (cache / "models" / CHECKPOINT).exists()


def test_an_untrusted_certificate_is_a_tls_failure(mirror, capsys, monkeypatch, tmp_path):
    server, cache = mirror
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a self-signed certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"], check=True,
                   capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    tls = _start(context)
    try:
        monkeypatch.setenv("EDGEMATTE_MODEL_MIRROR", tls.base)
        refused(capsys, re.compile(rf"{re.escape(tls.base + CHECKPOINT)}: TLS failure: the server's certificate is "
                                   r"not trusted \(self[- ]signed certificate\); nothing was kept"),
                "zoo", "fetch", "ppmattingv2")
    finally:
        _stop(tls)
    assert tls.requests == [] and cache_files(cache) == {}


# ------------------------------------------------------------------------------------------ deploy zips
def _zip_folder(folder: Path, top: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                zf.write(path, f"{top}/{path.relative_to(folder).as_posix()}")
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------ names and options
@pytest.mark.parametrize("args, message", [
    (["zoo", "fetch", "dim-vgg16"], "dim-vgg16: DIM is not a zoo architecture here, so its checkpoint cannot pass an "
                                    "official layout check before it is kept; convert a DIM deploy folder exported by "
                                    "PaddleSeg instead ('edgematte convert FOLDER -o OUT')"),
    (["zoo", "fetch", "rvm", "--deploy"], "rvm: no official deploy zip is known for rvm_mobilenetv3 (known for "
                                          "ppmattingv2, humanmatting, modnet_mobilenetv2, ppmatting_hrnet_w18); fetch "
                                          "its checkpoint ('edgematte zoo fetch rvm_mobilenetv3') and export one "
                                          "('edgematte export rvm_mobilenetv3 --pretrained -o DIR')"),
    (["export", "ppmattingv2", "--pretrained", "--seed", "0", "-o", "{out}"],
     "--pretrained and --seed: give only one source of weights (the official checkpoint, a .pdparams file or seeded "
     "weights)"),
    (["convert", "ppmattingv2", "--pretrained", "--weights", "w.pdparams", "-o", "{out}"],
     "--pretrained and --weights: give only one source of weights (the official checkpoint, a .pdparams file or "
     "seeded weights)"),
    (["export", "ppmattingv2", "-o", "{out}"],
     "ppmattingv2: give exactly one of --pretrained (the official checkpoint), --weights FILE.pdparams or --seed N"),
    (["export", "ppmattingv2", "--pretrained", "--width", "0.5", "-o", "{out}"],
     "--pretrained --width 0.5: the official ppmattingv2 weights are width 1; drop --width"),
])
def test_names_and_options_refused_in_one_line(mirror, capsys, tmp_path, args, message):
    server, cache = mirror
    refused(capsys, message, *[a.replace("{out}", str(tmp_path / "out")) for a in args])
    assert server.requests == [] and not (tmp_path / "out").exists()


def test_help_names_the_new_options():
    for args, option in ((["zoo", "fetch"], "--deploy"), (["export"], "--pretrained"), (["convert"], "--pretrained")):
        r = run_cli(*args, "--help")
        assert r.returncode == 0 and option in r.stdout, r.stderr


def test_export_pretrained_fetches_when_missing_then_its_folder_as_a_deploy_zip(mirror, capsys, checkpoint,
                                                                              tmp_path, monkeypatch):
    """`export --pretrained` fetches the checkpoint on first use; offline, the cached file serves; the folder it
    wrote, zipped as PaddleSeg publishes deploy folders, is what `zoo fetch --deploy` checks and keeps."""
    server, cache = mirror
    serve(server, CHECKPOINT, "file", checkpoint)
    folder = tmp_path / "deploy"
    code, _, err = run_main(capsys, "export", "ppmattingv2", "--pretrained", "-o", folder)
    assert code == 0, err
    assert len(server.requests) == 1 and kept(cache).read_bytes() == checkpoint
    assert (folder / "model.pdiparams").stat().st_size > 30e6  # the full-width weights
    monkeypatch.setenv("EDGEMATTE_OFFLINE", "1")
    code, out, err = run_main(capsys, "zoo", "fetch", "ppmattingv2")
    assert code == 0 and out == f"{kept(cache)}\n" and len(server.requests) == 1, err
    monkeypatch.delenv("EDGEMATTE_OFFLINE")

    archive = _zip_folder(folder, "ppmattingv2-stdc1-human_512")
    serve(server, DEPLOY_ZIP, "file", archive)
    code, out, err = run_main(capsys, "zoo", "fetch", "ppmattingv2", "--deploy")
    assert code == 0, err
    assert out == f"{kept(cache, DEPLOY_ZIP)}\n" and kept(cache, DEPLOY_ZIP).read_bytes() == archive
    assert lock(cache)["files"][DEPLOY_ZIP]["sha256"] == sha(archive)
    # an archive with a member escaping its folder, and one declaring another model, are refused whole
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("../evil.txt", "x")
    url = serve(server, "deploy/modnet-mobilenetv2.zip", "file", buffer.getvalue())
    refused(capsys, f"{url}: refusing member '../evil.txt' (absolute path or path escape); nothing was kept",
            "zoo", "fetch", "modnet_mobilenetv2", "--deploy")
    url = serve(server, "deploy/modnet-mobilenetv2.zip", "file", archive)
    refused(capsys, f"{url}: its deploy.yaml declares ModelName PPMattingV2, not MODNet (modnet_mobilenetv2); nothing "
                    "was kept", "zoo", "fetch", "modnet_mobilenetv2", "--deploy")
    assert set(cache_files(cache)) == {"models/lock.json", f"models/{CHECKPOINT}", f"models/{DEPLOY_ZIP}"}


# ------------------------------------------------------------------------------------------ acceptance
def test_fetch_then_convert_pretrained_names_the_mirror_url_and_sha256(mirror, capsys, checkpoint, tmp_path):
    """The issue's acceptance: `zoo fetch ppmattingv2`, then `convert ppmattingv2 --pretrained` (a CLI process of
    its own) uses the cached checkpoint, and the manifest and report name the mirror URL and the sha256."""
    server, cache = mirror
    url = serve(server, CHECKPOINT, "file", checkpoint)
    assert run_main(capsys, "zoo", "fetch", "ppmattingv2")[:2] == (0, f"{kept(cache)}\n")
    out = tmp_path / "out"
    r = run_cli("convert", "ppmattingv2", "--pretrained", "--to", "onnx", "--input-shape", 1, 3, 64, 64, "-o", out,
                env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    model = json.loads((out / "manifest.json").read_text())["model"]
    assert model["origin"] == f"zoo:ppmattingv2 pretrained={url}"
    assert model["source_sha256"] == sha(checkpoint)
    assert f"- source: `zoo:ppmattingv2 pretrained={url}` (sha256 `{sha(checkpoint)[:16]}...`)" in \
        (out / "report.md").read_text().splitlines()
    assert len(server.requests) == 1  # the conversion used the cache
