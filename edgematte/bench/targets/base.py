"""What every benchmark target is: a name, the configurations it runs for a manifest, and how it runs one.

A configuration is one artefact (its manifest path, or ``"reference"`` for the Paddle reference model) at
one thread count. :meth:`Target.run` returns the result as data, never raises for a configuration that
fails (the session records the error and runs the others); it raises :class:`EdgematteError` only for a
target that cannot run anything (no board, no device), before the first configuration.

Which artefacts a target runs by default is the manifest's rule (:meth:`Manifest.artefacts_for`), never
the target's own. The helpers below are shared by the targets that run :mod:`edgematte.runtime.bench_runner`
(``local``, ``ssh``, ``qemu``).
"""

import abc
import json
from dataclasses import dataclass
from typing import List, Optional, Sequence

from ...core.errors import EdgematteError
from ...core.manifest import REFERENCE, Artefact, Manifest
from ...core.tools import ToolResult, last_error_line
from ...runtime.bench_runner import RESULT_PREFIX

RUNNER_OK = (0, 3)  # the runner's exit statuses: a result, or an error reported as data


@dataclass
class Configuration:
    artefact: str
    threads: int


class Target(abc.ABC):
    """A place where configurations run. ``name`` names its report folder; ``emulated`` marks timings that
    are not real (qemu)."""

    name: str = "target"
    emulated: bool = False

    @abc.abstractmethod
    def configurations(self, manifest: Manifest, artefacts: Optional[Sequence[str]],
                       threads: Sequence[int]) -> List[Configuration]:
        """Every artefact the target runs (or ``artefacts``, checked against the manifest) x thread count."""

    @abc.abstractmethod
    def run(self, manifest: Manifest, config: Configuration, runs: int, warmup: int, size,
            timeout: Optional[float] = None) -> dict:
        """One configuration's result: the runner's JSON record, or ``{"artefact", "threads", "error"}``."""

    def profile(self, manifest: Manifest, config: Configuration, runs: int, warmup: int, size,
                timeout: Optional[float] = None) -> dict:
        """``config``'s per-op profile, run apart from the timed runs (``bench --profile``): the rows of
        :mod:`edgematte.runtime.op_profile`, or ``{"artefact", "threads", "unsupported": why}``, or an ``error``.
        The default: this target has no profiler."""
        return {"artefact": config.artefact, "threads": config.threads,
                "unsupported": f"{self.name}: no per-op profiler on this target"}

    def close(self) -> None:
        """Release what the target holds (temporary files); called once the session is done."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def choose(manifest: Manifest, requested: Optional[Sequence[str]], default: Sequence[Artefact]) -> List[str]:
    """The paths of ``requested`` (paths or file names, each in the manifest), else of ``default``.

    For targets other than ``local``: the Paddle reference never leaves this host."""
    if requested and REFERENCE in requested:
        raise EdgematteError(f"--artefacts: '{REFERENCE}' is Paddle Inference on x86: bench it with --target local")
    return [artefact.path for artefact in manifest.select(requested, among=default)]


def grid(names: Sequence[str], threads: Sequence[int]) -> List[Configuration]:
    """Every name at every thread count (one name's thread counts together)."""
    return [Configuration(name, t) for name in names for t in threads]


def runner_args(config: Configuration, runs: int, warmup: int, size, profile: bool = False) -> List[str]:
    """The runner's arguments after ``--manifest DIR`` for ``config`` (``profile``: its per-op profile instead of
    its timings)."""
    return ["--artefact", config.artefact, "--threads", str(config.threads), "--runs", str(runs),
            "--warmup", str(warmup), "--size", f"{size[0]}x{size[1]}"] + (["--profile"] if profile else [])


def failure(config: Configuration, error: str) -> dict:
    return {"artefact": config.artefact, "threads": config.threads, "error": error}


def parse_runner_output(output: str) -> Optional[dict]:
    """The runner's ``EDGEMATTE_BENCH {json}`` record in ``output`` (the last one), or ``None``."""
    for line in reversed(output.splitlines()):
        if RESULT_PREFIX in line:  # stderr may have left a partial line before it
            return json.loads(line[line.index(RESULT_PREFIX) + len(RESULT_PREFIX):])
    return None


def runner_result(run: ToolResult, config: Configuration, where: str = "runner") -> dict:
    """The result of one runner process (``python -m edgematte.runtime.bench_runner`` somewhere) for ``config``.

    The ``EDGEMATTE_BENCH`` record when there is one; otherwise an ``error`` naming how the process ended
    and the most telling line of its output (a crash of the runtime shows up there). ``where`` names the
    process in those messages (``"runner"``, ``"emulated runner (cortex-a72)"``...). Timeouts are the
    caller's to word (``run.timed_out``).
    """
    result = parse_runner_output(run.output)
    if result is None:
        if run.returncode not in RUNNER_OK:
            return failure(config, f"{where} died (status {run.returncode}): {last_error_line(run.output)}")
        return failure(config, f"the {where} printed no result")
    if run.returncode not in RUNNER_OK and "error" not in result:
        result["error"] = f"{where} exited with status {run.returncode}"
    return result
