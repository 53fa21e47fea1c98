"""``--target local``: this host, each configuration in a fresh ``python -m edgematte.runtime.bench_runner``
so the memory figures are honest."""

import os
import sys
from typing import List, Optional, Sequence

from ...core.manifest import REFERENCE, Manifest
from ...core.tools import run_tool
from ...device.runtime_code import RUNNER_MODULE
from .base import Configuration, Target, failure, grid, runner_args, runner_result

DEFAULT_TIMEOUT_S = 1800.0


class LocalTarget(Target):
    """This host: the artefacts the converting host ran, plus the Paddle reference when it is in OUT."""

    name = "local"
    emulated = False

    def configurations(self, manifest: Manifest, artefacts: Optional[Sequence[str]],
                       threads: Sequence[int]) -> List[Configuration]:
        """Every host-runnable artefact (plus ``reference`` when the conversion kept it) x thread count;
        ``artefacts`` (paths, file names or ``reference``) may name any artefact of the manifest."""
        if artefacts:
            names = [name if name == REFERENCE else manifest.find(name).path for name in artefacts]
        else:
            names = [artefact.path for artefact in manifest.host_artefacts()]
            if manifest.reference.model_dir:
                names.append(REFERENCE)
        return grid(names, threads)

    def run(self, manifest: Manifest, config: Configuration, runs: int, warmup: int, size,
            timeout: Optional[float] = DEFAULT_TIMEOUT_S) -> dict:
        return self._runner(manifest, config, runner_args(config, runs, warmup, size), timeout)

    def profile(self, manifest: Manifest, config: Configuration, runs: int, warmup: int, size,
                timeout: Optional[float] = DEFAULT_TIMEOUT_S) -> dict:
        """A runner of its own profiles ``config`` (ONNX Runtime's profiler for .onnx, paddle.profiler for the
        reference; the others say why not: :mod:`edgematte.runtime.op_profile`)."""
        return self._runner(manifest, config, runner_args(config, runs, warmup, size, profile=True), timeout)

    def _runner(self, manifest: Manifest, config: Configuration, args, timeout: Optional[float]) -> dict:
        argv = [sys.executable, "-m", RUNNER_MODULE, "--manifest", str(manifest.dir), *args]
        run = run_tool(argv, what=f"runner ({config.artefact})", timeout_s=timeout,
                       env=dict(os.environ, GLOG_minloglevel="2"))
        if run.timed_out:
            return failure(config, f"timed out after {timeout} s")
        return runner_result(run, config)
