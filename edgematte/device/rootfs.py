"""An arm64 Debian root file system for running the runtime under ``qemu-aarch64-static`` (:mod:`.qemu`).

``edgematte device arm-rootfs`` builds it once (the ``qemu:CPU`` bench target and ``device arm-check`` use it)
into the user's cache (default ``~/.cache/edgematte/arm64-rootfs``, or ``$XDG_CACHE_HOME/edgematte/...``)::

    ROOTFS/usr/bin/python3                      Debian bookworm's Python 3.11 for arm64
    ROOTFS/proc/cpuinfo                         a fake ARM cpuinfo (see FAKE_CPUINFO_ENTRY)
    ROOTFS/opt/edgematte/site-packages          aarch64 wheels: ai-edge-litert (the host's version), numpy, OpenCV
    ROOTFS/.edgematte-rootfs.json               the stamp: the recipe it was built from

How: ``debootstrap --download-only`` fetches the .deb files of a minimal bookworm with Python, each is
unpacked with ``dpkg-deb -x`` (no chroot, no maintainer scripts, no binfmt: nothing runs as arm64
during the build), and pip installs the aarch64 wheels with ``--platform``/``--target`` from this
host. Needs no root (debootstrap's --download-only skips its root check), only debootstrap,
dpkg-deb, qemu-user-static and network access to a Debian mirror and to PyPI; about 180 MB of .deb
files plus about 200 MB of wheels. The folder is built beside its final place and renamed into it only
after the emulated Python imported every wheel, so an interrupted build never leaves a half-made root file
system; concurrent builds are serialised by a lock file. Idempotent: a folder whose stamp holds the same
recipe is reused as it is.
"""

import fcntl
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..core.errors import EdgematteError
from ..core.fsutil import atomic_dir, write_text_atomic
from ..core.tools import run_tool
from ..core.versions import installed_version

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEBIAN_PACKAGES = ("python3", "libgomp1")
PYTHON_VERSION = "3.11"  # bookworm's python3
# numpy<2: the runtime's pin (setup.cfg); OpenCV at the host lock's version.
WHEELS = ("numpy==1.26.4", "opencv-python-headless==4.11.0.86")
# LiteRT's version changes int8 results more than the CPU architecture does (XNNPACK on x86:
# 2.1.0 and 2.3.0 differ by up to 30 steps on the tiny PP-MattingV2, x86 and ARM with the same
# version by up to 9), so the emulated one is the host's own version, for a comparison of kernels.
FALLBACK_LITERT_VERSION = "2.3.0"
# pip does not widen one --platform tag to the older manylinux tags it implies, and the wheels
# above carry different ones (numpy 1.26: manylinux_2_17, LiteRT: manylinux_2_27); bookworm's glibc
# is 2.36, so every manylinux tag up to that runs there.
WHEEL_PLATFORMS = ("manylinux2014_aarch64",) + tuple(f"manylinux_2_{minor}_aarch64" for minor in range(17, 37))
SITE_PACKAGES = "opt/edgematte/site-packages"
STAMP_NAME = ".edgematte-rootfs.json"
QEMU = "qemu-aarch64-static"
SMOKE_CPU = "cortex-a72"

# qemu-user passes the host's /proc/cpuinfo through unless the -L prefix has its own; LiteRT's
# cpuinfo library then parses x86 text on an ARM CPU and crashes (SIGSEGV). Features come from the
# auxiliary vector, which qemu sets from -cpu; the core type ("CPU part") comes from this file, which
# names a Cortex-A72 whatever -cpu is. Naming the emulated core instead (a Cortex-A53, for which
# XNNPACK has core-specific kernels) was measured to change nothing: fp32 and int8 outputs of the
# tiny PP-MattingV2 under -cpu cortex-a53 were bit-identical with either file.
FAKE_CPUINFO_ENTRY = """processor\t: {index}
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 0

"""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/edgematte/arm64-rootfs``, else ``~/.cache/edgematte/arm64-rootfs``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgematte" / "arm64-rootfs"


def host_litert_version() -> str:
    """The ai-edge-litert version installed here (the emulated Python gets the same), else the fallback."""
    return installed_version("ai-edge-litert") or FALLBACK_LITERT_VERSION


def recipe(mirror: str = DEFAULT_MIRROR) -> dict:
    """What a root file system is built from; a cached one is reused only when its stamp holds the same."""
    return {"schema": "edgematte.arm64-rootfs/1", "suite": SUITE, "arch": "arm64", "mirror": mirror,
            "debian_packages": list(DEBIAN_PACKAGES), "python": PYTHON_VERSION,
            "wheels": [f"ai-edge-litert=={host_litert_version()}", *WHEELS]}


def read_stamp(rootfs) -> Optional[dict]:
    """The stamp of a built root file system, or ``None`` when there is none (or it is unreadable)."""
    try:
        return json.loads((Path(rootfs) / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None


def is_ready(rootfs, mirror: Optional[str] = None) -> bool:
    """Whether ``rootfs`` was built from the current recipe (from ``mirror``, or any mirror when ``None``)."""
    stamp = read_stamp(rootfs)
    if stamp is None or not isinstance(stamp.get("recipe"), dict):
        return False
    return stamp["recipe"] == recipe(mirror if mirror is not None else stamp["recipe"].get("mirror", ""))


def guest_python(rootfs) -> Path:
    """The arm64 Python executable inside ``rootfs`` (run it with ``qemu-aarch64-static -L rootfs``)."""
    return Path(rootfs) / "usr" / "bin" / f"python{PYTHON_VERSION}"


def guest_site_packages(rootfs) -> Path:
    return Path(rootfs) / SITE_PACKAGES


def prepare_arm_rootfs(cache_dir=None, mirror: Optional[str] = None, force: bool = False,
                       log: Callable[[str], None] = lambda message: None) -> Path:
    """Build (or reuse) the arm64 root file system; returns its folder.

    ``cache_dir``: where it lives (default :func:`default_cache_dir`). ``mirror``: Debian mirror
    (default ``$EDGEMATTE_DEBIAN_MIRROR`` or :data:`DEFAULT_MIRROR`; when neither is given, a cached
    build from any mirror is reused). ``force``: rebuild even when the cached one matches the
    recipe. ``log``: receives one line per step with its duration.
    Raises :class:`EdgematteError` with one line when a tool is missing or a step fails.
    """
    rootfs = Path(cache_dir) if cache_dir else default_cache_dir()
    mirror = mirror or os.environ.get("EDGEMATTE_DEBIAN_MIRROR")  # None: a build from any mirror will do
    if not force and is_ready(rootfs, mirror):
        return rootfs
    _check_build_tools()
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    with open(rootfs.parent / f".{rootfs.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second builder waits, then finds the first one's result
        if not force and is_ready(rootfs, mirror):
            return rootfs
        mirror = mirror or DEFAULT_MIRROR
        started = time.monotonic()
        timings = {}
        with atomic_dir(rootfs, recognise=lambda folder: (folder / STAMP_NAME).is_file(),
                        what="root file system cache") as work:
            timings["debootstrap_s"] = _timed(log, "debootstrap --download-only (arm64 .deb files)",
                                              lambda: _download_debs(work, mirror))
            timings["unpack_s"] = _timed(log, "dpkg-deb -x (unpack)", lambda: _unpack_debs(work))
            _write_fake_cpuinfo(work)
            timings["wheels_s"] = _timed(log, "pip install aarch64 wheels", lambda: _install_wheels(work))
            timings["smoke_test_s"] = _timed(log, f"import check under {QEMU} -cpu {SMOKE_CPU}",
                                             lambda: _smoke_test(work))
            timings["total_s"] = round(time.monotonic() - started, 1)
            stamp = {"recipe": recipe(mirror), "timings": timings, "size_mb": round(_folder_bytes(work) / 2**20),
                     "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            write_text_atomic(work / STAMP_NAME, json.dumps(stamp, indent=2) + "\n")
        log(f"arm64 root file system ready in {rootfs} ({stamp['size_mb']} MB, {timings['total_s']:.0f} s)")
        return rootfs


def _timed(log, what: str, step) -> float:
    t0 = time.monotonic()
    step()
    seconds = round(time.monotonic() - t0, 1)
    log(f"  {what}: {seconds:.1f} s")
    return seconds


def _check_build_tools() -> None:
    for tool, package in (("debootstrap", "debootstrap"), ("dpkg-deb", "dpkg"), (QEMU, "qemu-user-static")):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            raise EdgematteError(f"device arm-rootfs: '{tool}' not found; install the Debian package {package} "
                                 "(or run .ci/setup-test-hosts.sh)")


def _run(argv: Sequence[str], what: str, timeout: float, env=None) -> None:
    """Run a build step; on failure raise one line with the step and its last error line."""
    r = run_tool(argv, what=what, timeout_s=timeout, env=env)
    if r.timed_out:
        raise EdgematteError(f"device arm-rootfs: {what} took more than {timeout:.0f} s")
    if r.returncode != 0:
        lines = [line for line in r.output.splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower() or line.startswith("E:")]
        detail = (errors or lines or [f"exit status {r.returncode}"])[-1].strip()
        raise EdgematteError(f"device arm-rootfs: {what} failed: {detail}")


def _debootstrap() -> str:
    return shutil.which("debootstrap") or "/usr/sbin/debootstrap"


def _download_debs(work: Path, mirror: str) -> None:
    _run([_debootstrap(), "--arch=arm64", "--variant=minbase", "--download-only",
          f"--include={','.join(DEBIAN_PACKAGES)}", SUITE, str(work), mirror],
         f"debootstrap from {mirror}", timeout=1800)


def _unpack_debs(work: Path) -> None:
    """Unpack every downloaded .deb into ``work``, then drop the .deb files and debootstrap's notes."""
    archives = work / "var" / "cache" / "apt" / "archives"
    debs = sorted(archives.glob("*.deb"))
    if not debs:
        raise EdgematteError(f"device arm-rootfs: debootstrap downloaded no .deb files into {archives}")
    for deb in debs:
        _run(["dpkg-deb", "-x", str(deb), str(work)], f"dpkg-deb -x {deb.name}", timeout=300)
        deb.unlink()
    shutil.rmtree(work / "debootstrap", ignore_errors=True)
    if not guest_python(work).exists():
        raise EdgematteError(f"device arm-rootfs: the unpacked packages hold no {guest_python(work).relative_to(work)}")


def _write_fake_cpuinfo(work: Path) -> None:
    proc = work / "proc"
    proc.mkdir(exist_ok=True)
    (proc / "cpuinfo").write_text("".join(FAKE_CPUINFO_ENTRY.format(index=i) for i in range(os.cpu_count() or 1)))


def _install_wheels(work: Path) -> None:
    platforms = [arg for platform in WHEEL_PLATFORMS for arg in ("--platform", platform)]
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-conflicts",
          "--no-compile", "--target", str(guest_site_packages(work)), *platforms, "--only-binary=:all:",
          "--python-version", PYTHON_VERSION, "--implementation", "cp", *recipe()["wheels"]],
         "pip install of the aarch64 wheels", timeout=1800)


def guest_env(rootfs, pythonpath: Sequence = ()) -> dict:
    """Environment for the emulated Python: our site-packages (after ``pythonpath``), no host leftovers."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), str(guest_site_packages(rootfs))])
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the cached root file system stays as built
    # The machine's OpenBLAS overrides (set for some x86 CPUs) name x86 cores ARM's OpenBLAS rejects.
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    return env


def qemu_binary() -> str:
    return shutil.which(QEMU) or f"/usr/bin/{QEMU}"


def qemu_argv(rootfs, cpu: str) -> list:
    """``qemu-aarch64-static -cpu CPU -L ROOTFS ROOTFS/usr/bin/python3.11``: append the Python arguments."""
    return [qemu_binary(), "-cpu", cpu, "-L", str(rootfs), str(guest_python(rootfs))]


def _smoke_test(work: Path) -> None:
    code = "import numpy, cv2; from ai_edge_litert.interpreter import Interpreter; print(numpy.__version__)"
    _run([*qemu_argv(work, SMOKE_CPU), "-c", code], "importing numpy, cv2 and LiteRT in the emulated Python",
         timeout=600, env=guest_env(work))


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
