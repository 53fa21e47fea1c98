"""`edgematte bench --profile`: per-op profiles from ONNX Runtime and Paddle Inference on this host, and from the
phones' benchmark tools (TFLite benchmark_model, Paddle Lite benchmark_bin) read from their real output format.

The tool outputs below are not captured from a phone (there is none here): they are written in the exact format
the tools' sources print, cited at each, with invented figures; the fake phone of tests/test_device_adb.py runs
"tools" that print them, so the flags, the second (profiled) run and the parsing all go through adb.
"""

import json

import numpy as np
import pytest

from edgematte.bench import session
from edgematte.bench.op_profile import parse_benchmark_model_profile, parse_paddle_lite_profile
from edgematte.bench.targets.adb import AdbTarget
from edgematte.bench.targets.base import Configuration
from edgematte.core.manifest import read_manifest
from edgematte.quant.tflite.ops import tflite_ops
from edgematte.runtime.op_profile import onnx_names, ort_profile, paddle_profile, profile_artefact
from tests import test_bench_adb, test_bench_ssh
from tests.conftest import run_cli
from tests.test_bench_adb import BENCHMARK_BIN_OUTPUT, BENCHMARK_MODEL_OUTPUT, fake_tool
from tests.test_device_adb import ADB

# test_bench_adb.py's fixtures (the fake phone, a manifest of one artefact of each kind), collected here too.
fake_adb = test_bench_adb.fake_adb
phone = test_bench_adb.phone
conversion = test_bench_adb.conversion
# test_bench_ssh.py's: a real sshd on 127.0.0.1 whose "board" Python is this venv's.
sshd = test_bench_ssh.sshd
board_python = test_bench_ssh.board_python
board = test_bench_ssh.board

# benchmark_model --enable_op_profiling=true, after its timings: ProfilingListener::OnBenchmarkEnd
# (tensorflow/lite/tools/benchmark/profiling_listener.cc) logs this header and the primary graph's StatsCalculator
# tables (ProfileSummaryDefaultFormatter, tensorflow/lite/profiling/profile_summary_formatter.cc: Run Order, Top by
# Computation Time, Summary by node type, then the short summary). Each field is InitField's "\t" + a right-aligned
# std::fixed setprecision(3) value, the node type 40 wide (kNodeTypeWidth, third_party/xla/xla/tsl/util/
# stats_calculator.cc). Delegated ops are named by XNNPACK, builtin ones "[output tensors]:node index".
OP_PROFILE = (
    "INFO: Operator-wise Profiling Info for Regular Benchmark Runs:\n"
    "============================== Run Order ==============================\n"
    "\t                             [node type]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t"
    "[times called]\t[Name]\n"
    "\t           Convolution (NHWC, F32) IGEMM\t    1.214\t    1.180\t 44.522%\t 44.522%\t     0.000\t        1\t"
    "Delegate/Convolution (NHWC, F32) IGEMM:0\n"
    "\t            Convolution (NHWC, F32) GEMM\t    0.402\t    0.195\t 14.715%\t 59.237%\t     0.000\t        2\t"
    "Delegate/Convolution (NHWC, F32) GEMM:1\n"
    "\t          Convolution (NHWC, F32) DWConv\t    0.233\t    0.227\t  8.565%\t 67.802%\t     0.000\t        1\t"
    "Delegate/Convolution (NHWC, F32) DWConv:2\n"
    "\t                         RESIZE_BILINEAR\t    0.612\t    0.598\t 22.563%\t 90.365%\t     0.000\t        1\t"
    "[model/tf.compat.v1.image.resize_bilinear/ResizeBilinear]:57\n"
    "\t                           CONCATENATION\t    0.101\t    0.097\t  3.660%\t 94.025%\t     0.000\t        1\t"
    "[model/tf.concat_3/concat]:58\n"
    "\t                                LOGISTIC\t    0.051\t    0.049\t  1.849%\t 95.874%\t     0.000\t        1\t"
    "[alpha]:61\n"
    "\n"
    "============================== Top by Computation Time ==============================\n"
    "\t                             [node type]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t"
    "[times called]\t[Name]\n"
    "\t           Convolution (NHWC, F32) IGEMM\t    1.214\t    1.180\t 44.522%\t 44.522%\t     0.000\t        1\t"
    "Delegate/Convolution (NHWC, F32) IGEMM:0\n"
    "\t                         RESIZE_BILINEAR\t    0.612\t    0.598\t 22.563%\t 67.085%\t     0.000\t        1\t"
    "[model/tf.compat.v1.image.resize_bilinear/ResizeBilinear]:57\n"
    "\t          Convolution (NHWC, F32) DWConv\t    0.233\t    0.227\t  8.565%\t 75.650%\t     0.000\t        1\t"
    "Delegate/Convolution (NHWC, F32) DWConv:2\n"
    "\t            Convolution (NHWC, F32) GEMM\t    0.402\t    0.195\t 14.715%\t 90.365%\t     0.000\t        2\t"
    "Delegate/Convolution (NHWC, F32) GEMM:1\n"
    "\t                           CONCATENATION\t    0.101\t    0.097\t  3.660%\t 94.025%\t     0.000\t        1\t"
    "[model/tf.concat_3/concat]:58\n"
    "\t                                LOGISTIC\t    0.051\t    0.049\t  1.849%\t 95.874%\t     0.000\t        1\t"
    "[alpha]:61\n"
    "\n"
    "Number of nodes executed: 6\n"
    "============================== Summary by node type ==============================\n"
    "\t                             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t"
    "[times called]\n"
    "\t           Convolution (NHWC, F32) IGEMM\t        1\t     1.180\t    46.438%\t    46.438%\t     0.000\t"
    "        1\n"
    "\t                         RESIZE_BILINEAR\t        1\t     0.598\t    23.534%\t    69.972%\t     0.000\t"
    "        1\n"
    "\t            Convolution (NHWC, F32) GEMM\t        1\t     0.390\t    15.348%\t    85.321%\t     0.000\t"
    "        2\n"
    "\t          Convolution (NHWC, F32) DWConv\t        1\t     0.227\t     8.933%\t    94.254%\t     0.000\t"
    "        1\n"
    "\t                           CONCATENATION\t        1\t     0.097\t     3.817%\t    98.072%\t     0.000\t"
    "        1\n"
    "\t                                LOGISTIC\t        1\t     0.049\t     1.928%\t   100.000%\t     0.000\t"
    "        1\n"
    "\n"
    "Timings (microseconds): count=20 first=2712 curr=2634 min=2598 max=2760 avg=2650.35 std=41\n"
    "Memory (bytes): count=0\n"
    "6 nodes observed\n"
    "\n\n\n"
)

# The same table as TensorFlow releases before the StatsCalculator moved to tsl print it
# (tensorflow/core/util/stats_calculator.cc): node type 24 wide, then a [start] column.
OP_PROFILE_WITH_START = (
    "Operator-wise Profiling Info for Regular Benchmark Runs:\n"
    "============================== Run Order ==============================\n"
    "\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t"
    "[times called]\t[Name]\n"
    "\t         RESIZE_BILINEAR\t            0.000\t    0.612\t    0.598\t 22.563%\t 22.563%\t     0.000\t        1\t"
    "[model/tf.compat.v1.image.resize_bilinear/ResizeBilinear]:57\n"
    "\t           CONCATENATION\t            0.612\t    0.101\t    0.097\t  3.660%\t 26.223%\t     0.000\t        1\t"
    "[model/tf.concat_3/concat]:58\n"
    "\n"
)

# Paddle Lite built with --with_profile=ON: RuntimeProgram logs Profiler::Summary(kDispatch, false, 1) (lite/core/
# program.h, lite/core/profile/profiler.cc): setw(20/30/24/26/15/15/15) left-aligned text, setw(7) fixed times,
# the share as setprecision(2) "%   ", N/A for a field a kernel leaves unset. The glog-style line before it is
# Paddle Lite's LOG(INFO) prefix.
LITE_PROFILE = (
    "[I 12/ 3 16:20:11.482 ...Paddle-Lite/lite/core/program.h:198 ~RuntimeProgram] \n"
    "===== Detailed Dispatch Profiler Summary: N/A, Exclude 1 warm-ups =====\n"
    "OperatorType         KerneAttr(Place)               KernelFuncName           Remark                     InDim"
    "           FilterDim       OutDim          Avg(ms) Min(ms) Max(ms) Last(ms) Avg(%)  GOPs    GOPS   \n"
    "conv2d               arm/float/NCHW                 conv_3x3s2_direct_fp32   3x3p1s2g1d1BiasRelu        "
    "1x3x256x320     8x3x3x3         1x8x128x160     0.912   0.880   1.050   0.901   48.51%    0.009   9.65   \n"
    "depthwise_conv2d     arm/float/NCHW                 conv_depthwise_3x3_fp32  3x3p1s1g8d1BiasRelu        "
    "1x8x128x160     8x1x3x3         1x8x128x160     0.254   0.241   0.302   0.250   13.51%    0.002   5.91   \n"
    "bilinear_interp_v2   arm/float/NCHW                 NotImpl                  N/A                        "
    "1x8x64x80       N/A             1x8x128x160     0.431   0.420   0.488   0.429   22.93%    0.000   0.00   \n"
    "concat               arm/any/NCHW                   NotImpl                  N/A                        "
    "1x8x128x160     N/A             1x16x128x160    0.188   0.180   0.230   0.185   10.00%    0.000   0.00   \n"
    "sigmoid              arm/float/NCHW                 NotImpl                  N/A                        "
    "1x1x256x320     N/A             1x1x256x320     0.095   0.090   0.121   0.094   5.05%    0.000   0.00   \n"
    "\n"
)


def _tiny_onnx(path):
    """A four-node ONNX model that ONNX Runtime runs node for node (no fusion, no layout change)."""
    from onnx import TensorProto, helper, numpy_helper, save

    scale = numpy_helper.from_array(np.full((1, 4, 1, 1), 0.5, np.float32), "scale")
    nodes = [helper.make_node("Mul", ["img", "scale"], ["scaled"], name="mul_0"),
             helper.make_node("Sigmoid", ["scaled"], ["gate"], name="sigmoid_0"),
             helper.make_node("Add", ["gate", "img"], ["summed"], name="add_0"),
             helper.make_node("ReduceMean", ["summed"], ["alpha"], name="reduce_mean_0", axes=[1], keepdims=1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 4, 64, 64])],
                              [helper.make_tensor_value_info("alpha", TensorProto.FLOAT, [1, 1, 64, 64])], [scale])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return nodes


def test_ort_profile_names_the_models_nodes(tmp_path, monkeypatch):
    """A real ONNX Runtime profile of a model built here: one row per node, named and typed as in the model,
    warm-up runs left out, the profiler's JSON removed and nothing written to the working directory."""
    import hashlib

    nodes = _tiny_onnx(tmp_path / "tiny.onnx")
    sha = hashlib.sha256((tmp_path / "tiny.onnx").read_bytes()).hexdigest()
    manifest = {"schema": "edgematte.manifest/1", "tools": {},
                "model": {"name": "tiny", "input_shape": [1, 4, 64, 64]}, "reference": {},
                "artefacts": [{"path": "tiny.onnx", "format": "onnx", "target": "any", "precision": "fp32",
                               "sha256": sha, "parity": test_bench_adb.PARITY}]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    x = np.random.default_rng(0).random((1, 4, 64, 64), dtype=np.float32)
    profile = profile_artefact(tmp_path, "tiny.onnx", threads=1, runs=4, warmup=2,
                               make_call=lambda matter: (lambda: matter.backend.run(x)))
    rows = profile["rows"]
    assert [(r["node"], r["op_type"]) for r in rows] == [(n.name, n.op_type) for n in nodes]
    assert [r["layer"] for r in rows] == [n.output[0] for n in nodes]  # the tensor each node writes
    assert [r["kernel"] for r in rows] == [n.name for n in nodes] and all(r["calls"] == 1 for r in rows)
    assert all(r["ms"] > 0 for r in rows) and profile["runs"] == 4
    assert sum(r["share"] for r in rows) == pytest.approx(1.0, abs=1e-9)
    assert sum(t["ms"] for t in profile["by_type"]) == pytest.approx(profile["total_ms"])
    assert 0 < profile["total_ms"] <= profile["run_ms"]
    assert profile["runtime"] == "onnxruntime" and "ONNX Runtime" in profile["profiler"]
    assert list(work.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "manifest.json",
                                                                                          "tiny.onnx"]


def test_ort_kernels_of_its_own_layout_map_back_to_the_models_layers(tmp_path):
    """ONNX Runtime's NCHWc pass renames a fused Conv+Relu after the tensor it writes (``r_nchwc``) and adds
    ReorderOutput copies; events as its profiler writes them (captured from onnxruntime 1.23)."""
    from onnx import TensorProto, helper, numpy_helper, save

    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"], name="conv2d_0", pads=[1, 1, 1, 1]),
                               helper.make_node("Relu", ["c"], ["r"], name="relu_0")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 4, 32, 32])], [weight])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(tmp_path / "m.onnx"))

    def run(ts, conv_us, reorder_us):
        return [{"cat": "Node", "ts": ts + 3, "dur": conv_us, "name": "r_nchwc_kernel_time",
                 "args": {"op_name": "Conv", "provider": "CPUExecutionProvider"}},
                {"cat": "Node", "ts": ts + 9, "dur": reorder_us, "name": "ReorderOutput_kernel_time",
                 "args": {"op_name": "ReorderOutput", "provider": "CPUExecutionProvider"}},
                {"cat": "Session", "ts": ts, "dur": conv_us + reorder_us + 20, "name": "model_run"}]

    events = run(100, 124, 24) + run(400, 41, 8) + run(600, 28, 6)
    profile = ort_profile(events, skip_runs=1, names=onnx_names(tmp_path / "m.onnx"))
    assert [(r["node"], r["layer"], r["op_type"], r["kernel"]) for r in profile["rows"]] == [
        ("relu_0", "r", "Conv", "r_nchwc"), (None, "ReorderOutput", "ReorderOutput", "ReorderOutput")]
    assert [r["ms"] for r in profile["rows"]] == [pytest.approx(0.0345), pytest.approx(0.007)]
    assert profile["runs"] == 2 and profile["run_ms"] == pytest.approx((69 + 54) / 2 / 1000)
    assert ort_profile(events, 1)["rows"][0]["layer"] == "r_nchwc"  # without the model, ONNX Runtime's names
    with pytest.raises(ValueError, match="none after the 3 warm-up runs"):
        ort_profile(events, 3)


def test_paddle_profiler_ops_are_named_by_the_program_the_predictor_ran():
    """paddle.profiler's chrome trace (``Operator`` events of each ``ProfileStep``, as paddlepaddle 2.6 writes
    them) read against the optimized program's ops; a program that does not match leaves op types and indices."""
    def step(ts, durations):
        ops = [{"cat": "Operator", "name": f"{kind}[{us} us]", "ts": ts + 10 * i, "dur": us}
               for i, (kind, us) in enumerate(durations)]
        return ops + [{"cat": "ProfileStep", "name": f"ProfileStep#{ts}", "ts": ts, "dur": 100}]

    events = step(0, [("fused_conv2d", 600.0), ("pool2d", 200.0)]) + step(1000, [("fused_conv2d", 400.0),
                                                                                ("pool2d", 100.0)])
    program = [("fused_conv2d", "relu_0.tmp_0"), ("pool2d", "pool2d_0.tmp_0")]
    profile = paddle_profile(events, program)
    assert [(r["layer"], r["op_type"], r["ms"]) for r in profile["rows"]] == [
        ("relu_0.tmp_0", "fused_conv2d", pytest.approx(0.5)), ("pool2d_0.tmp_0", "pool2d", pytest.approx(0.15))]
    assert profile["runs"] == 2 and profile["named_by_program"] is True
    other = paddle_profile(events, [("conv2d", "x")])
    assert [r["layer"] for r in other["rows"]] == ["fused_conv2d #0", "pool2d #1"] and not other["named_by_program"]


def test_benchmark_model_op_profile_is_read_from_its_real_format():
    profile = parse_benchmark_model_profile(BENCHMARK_MODEL_OUTPUT + OP_PROFILE)
    rows = [(r["layer"], r["op_type"], r["node"], round(r["ms"], 6), r["calls"]) for r in profile["rows"]]
    assert rows == [
        ("Delegate/Convolution (NHWC, F32) IGEMM:0", "Convolution (NHWC, F32) IGEMM", None, 1.18, 1),
        ("Delegate/Convolution (NHWC, F32) GEMM:1", "Convolution (NHWC, F32) GEMM", None, 0.39, 2),
        ("Delegate/Convolution (NHWC, F32) DWConv:2", "Convolution (NHWC, F32) DWConv", None, 0.227, 1),
        ("model/tf.compat.v1.image.resize_bilinear/ResizeBilinear", "RESIZE_BILINEAR", "node 57", 0.598, 1),
        ("model/tf.concat_3/concat", "CONCATENATION", "node 58", 0.097, 1),
        ("alpha", "LOGISTIC", "node 61", 0.049, 1)]
    assert profile["total_ms"] == pytest.approx(2.541)
    assert sum(r["share"] for r in profile["rows"]) == pytest.approx(1.0)
    assert [(t["op_type"], t["count"], t["ms"], t["calls"]) for t in profile["by_type"]] == [
        ("Convolution (NHWC, F32) IGEMM", 1, 1.18, 1), ("RESIZE_BILINEAR", 1, 0.598, 1),
        ("Convolution (NHWC, F32) GEMM", 1, 0.39, 2), ("Convolution (NHWC, F32) DWConv", 1, 0.227, 1),
        ("CONCATENATION", 1, 0.097, 1), ("LOGISTIC", 1, 0.049, 1)]
    assert profile["by_type"][0]["share"] == pytest.approx(1.18 / 2.541)
    assert (profile["nodes_executed"], profile["runs"], profile["run_ms"], profile["table"]) == (
        6, 20, pytest.approx(2.65035), "Run Order")

    older = parse_benchmark_model_profile(OP_PROFILE_WITH_START)
    assert [(r["layer"], r["op_type"], r["ms"]) for r in older["rows"]] == [
        ("model/tf.compat.v1.image.resize_bilinear/ResizeBilinear", "RESIZE_BILINEAR", 0.598),
        ("model/tf.concat_3/concat", "CONCATENATION", 0.097)]
    assert [t["op_type"] for t in older["by_type"]] == ["RESIZE_BILINEAR", "CONCATENATION"]  # aggregated here
    with pytest.raises(ValueError, match="enable_op_profiling"):
        parse_benchmark_model_profile(BENCHMARK_MODEL_OUTPUT)


def test_paddle_lite_profile_is_read_from_its_real_format():
    profile = parse_paddle_lite_profile(BENCHMARK_BIN_OUTPUT + LITE_PROFILE)
    assert [(r["layer"], r["op_type"], r["ms"], r["kernel"], r["remark"]) for r in profile["rows"]] == [
        ("conv2d #0 (1x8x128x160)", "conv2d", 0.912, "arm/float/NCHW conv_3x3s2_direct_fp32", "3x3p1s2g1d1BiasRelu"),
        ("depthwise_conv2d #1 (1x8x128x160)", "depthwise_conv2d", 0.254, "arm/float/NCHW conv_depthwise_3x3_fp32",
         "3x3p1s1g8d1BiasRelu"),
        ("bilinear_interp_v2 #2 (1x8x128x160)", "bilinear_interp_v2", 0.431, "arm/float/NCHW NotImpl", "N/A"),
        ("concat #3 (1x16x128x160)", "concat", 0.188, "arm/any/NCHW NotImpl", "N/A"),
        ("sigmoid #4 (1x1x256x320)", "sigmoid", 0.095, "arm/float/NCHW NotImpl", "N/A")]
    assert profile["total_ms"] == pytest.approx(1.88) and profile["excluded_warmups"] == 1
    assert [round(r["share"], 4) for r in profile["rows"]] == [0.4851, 0.1351, 0.2293, 0.1, 0.0505]  # as printed
    assert parse_paddle_lite_profile(BENCHMARK_BIN_OUTPUT) is None  # a build without the profiler


def test_bench_profile_on_the_host_writes_tables_and_plots(tiny_conversion, tmp_path, monkeypatch):
    """ONNX Runtime and Paddle Inference (the reference) profile; LiteRT times each op alone."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    out = tmp_path / "bench"
    r = run_cli("bench", tiny_conversion, "--threads", "1", "--runs", "2", "--warmup", "1", "--size", "160x120",
                "--artefacts", "model.onnx,reference,model_fp32.tflite", "--profile", "-o", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "bench.json").read_text())
    assert [x["artefact"] for x in doc["results"]] == ["model.onnx", "reference", "model_fp32.tflite"]
    assert all("error" not in x and x["model_s"]["n"] == 2 for x in doc["results"])  # timed runs as without it
    entries = {e["artefact"]: e for e in doc["profiles"]}
    md = (out / "bench.md").read_text()
    for stem, runtime in (("profile_model.onnx", "onnxruntime"), ("profile_reference", "paddle_inference"),
                          ("profile_model_fp32.tflite", "litert")):
        assert entries[stem[len("profile_"):]]["files"] == [f"{stem}.json", f"{stem}.md", f"{stem}.png"]
        for name in entries[stem[len("profile_"):]]["files"]:
            assert f"[{name}]({name})" in md
        profile = json.loads((out / f"{stem}.json").read_text())
        assert profile["schema"] == "edgematte.op_profile/1" and profile["runtime"] == runtime
        assert profile["runs"] == 2 and len(profile["rows"]) > 100
        assert sum(r["share"] for r in profile["rows"]) == pytest.approx(1.0)
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        text = (out / f"{stem}.md").read_text()
        assert "## Time per op type" in text and "| op type | ops | ms per run | share |" in text
    # LiteRT: one row per op of the .tflite that runs alone, in the model's order, named by the tensor it writes
    litert = json.loads((out / "profile_model_fp32.tflite.json").read_text())
    ops = tflite_ops(tiny_conversion / "model_fp32.tflite")
    assert litert["not_run_alone"] == [] and [r["index"] for r in litert["rows"]] == list(range(len(ops)))
    assert [(r["layer"], r["op_type"]) for r in litert["rows"]] == [(op["outputs"][0]["name"], op["op"]) for op in ops]
    assert litert["whole_model_ms"] > 0 and "CONV_2D" in {t["op_type"] for t in litert["by_type"]}
    assert "each op timed alone in a one-op model" in (out / "profile_model_fp32.tflite.md").read_text()
    onnx = json.loads((out / "profile_model.onnx.json").read_text())
    import onnx as onnx_package

    graph = onnx_package.load(str(tiny_conversion / "model.onnx")).graph
    outputs = {n.name: n.output[0] for n in graph.node}
    mapped = [r for r in onnx["rows"] if r["node"] is not None]
    assert len(mapped) > 100 and all(r["layer"] == outputs[r["node"]] for r in mapped)  # the Paddle variables
    assert {r["op_type"] for r in onnx["rows"] if r["node"] is None} <= {"ReorderInput", "ReorderOutput"}
    reference = json.loads((out / "profile_reference.json").read_text())
    assert reference["named_by_program"] is True and "relu_0.tmp_0" in {r["layer"] for r in reference["rows"]}
    assert list(work.iterdir()) == []  # no profiler file left in the working directory
    marker = json.loads((out / ".edgematte-output.json").read_text())["entries"]
    assert {"profile_model.onnx.md", "profile_reference.png", "bench.md"} <= set(marker)
    assert r.stderr.splitlines()[-1].endswith(f"{out}/profile_model_fp32.tflite.png")

    # a later run without --profile takes the earlier profiles away (they are no longer linked); a file of the
    # user's named like one stays
    (out / "profile_mine.md").write_text("notes")
    r = run_cli("bench", tiny_conversion, "--threads", "1", "--runs", "2", "--warmup", "1", "--size", "160x120",
                "--artefacts", "model.onnx", "-o", out)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.glob("profile_*")) == ["profile_mine.md"]
    marker = json.loads((out / ".edgematte-output.json").read_text())["entries"]
    assert not [n for n in marker if n.startswith("profile_")] and "bench.md" in marker


def test_without_litert_flatbuffer_tools_litert_says_why_it_has_no_profile(tiny_conversion, monkeypatch):
    """A runtime-only install (tflite_runtime, no ai-edge-litert) cannot cut one-op models: one line says so, nothing
    is timed."""
    from edgematte.runtime import tflite_flatbuffer

    monkeypatch.setattr(tflite_flatbuffer, "flatbuffer_tools", lambda: None)
    answer = profile_artefact(tiny_conversion, "model_fp32.tflite", threads=1, runs=2, warmup=1,
                              make_call=lambda matter: pytest.fail("nothing is timed"))
    assert answer == {"artefact": "model_fp32.tflite", "threads": 1,
                      "unsupported": "LiteRT: no per-op profiler in its Python interpreter, and timing each op alone "
                                     "needs LiteRT's flatbuffer tools (ai-edge-litert), not installed here (on a "
                                     "phone, bench --target adb: runs benchmark_model --enable_op_profiling=true)"}


def test_a_board_over_ssh_profiles_onnx_with_the_shipped_runner(board, tiny_conversion):
    """The bundle's runner profiles on the board: ONNX Runtime's profiler, and LiteRT op by op (this board's
    Python has LiteRT's flatbuffer tools; a board without them says so, as on the host)."""
    target, remote_tmp, _ = board
    manifest = read_manifest(tiny_conversion)
    profile = target.profile(manifest, Configuration("model.onnx", 1), runs=2, warmup=1, size=(160, 120))
    assert profile.get("runtime") == "onnxruntime", profile
    assert profile["runs"] == 2 and sum(r["share"] for r in profile["rows"]) == pytest.approx(1.0)
    assert "Conv" in {t["op_type"] for t in profile["by_type"]}
    tflite = target.profile(manifest, Configuration("model_fp32.tflite", 1), runs=2, warmup=1, size=(160, 120))
    assert tflite.get("runtime") == "litert", tflite
    assert len(tflite["rows"]) == len(tflite_ops(tiny_conversion / "model_fp32.tflite"))
    assert list(remote_tmp.iterdir()) == []


def test_bench_profile_over_adb_runs_the_tools_again_with_their_profilers(phone, conversion, tmp_path, monkeypatch):
    server, device = phone
    tools = {"tflite": str(fake_tool(tmp_path / "benchmark_model", BENCHMARK_MODEL_OUTPUT + OP_PROFILE)),
             "nb": str(fake_tool(tmp_path / "benchmark_bin", BENCHMARK_BIN_OUTPUT + LITE_PROFILE))}
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(server.port))
    monkeypatch.setenv("EDGEMATTE_ADB", str(ADB))
    doc = session.benchmark(conversion, target="adb:R58M12345AB", threads=[4], runs=20, warmup=3,
                            artefacts=["model_fp32.tflite", "model_arm.nb"], out=tmp_path / "b", adb_tools=tools,
                            profile=True)
    timed, profiled = [line for line in device.commands if "./benchmark_model" in line]
    assert "--enable_op_profiling" not in timed and profiled.endswith(
        "--report_peak_memory_footprint=true --enable_op_profiling=true 2>&1); echo EDGEMATTE_EXIT=$?")
    assert doc["results"][0]["model_s"]["median"] == pytest.approx(0.05999)  # the timed run's, not the profiled one's
    assert [e["runtime"] for e in doc["profiles"]] == ["benchmark_model", "benchmark_bin"]
    tflite = json.loads((tmp_path / "b" / "profile_model_fp32.tflite.json").read_text())
    assert tflite["rows"][3]["layer"] == "model/tf.compat.v1.image.resize_bilinear/ResizeBilinear"
    assert "| RESIZE_BILINEAR | 1 | 0.598 | 23.5 % |" in (tmp_path / "b" / "profile_model_fp32.tflite.md").read_text()
    assert "kernels, not layers" in (tmp_path / "b" / "profile_model_arm.nb.md").read_text()
    assert not any((device.root / "data/local/tmp").iterdir())

    plain = AdbTarget("adb:R58M12345AB", tools={"nb": str(fake_tool(tmp_path / "plain_bin", BENCHMARK_BIN_OUTPUT))},
                      adb=server.adb())
    answer = plain.profile(read_manifest(conversion), Configuration("model_arm.nb", 1), 5, 1, (64, 64))
    assert answer["unsupported"].startswith("benchmark_bin printed no profiler table (build Paddle Lite with "
                                            "--with_profile=ON")
    assert "error" in plain.profile(read_manifest(conversion), Configuration("model.onnx", 1), 5, 1, (64, 64))


def test_qemu_says_it_has_no_profiler(conversion):
    from edgematte.bench.targets.qemu import QemuTarget

    target = QemuTarget.__new__(QemuTarget)  # no root file system is needed to answer this
    target.name = "qemu-cortex-a72"
    answer = target.profile(read_manifest(conversion), Configuration("model_fp32.tflite", 1), 5, 1, (64, 64))
    assert answer["unsupported"].startswith("qemu-cortex-a72: no per-op profile under emulation")
