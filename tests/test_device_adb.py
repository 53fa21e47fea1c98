"""The adb client and `edgematte device verify`, driven through the real `adb` binary.

No phone or emulator exists here, so the real adb client (Debian's adb 29, installed by
.ci/setup-test-hosts.sh) is pointed with ``-P PORT`` at :class:`FakeAdbServer`, a small adb *server*
written below from the host protocol (AOSP ``packages/modules/adb/OVERVIEW.TXT``, ``SERVICES.TXT``,
``SYNC.TXT``): 4-hex-digit length-prefixed requests (``host:version``, ``host:devices-l``,
``host-serial:S:features``, ``host:tport:serial:S``), ``OKAY``/``FAIL`` replies, ``shell:`` (protocol
v1: a raw stream, the connection closes at the end), ``shell,v2,...,raw:`` (v2 packets) and ``sync:``
(``STAT``/``LIST``/``SEND``/``RECV`` v1 for push and pull). Its "device" is an in-memory file system plus
a scripted shell. It answers ``host:version`` with adb 29's server version 41 (0x29) so the client never
kills it and never starts a real server. The verification app itself is not run: the scripted ``am start``
writes a result folder made with the Python runtime, so everything around it (push, clear, poll, pull,
compare, report) is exercised, not the phone.
"""

import json
import os
import re
import shlex
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

from edgematte.core.errors import EdgematteError
from edgematte.device.adb import Adb, activity_start_argv, device_shell_command, parse_devices
from tests.conftest import run_cli

ADB = Path("/usr/bin/adb")
SETUP = "bash .ci/setup-test-hosts.sh"
ADB_SERVER_VERSION = b"0029"  # adb 29 (1.0.41): a server answering anything else is killed and restarted


def require_adb():
    """The real adb client, or a skip (a failure under CI=true) naming the setup script."""
    if not ADB.exists():
        message = f"{ADB} missing: run '{SETUP}' as root (Debian package adb)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return str(ADB)


class FakeDevice:
    """An attached device as the fake server sees it.

    ``shell_v2``: the device offers the shell protocol v2 (separate stderr, the exit status as its own
    packet), as Android 7 and later do; otherwise v1, one raw stream and no status.
    Its file system is a host folder ``root``: device paths under /data, /sdcard, /storage and /sys
    map to ``root/data/...`` and so on. Shell lines run in the host's ``sh`` with those paths rewritten and with
    ``bin`` (fake ``am``, ``pm``, ``getprop`` scripts a test writes) first on ``PATH``; ``commands``
    records every line as the device received it.
    """

    DEVICE_PATH = re.compile(r"(?<![\w.])(?=/(?:data|sdcard|storage|sys)/)")

    def __init__(self, serial: str, root: Path, state: str = "device", model: str = "Pixel_7", shell_v2: bool = False):
        self.serial = serial
        self.state = state
        self.shell_v2 = shell_v2  # Android 7+: stdout, stderr and the exit status as separate packets
        self.model = model
        self.root = Path(root)
        self.bin = self.root / "_bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.commands = []

    def host_path(self, device_path: str) -> Path:
        return self.root / device_path.lstrip("/")

    def add_command(self, name: str, script: str) -> None:
        """A fake device command: ``script`` is its sh body (device paths in it are rewritten too)."""
        path = self.bin / name
        path.write_text("#!/bin/sh\n" + self.DEVICE_PATH.sub(str(self.root), script) + "\n")
        path.chmod(0o755)

    def devices_line(self, transport_id: int) -> str:
        if self.state == "device":
            return (f"{self.serial}\tdevice product:panther model:{self.model} device:panther "
                    f"transport_id:{transport_id}")
        return f"{self.serial}\t{self.state} usb:1-1 transport_id:{transport_id}"

    def run_shell(self, line: str, separate_stderr: bool = False) -> subprocess.CompletedProcess:
        self.commands.append(line)
        env = dict(os.environ, PATH=f"{self.bin}:{os.environ['PATH']}", DEVICE_ROOT=str(self.root))
        return subprocess.run(["sh", "-c", self.DEVICE_PATH.sub(str(self.root), line)], cwd=self.root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE if separate_stderr else subprocess.STDOUT,
                              timeout=60)


class FakeAdbServer:
    """A TCP adb server on 127.0.0.1:port serving :class:`FakeDevice` objects to the real client."""

    def __init__(self, devices=()):
        self.devices = {device.serial: device for device in devices}
        self.requests = []
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.port = self.socket.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self):
        self.socket.close()

    def adb(self, **kwargs) -> Adb:
        return Adb(binary=require_adb(), server_port=self.port, **kwargs)

    # ---- protocol

    def _serve(self):
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(connection,), daemon=True).start()

    @staticmethod
    def _read(connection, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = connection.recv(size - len(data))
            if not chunk:
                raise ConnectionError("client closed")
            data += chunk
        return data

    @staticmethod
    def _okay(connection, payload: Optional[bytes] = None):
        connection.sendall(b"OKAY" + (b"" if payload is None else b"%04x" % len(payload) + payload))

    @staticmethod
    def _fail(connection, message: str):
        data = message.encode()
        connection.sendall(b"FAIL" + b"%04x" % len(data) + data)

    def _lookup(self, connection, serial: str) -> Optional[FakeDevice]:
        """The device for a request, or a FAIL with the real server's wording (adb/transport.cpp)."""
        device = self.devices.get(serial)
        if device is None:
            self._fail(connection, f"device '{serial}' not found")
        elif device.state == "unauthorized":
            self._fail(connection, "device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\n"
                                   "Try 'adb kill-server' if that seems wrong.\n"
                                   "Otherwise check for a confirmation dialog on your device.")
        elif device.state != "device":
            self._fail(connection, f"device {device.state}")
        else:
            return device
        return None

    def _session(self, connection):
        try:
            with connection:
                device = None
                while True:
                    request = self._read(connection, int(self._read(connection, 4), 16)).decode()
                    self.requests.append(request)
                    if request == "host:version":
                        return self._okay(connection, ADB_SERVER_VERSION)
                    if request == "host:devices-l":
                        lines = [d.devices_line(i + 1) for i, d in enumerate(self.devices.values())]
                        return self._okay(connection, "".join(line + "\n" for line in lines).encode())
                    if request.startswith("host-serial:") and request.endswith(":features"):
                        found = self._lookup(connection, request[len("host-serial:"):-len(":features")])
                        if found:
                            self._okay(connection, b"shell_v2,cmd" if found.shell_v2 else b"cmd")  # never stat_v2
                        return
                    if request.startswith("host:tport:serial:"):
                        device = self._lookup(connection, request[len("host:tport:serial:"):])
                        if device is None:
                            return
                        connection.sendall(b"OKAY" + struct.pack("<Q", 1))
                        continue
                    if request.startswith("shell:") and device is not None:
                        connection.sendall(b"OKAY" + device.run_shell(request[len("shell:"):]).stdout)
                        return
                    if request.startswith("shell,v2,") and device is not None:
                        # Packets: id (1 stdout, 2 stderr, 3 exit status) + little-endian uint32 length + data.
                        result = device.run_shell(request.split(":", 1)[1], separate_stderr=True)
                        packets = [(1, result.stdout), (2, result.stderr), (3, bytes([result.returncode & 0xFF]))]
                        connection.sendall(b"OKAY" + b"".join(struct.pack("<BI", i, len(d)) + d
                                                              for i, d in packets if d))
                        return
                    if request == "sync:" and device is not None:
                        connection.sendall(b"OKAY")
                        return self._sync(connection, device)
                    return self._fail(connection, f"unknown request {request}")
        except (ConnectionError, OSError):
            return

    def _sync(self, connection, device: FakeDevice):
        while True:
            command, length = struct.unpack("<4sI", self._read(connection, 8))
            if command == b"QUIT":
                return
            path = self._read(connection, length).decode()
            if command == b"STAT":
                host = device.host_path(path)
                mode, size = (host.stat().st_mode, host.stat().st_size) if host.exists() else (0, 0)
                connection.sendall(b"STAT" + struct.pack("<III", mode, size, 0))
            elif command == b"LIST":
                for child in sorted(device.host_path(path).iterdir()):
                    facts = child.stat()
                    name = child.name.encode()
                    connection.sendall(b"DENT" + struct.pack("<IIII", facts.st_mode, facts.st_size, 0, len(name))
                                       + name)
                connection.sendall(b"DONE" + struct.pack("<IIII", 0, 0, 0, 0))
            elif command == b"SEND":
                target, _, mode = path.rpartition(",")
                data = b""
                while True:
                    chunk_id, size = struct.unpack("<4sI", self._read(connection, 8))
                    if chunk_id == b"DONE":
                        break
                    data += self._read(connection, size)
                host = device.host_path(target)
                host.parent.mkdir(parents=True, exist_ok=True)
                host.write_bytes(data)
                host.chmod(int(mode) & 0o777)
                connection.sendall(b"OKAY" + struct.pack("<I", 0))
            elif command == b"RECV":
                host = device.host_path(path)
                if not host.is_file():
                    message = b"No such file or directory"
                    connection.sendall(b"FAIL" + struct.pack("<I", len(message)) + message)
                    continue
                data = host.read_bytes()
                for start in range(0, len(data), 64 * 1024):
                    chunk = data[start:start + 64 * 1024]
                    connection.sendall(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
                connection.sendall(b"DONE" + struct.pack("<I", 0))
            else:
                return


@pytest.fixture
def fake_adb():
    """A factory: ``fake_adb(FakeDevice(...), ...)`` -> a running FakeAdbServer (closed after the test)."""
    servers = []

    def start(*devices):
        require_adb()
        servers.append(FakeAdbServer(devices))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


MINIMAL_MANIFEST = {
    "schema": "edgematte.manifest/1",
    "model": {"name": "ppmattingv2", "input_shape": [1, 3, 64, 64], "transforms": []},
    "reference": {},
    "artefacts": [{"path": "model_fp32.tflite", "format": "tflite", "target": "any", "precision": "fp32",
                   "layout": "nhwc", "profile": "android",
                   "parity": {"max_abs": 0.0, "mean_abs": 0.0, "frac_over_1_255": 0.0, "compared_to": "reference",
                              "runs_on_host": True}}],
}


@pytest.fixture
def minimal_manifest(tmp_path):
    """A manifest whose artefact is never opened: enough for everything that fails before a model loads."""
    out = tmp_path / "conversion"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps(MINIMAL_MANIFEST))
    (out / "model_fp32.tflite").write_bytes(b"not opened before the device is selected")
    return out


# ---------------------------------------------------------------------------------------------- parsing


def test_devices_output_is_parsed_with_states_and_properties():
    # Lines as adb 29 prints them (adb/transport.cpp: serial, state, then -l's key:value properties).
    text = ("* daemon not running; starting now at tcp:5037\n* daemon started successfully\n"
            "List of devices attached\n"
            "R58M12345AB            device usb:1-1 product:panther model:Pixel_7 device:panther transport_id:3\n"
            "emulator-5554          unauthorized transport_id:1\n"
            "0123456789ABCDEF       no permissions (user in plugdev group; are your udev rules wrong?); "
            "see [http://developer.android.com/tools/device.html] usb:1-2 transport_id:2\n"
            "192.168.1.20:5555      offline transport_id:4\n\n")
    entries = parse_devices(text)
    assert [(e.serial, e.state) for e in entries] == [
        ("R58M12345AB", "device"), ("emulator-5554", "unauthorized"), ("0123456789ABCDEF", "no permissions"),
        ("192.168.1.20:5555", "offline")]
    assert entries[0].properties == {"usb": "1-1", "product": "panther", "model": "Pixel_7", "device": "panther",
                                     "transport_id": "3"}
    assert parse_devices("List of devices attached\n\n") == []


def test_am_start_arguments_and_device_shell_quoting():
    argv = activity_start_argv("org.edgematte.demo/.VerificationActivity",
                               {"input": "/sdcard/Android/data/org.edgematte.demo/files/my photos",
                                "model": "model_fp32.tflite", "threads": 4, "quiet": True})
    assert argv == ["am", "start", "-W", "-n", "org.edgematte.demo/.VerificationActivity",
                    "--es", "input", "/sdcard/Android/data/org.edgematte.demo/files/my photos",
                    "--es", "model", "model_fp32.tflite", "--ei", "threads", "4", "--ez", "quiet", "true"]
    line = device_shell_command(argv)
    assert "'/sdcard/Android/data/org.edgematte.demo/files/my photos'" in line
    assert "-n org.edgematte.demo/.VerificationActivity" in line  # safe words stay bare
    # What the device's sh makes of the line is the list again (POSIX quoting, as mksh/toybox sh parse it).
    printed = subprocess.run(["sh", "-c", f"printf '%s\\n' {line}"], text=True, capture_output=True).stdout
    assert printed.splitlines() == argv
    tricky = ["printf", "%s\\n", "it's $HOME", "a\"b", "`id`", "x;y", "*"]
    line = device_shell_command(tricky)
    assert subprocess.run(["sh", "-c", line], text=True, capture_output=True).stdout.splitlines() == tricky[2:]


# ---------------------------------------------------------------------------------------------- device selection


def test_no_device_is_one_line_naming_no_device(fake_adb, minimal_manifest):
    server = fake_adb()
    with pytest.raises(EdgematteError, match="no device attached"):
        server.adb().device()
    with pytest.raises(EdgematteError, match="no device attached"):
        server.adb().device("R58M12345AB")
    env = dict(os.environ, ANDROID_ADB_SERVER_PORT=str(server.port), EDGEMATTE_ADB=str(ADB))
    env.pop("ANDROID_SERIAL", None)
    r = run_cli("device", "verify", "--serial", "R58M12345AB", "--manifest", minimal_manifest, env=env, timeout=120)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "no device" in r.stderr, r.stderr
    assert "host:devices-l" in server.requests  # the real client asked the fake server


def test_unauthorized_offline_unknown_serial_and_several_devices(fake_adb, tmp_path):
    server = fake_adb(FakeDevice("R58M12345AB", tmp_path / "a", state="unauthorized"),
                      FakeDevice("emulator-5554", tmp_path / "b", state="offline"),
                      FakeDevice("0A1B2C", tmp_path / "c"))
    adb = server.adb()
    with pytest.raises(EdgematteError, match="R58M12345AB is unauthorized: accept the 'Allow USB debugging.*RSA"):
        adb.device("R58M12345AB")
    with pytest.raises(EdgematteError, match="emulator-5554 is offline"):
        adb.device("emulator-5554")
    with pytest.raises(EdgematteError, match=r"device NOPE not found \(attached: R58M12345AB \(unauthorized\)"):
        adb.device("NOPE")
    with pytest.raises(EdgematteError, match="3 devices attached .*choose one with --serial"):
        adb.device()
    assert adb.device("0A1B2C").entry.properties["model"] == "Pixel_7"


def test_a_device_lost_after_selection_and_a_missing_adb_are_one_line(fake_adb, tmp_path):
    server = fake_adb(FakeDevice("R58M12345AB", tmp_path / "dev"))
    device = server.adb().device("R58M12345AB")
    server.devices["R58M12345AB"].state = "unauthorized"  # what the real server says when the key was revoked
    with pytest.raises(EdgematteError, match="R58M12345AB is unauthorized"):
        device.shell(["true"])
    del server.devices["R58M12345AB"]
    with pytest.raises(EdgematteError, match="R58M12345AB is not attached"):
        device.shell(["true"])
    with pytest.raises(EdgematteError, match="'/nonexistent/adb' not found: install"):
        Adb(binary="/nonexistent/adb").devices()


# ---------------------------------------------------------------------------------------------- device commands


def test_shell_status_with_protocol_v2(fake_adb, tmp_path):
    server = fake_adb(FakeDevice("R58M12345AB", tmp_path / "dev", shell_v2=True))
    device = server.adb().device()
    result = device.shell("echo out; echo err >&2; exit 4", check=False)
    assert (result.status, result.output, result.stderr) == (4, "out\n", "err\n")
    assert any(r.startswith("shell,v2,") and ",raw:" in r for r in server.requests)  # the client chose v2


def test_shell_status_files_with_spaces_push_and_pull(fake_adb, tmp_path):
    server = fake_adb(FakeDevice("R58M12345AB", tmp_path / "dev"))
    device = server.adb().device()
    assert device.shell("exit 3", check=False).status == 3  # shell v1 has no status: read from the marker
    assert device.shell(["echo", "a  b", "$HOME"]).output == "a  b $HOME\n"
    with pytest.raises(EdgematteError, match="exited with status 1"):
        device.shell(["cat", "/data/local/tmp/none"])
    folder = "/data/local/tmp/edgematte test/it's here"
    device.make_dirs(folder)
    assert device.exists(folder) and not device.exists(folder + "/x")
    (tmp_path / "in put.bin").write_bytes(bytes(range(256)) * 1000)
    device.push(tmp_path / "in put.bin", folder + "/in put.bin")
    assert (tmp_path / "dev" / folder.lstrip("/") / "in put.bin").read_bytes() == bytes(range(256)) * 1000
    device.pull(folder, tmp_path / "back")
    assert (tmp_path / "back" / "in put.bin").read_bytes() == bytes(range(256)) * 1000
    device.remove("/data/local/tmp/edgematte test")
    assert not device.exists(folder)
    assert "rm -rf '/data/local/tmp/edgematte test'" in server.devices["R58M12345AB"].commands[-2]


# ---------------------------------------------------------------------------------------------- the whole flow

# Stands in for VerificationActivity (started by the fake `am`): the Python runtime on the pushed .npy
# images, written in the app's golden-vector layout (org.edgematte.core.GoldenWriter), then DONE.
# DEVICE_ROOT/app_mode picks: "good", "off_by_0.01" (every alpha moved by exactly 0.01), "failed" or
# "ignores_sequence" (every image from zero states even with --ez sequence true). As the app: each image from zero
# states, or with --ez sequence true the images in name order as one clip, reset once. DEVICE_ROOT/app_artefact,
# when present, holds the conversion folder (on the host) and artefact the stand-in runs instead of --es models and
# --es model (an ARM .nb cannot run here).
FAKE_APP = r"""
import json, sys
from pathlib import Path
import numpy as np
from edgematte.runtime.matter import Matter

args, extras, i = sys.argv[1:], {}, 0
while i < len(args):
    if args[i] in ("--es", "--ei", "--ez"):
        extras[args[i + 1]] = args[i + 2]
        i += 3
    else:
        i += 1
out = Path(extras["output"])
out.mkdir(parents=True, exist_ok=True)
mode = (Path(sys.argv[0]).resolve().parent / "app_mode").read_text().strip()
print("Starting: Intent { cmp=" + args[args.index("-n") + 1] + " }")
print("Status: ok")
if mode == "failed":
    (out / "FAILED").write_text("IOException: no images (.npy, .png, .jpg) in the input folder\n")
    sys.exit(0)
override = Path(sys.argv[0]).resolve().parent / "app_artefact"
models, artefact = override.read_text().splitlines() if override.exists() else (extras["models"], extras["model"])
matter = Matter.from_manifest(models, artefact=artefact, threads=int(extras["threads"]), profile=extras["profile"])
sequence = extras.get("sequence") == "true" and mode != "ignores_sequence"
cases = []
matter.reset()
for index, path in enumerate(sorted(Path(extras["input"]).glob("*.npy"))):
    if not sequence:
        matter.reset()
    tensor, state = matter.model_input(np.load(path))
    alpha = matter.profile.postprocess(matter.run_tensor(tensor), state).astype(np.float32)
    if mode == "off_by_0.01":
        alpha = np.where(alpha < 0.5, alpha + np.float32(0.01), alpha - np.float32(0.01)).astype(np.float32)
    folder = out / extras["profile"] / path.stem
    folder.mkdir(parents=True)
    arrays = {}
    for name, array in ((f"pre_tensor_{matter.layout}", tensor), ("post_alpha", alpha)):
        np.save(folder / f"{name}.npy", array)
        arrays[name] = {"file": f"{extras['profile']}/{path.stem}/{name}.npy", "shape": list(array.shape),
                        "dtype": array.dtype.name}
    cases.append({"id": f"{extras['profile']}/{path.stem}", "profile": extras["profile"], "image": path.stem,
                  "layout": matter.layout, "arrays": arrays,
                  "timings_ms": {"decode": 1.5, "preprocess": 4.0, "inference": 30.0 + index,
                                 "inference_runs": [30.0 + index] * int(extras["repeats"]), "postprocess": 2.5}})
index = {"schema": "edgematte.golden/1", "generator": {"side": "android"}, "model": {"file": extras["model"]},
         "cases": cases, "device": {"manufacturer": "Google", "model": "Pixel 7", "sdk_int": 34}}
(out / "index.json").write_text(json.dumps(index))
(out / "DONE").write_text(json.dumps({"cases": len(cases)}))
"""


@pytest.fixture
def phone(fake_adb, tmp_path):
    """A fake phone with the app 'installed': pm, am (running FAKE_APP) and getprop are device commands."""
    device = FakeDevice("R58M12345AB", tmp_path / "phone")
    (device.root / "fake_app.py").write_text(FAKE_APP)
    (device.root / "app_mode").write_text("good")
    repo = Path(__file__).resolve().parents[1]
    device.add_command("am", f'PYTHONPATH={shlex.quote(str(repo))} exec {shlex.quote(sys.executable)} '
                             f'"$DEVICE_ROOT/fake_app.py" "$@"')
    device.add_command("pm", 'echo "package:/data/app/~~x==/org.edgematte.demo-1/base.apk"')
    device.add_command("getprop", 'case "$1" in ro.build.version.release) echo 14;; '
                                  'ro.soc.model) echo Tensor G2;; esac')
    server = fake_adb(device)
    return server, device


@pytest.fixture
def photos(tmp_path):
    """Two small photos, one in a folder with a space (device names must stay unique and shell-safe)."""
    import cv2
    from skimage.data import astronaut, chelsea

    folder = tmp_path / "photos"
    (folder / "my photos").mkdir(parents=True)
    cv2.imwrite(str(folder / "astronaut.png"), cv2.resize(astronaut(), (96, 96))[:, :, ::-1])
    cv2.imwrite(str(folder / "my photos" / "cat 1.png"), chelsea()[100:161, 150:253, ::-1])
    return folder


def test_device_verify_end_to_end_through_adb(phone, photos, tiny_conversion, tmp_path):
    from edgematte.device.android_verify import VERIFY_DIR, verify_on_device

    server, device = phone
    report = verify_on_device(tiny_conversion, images_dir=photos, serial="R58M12345AB", out_dir=tmp_path / "report",
                              artefact="model_fp32.tflite", threads=1, repeats=2, adb=server.adb(), poll_interval=0.1)
    # The fake app runs the same tflite on this host: against the Paddle reference it is within the
    # artefact's parity bound (1e-4), and identical to this host's own run of the artefact.
    assert report.passed and report.exit_code == 0, report.failures
    assert report.threshold["max_abs"] == 1e-4 and report.pooled["max_abs"] < 1e-4
    assert [r.image for r in report.images] == ["astronaut.png", "my photos/cat 1.png"]
    assert [r.device_name for r in report.images] == ["000_astronaut", "001_my_photos_cat_1"]
    assert all(r.pre_tensor_max_abs == 0.0 and r.vs_host_artefact["max_abs"] == 0.0 for r in report.images)
    assert report.images[1].size == (61, 103)
    assert report.stage_medians_ms()["inference"] == 30.5  # median of the two images' 30.0 and 31.0
    assert report.device["android"] == "14" and report.device["soc"] == "Tensor G2"
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["passed"] is True and saved["schema"] == "edgematte.device-verify/1"
    assert "| **median** | 1.5 | 4.0 |" in (tmp_path / "report" / "report.md").read_text()
    assert (tmp_path / "report" / "device-output" / "DONE").is_file()
    # What went over adb: the am start line (quoted for the device shell), and nothing left behind.
    start = next(line for line in device.commands if "am start" in line)
    assert (f"am start -W -n org.edgematte.demo/.VerificationActivity --es input {VERIFY_DIR}/in --es output "
            f"{VERIFY_DIR}/out --es models {VERIFY_DIR}/models --es model model_fp32.tflite --es accelerator cpu "
            f"--ei threads 1 --ei warmup 1 --ei repeats 2 --es profile android --ez sequence false") in start
    assert not device.host_path(VERIFY_DIR).exists()


def test_device_verify_fails_beyond_the_threshold_and_on_a_failed_run(phone, photos, tiny_conversion, tmp_path):
    from edgematte.device.android_verify import verify_on_device

    server, device = phone
    (device.root / "app_mode").write_text("off_by_0.01")
    report = verify_on_device(tiny_conversion, images_dir=photos, out_dir=tmp_path / "report",
                              artefact="model_fp32.tflite", threads=1, adb=server.adb(), poll_interval=0.1)
    assert report.exit_code == 1 and "max abs" in report.failures[0]
    # Every pixel moved by 0.01 (float32): the figures show exactly that, the SAD is 0.01 * pixels / 1000.
    assert report.pooled["max_abs"] == pytest.approx(0.01, abs=1e-4)
    assert report.images[0].mean_abs == pytest.approx(0.01, abs=1e-4)
    assert report.images[0].sad == pytest.approx(0.01 * 96 * 96 / 1000, rel=1e-2)
    assert json.loads((tmp_path / "report" / "report.json").read_text())["passed"] is False

    (device.root / "app_mode").write_text("failed")
    with pytest.raises(EdgematteError, match="failed on the device: IOException: no images"):
        verify_on_device(tiny_conversion, images_dir=photos, artefact="model_fp32.tflite", adb=server.adb(),
                         poll_interval=0.1)
    with pytest.raises(EdgematteError, match="model.onnx: a onnx artefact for any does not run in the Android app"):
        verify_on_device(tiny_conversion, images_dir=photos, artefact="model.onnx", adb=server.adb())


# ---------------------------------------------------------------------------------------------- a clip


def _tiny_recurrent_onnx(path):
    """img [1,3,16,16], r1 [1,1,16,16] -> alpha = sigmoid(4 mean_c(img) - 2 + 2 r1), r1o = (alpha + r1) / 2."""
    import onnx
    from onnx import TensorProto, helper

    def scalar(name, value):
        return helper.make_tensor(name, TensorProto.FLOAT, [], [value])

    nodes = [helper.make_node("ReduceMean", ["img"], ["mean"], axes=[1], keepdims=1),
             helper.make_node("Mul", ["mean", "four"], ["scaled"]),
             helper.make_node("Sub", ["scaled", "two"], ["centred"]),
             helper.make_node("Mul", ["r1", "two"], ["carried"]),
             helper.make_node("Add", ["centred", "carried"], ["z"]),
             helper.make_node("Sigmoid", ["z"], ["alpha"]),
             helper.make_node("Add", ["alpha", "r1"], ["sum"]),
             helper.make_node("Mul", ["sum", "half"], ["r1o"])]
    graph = helper.make_graph(
        nodes, "tiny_recurrent",
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, 16, 16]),
         helper.make_tensor_value_info("r1", TensorProto.FLOAT, [1, 1, 16, 16])],
        [helper.make_tensor_value_info("alpha", TensorProto.FLOAT, [1, 1, 16, 16]),
         helper.make_tensor_value_info("r1o", TensorProto.FLOAT, [1, 1, 16, 16])],
        [scalar("four", 4.0), scalar("two", 2.0), scalar("half", 0.5)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what every ONNX Runtime reads (onnx 1.19 would write a newer one)
    onnx.save(model, str(path))


@pytest.fixture
def recurrent_conversion(tmp_path):
    """A hand-made schema 1.2 conversion of a tiny recurrent model (RVM's mean 0 / std 1): the fp32 ONNX (the
    reference's stand-in, no Paddle reference) and an ARM .nb the fake app runs as the ONNX
    (DEVICE_ROOT/app_artefact)."""
    from edgematte.core.fsutil import sha256_file

    out = tmp_path / "recurrent"
    out.mkdir()
    _tiny_recurrent_onnx(out / "model.onnx")
    (out / "model_arm.nb").write_bytes(b"an ARM Paddle Lite model: pushed, never opened on this host")
    parity = {"max_abs": 0.0, "mean_abs": 0.0, "frac_over_1_255": 0.0, "compared_to": "reference", "bound": 1e-4}
    artefacts = [{"path": name, "format": fmt, "target": target, "precision": "fp32", "layout": "nchw",
                  "profile": "android", "size_bytes": (out / name).stat().st_size, "sha256": sha256_file(out / name),
                  "parity": {**parity, "runs_on_host": fmt == "onnx"}}
                 for name, fmt, target in (("model.onnx", "onnx", "any"), ("model_arm.nb", "nb", "arm"))]
    manifest = {"schema": "edgematte.manifest/1", "schema_version": "1.2",
                "model": {"name": "tiny_recurrent", "input_shape": [1, 3, 16, 16],
                          "transforms": [{"type": "Normalize", "mean": [0, 0, 0], "std": [1, 1, 1]}],
                          "inputs": [{"name": "img", "role": "image", "shape": [1, 3, 16, 16], "dtype": "float32"},
                                     {"name": "r1", "role": "state", "shape": [1, 1, 16, 16], "dtype": "float32",
                                      "pair": "r1o"}],
                          "outputs": [{"name": "alpha", "role": "alpha"}, {"name": "r1o", "role": "state",
                                                                          "pair": "r1"}]},
                "reference": {}, "artefacts": artefacts}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture
def clip(tmp_path):
    """Eleven 20x24 frames panning over the astronaut, named frame_1.png .. frame_11.png (unpadded: name order
    would put frame_10 second)."""
    from skimage.data import astronaut

    from edgematte.runtime.imageio import write_image

    photo = astronaut()
    folder = tmp_path / "clip"
    for number in range(1, 12):
        write_image(folder / f"frame_{number}.png", photo[150 + 3 * number:170 + 3 * number, 200:224])
    return folder


def test_device_verify_runs_a_numbered_clip_with_states_carried(phone, recurrent_conversion, clip, tmp_path):
    from edgematte.device.android_verify import verify_on_device

    server, device = phone
    (device.root / "app_artefact").write_text(f"{recurrent_conversion}\nmodel.onnx\n")
    report = verify_on_device(recurrent_conversion, sequence_dir=clip, artefact="model_arm.nb", threads=1,
                              repeats=1, out_dir=tmp_path / "report", adb=server.adb(), poll_interval=0.1)
    # The fake phone runs the reference's own ONNX, as one clip: every frame equals the host's clip exactly.
    assert report.passed, report.failures
    assert [r.image for r in report.images] == [f"frame_{n}.png" for n in range(1, 12)]
    assert [r.device_name for r in report.images][:2] == ["000_frame_1", "001_frame_2"]
    assert all(r.max_abs == 0.0 and r.pre_tensor_max_abs == 0.0 for r in report.images)
    assert report.settings["sequence"] is True and report.threshold["max_abs"] == 1e-4
    assert "11 frames of one clip" in report.summary_lines()[0]
    start = next(line for line in device.commands if "am start" in line)
    assert "--es model model_arm.nb" in start and "--es profile android --ez sequence true);" in start

    # A phone that starts every frame from zero states: the first frame still matches, every later one is off by
    # far more than the bound, so the host really compares with states carried.
    (device.root / "app_mode").write_text("ignores_sequence")
    report = verify_on_device(recurrent_conversion, sequence_dir=clip, artefact="model_arm.nb", threads=1,
                              repeats=1, out_dir=tmp_path / "report2", adb=server.adb(), poll_interval=0.1)
    assert report.exit_code == 1 and "max abs" in report.failures[0]
    assert report.images[0].max_abs == 0.0 and min(r.max_abs for r in report.images[1:]) > 0.01

    # The same frames as photos: each from zero states on both sides, which agree again.
    report = verify_on_device(recurrent_conversion, images_dir=clip, artefact="model_arm.nb", threads=1,
                              repeats=1, out_dir=tmp_path / "report3", adb=server.adb(), poll_interval=0.1)
    assert report.passed and report.settings["sequence"] is False and report.pooled["max_abs"] == 0.0


def _frame(folder, name, hw=(20, 24)):
    from edgematte.runtime.imageio import write_image

    write_image(folder / name, np.full((*hw, 3), 90, np.uint8))


@pytest.mark.parametrize("names, message", [
    ((), "{dir}: no frames (files named by their frame number, e.g. frame_0001.png)"),
    (("frame_1.png", "frame_3.png"), "{dir}: frame 2 is missing (frames 1 to 3, 2 files)"),
    (("a_7.png", "b_007.png"), "{dir}: frame 7 twice: a_7.png and b_007.png"),
    (("frame_1.png", "cover.png"), "{dir}/cover.png: no frame number in the file name (name frames like "
                                   "frame_0001.png)"),
])
def test_a_clip_folder_that_is_not_one_numbered_run_is_one_line(recurrent_conversion, tmp_path, names, message):
    from edgematte.device.android_verify import verify_on_device

    folder = tmp_path / "frames"
    folder.mkdir()
    for name in names:
        _frame(folder, name)
    # Checked before any device is looked for: no adb server is needed.
    with pytest.raises(EdgematteError) as caught:
        verify_on_device(recurrent_conversion, sequence_dir=folder, artefact="model_arm.nb")
    assert str(caught.value) == message.format(dir=folder)


def test_a_frame_of_another_size_and_both_inputs_are_one_line(recurrent_conversion, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for number in (1, 2):
        _frame(folder, f"f{number:02d}.png")
    _frame(folder, "f03.png", hw=(20, 25))
    (folder / ".DS_Store").write_bytes(b"hidden files are passed over")
    r = run_cli("device", "verify", "--manifest", recurrent_conversion, "--artefact", "model_arm.nb", "--sequence",
                folder)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert (f"{folder}/f03.png: frame is 25x20, the first frame f01.png is 24x20 (a clip's frames share one size)"
            in r.stderr), r.stderr
    r = run_cli("device", "verify", "--manifest", recurrent_conversion, "--images", folder, "--sequence", folder)
    assert r.returncode == 1 and f"--images {folder} and --sequence {folder}: give photos or one clip's frames, not " \
        "both" in r.stderr, r.stderr
