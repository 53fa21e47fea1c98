"""A small client around the ``adb`` binary: devices, push/pull, shell with exit status, activities.

Every call runs the real ``adb`` client as an argument list (``subprocess``, no host shell) with a
timeout, and every failure the user can fix becomes one :class:`EdgematteError` line: adb missing,
no device attached, the serial not attached, a device ``unauthorized`` (the RSA key prompt on the
phone not accepted), ``offline``, several devices and no ``--serial``.

    device = Adb().device("R58M12345AB")          # or Adb().device() when exactly one is attached
    device.push("model.tflite", "/data/local/tmp/x/model.tflite")
    status, output = device.shell(["ls", "-l", "/data/local/tmp/x"], check=False)

Device shell commands: ``adb shell`` joins its arguments with spaces and hands the line to the
device's ``sh`` (mksh or toybox), so every word we pass is quoted for that shell by
:func:`device_shell_command` (paths with spaces, quotes, ``$``). ``push``/``pull`` paths are not
shell-parsed (adb's sync protocol takes them as they are) and are passed unquoted.

Exit status: adb 29 passes the remote exit status through only with the ``shell_v2`` protocol,
which devices before Android 7 lack (their ``adb shell`` always exits 0). :meth:`Device.shell`
therefore appends ``echo EDGEMATTE_EXIT=$?`` to the command and reads the status from its output,
which works with both protocols; adb's own exit status then means only "adb failed".

Environment: ``EDGEMATTE_ADB`` (path of the adb binary, default ``adb`` on ``PATH``),
``ANDROID_ADB_SERVER_PORT`` (read by adb itself), ``ANDROID_SERIAL`` (the CLI's default serial).
"""

import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

from ..core.errors import EdgematteError
from ..core.tools import last_line

ADB_ENV = "EDGEMATTE_ADB"
DEFAULT_TIMEOUT_S = 60.0
TRANSFER_TIMEOUT_S = 900.0
EXIT_MARKER = "EDGEMATTE_EXIT="
READY_STATE = "device"
INSTALL_HINT = "install Android's platform tools (Debian: apt-get install adb) or set EDGEMATTE_ADB to its path"

# What the user does about each `adb devices` state other than "device" (the states adb 29 prints).
STATE_ADVICE = {
    "unauthorized": "accept the 'Allow USB debugging?' RSA key prompt on the phone (tick 'Always allow'), then retry",
    "authorizing": "adb is still authorizing it: accept the RSA key prompt on the phone, then retry",
    "offline": "reconnect the cable (or run 'adb reconnect') and make sure USB debugging is on",
    "no permissions": "this user may not open the USB device: install the udev rules (Debian: "
                      "android-sdk-platform-tools-common), add yourself to plugdev and replug",
    "connecting": "adb is still connecting to it: retry in a few seconds",
    "bootloader": "it is in the bootloader: boot it into Android",
    "recovery": "it is in recovery: boot it into Android",
    "sideload": "it is in sideload mode: boot it into Android",
    "rescue": "it is in rescue mode: boot it into Android",
}
# adb client/server error texts -> the state they mean (for races after `adb devices`).
_ERROR_STATES = (
    ("unauthorized", "unauthorized"),
    ("device offline", "offline"),
    ("no permissions", "no permissions"),
    ("authorizing", "authorizing"),
)
# `am start` prints these (and exits 0 on older Android) when the activity cannot be started.
_AM_ERRORS = ("Error:", "Error type", "Exception", "Permission Denial")
_PROPERTY = re.compile(r"^(usb|product|model|device|transport_id|features):\S*$")

Runner = Callable[..., subprocess.CompletedProcess]


def device_shell_quote(word) -> str:
    """One word for the device's POSIX ``sh``: bare when it is safe, else single-quoted (mksh and
    toybox sh follow POSIX quoting, so Python's :func:`shlex.quote` is right for them)."""
    return shlex.quote(str(word))


def device_shell_command(argv: Sequence) -> str:
    """The device shell line that runs ``argv`` word for word."""
    return " ".join(device_shell_quote(word) for word in argv)


@dataclass(frozen=True)
class DeviceEntry:
    """One line of ``adb devices -l``: serial, state (``device``, ``unauthorized``...), properties
    (``model``, ``product``, ``device``, ``usb``, ``transport_id`` when adb knows them)."""

    serial: str
    state: str
    properties: Dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        model = self.properties.get("model")
        return f"{self.serial} ({self.state}{', ' + model if model else ''})"


def parse_devices(text: str) -> List[DeviceEntry]:
    """Parse ``adb devices -l`` output (the header, ``* daemon ...`` notes and blank lines are skipped).

    The state is everything between the serial and the first ``key:value`` property, because some
    states contain spaces (``no permissions (...); see [http://...]``).
    """
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("*") or line.startswith("List of devices"):
            continue
        words = line.split()
        serial, rest = words[0], words[1:]
        state_words, properties = [], {}
        for word in rest:
            if _PROPERTY.match(word) and state_words:
                key, _, value = word.partition(":")
                properties[key] = value
            elif not properties:
                state_words.append(word)
        state = " ".join(state_words)
        if state.startswith("no permissions"):
            state = "no permissions"
        entries.append(DeviceEntry(serial, state or "unknown", properties))
    return entries


def state_error(serial: str, state: str) -> EdgematteError:
    """The one-line error for a device that is attached but not usable in ``state``."""
    advice = STATE_ADVICE.get(state, "it is not ready: check the phone and 'adb devices -l'")
    return EdgematteError(f"adb: device {serial} is {state}: {advice}")


def _default_runner(argv, timeout):
    # Not core.tools.run_tool: adb's stdout (a device command's output and its exit marker) and stderr (adb's
    # own complaints, the device's stderr with shell protocol v2) are read separately, and run_tool merges them.
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          errors="replace")


class Adb:
    """The host's ``adb`` client.

    ``binary``: the adb executable (default ``$EDGEMATTE_ADB`` or ``adb``). ``server_port``: passed
    as ``-P PORT`` (default: adb's own, ``$ANDROID_ADB_SERVER_PORT`` or 5037). ``runner``: what runs
    an argv, ``runner(argv, timeout) -> CompletedProcess`` with text stdout/stderr (tests record
    commands with it).
    """

    def __init__(self, binary: Optional[str] = None, server_port: Optional[int] = None,
                 runner: Optional[Runner] = None):
        self.binary = binary or os.environ.get(ADB_ENV) or "adb"
        self.server_port = server_port
        self.runner = runner or _default_runner

    def argv(self, args: Sequence, serial: Optional[str] = None) -> List[str]:
        """``adb [-P PORT] [-s SERIAL] ARGS...`` as a list of strings."""
        prefix = [self.binary] + (["-P", str(self.server_port)] if self.server_port else [])
        return prefix + (["-s", serial] if serial else []) + [str(a) for a in args]

    def run(self, args: Sequence, serial: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT_S,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run one adb command; adb's own failures (``check``) become :class:`EdgematteError`."""
        argv = self.argv(args, serial)
        try:
            result = self.runner(argv, timeout)
        except FileNotFoundError:
            raise EdgematteError(f"adb: '{self.binary}' not found: {INSTALL_HINT}") from None
        except PermissionError:
            raise EdgematteError(f"adb: '{self.binary}' is not executable: {INSTALL_HINT}") from None
        except subprocess.TimeoutExpired:
            where = f" on {serial}" if serial else ""
            raise EdgematteError(f"adb {args[0]}{where}: no answer within {timeout:g} s (is the device responsive? "
                                 "'adb devices -l')") from None
        if check and result.returncode != 0:
            raise self.failure(args, result, serial)
        return result

    def failure(self, args: Sequence, result: subprocess.CompletedProcess, serial: Optional[str]) -> EdgematteError:
        """The one-line error for an adb command that failed (its stderr, read for known causes)."""
        text = f"{result.stderr or ''}\n{result.stdout or ''}"
        lowered = text.lower()
        if "no devices/emulators found" in lowered:
            return EdgematteError("adb: no device attached (connect a phone with USB debugging on, or start an "
                                  "emulator; 'adb devices -l' lists them)")
        if "more than one device" in lowered:
            return EdgematteError("adb: several devices attached: choose one with --serial")
        if serial and "not found" in lowered and "device" in lowered:
            return EdgematteError(f"adb: device {serial} is not attached ('adb devices -l' lists the attached ones)")
        for needle, state in _ERROR_STATES:
            if needle in lowered and serial:
                return state_error(serial, state)
        if "cannot connect to daemon" in lowered or "failed to start daemon" in lowered:
            return EdgematteError(f"adb: cannot reach the adb server: {last_line(result.stderr)}")
        # the last line of stderr, else of stdout
        text = f"{result.stdout or ''}\n{result.stderr or ''}"
        detail = last_line(text) if text.strip() else f"exit status {result.returncode}"
        return EdgematteError(f"adb {args[0]}{' on ' + serial if serial else ''} failed: {detail}")

    def devices(self) -> List[DeviceEntry]:
        """Every attached device with its state (``adb devices -l``)."""
        return parse_devices(self.run(["devices", "-l"]).stdout)

    def device(self, serial: Optional[str] = None) -> "Device":
        """The device ``serial`` (or the only attached one), checked to be in the ``device`` state."""
        entries = self.devices()
        if not entries:
            wanted = f" (looking for {serial})" if serial else ""
            raise EdgematteError(f"adb: no device attached{wanted}: connect a phone with USB debugging on, or "
                                 "start an emulator ('adb devices -l' lists them)")
        if serial:
            matches = [entry for entry in entries if entry.serial == serial]
            if not matches:
                raise EdgematteError(f"adb: device {serial} not found (attached: "
                                     f"{', '.join(entry.describe() for entry in entries)})")
            entry = matches[0]
        elif len(entries) > 1:
            raise EdgematteError(f"adb: {len(entries)} devices attached "
                                 f"({', '.join(entry.describe() for entry in entries)}): choose one with --serial")
        else:
            entry = entries[0]
        if entry.state != READY_STATE:
            raise state_error(entry.serial, entry.state)
        return Device(self, entry)


@dataclass
class ShellResult:
    """A device command's exit ``status`` and its ``output`` (stdout; with shell protocol v1 stderr too)."""

    status: int
    output: str
    stderr: str = ""


class Device:
    """One attached, authorized device (from :meth:`Adb.device`)."""

    def __init__(self, adb: Adb, entry: DeviceEntry):
        self.adb = adb
        self.entry = entry
        self.serial = entry.serial

    def run(self, args: Sequence, timeout: float = DEFAULT_TIMEOUT_S,
            check: bool = True) -> subprocess.CompletedProcess:
        return self.adb.run(args, serial=self.serial, timeout=timeout, check=check)

    def shell(self, command: Union[str, Sequence], timeout: float = DEFAULT_TIMEOUT_S,
              check: bool = True) -> ShellResult:
        """Run ``command`` on the device and return its exit status and output.

        ``command``: a list of words (each quoted for the device shell) or a ready shell line.
        ``check``: raise :class:`EdgematteError` (naming the command and its last output line)
        when the status is not 0.
        """
        line = command if isinstance(command, str) else device_shell_command(command)
        # The subshell keeps an `exit` in `line` from skipping the marker.
        result = self.run(["shell", f"({line}); echo {EXIT_MARKER}$?"], timeout=timeout)
        output = (result.stdout or "").replace("\r\n", "\n")
        head, marker, tail = output.rpartition(EXIT_MARKER)
        status_text = tail.strip().splitlines()[0] if marker and tail.strip() else ""
        stderr = result.stderr or ""
        if not status_text.isdigit():
            detail = last_line(f"{output}\n{stderr}")  # the last line of stderr, else of the output
            raise EdgematteError(f"adb shell on {self.serial}: the command ended without an exit status "
                                 f"(connection lost?): {detail}")
        shell_result = ShellResult(int(status_text), head, stderr)
        if check and shell_result.status != 0:
            detail = last_line(f"{stderr}\n{head}")  # the last line of the output, else of stderr
            raise EdgematteError(f"{self.serial}: '{line}' exited with status {shell_result.status}: {detail}")
        return shell_result

    def push(self, local, remote: str, timeout: float = TRANSFER_TIMEOUT_S) -> None:
        """Copy a host file or folder to ``remote`` (a folder's contents go to ``remote`` when it ends in ``/.``)."""
        if not Path(local).exists():
            raise EdgematteError(f"{local}: no such file to push")
        self.run(["push", str(local), remote], timeout=timeout)

    def pull(self, remote: str, local, timeout: float = TRANSFER_TIMEOUT_S) -> None:
        """Copy a device file or folder to ``local`` (a folder becomes ``local`` when ``local`` does not exist)."""
        self.run(["pull", remote, str(local)], timeout=timeout)

    def exists(self, path: str) -> bool:
        return self.shell(["test", "-e", path], check=False).status == 0

    def remove(self, path: str) -> None:
        """``rm -rf path``."""
        self.shell(["rm", "-rf", path])

    def make_dirs(self, path: str) -> None:
        """``mkdir -p path``."""
        self.shell(["mkdir", "-p", path])

    def read_text(self, path: str) -> str:
        return self.shell(["cat", path]).output

    def properties(self, names: Sequence[str]) -> Dict[str, str]:
        """``getprop`` values by name (missing ones are empty strings)."""
        script = "; ".join(f"echo \"{name}=$(getprop {device_shell_quote(name)})\"" for name in names)
        values = {}
        for line in self.shell(script).output.splitlines():
            key, sep, value = line.partition("=")
            if sep and key in names:
                values[key] = value.strip()
        return {name: values.get(name, "") for name in names}

    def package_installed(self, package: str) -> bool:
        """Whether ``pm path PACKAGE`` finds an installed APK."""
        result = self.shell(["pm", "path", package], check=False)
        return result.status == 0 and "package:" in result.output

    def start_activity(self, component: str, extras: Mapping[str, Union[str, int, bool]], wait: bool = True,
                       timeout: float = DEFAULT_TIMEOUT_S) -> str:
        """Start ``component`` with ``extras`` (:func:`activity_start_argv`); returns ``am``'s output.

        ``am start`` exits 0 on older Android even when the activity cannot start, so its output is
        read for ``Error:`` / ``Exception`` / ``Permission Denial`` lines too.
        """
        result = self.shell(activity_start_argv(component, extras, wait), timeout=timeout, check=False)
        problems = [line.strip() for line in (result.output + "\n" + result.stderr).splitlines()
                    if any(word in line for word in _AM_ERRORS)]
        if result.status != 0 or problems:
            detail = problems[0] if problems else (last_line(result.output) if result.output.strip()
                                                    else f"exit status {result.status}")
            raise EdgematteError(f"{self.serial}: cannot start {component}: {detail}")
        return result.output


def activity_start_argv(component: str, extras: Mapping[str, Union[str, int, bool]], wait: bool = True) -> List[str]:
    """``am start [-W] -n PKG/.Activity --es k v --ei k n --ez k b`` for ``extras`` (in their order).

    Strings go with ``--es``, ints with ``--ei``, bools with ``--ez``; the list is quoted for the
    device shell by :func:`device_shell_command`.
    """
    argv = ["am", "start"] + (["-W"] if wait else []) + ["-n", component]
    for key, value in extras.items():
        if isinstance(value, bool):
            argv += ["--ez", key, "true" if value else "false"]
        elif isinstance(value, int):
            argv += ["--ei", key, str(value)]
        else:
            argv += ["--es", key, str(value)]
    return argv
