"""`--target adb:SERIAL`: the benchmark tools' output parsers, and the target through the real adb client.

No phone exists here: the real adb client talks to the fake adb server of tests/test_device_adb.py,
whose "phone" runs shell lines in the host's sh. The benchmark "binaries" pushed to it are shell
scripts printing what the real tools print (the sample texts below), so push, chmod, the tool's
argv, parsing, the per-configuration folder and its removal all go through adb; the real tools on a
real phone are not run here.
"""

import dataclasses
import hashlib
import json
import os

import pytest

from edgematte.bench import session
from edgematte.bench.targets.adb import TOOLS, AdbTarget, parse_benchmark_bin, parse_benchmark_model
from edgematte.bench.targets.base import Configuration
from edgematte.core.errors import EdgematteError
from edgematte.core.manifest import TensorSpec, read_manifest
from tests import test_device_adb
from tests.conftest import run_cli
from tests.test_device_adb import ADB, FakeDevice

# test_device_adb.py's fixture, made available to the tests here (a module attribute pytest collects; a name
# bound by assignment, so the tests' `fake_adb` parameters do not shadow an import).
fake_adb = test_device_adb.fake_adb

# TFLite benchmark_model (TF 2.1x): the lines written by BenchmarkModel::Run / OnBenchmarkEnd in
# tensorflow/lite/tools/benchmark/benchmark_model.cc, the count= statistics by tensorflow::Stat's
# OutputToStream (p5/median/p95 in recent versions). Figures invented, format as printed.
BENCHMARK_MODEL_OUTPUT = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Min num runs: [20]
INFO: Num threads: [4]
INFO: Min warmup runs: [3]
INFO: Graph: [/data/local/tmp/edgematte-bench-0a1b2c3d/model_fp32.tflite]
INFO: Report the peak memory footprint: [1]
INFO: #threads used for CPU inference: [4]
INFO: Loaded model /data/local/tmp/edgematte-bench-0a1b2c3d/model_fp32.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: The input model file size (MB): 2.50568
INFO: Initialized session in 41.233ms.
INFO: Running benchmark for at least 3 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
INFO: count=3 first=98765 curr=61234 min=60111 max=98765 avg=73370 std=17953 p5=60111 median=61234 p95=98765

INFO: Running benchmark for at least 20 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
INFO: count=20 first=60500 curr=59800 min=58950 max=64020 avg=60212.5 std=1210 p5=58950 median=59990 p95=64020

INFO: Inference timings in us: Init: 41233, First inference: 98765, Warmup (avg): 73370, Inference (avg): 60212.5
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the \
actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=18.3125 overall=42.6289
INFO: Overall peak memory footprint (MB) via periodic monitoring: 47.0742
INFO: Memory status at the end of exeution:
INFO: - VmRSS              : 52 MB
INFO: + RssAnnon           : 44 MB
INFO: + RssFile + RssShmem : 8 MB
"""

# Older benchmark_model (TF 2.0-2.2 era; the summary line as quoted in the TFLite performance docs:
# "Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9").
BENCHMARK_MODEL_OLD_OUTPUT = """\
Initialized session in 38.467ms
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=7 first=91471 curr=80130 min=79998 max=91471 avg=83235 std=3957

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=79449 curr=81350 min=77385 max=88213 avg=79732 std=1929

Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9
"""

# Paddle Lite benchmark_bin (2.10+): the report written by Run() in
# lite/api/tools/benchmark/benchmark.cc (Device/Model/Runtime/Backend/Perf Info; the Memory Usage
# block with --enable_memory_profile). Figures invented, format as printed, trailing spaces included
# (a line's last one is written \x20 so that it shows and stays).
BENCHMARK_BIN_OUTPUT = """\

======= Device Info =======
Brand: google
Device: panther
Model: Pixel 7
Android Version: 14
Android API Level: 34

======= Model Info =======
optimized_model_file: /data/local/tmp/edgematte-bench-0a1b2c3d/model_arm.nb
input_data_path: All 1.f
input_shape: 1,3,256,320
output tensor num: 1
--- output tensor 0 ---
output shape(NCHW): {1,1,256,320}
output tensor 0 elem num: 81920
output tensor 0 mean value: 0.412
output tensor 0 standard deviation: 0.201

======= Runtime Info =======
benchmark_bin version: v2.13-rc
threads: 4
power_mode: 0
warmup: 3
repeats: 20
result_path:\x20

======= Backend Info =======
backend: arm
cpu precision: fp32

======= Perf Info =======
Time(unit: ms):
init  = 35.112     \x20
first = 120.504    \x20
min   = 88.210     \x20
max   = 97.655     \x20
avg   = 90.873     \x20

Memory Usage(unit: MB):
init  = 21.500     \x20
peak  = 64.250     \x20

"""

# The memory block of the older lite/api/tools/benchmark.cc.
BENCHMARK_BIN_OLD_MEMORY = """\
Memory Usage(unit: kB):
init  = Not supported yet
avg   = Not supported yet
"""


def test_benchmark_model_output_is_parsed_in_seconds():
    figures = parse_benchmark_model(BENCHMARK_MODEL_OUTPUT)
    assert figures["load_s"] == pytest.approx(0.041233)
    assert figures["first_inference_s"] == pytest.approx(0.098765)
    assert figures["warmup_mean_s"] == pytest.approx(0.07337)
    m = figures["model_s"]
    # The timed runs' statistics, not the warm-up's (the earlier count=3 line).
    assert (m["n"], m["min"], m["median"], m["max"], m["mean"]) == (
        20, pytest.approx(0.05895), pytest.approx(0.05999), pytest.approx(0.06402), pytest.approx(0.0602125))
    assert m["p90"] is None  # the tool prints p5/median/p95, never p90: not estimated
    assert figures["memory_mb"] == {"init_delta": 18.3125, "overall_delta": 42.6289, "peak": 47.0742}

    old = parse_benchmark_model(BENCHMARK_MODEL_OLD_OUTPUT)
    assert old["load_s"] == pytest.approx(0.038467) and old["first_inference_s"] is None
    assert old["model_s"]["mean"] == pytest.approx(0.0797609) and old["model_s"]["min"] == pytest.approx(0.077385)
    assert old["model_s"]["median"] is None and old["memory_mb"]["peak"] is None
    with pytest.raises(ValueError):
        parse_benchmark_model("ERROR: Didn't find op for builtin opcode 'CONV_2D' version '6'\n")


def test_benchmark_bin_output_is_parsed_in_seconds():
    figures = parse_benchmark_bin(BENCHMARK_BIN_OUTPUT)
    assert figures["load_s"] == pytest.approx(0.035112) and figures["first_inference_s"] == pytest.approx(0.120504)
    m = figures["model_s"]
    assert (m["min"], m["max"], m["mean"], m["median"]) == (
        pytest.approx(0.08821), pytest.approx(0.097655), pytest.approx(0.090873), None)
    assert figures["memory_mb"] == {"init": 21.5, "peak": 64.25}
    assert figures["version"] == "v2.13-rc" and figures["threads"] == 4
    older = parse_benchmark_bin(BENCHMARK_BIN_OUTPUT.split("Memory Usage")[0] + BENCHMARK_BIN_OLD_MEMORY)
    assert older["memory_mb"] == {"init": None, "peak": None}
    with pytest.raises(ValueError):
        parse_benchmark_bin("Error: This model is not supported, because kernel for 'conv2d' is not supported\n")


# ---------------------------------------------------------------------------------------------- through adb

ARTEFACTS = [
    {"path": "model_fp32.tflite", "format": "tflite", "target": "any", "precision": "fp32"},
    {"path": "model_arm.nb", "format": "nb", "target": "arm", "precision": "fp32",
     "inputs": [{"name": "img", "shape": [1, 3, 256, 320], "dtype": "float32"}]},
    {"path": "model.onnx", "format": "onnx", "target": "any", "precision": "fp32"},
    {"path": "model_x86.nb", "format": "nb", "target": "x86", "precision": "fp32"},
]


PARITY = {"max_abs": 0.0, "mean_abs": 0.0, "frac_over_1_255": 0.0, "compared_to": "reference", "runs_on_host": True}


@pytest.fixture
def conversion(tmp_path):
    """A manifest with one artefact of each kind; the files are pushed, never opened, so any bytes do."""
    out = tmp_path / "conversion"
    out.mkdir()
    data = {artefact["path"]: b"model bytes of " + artefact["path"].encode() for artefact in ARTEFACTS}
    manifest = {"schema": "edgematte.manifest/1", "tools": {"paddlelite": "2.13rc0", "ai-edge-litert": "2.1.0"},
                "model": {"name": "ppmattingv2", "input_shape": [1, 3, 256, 320]}, "reference": {},
                "artefacts": [dict(a, parity=PARITY, sha256=hashlib.sha256(data[a["path"]]).hexdigest())
                              for a in ARTEFACTS]}
    (out / "manifest.json").write_text(json.dumps(manifest))
    for path, content in data.items():
        (out / path).write_bytes(content)
    return out


def fake_tool(path, output: str, rejected_flag: str = ""):
    """A 'benchmark binary' for the fake phone: prints ``output`` (or rejects ``--rejected_flag`` as gflags does)."""
    reject = (f'case "$*" in *--{rejected_flag}*) echo "ERROR: unknown command line flag \'{rejected_flag}\'"; '
              f'exit 1;; esac\n') if rejected_flag else ""
    path.write_text("#!/bin/sh\n" + reject
                    + "cat <<'EOF'\n" + output + "EOF\n")
    return path


@pytest.fixture
def phone(fake_adb, tmp_path):
    device = FakeDevice("R58M12345AB", tmp_path / "phone")
    cpu = device.host_path("/sys/devices/system/cpu")
    (cpu / "cpu0" / "cpufreq").mkdir(parents=True)
    (cpu / "possible").write_text("0-3,4-7\n")
    (cpu / "cpu0" / "cpufreq" / "scaling_governor").write_text("schedutil\n")
    device.add_command("getprop", 'case "$1" in ro.product.model) echo "Pixel 7";; '
                                  'ro.product.manufacturer) echo Google;; '
                                  'ro.soc.model) echo "Tensor G2";; ro.product.cpu.abi) echo arm64-v8a;; '
                                  'ro.build.version.release) echo 14;; ro.build.version.sdk) echo 34;; esac')
    return fake_adb(device), device


def test_no_device_and_an_unauthorized_phone_stop_before_any_configuration(fake_adb, conversion, tmp_path):
    server = fake_adb()
    env = dict(os.environ, ANDROID_ADB_SERVER_PORT=str(server.port), EDGEMATTE_ADB=str(ADB))
    r = run_cli("bench", conversion, "--target", "adb:R58M12345AB", "-o", tmp_path / "b", env=env, timeout=120)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no device" in r.stderr, r.stderr
    assert not (tmp_path / "b").exists()
    server = fake_adb(FakeDevice("R58M12345AB", tmp_path / "phone", state="unauthorized"))
    with pytest.raises(EdgematteError, match="unauthorized: accept the 'Allow USB debugging.*RSA"):
        AdbTarget("adb:R58M12345AB", adb=server.adb())


def test_tools_run_through_adb_and_leave_nothing_behind(phone, conversion, tmp_path):
    server, device = phone
    tools = {"tflite": str(fake_tool(tmp_path / "benchmark_model", BENCHMARK_MODEL_OUTPUT)),
             "nb": str(fake_tool(tmp_path / "benchmark_bin", BENCHMARK_BIN_OUTPUT, "enable_memory_profile"))}
    target = AdbTarget("adb:R58M12345AB", tools=tools, adb=server.adb())
    assert target.name == "adb-R58M12345AB"
    manifest = read_manifest(conversion)
    result = target.run(manifest, Configuration("model_fp32.tflite", 4), runs=20, warmup=3, size=(640, 480))
    assert "error" not in result, result
    assert result["model_s"]["median"] == pytest.approx(0.05999) and result["peak_rss_mb"] == pytest.approx(47.0742)
    assert result["machine"] == {"machine": "arm64-v8a", "system": "Android 14 (SDK 34)", "device": "Google Pixel 7",
                                 "cpu_model": "Tensor G2", "cpu_count": 8, "governor": "schedutil",
                                 "serial": "R58M12345AB"}
    # The lines the phone's shell received (before the fake's path rewriting).
    run_line = next(line for line in device.commands if "./benchmark_model" in line)
    remote = run_line.split()[1]
    prefix = "/data/local/tmp/edgematte-bench-"
    assert remote.startswith(prefix) and len(remote) == len(prefix) + 8
    assert run_line == (f"(cd {remote} && ./benchmark_model --graph={remote}/model_fp32.tflite --num_threads=4 "
                        "--num_runs=20 --warmup_runs=3 --min_secs=0 --warmup_min_secs=0 "
                        "--report_peak_memory_footprint=true 2>&1); echo EDGEMATTE_EXIT=$?")
    assert f"(chmod 755 {remote}/benchmark_model); echo EDGEMATTE_EXIT=$?" in device.commands
    assert result["versions"]["benchmark_model"].startswith("benchmark_model sha256 ")

    result = target.run(manifest, Configuration("model_arm.nb", 2), runs=10, warmup=1, size=(640, 480))
    assert "error" not in result, result
    assert result["model_s"]["mean"] == pytest.approx(0.090873)
    assert result["versions"]["paddlelite (benchmark_bin)"] == "v2.13-rc"
    # First with --enable_memory_profile=true; this benchmark_bin rejects the flag, so once more without.
    first, second = [line for line in device.commands if "./benchmark_bin" in line]
    remote = second.split()[1]
    assert first == second.replace("--backend=arm", "--backend=arm --enable_memory_profile=true")
    assert second == (f"(cd {remote} && ./benchmark_bin --optimized_model_file={remote}/model_arm.nb "
                      "--input_shape=1,3,256,320 --threads=2 --warmup=1 --repeats=10 --backend=arm 2>&1); "
                      "echo EDGEMATTE_EXIT=$?")
    assert not any((device.root / "data/local/tmp").iterdir())  # each configuration's folder is removed


def test_benchmark_bin_gets_every_input_shape_of_a_recurrent_nb(conversion):
    """RVM's .nb takes the image and four states: benchmark_bin wants each shape, colon-separated, in order."""
    manifest = read_manifest(conversion)
    shapes = {"img": [1, 3, 128, 128], "r1": [1, 16, 16, 16], "r2": [1, 20, 8, 8], "r3": [1, 40, 4, 4],
              "r4": [1, 64, 2, 2]}
    plain = next(a for a in manifest.artefacts if a.path == "model_arm.nb")
    assert "--input_shape=1,3,256,320" in TOOLS["nb"].argv("/x/model_arm.nb", plain, manifest, 2, 10, 1)
    unknown = dataclasses.replace(plain, inputs=[])  # an older manifest: the model's input shape
    assert "--input_shape=1,3,256,320" in TOOLS["nb"].argv("/x/model_arm.nb", unknown, manifest, 2, 10, 1)
    entry = dataclasses.replace(plain, inputs=[TensorSpec(name, shape, "float32") for name, shape in shapes.items()])
    argv = TOOLS["nb"].argv("/x/model_arm.nb", entry, manifest, threads=2, runs=10, warmup=1)
    assert "--input_shape=1,3,128,128:1,16,16,16:1,20,8,8:1,40,4,4:1,64,2,2" in argv


def test_missing_tools_and_unrunnable_artefacts_fail_alone(phone, conversion, tmp_path):
    server, device = phone
    tools = {"tflite": str(tmp_path / "no" / "benchmark_model"), "nb": None}
    target = AdbTarget("adb:R58M12345AB", tools=tools, adb=server.adb())
    manifest = read_manifest(conversion)
    configs = target.configurations(manifest, None, [1])
    assert [c.artefact for c in configs] == ["model_fp32.tflite", "model_arm.nb"]  # what a phone runs
    errors = {name: target.run(manifest, Configuration(name, 1), 5, 1, (64, 64))["error"]
              for name in ("model_fp32.tflite", "model_arm.nb", "model.onnx", "model_x86.nb")}
    assert errors["model_fp32.tflite"] == (f"{tmp_path / 'no' / 'benchmark_model'}: no such file "
                                           "(--adb-benchmark-model, the benchmark_model for model_fp32.tflite)")
    assert errors["model_arm.nb"].startswith("no benchmark_bin given for model_arm.nb: pass --adb-benchmark-bin PATH")
    assert errors["model.onnx"].startswith("model.onnx: not runnable on an adb target")
    assert "this is nb for x86" in errors["model_x86.nb"]


def test_partial_results_are_written_and_the_exit_is_non_zero(phone, conversion, tmp_path):
    server, device = phone
    fake_tool(tmp_path / "benchmark_model", BENCHMARK_MODEL_OUTPUT)
    env = dict(os.environ, ANDROID_ADB_SERVER_PORT=str(server.port), EDGEMATTE_ADB=str(ADB))
    r = run_cli("bench", conversion, "--target", "adb:R58M12345AB", "--threads", "1",
                "--artefacts", "model_fp32.tflite,model_arm.nb,model.onnx",
                "--adb-benchmark-model", tmp_path / "benchmark_model", "-o", tmp_path / "b", env=env, timeout=120)
    assert r.returncode == 1 and "2 of 3 configurations failed" in r.stderr.splitlines()[-1]
    doc = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert doc["results"][0]["model_s"]["mean"] == pytest.approx(0.0602125)
    assert "--adb-benchmark-bin" in doc["results"][1]["error"] and "not runnable" in doc["results"][2]["error"]
    row = next(line for line in (tmp_path / "b" / "bench.md").read_text().splitlines() if "model_fp32.tflite" in line)
    assert "| n/a |" in row  # benchmark_model prints no p90 and no pre/post: shown as such, never estimated
    assert (tmp_path / "b" / "bench.png").stat().st_size > 0


def test_the_session_writes_nothing_when_no_tool_is_given(phone, conversion, tmp_path, monkeypatch):
    server, _ = phone
    monkeypatch.delenv("EDGEMATTE_ADB_BENCHMARK_MODEL", raising=False)
    monkeypatch.delenv("EDGEMATTE_ADB_BENCHMARK_BIN", raising=False)
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(server.port))
    monkeypatch.setenv("EDGEMATTE_ADB", str(ADB))
    with pytest.raises(EdgematteError, match="2 of 2 configurations failed .*no benchmark_model given"):
        session.benchmark(conversion, target="adb:R58M12345AB", threads=[1], out=tmp_path / "b")
    assert not (tmp_path / "b").exists()  # every configuration failed: no report replaces anything
