"""The emulated arm64 Python: a module of the runtime code run inside the root file system under qemu-user.

The root file system is the one ``edgematte device arm-rootfs`` builds (:mod:`edgematte.device.rootfs`),
found in ``$EDGEMATTE_ARM_ROOTFS`` or the default cache folder. A run is::

    qemu-aarch64-static -cpu cortex-a72 -L ROOTFS ROOTFS/usr/bin/python3.11 -m edgematte.runtime.bench_runner ...

with the runtime code (:mod:`edgematte.device.runtime_code`, copied once per :class:`EmulatedPython` into a
temporary folder) and the root file system's wheels on ``PYTHONPATH``. No binfmt registration, no chroot,
no root: qemu-user maps the guest's file lookups into ROOTFS first and falls back to the host's, so
manifests and artefacts are read where they are. Both the ``qemu:CPU`` bench target and ``edgematte device
arm-check`` run through it.

``-cpu`` must name a real core (``cortex-a53``, ``cortex-a72``, ``cortex-a76``, ``neoverse-n1``...):
``max`` enables every optional extension qemu knows, and LiteRT's int8 results on it are wrong
(the tiny PP-MattingV2: mean 31 output steps off x86, against 0.4 on ``cortex-a72``).
"""

import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import List, Optional, Sequence

from ..core.errors import EdgematteError
from ..core.tools import ToolResult, run_tool
from . import rootfs as arm_rootfs
from .runtime_code import copy_runtime_code

DEFAULT_CPU = "cortex-a72"
REFUSED_CPUS = {"max": "'-cpu max' turns on every optional extension and LiteRT's int8 results on it are wrong; "
                       "name a real core such as cortex-a72"}
DEFAULT_TIMEOUT_S = 3600.0


def rootfs_location(rootfs=None) -> Path:
    """``rootfs``, else ``$EDGEMATTE_ARM_ROOTFS``, else the default cache folder."""
    return Path(rootfs or os.environ.get("EDGEMATTE_ARM_ROOTFS") or arm_rootfs.default_cache_dir())


def available_cpus() -> List[str]:
    """The CPU models ``qemu-aarch64-static -cpu help`` lists."""
    try:
        listing = run_tool([arm_rootfs.qemu_binary(), "-cpu", "help"], what=f"{arm_rootfs.QEMU} -cpu help",
                           timeout_s=60).output
    except FileNotFoundError:
        raise EdgematteError(f"{arm_rootfs.QEMU} not found: install the Debian package qemu-user-static "
                             "(or run .ci/setup-test-hosts.sh)") from None
    return [line.split()[0] for line in listing.splitlines()[1:] if line.strip()]


def check_cpu(cpu: str, label: Optional[str] = None) -> str:
    """``cpu`` when qemu knows it and it is not refused; ``label`` starts the error (default ``-cpu CPU``)."""
    label = label or f"-cpu {cpu}"
    if cpu in REFUSED_CPUS:
        raise EdgematteError(f"{label}: {REFUSED_CPUS[cpu]}")
    known = available_cpus()
    if cpu not in known:
        real = [name for name in known if name not in REFUSED_CPUS]
        raise EdgematteError(f"{label}: unknown CPU (this qemu has: {', '.join(real)})")
    return cpu


def check_rootfs(rootfs: Path) -> Path:
    if not arm_rootfs.is_ready(rootfs):
        raise EdgematteError(f"{rootfs}: no arm64 root file system here (or one from an older recipe): run "
                             f"'edgematte device arm-rootfs' first (about 360 MB, once)")
    return rootfs


class EmulatedPython:
    """The root file system's arm64 Python on an emulated ``cpu``, with the runtime code importable.

    ``rootfs``: as :func:`rootfs_location`. ``label``: how errors about the CPU name it (``--target
    qemu:max``, ``--cpu max``). Raises :class:`EdgematteError` (one line) for a refused or unknown CPU and
    for a missing or outdated root file system.
    """

    def __init__(self, cpu: str = DEFAULT_CPU, rootfs=None, label: Optional[str] = None):
        self.cpu = check_cpu(cpu, label)
        self.rootfs = check_rootfs(rootfs_location(rootfs))
        self._code_dir: Optional[Path] = None

    def code_dir(self) -> Path:
        """The runtime code, copied once into a temporary folder removed with this object."""
        if self._code_dir is None:
            folder = tempfile.mkdtemp(prefix="edgematte-qemu-runtime-")
            weakref.finalize(self, shutil.rmtree, folder, True)
            copy_runtime_code(folder)
            self._code_dir = Path(folder)
        return self._code_dir

    def command(self, module: str, args: Sequence) -> List[str]:
        """The host argv that runs ``python -m module args`` on the emulated CPU."""
        return [*arm_rootfs.qemu_argv(self.rootfs, self.cpu), "-m", module, *map(str, args)]

    def environment(self) -> dict:
        return arm_rootfs.guest_env(self.rootfs, [self.code_dir()])

    def run_module(self, module: str, args: Sequence, timeout: Optional[float] = DEFAULT_TIMEOUT_S) -> ToolResult:
        """Run ``python -m module args`` emulated to completion (stdout and stderr merged; -1 on a timeout)."""
        return run_tool(self.command(module, args), what=f"emulated python -m {module} ({self.cpu})",
                        timeout_s=timeout, env=self.environment())
