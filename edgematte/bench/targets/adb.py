"""``--target adb:SERIAL``: model latency and memory on an Android phone with the runtimes' own benchmark tools.

The user supplies the tools, built for the phone's ABI (nothing is downloaded):

- TFLite's ``benchmark_model`` for ``.tflite`` artefacts (TensorFlow's
  ``tensorflow/lite/tools/benchmark``; nightly ``android_aarch64_benchmark_model`` builds exist), given
  with ``--adb-benchmark-model PATH`` or ``$EDGEMATTE_ADB_BENCHMARK_MODEL``;
- Paddle Lite's ``benchmark_bin`` for ``.nb`` artefacts built for ``arm`` / ``opencl``
  (``lite/api/tools/benchmark``, ``build_android.sh --with_benchmark=ON``; it must be the Paddle Lite
  version whose ``opt`` wrote the ``.nb``), with ``--adb-benchmark-bin PATH`` or
  ``$EDGEMATTE_ADB_BENCHMARK_BIN``.

Each configuration gets a fresh ``/data/local/tmp/edgematte-bench-XXXXXXXX`` folder on the phone:
the tool and the artefact are pushed there, the tool runs with the thread count, runs and warm-up,
its stdout is parsed (:func:`parse_benchmark_model`, :func:`parse_benchmark_bin`) and the folder is
removed, also after a failure. A missing tool, a tool path that does not exist, an artefact no tool
runs (``.onnx``, an ``x86`` ``.nb``) and a tool that fails are recorded as that configuration's
``error`` and the other configurations still run (the session writes the partial reports and exits
non-zero). No device, an unknown serial, an ``unauthorized`` or ``offline`` phone stop before the
first configuration, as one line (:mod:`edgematte.device.adb`).

What the tools measure is the model alone on their own synthetic input: there is no end-to-end
(pre/post-processing) figure on this target (``end_to_end_s``, ``pre_s``, ``post_s`` hold only ``None``; the
app's verification mode, ``edgematte device verify``, times those stages on the phone). ``benchmark_model``
reports the mean, min, max (and, in recent versions, the median) of its runs; ``benchmark_bin`` the
mean, min and max: figures a tool does not print are ``None``, never estimated. Neither prints a
p90. Versions: ``benchmark_bin`` prints its Paddle Lite version; ``benchmark_model`` does not print
its TensorFlow version, so the tool is identified by its file name and sha256.

``bench --profile`` runs each tool once more, apart from the timed run (:meth:`AdbTarget.profile`):
``benchmark_model`` with ``--enable_op_profiling=true``; ``benchmark_bin`` as it is, whose per-kernel tables
appear only in a build with ``--with_profile=ON`` (such a build also profiles its timed runs, which then carry
the profiler's cost). Their tables are read by :mod:`edgematte.bench.op_profile`.
"""

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from ...core.errors import EdgematteError
from ...core.fsutil import sha256_file
from ...core.manifest import Artefact, Manifest
from ...device.adb import Adb, Device, device_shell_command, device_shell_quote
from ..op_profile import parse_benchmark_model_profile, parse_paddle_lite_profile
from .base import Configuration, Target, choose, failure, grid

REMOTE_PARENT = "/data/local/tmp"  # the one place adb's shell user may write and execute on every phone
DEFAULT_TIMEOUT_S = 1800.0
US, MS = 1e-6, 1e-3
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _number(text: Optional[str]) -> Optional[float]:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _latency(mean=None, minimum=None, median=None, maximum=None, std=None, count=None, scale=1.0) -> dict:
    """The report's latency record in seconds (``p90`` is ``None``: neither tool prints it)."""
    def s(value):
        return None if value is None else value * scale

    return {"min": s(minimum), "median": s(median), "p90": None, "max": s(maximum), "mean": s(mean), "std": s(std),
            "n": None if count is None else int(count)}


def parse_benchmark_model(text: str) -> dict:
    """Figures of TFLite ``benchmark_model``'s output (times in seconds, memory in MB).

    Reads the summary line, ``Inference timings in us: Init: I, First inference: F, Warmup (avg): W,
    Inference (avg): A`` (older tools: ``Average inference timings in us: Warmup: W, Init: I,
    Inference: A``), the statistics line of the timed runs (the last ``count=N first=.. curr=..
    min=.. max=.. avg=.. std=..`` before the summary, with ``p5=.. median=.. p95=..`` in recent
    versions), ``Memory footprint delta from the start of the tool (MB): init=.. overall=..`` and
    ``Overall peak memory footprint (MB) via periodic monitoring: P``. Raises ``ValueError`` when
    there is no summary line (the tool failed).
    """
    summary = re.search(r"Inference timings in us: (.*)", text, re.IGNORECASE)
    if summary is None:
        raise ValueError("no 'Inference timings in us' line")
    fields = {key.strip(): _number(value)
              for key, value in re.findall(rf"([A-Za-z ()]+):\s*({_NUMBER})", summary.group(1))}
    mean = fields.get("Inference (avg)", fields.get("Inference"))
    stats = {}
    for line in text[: summary.start()].splitlines():
        if "count=" in line:
            stats = {key: float(value) for key, value in re.findall(rf"(\w+)=({_NUMBER})", line)}
    footprint = re.search(rf"Memory footprint delta from the start of the tool \(MB\): "
                          rf"init=({_NUMBER}) overall=({_NUMBER})", text)
    peak = re.search(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUMBER})", text)
    return {
        "load_s": None if fields.get("Init") is None else fields["Init"] * US,
        "first_inference_s": None if fields.get("First inference") is None else fields["First inference"] * US,
        "warmup_mean_s": None if fields.get("Warmup (avg)", fields.get("Warmup")) is None
        else fields.get("Warmup (avg)", fields.get("Warmup")) * US,
        "model_s": _latency(mean=mean, minimum=stats.get("min"), median=stats.get("median"), maximum=stats.get("max"),
                            std=stats.get("std"), count=stats.get("count"), scale=US),
        "memory_mb": {"init_delta": _number(footprint.group(1)) if footprint else None,
                      "overall_delta": _number(footprint.group(2)) if footprint else None,
                      "peak": _number(peak.group(1)) if peak else None},
    }


def _section(text: str, header: str) -> Dict[str, Optional[float]]:
    """``key = value`` lines after a ``header`` line (Paddle Lite's Perf Info), until a blank line."""
    found = re.search(re.escape(header) + r"[^\n]*\n((?:[^\n]*=[^\n]*\n?)*)", text)
    if not found:
        return {}
    return {key.strip(): _number(value.strip()) for key, value in
            (line.split("=", 1) for line in found.group(1).splitlines() if "=" in line)}


def parse_benchmark_bin(text: str) -> dict:
    """Figures of Paddle Lite ``benchmark_bin``'s output (times in seconds, memory in MB).

    Reads ``Time(unit: ms):`` followed by ``init = .. first = .. min = .. max = .. avg = ..``, the
    optional ``Memory Usage(unit: MB):`` (or ``kB``) block ``init = .. peak = ..`` (``Not supported
    yet`` in older versions: ``None``), ``benchmark_bin version: V`` and ``threads: N``. Raises
    ``ValueError`` when there is no ``Time(unit: ms)`` block with an ``avg``.
    """
    times = _section(text, "Time(unit: ms):")
    if times.get("avg") is None:
        raise ValueError("no 'Time(unit: ms)' block with an avg")
    memory_header = re.search(r"Memory Usage\(unit: (MB|kB|KB)\):", text)
    memory = _section(text, memory_header.group(0)) if memory_header else {}
    to_mb = 1.0 if not memory_header or memory_header.group(1) == "MB" else 1 / 1024
    version = re.search(r"benchmark_bin version: *(\S+)", text)
    threads = re.search(r"^threads: *(\d+)", text, re.MULTILINE)
    return {
        "load_s": None if times.get("init") is None else times["init"] * MS,
        "first_inference_s": None if times.get("first") is None else times["first"] * MS,
        "model_s": _latency(mean=times["avg"], minimum=times.get("min"), maximum=times.get("max"), scale=MS),
        "memory_mb": {"init": None if memory.get("init") is None else memory["init"] * to_mb,
                      "peak": None if memory.get("peak") is None else memory["peak"] * to_mb},
        "version": version.group(1) if version else None,
        "threads": int(threads.group(1)) if threads else None,
    }


@dataclass(frozen=True)
class BenchmarkTool:
    """A runtime's benchmark binary: its name, how the user gives it, its argv and its parser."""

    name: str
    backend: str
    option: str
    env: str
    parse: Callable[[str], dict]

    def argv(self, remote_model: str, entry: Artefact, manifest: Manifest, threads: int, runs: int, warmup: int,
             memory_profile: bool = True, op_profile: bool = False) -> List[str]:
        """The tool's command line; ``op_profile``: benchmark_model's per-op profiler on (benchmark_bin has no
        flag for it: a build with ``--with_profile=ON`` always profiles)."""
        if self.name == "benchmark_model":
            # The first inference is the first warm-up run: at least one, or the tool reports none.
            return ([f"./{self.name}", f"--graph={remote_model}", f"--num_threads={threads}", f"--num_runs={runs}",
                     f"--warmup_runs={max(1, warmup)}", "--min_secs=0", "--warmup_min_secs=0",
                     "--report_peak_memory_footprint=true"] + (["--enable_op_profiling=true"] if op_profile else []))
        # Every input's shape, colon-separated (RVM: the image, then its states, in the .nb's order).
        shapes = [spec.shape for spec in entry.inputs] or [manifest.model.input_shape]
        backend = "opencl,arm" if entry.target == "opencl" else "arm"
        return ([f"./{self.name}", f"--optimized_model_file={remote_model}",
                 f"--input_shape={':'.join(','.join(str(d) for d in shape) for shape in shapes)}",
                 f"--threads={threads}", f"--warmup={warmup}",
                 f"--repeats={runs}", f"--backend={backend}"]
                + (["--enable_memory_profile=true"] if memory_profile else []))


TOOLS = {
    "tflite": BenchmarkTool("benchmark_model", "litert (benchmark_model)", "--adb-benchmark-model",
                            "EDGEMATTE_ADB_BENCHMARK_MODEL", parse_benchmark_model),
    "nb": BenchmarkTool("benchmark_bin", "paddle_lite (benchmark_bin)", "--adb-benchmark-bin",
                        "EDGEMATTE_ADB_BENCHMARK_BIN", parse_benchmark_bin),
}
DEVICE_PROPERTIES = ("ro.product.manufacturer", "ro.product.model", "ro.soc.model", "ro.board.platform",
                     "ro.hardware", "ro.build.version.release", "ro.build.version.sdk", "ro.product.cpu.abi")
# One line each, empty when unreadable (the governor is hidden by SELinux on many phones).
_MACHINE_SCRIPT = ('echo "$(cat /sys/devices/system/cpu/possible 2>/dev/null)"; '
                   'echo "$(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null)"')


def parse_target_spec(spec: str) -> Optional[str]:
    """``adb:SERIAL`` -> SERIAL; ``adb:`` -> ``None`` (the only attached device)."""
    kind, _, serial = spec.partition(":")
    if kind != "adb" or any(c.isspace() for c in serial):
        raise EdgematteError(f"--target {spec}: expected adb:SERIAL (serials: 'adb devices -l')")
    return serial or None


def cpu_count(possible: str) -> Optional[int]:
    """Number of CPUs in a ``/sys/devices/system/cpu/possible`` list such as ``0-3,4-7``."""
    total = 0
    for part in possible.strip().split(","):
        low, _, high = part.partition("-")
        if not low.strip().isdigit() or (high and not high.strip().isdigit()):
            return None
        total += (int(high) if high else int(low)) - int(low) + 1
    return total or None


class AdbTarget(Target):
    """An Android phone over adb.

    ``spec``: ``adb:SERIAL``. ``tools``: ``{"tflite": path, "nb": path}`` of the benchmark binaries
    (default ``$EDGEMATTE_ADB_BENCHMARK_MODEL`` / ``$EDGEMATTE_ADB_BENCHMARK_BIN``). ``adb``: the
    client (default :class:`edgematte.device.adb.Adb`). The device is selected here, so a missing
    or unusable phone is an error before any configuration runs.
    """

    emulated = False

    def __init__(self, spec: str, tools: Optional[Dict[str, Optional[str]]] = None, adb: Optional[Adb] = None):
        self.spec = spec
        tools = tools or {}
        self.tools = {fmt: tools.get(fmt) or os.environ.get(tool.env) or None for fmt, tool in TOOLS.items()}
        self.device: Device = (adb or Adb()).device(parse_target_spec(spec))
        self.name = "adb-" + re.sub(r"[^A-Za-z0-9._-]", "_", self.device.serial)
        self._machine: Optional[dict] = None

    def machine_facts(self) -> dict:
        """The phone as the runner describes a machine (read once): ABI, Android, SoC, CPUs, governor."""
        if self._machine is None:
            props = self.device.properties(DEVICE_PROPERTIES)
            lines = self.device.shell(_MACHINE_SCRIPT, check=False).output.splitlines() + ["", ""]
            self._machine = {
                "machine": props["ro.product.cpu.abi"] or None,
                "system": f"Android {props['ro.build.version.release']} (SDK {props['ro.build.version.sdk']})",
                "device": f"{props['ro.product.manufacturer']} {props['ro.product.model']}".strip(),
                "cpu_model": props["ro.soc.model"] or props["ro.board.platform"] or props["ro.hardware"] or None,
                "cpu_count": cpu_count(lines[0]) if lines[0].strip() else None,
                "governor": lines[1].strip() or None,
                "serial": self.device.serial,
            }
        return self._machine

    def configurations(self, manifest: Manifest, artefacts: Optional[Sequence[str]],
                       threads: Sequence[int]) -> List[Configuration]:
        """Every artefact the app's runtimes run (``artefacts_for("android")``: .tflite, arm/opencl .nb) x
        thread count; ``artefacts`` may name others, which are then reported as not runnable here."""
        names = choose(manifest, artefacts, manifest.artefacts_for("android"))
        if not names:
            raise EdgematteError(f"{manifest.origin}: no artefact for a phone (convert with --to tflite or "
                                 "--lite-targets arm)")
        return grid(names, threads)

    def tool_for(self, entry: Artefact) -> BenchmarkTool:
        """The tool that runs ``entry`` on a phone, or EdgematteError saying why there is none."""
        if not entry.runs_on("android"):
            raise EdgematteError(f"{entry.path}: not runnable on an adb target (benchmark_model runs .tflite, "
                                 f"benchmark_bin runs .nb built for arm/opencl; this is {entry.format} for "
                                 f"{entry.target})")
        tool = TOOLS[entry.format]
        path = self.tools[entry.format]
        if not path:
            raise EdgematteError(f"no {tool.name} given for {entry.path}: pass {tool.option} PATH "
                                 f"(or set {tool.env}) with a {tool.name} built for the phone")
        if not Path(path).is_file():
            raise EdgematteError(f"{path}: no such file ({tool.option}, the {tool.name} for {entry.path})")
        return tool

    def run(self, manifest: Manifest, config: Configuration, runs: int, warmup: int, size,
            timeout: Optional[float] = DEFAULT_TIMEOUT_S) -> dict:
        try:
            entry = manifest.find(config.artefact)
            tool = self.tool_for(entry)
            remote = f"{REMOTE_PARENT}/edgematte-bench-{secrets.token_hex(4)}"
            try:
                figures, output, argv = self._run_tool(tool, Path(self.tools[entry.format]), manifest, entry,
                                                       remote, config.threads, runs, warmup, timeout)
            finally:
                self._remove(remote)
        except EdgematteError as error:
            return failure(config, str(error))
        binary = Path(self.tools[entry.format])
        versions = {tool.name: f"{binary.name} sha256 {sha256_file(binary)[:16]}"}
        if figures.get("version"):
            versions["paddlelite (benchmark_bin)"] = figures["version"]
        writer = {"nb": "paddlelite", "tflite": "ai-edge-litert"}[entry.format]
        if manifest.tools.get(writer):
            versions[f"{writer} on the converting host"] = manifest.tools[writer]
        memory = figures["memory_mb"]
        return {
            "artefact": config.artefact, "backend": tool.backend, "threads": config.threads,
            "threads_effective": True, "input_size": None,
            "load_s": figures["load_s"], "first_inference_s": figures["first_inference_s"],
            "model_s": figures["model_s"], "end_to_end_s": _latency(), "pre_s": _latency(), "post_s": _latency(),
            "peak_rss_mb": memory.get("peak"), "memory_mb": memory,
            "versions": versions, "machine": self.machine_facts(),
            "tool_argv": argv,
            "tool_output_tail": output.strip().splitlines()[-12:],
        }

    def profile(self, manifest: Manifest, config: Configuration, runs: int, warmup: int, size,
                timeout: Optional[float] = DEFAULT_TIMEOUT_S) -> dict:
        """The tool once more, its profiler on: benchmark_model with ``--enable_op_profiling=true``; benchmark_bin
        as it is (a build with ``--with_profile=ON`` prints Paddle Lite's profiler tables, one without says
        nothing: then the answer is ``unsupported``). Parsed by :mod:`edgematte.bench.op_profile`."""
        head = {"artefact": config.artefact, "threads": config.threads}
        try:
            entry = manifest.find(config.artefact)
            tool = self.tool_for(entry)
            remote = f"{REMOTE_PARENT}/edgematte-bench-{secrets.token_hex(4)}"
            try:
                _, output, argv = self._run_tool(tool, Path(self.tools[entry.format]), manifest, entry, remote,
                                                 config.threads, runs, warmup, timeout, op_profile=True)
            finally:
                self._remove(remote)
            if entry.format == "tflite":
                profile = parse_benchmark_model_profile(output)
                return {**head, "runtime": "benchmark_model", "profiler": "benchmark_model --enable_op_profiling=true",
                        **profile}
            profile = parse_paddle_lite_profile(output)
        except (EdgematteError, ValueError) as error:
            return {**head, "error": str(error)}
        if profile is None:
            return {**head, "unsupported": f"{tool.name} printed no profiler table (build Paddle Lite with "
                                           "--with_profile=ON for one)"}
        return {**head, "runtime": "benchmark_bin", "profiler": "Paddle Lite profiler (benchmark_bin built with "
                                                                "--with_profile=ON)", **profile}

    def _run_tool(self, tool: BenchmarkTool, binary: Path, manifest: Manifest, entry: Artefact, remote: str,
                  threads: int, runs: int, warmup: int, timeout: Optional[float], op_profile: bool = False):
        """Push tool + artefact into ``remote``, run the tool there, parse; returns (figures, output, argv)."""
        self.device.make_dirs(remote)
        self.device.push(binary, f"{remote}/{tool.name}")
        self.device.shell(["chmod", "755", f"{remote}/{tool.name}"])
        model = f"{remote}/{entry.name}"
        self.device.push(manifest.file(entry), model)
        for memory_profile in (True, False):
            argv = tool.argv(model, entry, manifest, threads, runs, warmup, memory_profile, op_profile)
            line = f"cd {device_shell_quote(remote)} && {device_shell_command(argv)} 2>&1"
            result = self.device.shell(line, timeout=timeout or DEFAULT_TIMEOUT_S, check=False)
            # benchmark_bin builds before the memory profiler reject the flag (gflags): run once more without it.
            if not (memory_profile and "unknown command line flag 'enable_memory_profile'" in result.output):
                break
        try:
            figures = tool.parse(result.output)
        except ValueError:
            last = [line for line in result.output.splitlines() if line.strip()]
            raise EdgematteError(f"{tool.name} on {self.device.serial} failed (status {result.status}): "
                                 f"{last[-1].strip() if last else 'no output'}") from None
        return figures, result.output, argv

    def _remove(self, remote: str) -> None:
        try:
            self.device.remove(remote)
        except EdgematteError:
            pass  # the device went away: nothing more to tidy
