"""``edgematte device arm-check``: the same input through the same TFLite artefact on this x86 host and on an
emulated ARM CPU, compared: the correctness check for ARM kernels when no board is at hand.

The emulated side is the root file system's arm64 Python under qemu-user (:mod:`.qemu`), running
:mod:`edgematte.runtime.raw_outputs`; the host side runs the same module's functions here. The input tensor is
made once, on the host, and given to both runs as a file, so only the model's kernels can differ. What
"equal" means is :func:`arm_verdict`: float models within :data:`FP32_TOLERANCE` (dynamic-range ones
:data:`DYNAMIC_LIMITS`), int8 outputs within :data:`INT8_STEP_LIMITS` output quantization steps for the
kernels used, none at all with LiteRT's portable reference kernels.
"""

import json
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..core.errors import EdgematteError
from ..core.manifest import Manifest
from .qemu import DEFAULT_CPU, DEFAULT_TIMEOUT_S, EmulatedPython
from .runtime_code import OUTPUTS_MODULE

LITERT = "ai-edge-litert"
FP32_TOLERANCE = 1e-5  # max abs output difference, ARM against x86, for float models
# A dynamic-range model quantizes its activations at run time from float values, and the ARM and x86
# builds round float arithmetic differently (fp32 models differ by ~1e-6), so a value on a rounding
# boundary can land one activation step away, and through a full model such steps add up. Measured
# (LiteRT 2.1.0, emulated Cortex-A76, XNNPACK): the tiny PP-MattingV2 max abs 1.2e-7 (1.7e-4 with
# reference kernels); PaddleSeg's PP-MattingV2 program at 256x256 mean abs 1.6e-3, max 2.5e-2; the
# zoo's at 512x512 mean 2.5e-3, max 4.0e-2: as far apart as each is from fp32 (MAD 0.003). Limits at
# 2x those; the mean limit is a quarter of the INT8 accuracy budget (MAD 0.02).
DYNAMIC_LIMITS = {"mean_abs": 5e-3, "max_abs": 8e-2}
# Optimized int8 kernels (XNNPACK, builtin) round some products differently on ARM and x86: each op
# stays within one output step of the other, but the ~150 int8 ops of PP-MattingV2 accumulate that
# to a few steps at the output. Measured (LiteRT 2.1.0, emulated Cortex-A72/A76), XNNPACK / builtin:
# the tiny model (width 0.25, 128x160) mean 0.4 / 0.5 steps, 99 % within 2 / 5, max 7 / 13; the zoo's
# full model at 512x512 mean 0.55 / 0.63, 99 % within 6 / 6, max 25 / 35; PaddleSeg's own program at
# 256x256 mean 0.63 / 0.73, 99 % within 5 / 6, max 23 / 24: the tail grows with the model, the mean
# little. Broken set-ups are told apart by the mean: `-cpu max` mean 31 steps, LiteRT 2.1.0 against
# 2.3.0 mean 3 (max 30). Limits in output quantization steps, 2x the largest measured; the reference
# kernels are plain C++ and must agree exactly.
INT8_STEP_LIMITS = {"reference": {"mean": 0.0, "p99": 0, "max": 0},
                    "default": {"mean": 1.5, "p99": 12, "max": 50},
                    "builtin": {"mean": 1.5, "p99": 12, "max": 70}}


def emulated_outputs(python: EmulatedPython, manifest_dir, artefact: str, input_path, out_path, threads: int = 1,
                     kernels: str = "default", trace: bool = False, timeout: float = DEFAULT_TIMEOUT_S) -> dict:
    """Run :mod:`edgematte.runtime.raw_outputs` emulated; returns its summary (``"error"`` on failure)."""
    from ..runtime.raw_outputs import RESULT_PREFIX

    args = ["--manifest", Path(manifest_dir).resolve(), "--artefact", artefact, "--input", Path(input_path).resolve(),
            "--out", Path(out_path).resolve(), "--threads", threads, "--kernels", kernels]
    run = python.run_module(OUTPUTS_MODULE, args + (["--trace"] if trace else []), timeout=timeout)
    if run.timed_out:
        return {"artefact": artefact, "error": f"emulated outputs run timed out after {timeout} s"}
    for line in reversed(run.output.splitlines()):
        if RESULT_PREFIX in line:
            return json.loads(line[line.index(RESULT_PREFIX) + len(RESULT_PREFIX):])
    return {"artefact": artefact,
            "error": f"emulated outputs run died (status {run.returncode}): {run.error_line()}"}


def output_quantization_step(path: Path, raw_output: np.ndarray, output_quant,
                             output_name: Optional[str] = None) -> Optional[float]:
    """The size of one quantization step of the model ``path``'s output ``output_name`` (default: the first; a
    recurrent model's alpha is not always first), or ``None`` for a float output.

    Integer outputs: their own scale. Float outputs of a full-integer model: the scale of the int8
    tensor its final DEQUANTIZE reads (the model's last quantized value). Dynamic-range and float
    models have no such step.
    """
    if np.issubdtype(raw_output.dtype, np.integer):
        return float(output_quant[0]) if len(output_quant) else None
    if path.suffix != ".tflite":
        return None
    from ..quant.tflite_int8 import model_ops
    from ..runtime.backends.litert import _import_interpreter

    interpreter_class, _, _ = _import_interpreter()
    details = interpreter_class(model_path=str(path)).get_output_details()
    output_index = next((d["index"] for d in details if output_name in (d["name"], d["name"].split(":")[0])),
                        details[0]["index"])
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
    from ..runtime.raw_outputs import TRACE_PREFIX

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


def arm_verdict(report: dict) -> tuple:
    """(passed, one-line reason) for a :func:`compare_with_host` report: a float model within
    :data:`FP32_TOLERANCE` (dynamic-range: :data:`DYNAMIC_LIMITS`), an int8-output one within
    :data:`INT8_STEP_LIMITS` for its kernels."""
    if "error" in report:
        return False, report["error"]
    if report.get("quant_step") is None and report.get("precision") == "dynamic":
        ok = report["mean_abs"] <= DYNAMIC_LIMITS["mean_abs"] and report["max_abs"] <= DYNAMIC_LIMITS["max_abs"]
        return ok, (f"mean abs {report['mean_abs']:.2e}, max abs {report['max_abs']:.2e} (limits "
                    f"{DYNAMIC_LIMITS['mean_abs']:g} / {DYNAMIC_LIMITS['max_abs']:g})")
    if report.get("quant_step") is None:
        return report["max_abs"] <= FP32_TOLERANCE, f"max abs {report['max_abs']:.2e} (limit {FP32_TOLERANCE:g})"
    limits = INT8_STEP_LIMITS[report["kernels"]]
    mean_steps = report["mean_abs"] / report["quant_step"]
    ok = (mean_steps <= limits["mean"] and report["p99_steps"] <= limits["p99"]
          and report["max_steps"] <= limits["max"])
    return ok, (f"output steps off x86: mean {mean_steps:.2f}, p99 {report['p99_steps']}, max {report['max_steps']} "
                f"(limits {limits['mean']:g} / {limits['p99']} / {limits['max']} for {report['kernels']} kernels)")


def _compare_one(python: EmulatedPython, manifest: Manifest, artefact, work: Path, index: int, threads: int,
                 kernels: str, trace: bool, host_facts: dict) -> dict:
    """One artefact's report (see :func:`compare_with_host`)."""
    from ..runtime.bench_runner import open_matter
    from ..runtime.raw_outputs import deterministic_input, model_outputs

    manifest_dir = str(manifest.dir)
    input_path, out_path = work / f"input_{index}.npy", work / f"emulated_{index}.npz"
    matter = open_matter(manifest_dir, artefact.path, threads)
    tensor = deterministic_input(matter)
    np.save(input_path, tensor)
    t0 = time.perf_counter()
    host = model_outputs(manifest_dir, artefact.path, tensor, threads, kernels, trace)
    host_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = emulated_outputs(python, manifest_dir, artefact.path, input_path, out_path, threads, kernels, trace)
    emulated_s = time.perf_counter() - t0
    if "error" in summary:
        return {"artefact": artefact.path, "kernels": kernels, "error": summary["error"]}
    with np.load(out_path) as stored:
        emulated = {key: stored[key] for key in stored.files}
    out_path.unlink()
    step = output_quantization_step(manifest.file(artefact), host["raw_output"], host["output_quant"],
                                    matter.output_spec.name)
    return {
        "artefact": artefact.path, "precision": artefact.precision, "kernels": kernels, "cpu": python.cpu,
        **compare_outputs(host, emulated, step),
        "first_divergent_op": first_divergent_op(host, emulated) if trace else None,
        "same_runtime_version": host_facts["versions"].get(LITERT) == summary["versions"].get(LITERT),
        "host_s": host_s, "emulated_s": emulated_s,
        "host": host_facts, "emulated": {"machine": summary["machine"], "versions": summary["versions"]},
    }


def compare_with_host(manifest: Manifest, artefacts: Optional[Sequence[str]] = None, cpu: str = DEFAULT_CPU,
                      rootfs=None, threads: int = 1, kernels: str = "default", trace: bool = False,
                      work_dir=None) -> List[dict]:
    """Each artefact's raw output on this x86 host and on the emulated ARM CPU, for the same input.

    ``artefacts``: paths or file names (default: every artefact the emulated root file system runs, i.e.
    :meth:`Manifest.artefacts_for` ``("litert")``). The input tensor is made once, here
    (:func:`edgematte.runtime.raw_outputs.deterministic_input`: the runner's synthetic photo pre-processed by
    the artefact's profile), and given to both runs as a file. ``kernels``/``trace``: as
    ``edgematte.runtime.raw_outputs`` (``reference`` kernels are plain C++ and must agree bit for bit: a
    difference there is the emulator's). Returns one dict per artefact: ``artefact``, ``precision``,
    ``kernels``, ``cpu``, ``max_abs``, ``mean_abs`` (float outputs, after dequantization),
    ``differing_fraction``, ``quant_step`` (one output step of an int8 model, else ``None``), ``max_steps``
    and ``p99_steps`` (differences in those steps), ``first_divergent_op`` (with ``trace``: ``None`` when
    every op agrees), ``same_runtime_version``, ``host_s`` and ``emulated_s`` (wall seconds, the emulated
    one with the interpreter's start-up), ``host`` / ``emulated`` (machine facts, library versions); or
    ``artefact`` and ``error``.
    """
    from ..runtime.bench_runner import library_versions, machine_facts

    chosen = manifest.select(artefacts, among=manifest.artefacts_for("litert"))
    if not chosen:
        raise EdgematteError(f"{manifest.origin}: no TFLite artefact to check on an emulated ARM CPU "
                             "(convert with --to tflite)")
    python = EmulatedPython(cpu, rootfs=rootfs, label=f"--cpu {cpu}")
    host_facts = {"machine": machine_facts(), "versions": library_versions()}
    with tempfile.TemporaryDirectory(prefix="edgematte-arm-check-", dir=work_dir) as work:
        return [_compare_one(python, manifest, artefact, Path(work), index, threads, kernels, trace, host_facts)
                for index, artefact in enumerate(chosen)]
