"""Hostile and careless use of output folders: nothing the user owns is lost, interrupted runs leave nothing.

Part of the hostile-input suite (``tests/test_hostile_*.py``).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgematte.core.errors import EdgematteError
from edgematte.core.fsutil import OUTPUT_MARKER, atomic_dir, atomic_path, remove_stale_work
from edgematte.core.manifest import is_conversion_folder
from edgematte.core.signals import Terminated, install_signal_policy
from tests.conftest import run_cli

TINY = ("ppmattingv2", "--seed", "0", "--width", "0.25", "--input-shape", "1", "3", "64", "64")


def _one_line_error(result, *fragments):
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgematte: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _leftovers(parent: Path, name: str):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


# ------------------------------------------------------------------------------------------ the folder policy
def test_a_folder_edgematte_wrote_is_replaced_and_marked(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("one")
        (tmp / "sub").mkdir()
    (out / "sub" / "c.txt").write_text("three")
    with pytest.raises(EdgematteError, match=r"holds files edgematte did not write \(sub/c.txt\)"):
        with atomic_dir(out):
            pass
    (out / "sub" / "c.txt").unlink()
    marker = json.loads((out / OUTPUT_MARKER).read_text())
    assert marker == {"schema": "edgematte.output/1", "entries": ["a.txt", "sub"]}
    # A later output of ours inside it (a benchmark report folder) does not make it foreign.
    with atomic_dir(out / "bench" / "local") as tmp:
        (tmp / "bench.json").write_text("{}")
    with atomic_dir(out) as tmp:
        (tmp / "b.txt").write_text("two")
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER, "b.txt"]
    assert _leftovers(tmp_path, "out") == []


@pytest.mark.parametrize("foreign", ["user.txt", "sub/user.txt", "bench/local/user.txt"])
def test_a_folder_holding_anything_else_is_refused_and_untouched(tmp_path, foreign):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "sub").mkdir()
    with atomic_dir(out / "bench" / "local") as tmp:
        (tmp / "bench.json").write_text("{}")
    (out / foreign).parent.mkdir(parents=True, exist_ok=True)
    (out / foreign).write_text("mine")
    before = _snapshot(out)
    ran = []
    with pytest.raises(EdgematteError, match=r"out: refusing to replace the output folder: it holds files edgematte "
                                             r"did not write \((user.txt|sub/user.txt|bench/local/user.txt)\)"):
        with atomic_dir(out):
            ran.append(True)
    assert ran == [] and _snapshot(out) == before and _leftovers(tmp_path, "out") == []


def test_unmarked_folders_symlinks_files_and_empty_folders(tmp_path):
    user = tmp_path / "photos"
    user.mkdir()
    (user / "a.jpg").write_bytes(b"x")
    with pytest.raises(EdgematteError, match=r"holds files edgematte did not write \(a.jpg\)"):
        with atomic_dir(user):
            pass
    link = tmp_path / "link"
    link.symlink_to(user)
    with pytest.raises(EdgematteError, match="link: the output folder is a symbolic link"):
        with atomic_dir(link):
            pass
    plain = tmp_path / "file"
    plain.write_text("x")
    with pytest.raises(EdgematteError, match="file: the output folder exists and is not a folder"):
        with atomic_dir(plain):
            pass
    (tmp_path / "empty").mkdir()
    with atomic_dir(tmp_path / "empty") as tmp:
        (tmp / "x").write_text("1")
    assert (tmp_path / "empty" / "x").read_text() == "1"
    assert (user / "a.jpg").read_bytes() == b"x" and plain.read_text() == "x"


def test_an_input_or_the_current_directory_is_never_inside_what_is_replaced(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "model").mkdir()
    with pytest.raises(EdgematteError, match=r"out: refusing to replace the output folder: it holds .*model"):
        with atomic_dir(out, inputs=[out / "model"]):
            pass
    with pytest.raises(EdgematteError, match="it holds .*out, which would be lost"):
        with atomic_dir(out, inputs=[out]):
            pass
    monkeypatch.chdir(out / "model")
    with pytest.raises(EdgematteError, match="it holds the current directory"):
        with atomic_dir(out):
            pass
    assert (out / "model").is_dir()


def test_a_legacy_conversion_folder_is_recognised_by_its_manifest(tmp_path, data_dir):
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "manifest.json").write_bytes((data_dir / "manifest.edgematte-0.1.json").read_bytes())
    (legacy / "model.onnx").write_bytes(b"old")
    assert is_conversion_folder(legacy) and not is_conversion_folder(tmp_path)
    with atomic_dir(legacy, recognise=is_conversion_folder) as tmp:
        (tmp / "manifest.json").write_text("{}")
    assert not (legacy / "model.onnx").exists()


def test_an_unwritable_place_is_one_line(tmp_path):
    # Root (as CI runs) may write anywhere the permission bits forbid, so the failures used are ones root gets too.
    (tmp_path / "file").write_text("x")
    for target, message in (
            (tmp_path / "file" / "sub" / "out",
             f"{tmp_path / 'file'}: is a file, not a folder, so the output folder cannot be written in it"),
            (Path("/proc/edgematte-test/out"),
             "/proc/edgematte-test: cannot create the folder for the output folder (No such file or directory)")):
        with pytest.raises(EdgematteError) as caught:
            with atomic_dir(target):
                pass
        assert str(caught.value) == message


# ------------------------------------------------------------------------------------------ dead runs' leftovers
def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_leftovers_of_dead_runs_are_removed_and_live_or_foreign_ones_kept(tmp_path):
    from edgematte.core.fsutil import _start_time

    dead = tmp_path / f".out.edgematte-{_dead_pid()}-12345.abcd1234"
    (dead / "work").mkdir(parents=True)
    (dead / "work" / "big.bin").write_bytes(b"0" * 1000)
    dead_file = tmp_path / f".out.edgematte-{_dead_pid()}-1.x.tmp"
    dead_file.write_bytes(b"1")
    live = tmp_path / f".out.edgematte-{os.getpid()}-{_start_time(os.getpid())}.live"
    live.mkdir()
    other_output = tmp_path / f".other.edgematte-{_dead_pid()}-1.zzz"
    other_output.mkdir()
    users = tmp_path / ".out.backup"
    users.mkdir()
    assert sorted(p.name for p in remove_stale_work(tmp_path, "out")) == sorted([dead.name, dead_file.name])
    assert live.is_dir() and other_output.is_dir() and users.is_dir() and not dead.exists()
    with atomic_dir(tmp_path / "other"):
        pass
    assert not other_output.exists() and users.is_dir() and live.is_dir()


# ------------------------------------------------------------------------------------------ signals
def test_sigterm_unwinds_like_ctrl_c_and_atomic_outputs_clean_up(tmp_path):
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        assert install_signal_policy()
        with pytest.raises(Terminated) as caught:
            with atomic_dir(tmp_path / "out") as tmp:
                (tmp / "partial").write_text("x")
                with atomic_path(tmp_path / "file.bin") as part:
                    part.write_bytes(b"y")
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(5)  # the signal interrupts this
        assert caught.value.exit_code == 143 and str(caught.value) == "SIGTERM"
        assert sorted(p.name for p in tmp_path.iterdir()) == []
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _convert(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgematte.cli", "convert", *TINY, "--to", "onnx",
                             "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_work(parent: Path, name: str, proc: subprocess.Popen, timeout=300.0):
    """Wait until the conversion has a work folder with its scratch inside (the model is being exported)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in parent.glob(f".{name}.edgematte-*") if (p / ".work").is_dir()]
        if found:
            return found[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the conversion never started its work folder")


def test_sigterm_during_convert_leaves_nothing_and_exits_143(tmp_path):
    proc = _convert(tmp_path / "out")
    _wait_for_work(tmp_path, "out", proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "edgematte: stopped by SIGTERM; unfinished outputs were removed"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_killed_convert_is_cleaned_up_by_the_next_run(tmp_path):
    proc = _convert(tmp_path / "out")
    work = _wait_for_work(tmp_path, "out", proc)
    proc.kill()  # SIGKILL: no cleanup possible
    proc.wait(timeout=60)
    assert work.is_dir()
    r = run_cli("export", "ppmattingv2", "--seed", "0", "--width", "0.25", "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert not work.exists() and _leftovers(tmp_path, "out") == []


# ------------------------------------------------------------------------------------------ through the CLI
def test_convert_export_and_vectors_refuse_a_folder_of_user_files(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    for args in (("convert", *TINY, "-o", out), ("export", "ppmattingv2", "--seed", "0", "-o", out),
                 ("runtime", "vectors", "-o", out)):
        r = run_cli(*args)
        _one_line_error(r, f"{out}: refusing to replace the", "holiday.jpg")
    assert _snapshot(out) == {"holiday.jpg": b"precious"} and _leftovers(tmp_path, "mine") == []


def test_convert_never_replaces_the_folder_it_reads(tmp_path):
    deploy = tmp_path / "deploy"
    r = run_cli("export", "ppmattingv2", "--seed", "0", "--width", "0.25", "-o", deploy)
    assert r.returncode == 0, r.stderr
    before = _snapshot(deploy)
    r = run_cli("convert", deploy, "--to", "onnx", "--input-shape", "1", "3", "64", "64", "-o", deploy)
    _one_line_error(r, f"{deploy}: refusing to replace the conversion folder: it holds {deploy}, which would be lost")
    assert _snapshot(deploy) == before


def test_sigterm_while_a_tool_runs_kills_the_tool(tmp_path):
    import threading

    from edgematte.core.tools import run_tool

    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    pid_file = tmp_path / "pid"
    try:
        install_signal_policy()
        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
        with pytest.raises(Terminated):
            run_tool(["sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"], what="sleep", timeout_s=120)
        pid = int(pid_file.read_text())
        with pytest.raises(ProcessLookupError):  # killed and reaped: the pid is gone
            os.kill(pid, 0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_SIGTERM_AFTER_IMPORT = """
import os, signal, sys, time
from edgematte.core.signals import Terminated, install_signal_policy
if sys.argv[1] == "policy":
    install_signal_policy()
else:
    signal.signal(signal.SIGTERM, lambda signum, frame: print("python handler"))
import paddle
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(2)
    print("not stopped")
except Terminated as stopped:
    print("unwound", stopped.exit_code)
"""


@pytest.mark.parametrize("setup", ["policy", "plain handler"])
def test_sigterm_right_after_paddle_is_imported(setup):
    """Importing paddle installs glog's SIGTERM handler below Python, which aborts on the spot: a plain Python
    handler installed before the import never runs. The policy is installed again the moment paddle's import
    finishes, so a SIGTERM in the stage that first imports it unwinds too."""
    done = subprocess.run([sys.executable, "-c", _SIGTERM_AFTER_IMPORT, setup], capture_output=True, text=True,
                          timeout=120)
    if setup == "policy":
        assert done.returncode == 0 and done.stdout.strip() == "unwound 143", (done.stdout, done.stderr[-2000:])
    else:  # what the policy is protected from: paddle's handler aborts, the Python one never runs
        assert done.returncode == -signal.SIGTERM or "SIGTERM" in done.stderr, (done.returncode, done.stderr[-500:])
        assert "python handler" not in done.stdout and "not stopped" not in done.stdout


def _child_running(parent: int, needle: str):
    """The pid of a child process of ``parent`` whose command line holds ``needle`` (None: none now). Threads and
    children come and go while this reads /proc: a vanished entry is skipped."""
    try:
        tasks = list(Path(f"/proc/{parent}/task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            pids = (task / "children").read_text().split()
        except OSError:
            continue
        for pid in pids:
            try:
                if needle in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                    return int(pid)
            except OSError:
                continue
    return None


def test_sigterm_while_onnx2tf_runs_stops_it_too(tmp_path):
    """Importing paddle installs its own SIGTERM handler, which aborted convert on the spot and left onnx2tf
    running without a parent: the policy is installed again before every tool and stage."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "edgematte.cli", "convert", *TINY, "--to", "tflite", "--no-fp16",
                             "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, child = time.monotonic() + 600, None
    while child is None and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        child = _child_running(proc.pid, "onnx2tf")
        time.sleep(0.1)
    assert child is not None, "onnx2tf never started"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "edgematte: stopped by SIGTERM; unfinished outputs were removed"
    for _ in range(50):  # killed and reaped by convert before it exited
        if not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"onnx2tf (pid {child}) outlived the convert that started it")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
