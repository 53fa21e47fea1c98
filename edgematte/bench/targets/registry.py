"""``--target`` specs -> targets: the one place that knows which module serves which spec.

    local                       this host                   (:mod:`.local`)
    ssh://[user@]host[:port]    an ARM board over OpenSSH   (:mod:`.ssh`)
    qemu:CPU                    an emulated ARM CPU         (:mod:`.qemu`)
    adb:SERIAL                  an Android phone over adb   (:mod:`.adb`)

Each module is imported only when its spec is used (the ssh, qemu and adb ones check the host's tools).
"""

from typing import Dict, Optional

from ...core.errors import EdgematteError
from .base import Target

SPECS = "local, ssh://user@host[:port], adb:SERIAL or qemu:CPU"


def parse_target(spec: str, adb_tools: Optional[Dict[str, Optional[str]]] = None) -> Target:
    """The target for ``spec`` (see the module doc).

    ``adb_tools``: for ``adb:``, the phone's benchmark binaries ``{"tflite": path, "nb": path}``
    (see :class:`edgematte.bench.targets.adb.AdbTarget`)."""
    if spec == "local":
        from .local import LocalTarget

        return LocalTarget()
    if spec.startswith("ssh://"):
        from .ssh import SshTarget

        return SshTarget(spec)
    if spec.startswith("qemu:"):
        from .qemu import QemuTarget

        return QemuTarget(spec)
    if spec.startswith("adb:"):
        from .adb import AdbTarget

        return AdbTarget(spec, tools=adb_tools)
    raise EdgematteError(f"--target {spec}: expected {SPECS}")
