"""`--target qemu:CPU`: TFLite artefacts on an emulated Cortex-A72 give the x86 outputs.

Needs qemu-user-static and debootstrap (.ci/setup-test-hosts.sh) and builds the arm64 root file
system into the user's cache on first use (about 30 s and 360 MB here; reused afterwards). The
artefacts are a real `edgematte convert --to tflite --int8` of the tiny seeded PP-MattingV2 at
128x160 (fp32, full-integer int8 with float I/O and with int8 I/O).

What "equal" means for int8, measured on this model (LiteRT 2.1.0 on both sides):
- LiteRT's reference kernels (portable C++) agree bit for bit: the emulator computes integer code exactly.
- Its optimized ARM kernels round some products differently from the x86 ones: the first op whose
  output differs (a CONV_2D) differs by one quantization step on 0.7 % of its values; over the
  ~150 int8 ops of the network that grows to at most 7 steps (XNNPACK) / 13 steps (builtin
  kernels) at the output, 99 % of values within 2 / 5 steps, mean 0.4 / 0.5 step.
- Broken set-ups are far outside the bounds below: ``-cpu max`` (mean 31 steps, max 74) and
  LiteRT 2.1.0 against 2.3.0 (XNNPACK, also x86 against x86: mean 3 steps, max 30).
"""

import json
import os
import shutil
import time

import numpy as np
import pytest

from edgematte.bench import session
from edgematte.bench.targets.qemu import QemuTarget
from edgematte.core.errors import EdgematteError
from edgematte.core.manifest import read_manifest
from edgematte.device.arm_check import compare_with_host
from edgematte.device.rootfs import is_ready, prepare_arm_rootfs, read_stamp

from .conftest import run_cli

SETUP = "bash .ci/setup-test-hosts.sh"
CPU = "cortex-a72"
INT8 = ("model_int8.tflite", "model_int8_io.tflite")
# Bounds in output quantization steps (1/256 of alpha), for the default (XNNPACK) kernels; see above.
MEAN_STEPS, P99_STEPS, MAX_STEPS = 1.0, 4, 16


@pytest.fixture(scope="module")
def arm_rootfs():
    missing = [tool for tool in ("qemu-aarch64-static", "debootstrap") if shutil.which(tool) is None
               and not os.path.exists(f"/usr/sbin/{tool}")]
    if missing:
        message = f"{', '.join(missing)} missing: run '{SETUP}' as root"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    t0 = time.monotonic()
    rootfs = prepare_arm_rootfs(log=print)
    print(f"arm64 root file system: {rootfs} ({time.monotonic() - t0:.1f} s, stamp {read_stamp(rootfs)['timings']})")
    return rootfs


@pytest.fixture(scope="module")
def int8_conversion(tmp_path_factory):
    out = tmp_path_factory.mktemp("qemu_int8") / "out"
    r = run_cli("convert", "ppmattingv2", "--seed", "0", "--width", "0.25", "--input-shape", 1, 3, 128, 160,
                "--to", "tflite", "--no-fp16", "--int8", "--calib-count", 8, "-o", out)
    assert r.returncode == 0, r.stderr[-3000:]
    return read_manifest(out)


def by_artefact(reports):
    for report in reports:
        assert "error" not in report, report
    return {report["artefact"]: report for report in reports}


def test_fp32_and_int8_equal_x86_under_emulation(arm_rootfs, int8_conversion):
    reports = by_artefact(compare_with_host(int8_conversion, ["model_fp32.tflite", *INT8], cpu=CPU))
    for report in reports.values():
        print(json.dumps({k: v for k, v in report.items() if k not in ("host", "emulated")}))
        assert report["emulated"]["machine"]["machine"] == "aarch64"
        assert report["host"]["machine"]["machine"] == "x86_64"
        assert report["same_runtime_version"], (report["host"]["versions"], report["emulated"]["versions"])
    fp32 = reports["model_fp32.tflite"]
    assert fp32["max_abs"] <= 1e-5 and fp32["quant_step"] is None
    for name in INT8:
        r = reports[name]
        assert r["quant_step"] == pytest.approx(1 / 256)  # the int8 sigmoid output: scale 1/256, zero point -128
        assert r["mean_abs"] <= MEAN_STEPS * r["quant_step"], r
        assert r["p99_steps"] <= P99_STEPS and r["max_steps"] <= MAX_STEPS, r
    # int8 I/O only moves the (de)quantization out of the model: the same kernels, the same numbers
    assert reports["model_int8.tflite"]["max_steps"] == reports["model_int8_io.tflite"]["max_steps"]


def test_reference_kernels_agree_bit_for_bit(arm_rootfs, int8_conversion):
    """Portable C++ integer kernels: any difference would be the emulator's, and there is none."""
    report = by_artefact(compare_with_host(int8_conversion, ["model_int8_io.tflite"], cpu=CPU, kernels="reference"))
    report = report["model_int8_io.tflite"]
    assert report["max_steps"] == 0 and report["differing_fraction"] == 0.0


def test_first_differing_arm_kernel_is_within_one_step(arm_rootfs, int8_conversion):
    """Every op traced (builtin kernels): the first one whose output differs differs by at most one step."""
    report = by_artefact(compare_with_host(int8_conversion, ["model_int8.tflite"], cpu=CPU, kernels="builtin",
                                           trace=True))["model_int8.tflite"]
    first = report["first_divergent_op"]
    print(first)
    assert first is None or (first["max_steps"] <= 1 and first["fraction"] < 0.05), first


def test_bench_on_qemu_is_labelled_emulated(arm_rootfs, int8_conversion, tmp_path):
    out = tmp_path / "bench"
    doc = session.benchmark(int8_conversion.dir, target=f"qemu:{CPU}", threads=[1], artefacts=["model_int8_io.tflite"],
                            runs=2, warmup=0, size=(160, 128), out=out)
    (result,) = doc["results"]
    assert doc["emulated"] is True and result["emulated"] is True and result["qemu_cpu"] == CPU
    assert result["machine"]["machine"] == "aarch64" and result["model_s"]["n"] == 2 and result["backend"] == "litert"
    assert "EMULATED" in (out / "bench.md").read_text().splitlines()[0]
    assert json.loads((out / "bench.json").read_text())["target"] == f"qemu:{CPU}"


def test_rootfs_is_reused_and_wrong_set_ups_are_one_line(arm_rootfs, tmp_path):
    t0 = time.monotonic()
    assert prepare_arm_rootfs(arm_rootfs) == arm_rootfs and time.monotonic() - t0 < 2  # the stamp, no rebuild
    assert is_ready(arm_rootfs)
    for spec, expected in (("qemu:max", "-cpu max.*wrong"), ("qemu:pentium", "unknown CPU .*cortex-a72"),
                           ("qemu:", "expected qemu:CPU")):
        with pytest.raises(EdgematteError, match=expected) as failure:
            QemuTarget(spec, rootfs=arm_rootfs)
        assert "\n" not in str(failure.value)
    with pytest.raises(EdgematteError, match="run 'edgematte device arm-rootfs' first"):
        QemuTarget(f"qemu:{CPU}", rootfs=tmp_path / "nothing-here")


def test_arm_check_command_compares_every_tflite_artefact(arm_rootfs, int8_conversion):
    r = run_cli("device", "arm-check", int8_conversion.dir, "--cpu", CPU, "--kernels", "reference", "--json")
    assert r.returncode == 0, r.stderr
    reports = {x["artefact"]: x for x in json.loads(r.stdout)}
    assert set(reports) == {"model_fp32.tflite", *INT8, "model_dynamic.tflite"}
    assert all(x["passed"] for x in reports.values())
    for name in INT8:  # reference kernels: bit for bit
        assert reports[name]["max_steps"] == 0 and reports[name]["differing_fraction"] == 0.0
    assert reports["model_fp32.tflite"]["max_abs"] <= 1e-5
    # run-time activation quantization from float values: one activation step can flip, little more
    assert reports["model_dynamic.tflite"]["max_abs"] <= 1e-3


def test_arm_verdict_limits():
    from edgematte.device.arm_check import arm_verdict

    step = 1 / 256
    int8 = {"artefact": "m.tflite", "kernels": "default", "quant_step": step, "mean_abs": 0.4 * step,
            "p99_steps": 2, "max_steps": 7}
    assert arm_verdict(int8)[0] is True
    # the full model at 512x512 on an emulated Cortex-A76 (XNNPACK): a longer tail, the same small mean
    assert arm_verdict(dict(int8, mean_abs=0.55 * step, p99_steps=6, max_steps=25))[0] is True
    assert arm_verdict(dict(int8, max_steps=51))[0] is False
    assert arm_verdict(dict(int8, p99_steps=13))[0] is False
    assert arm_verdict(dict(int8, mean_abs=1.6 * step))[0] is False
    # LiteRT 2.1.0 against 2.3.0 (a broken set-up): mean 3 steps, max 30
    assert arm_verdict(dict(int8, mean_abs=3 * step, max_steps=30))[0] is False  # its p99 was not recorded
    ok, why = arm_verdict(dict(int8, kernels="reference", max_steps=1, p99_steps=0, mean_abs=1e-4 * step))
    assert ok is False and "max 1" in why
    fp32 = {"artefact": "f.tflite", "kernels": "default", "quant_step": None, "max_abs": 2e-5}
    assert arm_verdict(fp32) == (False, "max abs 2.00e-05 (limit 1e-05)")
    dynamic = dict(fp32, precision="dynamic", mean_abs=2.5e-3, max_abs=4.0e-2)  # the full model at 512x512
    assert arm_verdict(dynamic) == (True, "mean abs 2.50e-03, max abs 4.00e-02 (limits 0.005 / 0.08)")
    assert arm_verdict(dict(dynamic, mean_abs=6e-3))[0] is False
    assert arm_verdict(dict(dynamic, max_abs=0.1))[0] is False
    assert arm_verdict({"artefact": "x", "error": "boom"}) == (False, "boom")


def test_arm_check_of_a_conversion_without_tflite_is_a_one_line_error(tmp_path):
    from edgematte.core.manifest import Manifest

    parity = {"max_abs": 1e-6, "mean_abs": 1e-7, "frac_over_1_255": 0.0, "compared_to": "reference"}
    manifest = Manifest.from_dict({"model": {"name": "m", "input_shape": [1, 3, 64, 64]},
                                   "artefacts": [{"path": "model.onnx", "format": "onnx", "target": "any",
                                                  "precision": "fp32", "parity": parity}]}, directory=tmp_path)
    with pytest.raises(EdgematteError, match=r"no TFLite artefact to check on an emulated ARM CPU"):
        compare_with_host(manifest)


def test_a_recurrent_model_carries_its_states_under_emulation_and_equals_x86(arm_rootfs, rvm_tflite):
    """RVM under qemu: arm-check runs the same frame three times from zero states on both sides, states fed back
    (every frame's alpha compared); the bench target reports the states' I/O as on a board."""
    from edgematte.bench.targets.base import Configuration
    from edgematte.runtime.bench_runner import open_matter
    from edgematte.runtime.raw_outputs import RECURRENT_FRAMES, deterministic_input, model_outputs

    manifest = read_manifest(rvm_tflite)
    host = model_outputs(str(rvm_tflite), "model_fp32.tflite",
                         deterministic_input(open_matter(str(rvm_tflite), "model_fp32.tflite", 1)))["output"]
    assert host.shape[0] == RECURRENT_FRAMES == 3 and not np.array_equal(host[0], host[1])  # the states moved it
    (report,) = by_artefact(compare_with_host(manifest, ["model_fp32.tflite"], cpu=CPU)).values()
    assert report["emulated"]["machine"]["machine"] == "aarch64" and report["quant_step"] is None
    assert report["max_abs"] <= 1e-5, report["max_abs"]

    result = QemuTarget(f"qemu:{CPU}", rootfs=arm_rootfs).run(manifest, Configuration("model_fp32.tflite", 1), runs=2,
                                                              warmup=1, size=(160, 128))
    assert "error" not in result, result
    assert result["emulated"] is True and result["model_s"]["n"] == 2 and result["backend"] == "litert"
    state_elements = 16 * 16 * 16 + 20 * 8 * 8 + 40 * 4 * 4 + 64 * 2 * 2  # r1 [1,16,16,16] ... r4 [1,64,2,2]
    assert (result["states"]["count"], result["states"]["bytes"]) == (4, 2 * 4 * state_elements)
