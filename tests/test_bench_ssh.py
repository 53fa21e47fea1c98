"""`--target ssh://`: the runner bundle, and a real OpenSSH server started here on 127.0.0.1.

The server is Debian's /usr/sbin/sshd (installed by .ci/setup-test-hosts.sh, never by this file)
on a free port with a throwaway host key, accepting one throwaway client key. The "board" is this
machine; its Python is a wrapper around this venv's that logs which edgematte it would import and
what the temporary folder holds, so the test sees the bundle that was copied, not the checkout.
"""

import hashlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from edgematte.bench import session
from edgematte.bench.bundle import bundle_modules, make_runner_bundle
from edgematte.bench.targets.base import Configuration
from edgematte.bench.targets.ssh import SshTarget, parse_ssh_url
from edgematte.core.errors import EdgematteError
from edgematte.core.manifest import read_manifest

SSHD = Path("/usr/sbin/sshd")
SETUP = "bash .ci/setup-test-hosts.sh"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, read, released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgematte-test", "-f", str(path)],
                   check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A running sshd on 127.0.0.1:PORT for the current user; yields (port, client key, user, folder)."""
    if not SSHD.exists() or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        message = f"OpenSSH server/client missing ({SSHD}, ssh, ssh-keygen): run '{SETUP}' as root"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("sshd")
    host_key, client_key = keygen(folder / "host_key"), keygen(folder / "client_key")
    shutil.copyfile(folder / "client_key.pub", folder / "authorized_keys")
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    port = free_port()
    config = folder / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}", "StrictModes no", "UsePAM no",
        "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password", f"AllowUsers {user}", "LogLevel ERROR", ""]))
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation folder, made by its service
    log = open(folder / "sshd.log", "w")
    server = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            assert server.poll() is None, f"sshd exited: {(folder / 'sshd.log').read_text()[-2000:]}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "sshd did not listen within 15 s"
                time.sleep(0.1)
        yield {"port": port, "key": client_key, "user": user, "folder": folder}
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def client_options(key: Path):
    return ["-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null"]


@pytest.fixture
def board_python(tmp_path):
    """The board's "python3": logs the runner's origin and the folder's files, then runs this venv's Python."""
    log = tmp_path / "board-python.log"
    wrapper = tmp_path / "board-python"
    where = "import edgematte.runtime.bench_runner as r; print(r.__file__)"
    wrapper.write_text(f"""#!/bin/sh
case "$*" in *edgematte.runtime.bench_runner*)
  {{ echo "cwd=$PWD"
     echo "runner=$(PYTHONDONTWRITEBYTECODE=1 {shlex.quote(sys.executable)} -c {shlex.quote(where)})"
     find "$PWD" -type f | sed "s|^$PWD/|file=|" | sort; }} >> {shlex.quote(str(log))} ;;
esac
exec {shlex.quote(sys.executable)} "$@"
""")
    wrapper.chmod(0o755)
    return wrapper, log


@pytest.fixture
def board(sshd, board_python, tmp_path):
    """A reachable SshTarget whose temporary folders go to a folder of the test's own."""
    remote_tmp = tmp_path / "board-tmp"
    remote_tmp.mkdir()
    target = SshTarget(f"ssh://{sshd['user']}@127.0.0.1:{sshd['port']}", ssh_options=client_options(sshd["key"]),
                       python=str(board_python[0]), remote_tmp=str(remote_tmp))
    yield target, remote_tmp, board_python[1]
    target.close()


# ---- the bundle (no ssh needed)

# Importing these must fail on the board: no shipped module imports the toolchain or a heavier edgematte layer...
TOOLCHAIN = ["paddle", "paddlelite", "tensorflow", "onnx", "onnx2tf", "onnxsim", "paddle2onnx", "edgematte.converter",
             "edgematte.quant", "edgematte.pipeline", "edgematte.zoo", "edgematte.device", "edgematte.bench",
             "edgematte.cli"]
# ... and the runner and the outputs module need none of the host's command-line and sample-photo packages either.
BLOCKED = TOOLCHAIN + ["click", "yaml", "skimage", "onnxruntime"]


def block_prelude(blocked) -> str:
    """Python code making every package in ``blocked`` unimportable (None in sys.modules, a finder for submodules)."""
    return (
        "import sys\n"
        f"blocked = {list(blocked)!r}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if any(name == b or name.startswith(b + '.') for b in blocked):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.modules.update(dict.fromkeys(blocked))\n"
    )


TINY_MANIFEST = {
    "schema": "edgematte.manifest/1",
    "model": {"name": "ppmattingv2", "input_shape": [1, 3, 64, 64], "transforms": []},
    "reference": {"model_dir": "reference"},
    "artefacts": [{"path": name, "format": fmt, "target": target, "precision": "fp32",
                   "parity": {"max_abs": 0.0, "mean_abs": 0.0, "frac_over_1_255": 0.0, "compared_to": "reference",
                              "runs_on_host": target != "arm"}}
                  for name, fmt, target in (("model_fp32.tflite", "tflite", "any"), ("model_arm.nb", "nb", "arm"),
                                            ("model_x86.nb", "nb", "x86"), ("model.onnx", "onnx", "any"))],
}


@pytest.fixture
def tiny_manifest(tmp_path):
    """A manifest with one artefact of each kind; the files are copied, never opened, so any bytes do."""
    out = tmp_path / "conversion"
    out.mkdir()
    digest = hashlib.sha256(b"model bytes").hexdigest()
    manifest = dict(TINY_MANIFEST, artefacts=[dict(a, sha256=digest) for a in TINY_MANIFEST["artefacts"]])
    (out / "manifest.json").write_text(json.dumps(manifest))
    for artefact in manifest["artefacts"]:
        (out / artefact["path"]).write_bytes(b"model bytes")
    return out


def test_bundle_ships_core_and_runtime_only_and_imports_without_the_toolchain(tiny_manifest, tmp_path):
    package = Path(__import__("edgematte").__file__).parent
    expected = {"edgematte/__init__.py"} | {
        str(p.relative_to(package.parent)) for sub in ("core", "runtime") for p in (package / sub).rglob("*.py")
        if "__pycache__" not in p.parts}
    modules = set(bundle_modules())
    assert {"edgematte.runtime.bench_runner", "edgematte.runtime.raw_outputs", "edgematte.core.manifest",
            "edgematte.runtime.matter", "edgematte.runtime.backends.litert"} <= modules
    assert not [m for m in modules if m.split(".")[1:2] in
                (["converter"], ["quant"], ["pipeline"], ["zoo"], ["device"], ["bench"], ["cli"])]

    # The bundle as it reaches the board: the tar the ssh target streams, extracted.
    target = SshTarget("ssh://pi@10.0.0.7", ssh_options=[])
    extracted = tmp_path / "board"
    extracted.mkdir()
    with tarfile.open(target.bundle_tar(read_manifest(tiny_manifest), "model_fp32.tflite")) as tar:
        tar.extractall(extracted)
    target.close()
    files = {str(p.relative_to(extracted)) for p in extracted.rglob("*") if p.is_file()}
    assert files == expected | {"model/manifest.json", "model/model_fp32.tflite"}

    # From the extracted bundle: the runner and the outputs module import with everything in BLOCKED missing,
    # every shipped module with the toolchain and every heavier edgematte layer missing.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONPATH=str(extracted), PYTHONDONTWRITEBYTECODE="1")
    checks = (
        (BLOCKED, "import edgematte.runtime.bench_runner, edgematte.runtime.raw_outputs\nnames = ['x']\n"),
        (TOOLCHAIN, "import importlib, pkgutil\n"
                    "names = [m.name for m in pkgutil.walk_packages(edgematte.__path__, 'edgematte.')]\n"
                    "for name in names:\n"
                    "    importlib.import_module(name)\n"),
    )
    for blocked, body in checks:
        code = (block_prelude(blocked) + "import edgematte\n"
                "assert edgematte.__file__.startswith(sys.argv[1]), edgematte.__file__\n"
                + body + "print(len(names))\n")
        r = subprocess.run([sys.executable, "-c", code, str(extracted)], capture_output=True, text=True,
                           cwd=extracted, env=env, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    assert int(r.stdout.split()[-1]) == len(expected) - 1  # every module but the top package itself


def test_bundle_runner_runs_without_the_toolchain(tiny_conversion, tmp_path):
    model_dir = make_runner_bundle(tmp_path / "bundle", read_manifest(tiny_conversion), ["model_fp32.tflite"])
    assert sorted(p.name for p in model_dir.iterdir()) == ["manifest.json", "model_fp32.tflite"]
    # The runner in the bundle with every toolchain package made unimportable: only numpy, OpenCV and LiteRT.
    code = block_prelude(BLOCKED) + (
        "import runpy\n"
        "sys.argv = ['runner'] + sys.argv[1:]\n"
        "runpy.run_module('edgematte.runtime.bench_runner', run_name='__main__')\n"
    )
    r = subprocess.run([sys.executable, "-c", code, "--manifest", str(model_dir), "--artefact", "model_fp32.tflite",
                        "--runs", "2", "--warmup", "0", "--size", "160x120"], capture_output=True, text=True,
                       cwd=tmp_path / "bundle", env=dict(os.environ, PYTHONPATH=str(tmp_path / "bundle")), timeout=120)
    line = [row for row in r.stdout.splitlines() if row.startswith("EDGEMATTE_BENCH ")]
    assert r.returncode == 0 and line, r.stdout + r.stderr
    result = json.loads(line[0].split(" ", 1)[1])
    assert result["backend"] == "litert" and result["model_s"]["n"] == 2


def test_board_artefacts_and_target_parsing(tiny_manifest):
    manifest = read_manifest(tiny_manifest)
    assert parse_ssh_url("ssh://pi@10.0.0.7:2222") == ("pi", "10.0.0.7", 2222)
    assert parse_ssh_url("ssh://board") == (None, "board", None)
    for bad in ("ssh://", "ssh://pi@host:notaport", "ssh://host/some/path", "sftp://host"):
        with pytest.raises(EdgematteError, match="expected ssh://user@host"):
            parse_ssh_url(bad)
    target = SshTarget("ssh://pi@10.0.0.7:2222", ssh_options=[])
    assert target.name == "ssh-10.0.0.7-2222" and target.emulated is False
    # x86 .nb files and the Paddle reference never go to a board
    assert [c.artefact for c in target.configurations(manifest, None, [1])] == [
        "model_fp32.tflite", "model_arm.nb", "model.onnx"]
    configs = target.configurations(manifest, ["model_fp32.tflite"], [1, 4])
    assert [(c.artefact, c.threads) for c in configs] == [("model_fp32.tflite", 1), ("model_fp32.tflite", 4)]
    with pytest.raises(EdgematteError, match="reference"):
        target.configurations(manifest, ["reference"], [1])


# ---- against the real sshd

def test_runner_is_copied_runs_returns_json_and_leaves_nothing(board, tiny_conversion):
    target, remote_tmp, log = board
    result = target.run(read_manifest(tiny_conversion), Configuration("model_fp32.tflite", 1), runs=3, warmup=1,
                        size=(320, 256))
    assert "error" not in result, result
    assert result["artefact"] == "model_fp32.tflite" and result["backend"] == "litert" and result["threads"] == 1
    m = result["model_s"]
    assert m["n"] == 3 and 0 < m["min"] <= m["median"] <= m["max"] and result["input_size"] == [320, 256]
    assert target.board["missing"] == [] and tuple(target.board["python"][:2]) == sys.version_info[:2]

    # What ran: the bundle's runner, from a fresh folder under remote_tmp holding exactly the bundle.
    entries = dict(line.split("=", 1) for line in log.read_text().splitlines())
    folder = Path(entries["cwd"])
    assert folder.parent == remote_tmp and folder.name.startswith("edgematte-bench.")
    assert entries["runner"] == str(folder / "edgematte" / "runtime" / "bench_runner.py")
    files = [line.split("=", 1)[1] for line in log.read_text().splitlines() if line.startswith("file=")]
    assert "model/manifest.json" in files and "model/model_fp32.tflite" in files
    shipped_models = ("model/manifest.json", "model/model_fp32.tflite")
    assert not [f for f in files if f.startswith("model/") and f not in shipped_models]
    assert len([f for f in files if f.startswith("edgematte/")]) == len(bundle_modules())
    # ... and removed afterwards
    assert list(remote_tmp.iterdir()) == []


def test_session_over_ssh_keeps_partial_results(sshd, board_python, tiny_conversion, tmp_path, monkeypatch):
    """Through `benchmark()` as the CLI calls it, configured by the documented environment variables."""
    model = tmp_path / "model"
    model.mkdir()
    for name in ("manifest.json", "model_fp32.tflite"):
        shutil.copyfile(tiny_conversion / name, model / name)
    (model / "model_fp16.tflite").write_bytes(b"not a flatbuffer")  # this configuration fails on the board
    manifest = json.loads((model / "manifest.json").read_text())  # recorded as converted: it passes the sha256 check
    next(a for a in manifest["artefacts"] if a["path"] == "model_fp16.tflite").update(
        sha256=hashlib.sha256(b"not a flatbuffer").hexdigest())
    (model / "manifest.json").write_text(json.dumps(manifest))
    remote_tmp = tmp_path / "board-tmp"
    remote_tmp.mkdir()
    monkeypatch.setenv("EDGEMATTE_SSH_OPTIONS", " ".join(shlex.quote(o) for o in client_options(sshd["key"])))
    monkeypatch.setenv("EDGEMATTE_SSH_PYTHON", str(board_python[0]))
    monkeypatch.setenv("EDGEMATTE_SSH_TMPDIR", str(remote_tmp))
    spec = f"ssh://{sshd['user']}@127.0.0.1:{sshd['port']}"
    with pytest.raises(EdgematteError, match="1 of 2 configurations failed") as failure:
        session.benchmark(model, target=spec, threads=[1], artefacts=["model_fp16.tflite", "model_fp32.tflite"],
                          runs=2, warmup=0, size=(160, 128), out=tmp_path / "bench")
    assert "\n" not in str(failure.value)
    doc = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert doc["target"] == spec and doc["emulated"] is False
    first, second = doc["results"]
    assert "not a loadable TFLite model" in first["error"]
    assert second["artefact"] == "model_fp32.tflite" and second["model_s"]["n"] == 2
    assert list(remote_tmp.iterdir()) == []


def test_a_recurrent_model_runs_on_the_board_with_its_states_carried(board, rvm_tflite):
    """RVM over ssh: the board's runner feeds each frame the states the previous one returned, and reports the
    state I/O apart: r1..r4 of RVM at 128x128 and ratio 0.25, fed and fetched once a frame, float32."""
    target, remote_tmp, _ = board
    result = target.run(read_manifest(rvm_tflite), Configuration("model_fp32.tflite", 1), runs=3, warmup=1,
                        size=(160, 128))
    assert "error" not in result, result
    assert result["model_s"]["n"] == 3 and result["backend"] == "litert"
    state_elements = 16 * 16 * 16 + 20 * 8 * 8 + 40 * 4 * 4 + 64 * 2 * 2  # r1 [1,16,16,16] ... r4 [1,64,2,2]
    states = result["states"]
    assert (states["count"], states["bytes"]) == (4, 2 * 4 * state_elements)
    assert 0 < states["copy_s"]["median"] < result["model_s"]["median"]
    assert list(remote_tmp.iterdir()) == []


def test_unreachable_host_is_one_line_before_any_configuration(tiny_manifest, tmp_path, monkeypatch):
    if shutil.which("ssh") is None:
        pytest.fail(f"the OpenSSH client is missing: run '{SETUP}'")
    port = free_port()  # nothing listens there
    target = SshTarget(f"ssh://nobody@127.0.0.1:{port}", ssh_options=["-F", "/dev/null"])
    with pytest.raises(EdgematteError) as failure:
        target.run(read_manifest(tiny_manifest), Configuration("model_fp32.tflite", 1), runs=1, warmup=0,
                   size=(64, 64))
    message = str(failure.value)
    assert "\n" not in message and message.startswith(f"ssh://nobody@127.0.0.1:{port}: cannot connect")
    assert "Connection refused" in message
    # through the session: the same single line, and no report (nothing ran)
    monkeypatch.setenv("EDGEMATTE_SSH_OPTIONS", "-F /dev/null")
    with pytest.raises(EdgematteError, match="cannot connect"):
        session.benchmark(tiny_manifest, target=f"ssh://nobody@127.0.0.1:{port}", threads=[1],
                          artefacts=["model_fp32.tflite"], out=tmp_path / "bench")
    assert not (tmp_path / "bench").exists()


def test_auth_failure_and_board_without_python_or_numpy(sshd, tiny_manifest, tmp_path):
    spec = f"ssh://{sshd['user']}@127.0.0.1:{sshd['port']}"
    config = Configuration("model_fp32.tflite", 1)
    stranger = keygen(tmp_path / "stranger")
    cases = [
        (SshTarget(spec, ssh_options=client_options(stranger)), "cannot connect: .*Permission denied"),
        (SshTarget(spec, ssh_options=client_options(sshd["key"]), python="/nonexistent/python3"),
         "'/nonexistent/python3' not found on the board"),
        # -S: no site-packages, so neither numpy nor OpenCV
        (SshTarget(spec, ssh_options=client_options(sshd["key"]), python=f"{sys.executable} -S"),
         "lacks numpy, cv2 .*pip install numpy opencv-python-headless"),
    ]
    for target, expected in cases:
        with pytest.raises(EdgematteError, match=expected) as failure:
            target.run(read_manifest(tiny_manifest), config, runs=1, warmup=0, size=(64, 64))
        assert "\n" not in str(failure.value) and str(failure.value).startswith(spec)
