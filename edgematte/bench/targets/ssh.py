"""``--target ssh://user@host[:port]``: each configuration on an ARM board over the system's OpenSSH.

For every configuration one ``ssh`` session streams a tar of the runner bundle (the runtime
code, the manifest and that one artefact: :mod:`edgematte.bench.bundle`) into a fresh
``mktemp -d`` folder on the board, runs ``python3 -m edgematte.runtime.bench_runner`` there and removes the
folder when the shell exits (a ``trap``, also on errors and signals), so nothing is left behind and
no two configurations share state. Before the first configuration a probe checks that the host
answers, the key is accepted and the board's Python has numpy and OpenCV; each of those failures is
one :class:`EdgematteError` line before anything runs. A configuration that fails later (the
runtime missing on the board, a crash, a dropped connection) is recorded as that configuration's
error, as the local target does, and the others still run.

What the board needs: ``sh``, ``tar``, ``mktemp`` and Python 3.8+ with numpy and OpenCV
(``opencv-python-headless``), plus the artefacts' runtimes: ``ai-edge-litert`` for .tflite,
``paddlelite`` for .nb, ``onnxruntime`` for .onnx.

Authentication is the user's own: keys, agent and ``~/.ssh/config`` work as they do for ``ssh``;
``BatchMode=yes`` makes a missing key an immediate error instead of a password prompt.

Environment:
    EDGEMATTE_SSH_PYTHON    the board's Python (default ``python3``), e.g. ``/home/pi/venv/bin/python``
    EDGEMATTE_SSH_OPTIONS   extra ``ssh`` arguments, shell-quoted, e.g. ``-i ~/.ssh/board -o Compression=no``
    EDGEMATTE_SSH_TMPDIR    where on the board the temporary folder is made (default ``$TMPDIR`` or /tmp)
"""

import json
import os
import re
import shlex
import shutil
import tarfile
import tempfile
import weakref
from pathlib import Path
from typing import Dict, List, Optional, Sequence
from urllib.parse import urlsplit

from ...core.errors import EdgematteError
from ...core.manifest import Manifest
from ...core.tools import ToolResult, last_line, run_tool
from ...device.runtime_code import RUNNER_MODULE
from ...runtime.bench_runner import RESULT_PREFIX
from ..bundle import MODEL_DIR, make_runner_bundle
from .base import Configuration, Target, choose, failure, grid, runner_args, runner_result

DEFAULT_PYTHON = "python3"
CONNECT_TIMEOUT_S = 10
DEFAULT_TIMEOUT_S = 1800.0
SSH_FAILED = 255  # ssh's own exit status for connection and authentication failures
PROBE_PREFIX = "EDGEMATTE_PROBE "
REQUIRED_MODULES = ("numpy", "cv2")
MINIMUM_PYTHON = (3, 8)
_PROBE_CODE = (
    "import importlib, json, sys\n"
    "missing = []\n"
    "for name in %r:\n"
    "    try:\n"
    "        importlib.import_module(name)\n"
    "    except Exception:\n"
    "        missing.append(name)\n"
    "print(%r + json.dumps({'python': list(sys.version_info[:3]), 'machine': __import__('platform').machine(), "
    "'missing': missing}))\n"
) % (REQUIRED_MODULES, PROBE_PREFIX)
PIP_NAMES = {"numpy": "numpy", "cv2": "opencv-python-headless"}


def parse_ssh_url(spec: str):
    """``ssh://[user@]host[:port]`` -> ``(user or None, host, port or None)``; EdgematteError when malformed."""
    parts = urlsplit(spec)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme != "ssh" or not parts.hostname or port == -1 or parts.path not in ("", "/") or parts.query:
        raise EdgematteError(f"--target {spec}: expected ssh://user@host[:port] (e.g. ssh://pi@192.168.1.20:22)")
    return parts.username, parts.hostname, port


def _last(output: str, otherwise: str) -> str:
    """The last line of ``output``, or ``otherwise`` when there is none."""
    return last_line(output) if output.strip() else otherwise


class SshTarget(Target):
    """An ARM board (or any Linux machine) reached with ``ssh``."""

    emulated = False

    def __init__(self, spec: str, ssh_options: Optional[Sequence[str]] = None, python: Optional[str] = None,
                 remote_tmp: Optional[str] = None, connect_timeout: int = CONNECT_TIMEOUT_S):
        """``spec``: ``ssh://[user@]host[:port]``. ``ssh_options``: extra ``ssh`` arguments (default
        ``$EDGEMATTE_SSH_OPTIONS``). ``python``: the board's Python command (default
        ``$EDGEMATTE_SSH_PYTHON`` or ``python3``). ``remote_tmp``: folder on the board for the
        temporary folder (default ``$EDGEMATTE_SSH_TMPDIR``, else the board's ``$TMPDIR`` or /tmp)."""
        self.spec = spec
        self.user, self.host, self.port = parse_ssh_url(spec)
        self.destination = f"{self.user}@{self.host}" if self.user else self.host
        self.name = "ssh-" + re.sub(r"[^A-Za-z0-9._@-]", "_", self.host + (f"-{self.port}" if self.port else ""))
        if ssh_options is None:
            ssh_options = shlex.split(os.environ.get("EDGEMATTE_SSH_OPTIONS", ""))
        self.ssh_options = list(ssh_options)
        self.python = python or os.environ.get("EDGEMATTE_SSH_PYTHON") or DEFAULT_PYTHON
        self.remote_tmp = remote_tmp or os.environ.get("EDGEMATTE_SSH_TMPDIR")
        self.connect_timeout = connect_timeout
        self.board: Optional[dict] = None  # the probe's answer: python version, machine
        self._bundles: Dict[tuple, Path] = {}
        self._local_dir: Optional[Path] = None
        self._cleanup = None

    # ---- ssh plumbing

    def ssh_argv(self, remote_script: str) -> List[str]:
        """``ssh ... HOST 'sh -c SCRIPT'``: the script runs in ``sh`` whatever the board's login shell is."""
        argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4", "-o", "LogLevel=ERROR"]
        if self.port:
            argv += ["-p", str(self.port)]
        return argv + self.ssh_options + [self.destination, "sh -c " + shlex.quote(remote_script)]

    def _ssh(self, script: str, timeout: Optional[float], input: Optional[bytes] = None) -> ToolResult:
        try:
            return run_tool(self.ssh_argv(script), what=f"ssh {self.destination}", timeout_s=timeout, input=input)
        except FileNotFoundError:
            raise EdgematteError("--target ssh: the OpenSSH client 'ssh' is not installed "
                                 "(Debian: openssh-client)") from None

    def _python_words(self) -> str:
        return " ".join(shlex.quote(word) for word in shlex.split(self.python))

    def check(self) -> dict:
        """Probe the board once: reachable, key accepted, Python >= 3.8 with numpy and OpenCV.

        Returns ``{"python": [3, 11, 2], "machine": "aarch64", "missing": []}``; raises
        :class:`EdgematteError` (one line naming the host) on any problem.
        """
        script = (f"command -v {shlex.split(self.python)[0]} >/dev/null 2>&1 || exit 127\n"
                  f"exec {self._python_words()} -c {shlex.quote(_PROBE_CODE)}")
        timeout = self.connect_timeout + 120
        r = self._ssh(script, timeout)
        if r.timed_out:
            raise EdgematteError(f"{self.spec}: no answer from the host within {timeout} s")
        if r.returncode == SSH_FAILED:
            raise EdgematteError(f"{self.spec}: cannot connect: {_last(r.output, 'ssh failed')}")
        if r.returncode == 127:
            raise EdgematteError(f"{self.spec}: '{self.python}' not found on the board (install Python 3 there, or set "
                                 "EDGEMATTE_SSH_PYTHON to its path)")
        answer = None
        for line in r.output.splitlines():
            if line.startswith(PROBE_PREFIX):
                answer = json.loads(line[len(PROBE_PREFIX):])
        if answer is None:
            detail = _last(r.output, f"exit status {r.returncode}")
            raise EdgematteError(f"{self.spec}: '{self.python}' on the board did not run the probe: {detail}")
        if tuple(answer["python"][:2]) < MINIMUM_PYTHON:
            version = ".".join(map(str, answer["python"]))
            raise EdgematteError(f"{self.spec}: the board's {self.python} is Python {version}; the runner needs "
                                 f"{'.'.join(map(str, MINIMUM_PYTHON))} or newer (set EDGEMATTE_SSH_PYTHON)")
        if answer["missing"]:
            packages = " ".join(PIP_NAMES.get(name, name) for name in answer["missing"])
            raise EdgematteError(f"{self.spec}: the board's {self.python} lacks {', '.join(answer['missing'])} "
                                 f"(on the board: {self.python} -m pip install {packages})")
        self.board = answer
        return answer

    # ---- bundles

    def _local_work(self) -> Path:
        if self._local_dir is None:
            self._local_dir = Path(tempfile.mkdtemp(prefix="edgematte-ssh-"))
            self._cleanup = weakref.finalize(self, shutil.rmtree, str(self._local_dir), True)
        return self._local_dir

    def bundle_tar(self, manifest: Manifest, artefact: str) -> Path:
        """An uncompressed tar of the runner bundle with ``artefact`` (made once per artefact)."""
        key = (str(Path(manifest.dir).resolve()), artefact)
        if key not in self._bundles:
            work = self._local_work()
            folder = work / f"bundle{len(self._bundles)}"
            make_runner_bundle(folder, manifest, [artefact])
            tar_path = folder.with_suffix(".tar")
            with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
                for entry in sorted(folder.iterdir()):
                    tar.add(entry, arcname=entry.name)
            shutil.rmtree(folder)
            self._bundles[key] = tar_path
        return self._bundles[key]

    def close(self) -> None:
        """Remove the local bundle tars (also done when the target is garbage-collected)."""
        if self._cleanup is not None:
            self._cleanup()
        self._bundles.clear()
        self._local_dir = None

    # ---- the target interface

    def remote_script(self, runner_arguments: Sequence[str]) -> str:
        """The board-side script: unpack stdin into a fresh folder, run the runner there, always remove it."""
        parent = shlex.quote(self.remote_tmp) if self.remote_tmp else '"${TMPDIR:-/tmp}"'
        args = " ".join(shlex.quote(str(a)) for a in runner_arguments)
        return (
            f'd=$(mktemp -d {parent}/edgematte-bench.XXXXXX) || exit 125\n'
            'trap \'rm -rf "$d"\' EXIT\n'
            "trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM\n"
            'tar -xf - -C "$d" || exit 124\n'
            'cd "$d" || exit 124\n'
            f'PYTHONPATH="$d${{PYTHONPATH:+:$PYTHONPATH}}" GLOG_minloglevel=2 {self._python_words()} '
            f'-m {RUNNER_MODULE} --manifest "$d/{MODEL_DIR}" {args}\n'
        )

    def run(self, manifest: Manifest, config: Configuration, runs: int, warmup: int, size,
            timeout: Optional[float] = DEFAULT_TIMEOUT_S) -> dict:
        return self._runner(manifest, config, runner_args(config, runs, warmup, size), timeout)

    def profile(self, manifest: Manifest, config: Configuration, runs: int, warmup: int, size,
                timeout: Optional[float] = DEFAULT_TIMEOUT_S) -> dict:
        """The runner on the board profiles ``config``: ONNX Runtime's profiler for .onnx; the board's LiteRT and
        Paddle Lite Python APIs have none (:mod:`edgematte.runtime.op_profile`)."""
        return self._runner(manifest, config, runner_args(config, runs, warmup, size, profile=True), timeout)

    def _runner(self, manifest: Manifest, config: Configuration, args: Sequence[str],
                timeout: Optional[float]) -> dict:
        if self.board is None:
            self.check()  # raises before the first configuration when the board cannot run anything
        try:
            tar_path = self.bundle_tar(manifest, config.artefact)
        except EdgematteError as e:
            return failure(config, str(e))
        # The tar goes to ssh's stdin from memory: one artefact plus the runtime code.
        r = self._ssh(self.remote_script(args), timeout, input=tar_path.read_bytes())
        if r.timed_out:
            return failure(config, f"timed out after {timeout} s on {self.destination} (the board's folder is "
                                   "removed when its shell exits)")
        if r.returncode == SSH_FAILED and RESULT_PREFIX not in r.output:
            return failure(config, f"ssh {self.destination}: {_last(r.output, 'connection failed')}")
        if r.returncode in (124, 125):
            what = "unpacking the bundle" if r.returncode == 124 else "mktemp -d"
            return failure(config, f"{self.destination}: {what} failed: {last_line(r.output)}")
        return runner_result(r, config, where=f"runner on {self.destination}")

    def configurations(self, manifest: Manifest, artefacts: Optional[Sequence[str]],
                       threads: Sequence[int]) -> List[Configuration]:
        """Every artefact an aarch64 Linux board runs (``artefacts_for("arm")``: arm .nb, .tflite, .onnx) x
        thread count; ``artefacts`` narrows it."""
        names = choose(manifest, artefacts, manifest.artefacts_for("arm"))
        if not names:
            raise EdgematteError(f"{manifest.origin}: no artefact for an ARM board (convert with --lite-targets arm "
                                 "or --to tflite)")
        return grid(names, threads)
