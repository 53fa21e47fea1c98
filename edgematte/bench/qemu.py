"""``--target qemu:CPU``: the runner on an emulated ARM CPU, for correctness of the ARM kernels.

Each configuration runs the runner bundle (:mod:`edgematte.bench.bundle`) with the arm64 Python of
the root file system that ``edgematte device arm-rootfs`` builds (:mod:`edgematte.device.rootfs`)::

    qemu-aarch64-static -cpu cortex-a72 -L ROOTFS ROOTFS/usr/bin/python3.11 -m edgematte.bench.runner ...

No binfmt registration, no chroot, no root: qemu-user maps the guest's file lookups into ROOTFS
first and falls back to the host's, so the manifest and artefacts are read where they are.

Timings under emulation are 50-250x slower than the real CPU and say nothing about it: every result
carries ``"emulated": true`` and the target's ``emulated`` attribute keeps its reports apart (the
report is titled EMULATED). What this target is for is :func:`compare_with_host`: the same input
tensor through the same artefact on x86 and on the emulated ARM CPU, e.g. to prove that LiteRT's
ARM int8 kernels compute what its x86 ones do.

``-cpu`` must name a real core (``cortex-a53``, ``cortex-a72``, ``cortex-a76``, ``neoverse-n1``...):
``max`` enables every optional extension qemu knows, and LiteRT's int8 results on it are wrong
(the tiny PP-MattingV2: mean 31 output steps off x86, against 0.4 on ``cortex-a72``).
The root file system is found in ``$EDGEMATTE_ARM_ROOTFS`` or the default cache folder.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..device import rootfs as arm_rootfs
from ..core.errors import EdgematteError
from .bundle import board_artefacts, choose_artefacts, copy_runner_code, runner_result
from .outputs import RESULT_PREFIX as OUTPUTS_PREFIX, TRACE_PREFIX
from .targets import Configuration

DEFAULT_CPU = "cortex-a72"
REFUSED_CPUS = {"max": "'-cpu max' turns on every optional extension and LiteRT's int8 results on it are wrong; "
                       "name a real core such as cortex-a72"}
EMULATED_FORMATS = ("tflite",)  # the root file system has LiteRT only (no paddlelite/onnxruntime aarch64 wheels)
DEFAULT_TIMEOUT_S = 3600.0


def rootfs_location(rootfs=None) -> Path:
    """``rootfs``, else ``$EDGEMATTE_ARM_ROOTFS``, else the default cache folder."""
    return Path(rootfs or os.environ.get("EDGEMATTE_ARM_ROOTFS") or arm_rootfs.default_cache_dir())


def available_cpus() -> List[str]:
    """The CPU models ``qemu-aarch64-static -cpu help`` lists."""
    try:
        listing = subprocess.run([arm_rootfs.qemu_binary(), "-cpu", "help"], capture_output=True, text=True,
                                 timeout=60).stdout
    except FileNotFoundError:
        raise EdgematteError(f"{arm_rootfs.QEMU} not found: install the Debian package qemu-user-static "
                             "(or run .ci/setup-test-hosts.sh)") from None
    return [line.split()[0] for line in listing.splitlines()[1:] if line.strip()]


def check_cpu(cpu: str) -> str:
    if cpu in REFUSED_CPUS:
        raise EdgematteError(f"--target qemu:{cpu}: {REFUSED_CPUS[cpu]}")
    known = available_cpus()
    if cpu not in known:
        real = [name for name in known if name not in REFUSED_CPUS]
        raise EdgematteError(f"--target qemu:{cpu}: unknown CPU (this qemu has: {', '.join(real)})")
    return cpu


def check_rootfs(rootfs: Path) -> Path:
    if not arm_rootfs.is_ready(rootfs):
        raise EdgematteError(f"{rootfs}: no arm64 root file system here (or one from an older recipe): run "
                             f"'edgematte device arm-rootfs' first (about 360 MB, once)")
    return rootfs


class QemuTarget:
    """``qemu:CPU``: each configuration in a fresh emulated process (same interface as ``LocalTarget``)."""

    emulated = True

    def __init__(self, spec: str = f"qemu:{DEFAULT_CPU}", rootfs=None):
        kind, _, cpu = spec.partition(":")
        if kind != "qemu" or not cpu:
            raise EdgematteError(f"--target {spec}: expected qemu:CPU, e.g. qemu:{DEFAULT_CPU}")
        self.cpu = check_cpu(cpu)
        self.rootfs = check_rootfs(rootfs_location(rootfs))
        self.name = f"qemu-{self.cpu}"
        self._code_dir = None

    def code_dir(self) -> Path:
        """The runner's modules, copied once per target into a temporary folder removed with the target."""
        if self._code_dir is None:
            folder = tempfile.mkdtemp(prefix="edgematte-qemu-runner-")
            weakref.finalize(self, shutil.rmtree, folder, True)
            copy_runner_code(folder)
            self._code_dir = Path(folder)
        return self._code_dir

    def command(self, module: str, args: Sequence[str]) -> List[str]:
        """The host argv that runs ``python -m module args`` on the emulated CPU."""
        return [*arm_rootfs.qemu_argv(self.rootfs, self.cpu), "-m", module, *map(str, args)]

    def environment(self) -> dict:
        return arm_rootfs.guest_env(self.rootfs, [self.code_dir()])

    def run(self, manifest_dir, config: Configuration, runs: int, warmup: int, size,
            timeout: Optional[float] = DEFAULT_TIMEOUT_S) -> dict:
        args = ["--manifest", Path(manifest_dir).resolve(), "--artefact", config.artefact, "--threads", config.threads,
                "--runs", runs, "--warmup", warmup, "--size", f"{size[0]}x{size[1]}"]
        try:
            r = subprocess.run(self.command("edgematte.bench.runner", args), capture_output=True, text=True,
                               timeout=timeout, env=self.environment())
        except subprocess.TimeoutExpired:
            result = {"artefact": config.artefact, "threads": config.threads,
                      "error": f"timed out after {timeout} s under emulation"}
        else:
            result = runner_result(r.returncode, r.stdout, r.stderr, config, where=f"emulated runner ({self.cpu})")
            if "machine" in result:  # the runner read the fake cpuinfo's Cortex-A72: name the emulation
                result["machine"]["cpu_model"] = f"qemu-aarch64 -cpu {self.cpu} (emulated)"
        result.update(emulated=True, qemu_cpu=self.cpu)
        return result

    def configurations(self, manifest: dict, artefacts: Optional[List[str]], threads: List[int]) -> List[Configuration]:
        """Every TFLite artefact (LiteRT is the runtime the root file system has) x thread count."""
        names = choose_artefacts(manifest, artefacts, board_artefacts(manifest, EMULATED_FORMATS))
        if not names:
            raise EdgematteError(f"{manifest['_dir']}: no TFLite artefact to run under qemu")
        return [Configuration(n, t) for n in names for t in threads]

    def model_outputs(self, manifest_dir, artefact: str, input_path, out_path, threads: int = 1,
                      kernels: str = "default", trace: bool = False, timeout: float = DEFAULT_TIMEOUT_S) -> dict:
        """Run :mod:`edgematte.bench.outputs` emulated; returns its summary (``"error"`` on failure)."""
        args = ["--manifest", Path(manifest_dir).resolve(), "--artefact", artefact, "--input", Path(input_path).resolve(),
                "--out", Path(out_path).resolve(), "--threads", threads, "--kernels", kernels] + (["--trace"] if trace else [])
        try:
            r = subprocess.run(self.command("edgematte.bench.outputs", args), capture_output=True, text=True,
                               timeout=timeout, env=self.environment())
        except subprocess.TimeoutExpired:
            return {"artefact": artefact, "error": f"emulated outputs run timed out after {timeout} s"}
        for line in reversed(r.stdout.splitlines()):
            if line.startswith(OUTPUTS_PREFIX):
                return json.loads(line[len(OUTPUTS_PREFIX):])
        last = (r.stderr.strip().splitlines() or [""])[-1]
        return {"artefact": artefact, "error": f"emulated outputs run died (status {r.returncode}): {last}"}


def output_quantization_step(manifest_dir, artefact: str, raw_output: np.ndarray, output_quant) -> Optional[float]:
    """The size of one quantization step of ``artefact``'s first output, or ``None`` for a float output.

    Integer outputs: their own scale. Float outputs of a full-integer model: the scale of the int8
    tensor its final DEQUANTIZE reads (the model's last quantized value). Dynamic-range and float
    models have no such step.
    """
    if np.issubdtype(raw_output.dtype, np.integer):
        return float(output_quant[0]) if len(output_quant) else None
    from ..quant.tflite_int8 import model_ops
    from ..runtime.backends.litert import _import_interpreter

    path = Path(manifest_dir) / artefact
    if path.suffix != ".tflite":
        return None
    interpreter_class, _, _ = _import_interpreter()
    output_index = interpreter_class(model_path=str(path)).get_output_details()[0]["index"]
    for op in model_ops(path):
        if op["op"] == "DEQUANTIZE" and any(t["index"] == output_index for t in op["outputs"]):
            return op["inputs"][0]["scale"]
    return None


def _steps(a: np.ndarray, b: np.ndarray, step: Optional[float]) -> Optional[int]:
    """Largest difference of two outputs in quantization steps (integers: exact; float: rounded), or None."""
    if np.issubdtype(a.dtype, np.integer):
        return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())
    if step:
        return int(np.round(np.abs(a.astype(np.float64) - b.astype(np.float64)).max() / step))
    return None


def first_divergent_op(host: dict, target: dict) -> Optional[dict]:
    """The first traced op (execution order) whose output differs: ``{"op", "max_steps" | "max_abs", "fraction"}``."""
    for key in sorted(k for k in host if k.startswith(TRACE_PREFIX)):
        a, b = host[key], target.get(key)
        if b is None or a.shape != b.shape:
            return {"op": key[len(TRACE_PREFIX):], "error": "missing or reshaped on the emulated CPU"}
        if np.array_equal(a, b):
            continue
        difference = np.abs(a.astype(np.float64) - b.astype(np.float64))
        found = {"op": key[len(TRACE_PREFIX):], "fraction": float(np.mean(difference > 0))}
        if np.issubdtype(a.dtype, np.integer):
            found["max_steps"] = int(difference.max())
        else:
            found["max_abs"] = float(difference.max())
        return found
    return None


def compare_outputs(host: dict, target: dict, step: Optional[float]) -> dict:
    """Max/mean abs difference of the float outputs, the fraction of differing values, and, with a
    quantization ``step`` (or integer outputs), the largest and 99th-percentile difference in steps."""
    a = np.asarray(host["output"], dtype=np.float64)
    b = np.asarray(target["output"], dtype=np.float64)
    if a.shape != b.shape:
        raise EdgematteError(f"output shapes differ: host {a.shape}, emulated {b.shape}")
    difference = np.abs(a - b)
    figures = {"max_abs": float(difference.max()), "mean_abs": float(difference.mean()),
               "differing_fraction": float(np.mean(difference > 0)), "quant_step": step,
               "max_steps": _steps(host["raw_output"], target["raw_output"], step), "p99_steps": None}
    if figures["max_steps"] is not None and step:
        figures["p99_steps"] = float(np.percentile(difference, 99) / step)
    return figures


FP32_TOLERANCE = 1e-5  # max abs output difference, ARM against x86, for float models
# A dynamic-range model quantizes its activations at run time from float values, and the ARM and x86
# builds round float arithmetic differently (fp32 models differ by ~1e-6), so a value on a rounding
# boundary can land one activation step away: measured 1.7e-4 with reference kernels on the tiny
# PP-MattingV2 (1.2e-7 with XNNPACK). Far below the INT8 accuracy budget (MAD 0.02).
DYNAMIC_TOLERANCE = 1e-3
# Optimized int8 kernels (XNNPACK, builtin) round some products differently on ARM and x86: each op
# stays within one output step of the other, but the ~150 int8 ops of PP-MattingV2 accumulate that
# to a few steps at the output (measured: mean 0.4, 99% within 2, max 7 with XNNPACK). Limits in
# output quantization steps; the reference kernels are plain C++ and must agree exactly.
INT8_STEP_LIMITS = {"reference": {"mean": 0.0, "p99": 0, "max": 0},
                    "default": {"mean": 1.0, "p99": 4, "max": 16},
                    "builtin": {"mean": 1.0, "p99": 8, "max": 24}}


def arm_verdict(report: dict) -> tuple:
    """(passed, one-line reason) for a :func:`compare_with_host` report: a float model within
    :data:`FP32_TOLERANCE` (dynamic-range: :data:`DYNAMIC_TOLERANCE`), an int8-output one within
    :data:`INT8_STEP_LIMITS` for its kernels."""
    if "error" in report:
        return False, report["error"]
    if report.get("quant_step") is None:
        limit = DYNAMIC_TOLERANCE if report.get("precision") == "dynamic" else FP32_TOLERANCE
        return report["max_abs"] <= limit, f"max abs {report['max_abs']:.2e} (limit {limit:g})"
    limits = INT8_STEP_LIMITS[report["kernels"]]
    mean_steps = report["mean_abs"] / report["quant_step"]
    ok = mean_steps <= limits["mean"] and report["p99_steps"] <= limits["p99"] and report["max_steps"] <= limits["max"]
    return ok, (f"output steps off x86: mean {mean_steps:.2f}, p99 {report['p99_steps']}, max {report['max_steps']} "
                f"(limits {limits['mean']:g} / {limits['p99']} / {limits['max']} for {report['kernels']} kernels)")


def compare_with_host(manifest: dict, artefacts: Optional[Sequence[str]] = None, cpu: str = DEFAULT_CPU,
                      rootfs=None, threads: int = 1, kernels: str = "default", trace: bool = False,
                      work_dir=None) -> List[dict]:
    """Each artefact's raw output on this x86 host and on the emulated ARM CPU, for the same input.

    The input tensor is made once, here (:func:`edgematte.bench.outputs.deterministic_input`: the
    runner's synthetic photo pre-processed by the artefact's profile), and given to both runs as a
    file, so only the model's kernels can differ. ``kernels``/``trace``: as ``edgematte.bench.outputs``
    (``reference`` kernels are plain C++ and must agree bit for bit: a difference there is the
    emulator's). Returns one dict per artefact: ``artefact``, ``precision``, ``kernels``, ``cpu``,
    ``max_abs``, ``mean_abs`` (float outputs, after dequantization), ``differing_fraction``,
    ``quant_step`` (one output step of an int8 model, else ``None``), ``max_steps`` and
    ``p99_steps`` (differences in those steps), ``first_divergent_op`` (with ``trace``: ``None`` when
    every op agrees), ``same_runtime_version``, ``host_s`` and ``emulated_s`` (wall seconds, the
    emulated one with the interpreter's start-up), ``host`` / ``emulated`` (machine facts, library
    versions); or ``artefact`` and ``error``.
    """
    from .outputs import deterministic_input, model_outputs
    from .runner import library_versions, machine_facts, open_matter

    target = QemuTarget(f"qemu:{cpu}", rootfs=rootfs)
    manifest_dir = manifest["_dir"]
    names = choose_artefacts(manifest, artefacts, board_artefacts(manifest, EMULATED_FORMATS))
    entries = {entry["path"]: entry for entry in manifest["artefacts"]}
    host_facts = {"machine": machine_facts(), "versions": library_versions()}
    reports = []
    with tempfile.TemporaryDirectory(prefix="edgematte-qemu-compare-", dir=work_dir) as work:
        work = Path(work)
        for index, artefact in enumerate(names):
            input_path, out_path = work / f"input_{index}.npy", work / f"emulated_{index}.npz"
            tensor = deterministic_input(open_matter(manifest_dir, artefact, threads))
            np.save(input_path, tensor)
            t0 = time.perf_counter()
            host = model_outputs(manifest_dir, artefact, tensor, threads, kernels, trace)
            host_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            summary = target.model_outputs(manifest_dir, artefact, input_path, out_path, threads, kernels, trace)
            emulated_s = time.perf_counter() - t0
            if "error" in summary:
                reports.append({"artefact": artefact, "kernels": kernels, "error": summary["error"]})
                continue
            with np.load(out_path) as stored:
                emulated = {key: stored[key] for key in stored.files}
            out_path.unlink()
            step = output_quantization_step(manifest_dir, artefact, host["raw_output"], host["output_quant"])
            runtime = "ai-edge-litert"
            reports.append({
                "artefact": artefact, "precision": entries[artefact].get("precision"), "kernels": kernels, "cpu": cpu,
                **compare_outputs(host, emulated, step),
                "first_divergent_op": first_divergent_op(host, emulated) if trace else None,
                "same_runtime_version": host_facts["versions"].get(runtime) == summary["versions"].get(runtime),
                "host_s": host_s, "emulated_s": emulated_s,
                "host": host_facts, "emulated": {"machine": summary["machine"], "versions": summary["versions"]},
            })
    return reports
