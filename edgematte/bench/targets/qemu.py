"""``--target qemu:CPU``: the runner on an emulated ARM CPU, for correctness of the ARM kernels.

Each configuration runs :mod:`edgematte.runtime.bench_runner` in a fresh emulated process, with the arm64
Python of the root file system that ``edgematte device arm-rootfs`` builds (:mod:`edgematte.device.qemu`).
That root file system has LiteRT only, so the target runs the artefacts ``Manifest.artefacts_for("litert")``
names (the .tflite ones).

Timings under emulation are 50-250x slower than the real CPU and say nothing about it: every result
carries ``"emulated": true`` and the target's ``emulated`` attribute keeps its reports apart (the
report is titled EMULATED). For an output comparison with this host, see ``edgematte device arm-check``
(:mod:`edgematte.device.arm_check`).
"""

from pathlib import Path
from typing import List, Optional, Sequence

from ...core.errors import EdgematteError
from ...core.manifest import Manifest
from ...device.qemu import DEFAULT_CPU, DEFAULT_TIMEOUT_S, EmulatedPython
from ...device.runtime_code import RUNNER_MODULE
from .base import Configuration, Target, choose, failure, grid, runner_args, runner_result


class QemuTarget(Target):
    """``qemu:CPU``: each configuration in a fresh emulated process."""

    emulated = True

    def __init__(self, spec: str = f"qemu:{DEFAULT_CPU}", rootfs=None):
        kind, _, cpu = spec.partition(":")
        if kind != "qemu" or not cpu:
            raise EdgematteError(f"--target {spec}: expected qemu:CPU, e.g. qemu:{DEFAULT_CPU}")
        self.python = EmulatedPython(cpu, rootfs=rootfs, label=f"--target {spec}")
        self.cpu = self.python.cpu
        self.rootfs = self.python.rootfs
        self.name = f"qemu-{self.cpu}"

    def run(self, manifest: Manifest, config: Configuration, runs: int, warmup: int, size,
            timeout: Optional[float] = DEFAULT_TIMEOUT_S) -> dict:
        args = ["--manifest", str(Path(manifest.dir).resolve()), *runner_args(config, runs, warmup, size)]
        run = self.python.run_module(RUNNER_MODULE, args, timeout=timeout)
        if run.timed_out:
            result = failure(config, f"timed out after {timeout} s under emulation")
        else:
            result = runner_result(run, config, where=f"emulated runner ({self.cpu})")
            if "machine" in result:  # the runner read the fake cpuinfo's Cortex-A72: name the emulation
                result["machine"]["cpu_model"] = f"qemu-aarch64 -cpu {self.cpu} (emulated)"
        result.update(emulated=True, qemu_cpu=self.cpu)
        return result

    def profile(self, manifest: Manifest, config: Configuration, runs: int, warmup: int, size,
                timeout: Optional[float] = None) -> dict:
        return {"artefact": config.artefact, "threads": config.threads,
                "unsupported": f"{self.name}: no per-op profile under emulation (the root file system has LiteRT only, "
                               "whose Python interpreter has no per-op profiler; emulated times say nothing of a CPU)"}

    def configurations(self, manifest: Manifest, artefacts: Optional[Sequence[str]],
                       threads: Sequence[int]) -> List[Configuration]:
        """Every artefact LiteRT runs (the root file system has no other runtime) x thread count."""
        names = choose(manifest, artefacts, manifest.artefacts_for("litert"))
        if not names:
            raise EdgematteError(f"{manifest.origin}: no TFLite artefact to run under qemu")
        return grid(names, threads)
