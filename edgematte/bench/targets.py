"""Where a benchmark runs. ``local`` runs each configuration in a fresh subprocess of this Python so the
memory figures are honest; other targets (ssh, adb, qemu) plug in here with the same interface."""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional

from ..core.errors import EdgematteError

RESULT_PREFIX = "EDGEMATTE_BENCH "


@dataclass
class Configuration:
    artefact: str
    threads: int


def parse_runner_output(stdout: str, config: Configuration) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    return {"artefact": config.artefact, "threads": config.threads, "error": "the runner printed no result"}


def parse_target(text: str, adb_tools: Optional[Dict[str, Optional[str]]] = None):
    """``local`` | ``ssh://user@host[:port]`` | ``adb:SERIAL`` | ``qemu:CPU`` -> a target object.

    ``adb_tools``: for ``adb:``, the phone's benchmark binaries ``{"tflite": path, "nb": path}``
    (see :class:`edgematte.bench.adb.AdbTarget`)."""
    if text == "local":
        return LocalTarget()
    if text.startswith("ssh://"):
        from .ssh import SshTarget

        return SshTarget(text)
    if text.startswith("qemu:"):
        from .qemu import QemuTarget

        return QemuTarget(text)
    if text.startswith("adb:"):
        from .adb import AdbTarget

        return AdbTarget(text, tools=adb_tools)
    raise EdgematteError(f"--target {text}: expected local, ssh://user@host[:port], adb:SERIAL or qemu:CPU")


class LocalTarget:
    """This host: ``python -m edgematte.bench.runner`` per configuration."""

    name = "local"
    emulated = False

    def run(self, manifest_dir, config: Configuration, runs: int, warmup: int, size, timeout: Optional[float] = 1800) -> dict:
        argv = [sys.executable, "-m", "edgematte.bench.runner", "--manifest", str(manifest_dir), "--artefact",
                config.artefact, "--threads", str(config.threads), "--runs", str(runs), "--warmup", str(warmup),
                "--size", f"{size[0]}x{size[1]}"]
        env = dict(os.environ, GLOG_minloglevel="2")
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"artefact": config.artefact, "threads": config.threads, "error": f"timed out after {timeout} s"}
        from .bundle import runner_result

        return runner_result(r.returncode, r.stdout, r.stderr, config)

    def configurations(self, manifest: dict, artefacts: Optional[List[str]], threads: List[int]) -> List[Configuration]:
        """Every host-runnable artefact (plus the Paddle reference when it is in OUT) x thread count."""
        names = [a["path"] for a in manifest["artefacts"] if a["parity"].get("runs_on_host", True)]
        if manifest.get("reference", {}).get("model_dir"):
            names.append("reference")
        if artefacts:
            known = {a["path"] for a in manifest["artefacts"]} | {"reference"}
            unknown = [a for a in artefacts if a not in known]
            if unknown:
                raise EdgematteError(f"--artefacts: not in the manifest: {', '.join(unknown)} (has: {', '.join(sorted(known))})")
            names = list(artefacts)
        return [Configuration(n, t) for n in names for t in threads]
