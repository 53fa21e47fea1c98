"""Native crashes are one line: ONNX shape inference, the ONNX checker and ONNX Runtime on an export's unverified
graphs run in a child process (edgematte.core.native_child), behind a static scan for attribute values known to
crash them (edgematte.converter.repairs.onnx.graph.native_hazards).

What dies, measured (onnx 1.19.1, onnxruntime 1.23.0): an AveragePool/MaxPool/Conv with strides [0, 0] kills ONNX
shape inference (and so the full checker) and ONNX Runtime's session creation with SIGFPE; a ConvTranspose with
stride 0 and an integer Div by zero kill ONNX Runtime's run with SIGFPE. The last one depends on data, so no static
scan can see it: only the child process keeps it to one line.
"""

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import onnx
import paddle
import paddle.nn as nn
import pytest
from onnx import TensorProto, helper, numpy_helper
from paddle.static import InputSpec

from edgematte.converter import onnx as converter
from edgematte.converter.repairs.onnx import graph
from edgematte.core.errors import EdgematteError
from edgematte.core.native_child import NativeChild, NativeCrash, death_line, run_native
from edgematte.core.tools import run_tool, signal_name
from edgematte.zoo.export import export_deploy_folder

from .conftest import run_cli

SIGFPE_LINE = "died with SIGFPE (signal 8)"


def _model(nodes, initializers=(), out_shape=(1, 3, 4, 4), out_type=TensorProto.FLOAT):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                          [helper.make_tensor_value_info("y", out_type, list(out_shape))],
                          initializer=list(initializers))
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 8
    return model


def _zero_stride_pool():
    """What paddle2onnx writes for an adaptive pool with more bins than inputs (4 -> 6)."""
    return _model([helper.make_node("AveragePool", ["x"], ["y"], name="pool6", kernel_shape=[1, 1], strides=[0, 0])],
                  out_shape=(1, 3, 6, 6))


def _integer_division_by_zero():
    """Valid ONNX that no attribute betrays: ONNX Runtime divides by the zero it reads at run time."""
    nodes = [helper.make_node("Cast", ["x"], ["xi"], to=TensorProto.INT32),
             helper.make_node("Div", ["xi", "zero"], ["y"], name="div")]
    return _model(nodes, [numpy_helper.from_array(np.zeros((1,), np.int32), "zero")], out_type=TensorProto.INT32)


def _feed():
    return {"x": np.ones((1, 3, 4, 4), np.float32)}


def _native_children():
    """This process's live native children (a finished job must leave none)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"edgematte.core.native_child" in cmdline:
            found.append(stat.parent.name)
    return found


# ------------------------------------------------------------------------------------------- what crashes


SESSION = "ort.InferenceSession(m.SerializeToString(), providers=['CPUExecutionProvider'])"


@pytest.mark.parametrize("case, step", [
    (_zero_stride_pool, "onnx.shape_inference.infer_shapes(m)"),
    (_zero_stride_pool, "onnx.checker.check_model(m, full_check=True)"),
    (_zero_stride_pool, SESSION),
    (_integer_division_by_zero, SESSION + ".run(None, {'x': np.ones((1, 3, 4, 4), np.float32)})"),
], ids=["shape inference", "full checker", "session", "division by zero"])
def test_these_graphs_kill_the_process_with_sigfpe(case, step, tmp_path):
    """The reproduction: run in a plain interpreter, each dies by SIGFPE (why they must not run in-process)."""
    onnx.save(case(), str(tmp_path / "m.onnx"))
    script = textwrap.dedent(f"""
        import numpy as np, onnx, onnxruntime as ort
        m = onnx.load({str(tmp_path / "m.onnx")!r})
        {step}
        print("survived")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -8 and "survived" not in done.stdout, (done.returncode, done.stderr[-2000:])


# ------------------------------------------------------------------------------------------- the parts


def test_signal_lines():
    assert signal_name(-8) == "SIGFPE" and signal_name(-6) == "SIGABRT"
    assert signal_name(0) is None and signal_name(1) is None and signal_name(None) is None
    assert death_line("out/model.onnx", "ONNX Runtime", -8) == f"out/model.onnx: ONNX Runtime {SIGFPE_LINE}"
    last_words = "m: opt died with SIGABRT (signal 6): Check failed: x"
    assert death_line("m", "opt", -6, "noise\nCheck failed: x\n") == last_words
    assert death_line("m", "tool", 3) == "m: tool exited with code 3"
    # SIGKILL names its usual sender: onnx2tf's only trace of an out-of-memory kill is its exit status
    assert death_line("m", "onnx2tf", -9, "saved_model output complete!\n") == (
        "m: onnx2tf died with SIGKILL (signal 9; the out-of-memory killer sends it when memory runs out): "
        "saved_model output complete!")
    killed = run_tool(["sh", "-c", "echo working; kill -9 $$"], what="sh", timeout_s=30)
    assert killed.error_line() == ("died with SIGKILL (signal 9; the out-of-memory killer sends it when memory runs "
                                 "out): working")


def test_the_static_scan_names_the_file_the_node_and_the_attribute():
    with pytest.raises(EdgematteError) as refused:
        graph.infer_shapes(_zero_stride_pool(), "some/model.pdmodel")
    line = str(refused.value)
    assert line.startswith("some/model.pdmodel: ONNX node 'pool6' (AveragePool) has strides=[0, 0];")
    assert "\n" not in line and "SIGFPE" in line

    conv = numpy_helper.from_array(np.ones((3, 3, 1, 1), np.float32), "w")
    cases = {
        "Conv strides": helper.make_node("Conv", ["x", "w"], ["y"], name="c", kernel_shape=[1, 1], strides=[0, 1]),
        "ConvTranspose": helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="t", strides=[0, 0]),
        "dilations": helper.make_node("MaxPool", ["x"], ["y"], name="p", kernel_shape=[2, 2], dilations=[0, 0]),
        "kernel": helper.make_node("AveragePool", ["x"], ["y"], name="k", kernel_shape=[0, 1]),
    }
    for what, node in cases.items():
        assert len(graph.native_hazards(_model([node], [conv]))) == 1, what
    # A zero stride inside an If branch is found too.
    branch = helper.make_graph([helper.make_node("MaxPool", ["x"], ["b"], name="inner", kernel_shape=[1, 1],
                                                 strides=[0, 0])], "branch", [],
                               [helper.make_tensor_value_info("b", TensorProto.FLOAT, None)])
    cond = numpy_helper.from_array(np.array(True), "cond")
    wrapped = _model([helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch)], [cond])
    assert graph.native_hazards(wrapped) == ["ONNX node 'inner' (MaxPool) has strides=[0, 0]"] * 2
    # What paddle2onnx writes for ordinary pools and convs passes.
    fine = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    assert graph.native_hazards(_model([fine])) == []
    assert [v.name for v in graph.infer_shapes(_model([fine]), "m").graph.output] == ["y"]


def test_a_crash_in_the_child_is_one_line_and_the_next_call_gets_a_fresh_child():
    with NativeChild("out/model.onnx", preload=converter.NATIVE_PRELOAD):
        with pytest.raises(NativeCrash) as crashed:
            run_native("ONNX Runtime", converter._ort_outputs, _integer_division_by_zero().SerializeToString(),
                       _feed())
        assert str(crashed.value) == f"out/model.onnx: ONNX Runtime {SIGFPE_LINE}"
        # Past the static scan (called directly), shape inference's own crash is one line too.
        with pytest.raises(NativeCrash) as crashed:
            run_native("ONNX shape inference", graph._inferred_value_infos, _zero_stride_pool().SerializeToString(),
                       False)
        assert str(crashed.value) == f"out/model.onnx: ONNX shape inference {SIGFPE_LINE}"
        # A Python exception in the child is raised again as itself; then the child still serves.
        with pytest.raises(onnx.checker.ValidationError):
            run_native("the ONNX checker", converter._full_check, onnx.ModelProto().SerializeToString())
        fine = _model([helper.make_node("Relu", ["x"], ["y"])])
        (y,) = run_native("ONNX Runtime", converter._ort_outputs, fine.SerializeToString(), _feed())
        assert np.array_equal(y, _feed()["x"])
        assert len(_native_children()) == 1
    assert _native_children() == []


# ------------------------------------------------------------------------------------------- export_onnx


class _ConvNet(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 1, 3, padding=1)

    def forward(self, img):
        return nn.functional.sigmoid(self.conv(img))


@pytest.fixture(scope="module")
def conv_net(tmp_path_factory):
    folder = tmp_path_factory.mktemp("convnet")
    paddle.seed(0)
    net = _ConvNet()
    net.eval()
    paddle.jit.save(net, str(folder / "model"), input_spec=[InputSpec([1, 3, 16, 16], "float32", "img")])
    return folder


def _append_to_paddle2onnx(monkeypatch, add):
    """paddle2onnx as usual, then ``add(model)`` edits the graph it wrote (the next model's surprise)."""
    real = converter.run_paddle2onnx

    def patched(model_dir, out_path, opset=11):
        log = real(model_dir, out_path, opset)
        model = onnx.load(str(out_path))
        add(model)
        onnx.save(model, str(out_path))
        return log

    monkeypatch.setattr(converter, "run_paddle2onnx", patched)


def _divide_the_input_by_zero(model):
    image = model.graph.input[0].name
    model.graph.node.extend([helper.make_node("Cast", [image], ["crash/int"], to=TensorProto.INT32),
                             helper.make_node("Div", ["crash/int", "crash/zero"], ["crash/div"], name="crash/div")])
    model.graph.initializer.append(numpy_helper.from_array(np.zeros((1,), np.int32), "crash/zero"))
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    model.graph.output.append(helper.make_tensor_value_info("crash/div", TensorProto.INT32, shape))


def _stride_zero_conv(model):
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    strides = next(a for a in conv.attribute if a.name == "strides")
    strides.ints[:] = [0, 0]


def test_an_export_whose_graph_kills_onnx_runtime_fails_in_one_line(conv_net, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "model.onnx"
    _append_to_paddle2onnx(monkeypatch, _divide_the_input_by_zero)
    with pytest.raises(NativeCrash) as crashed:
        converter.export_onnx(conv_net, out)
    assert str(crashed.value) == f"{out}: ONNX Runtime {SIGFPE_LINE}"
    assert list((tmp_path / "out").iterdir()) == [] and list((tmp_path / "tmp").iterdir()) == []
    assert _native_children() == []


def test_an_export_with_a_zero_stride_is_refused_before_any_native_call(conv_net, tmp_path, monkeypatch):
    _append_to_paddle2onnx(monkeypatch, _stride_zero_conv)
    with pytest.raises(EdgematteError) as refused:
        converter.export_onnx(conv_net, tmp_path / "model.onnx")
    line = str(refused.value)
    assert line.startswith(f"{conv_net / 'model.pdmodel'}: ONNX node '") and "(Conv) has strides=[0, 0]" in line
    assert not (tmp_path / "model.onnx").exists() and _native_children() == []


def test_a_normal_export_is_unchanged(conv_net, tmp_path):
    info = converter.export_onnx(conv_net, tmp_path / "model.onnx")
    assert info["simplify"]["kept"] is True and info["outputs"][0]["shape"] == [1, 1, 16, 16]
    onnx.checker.check_model(onnx.load(str(tmp_path / "model.onnx")), full_check=True)
    assert _native_children() == []


# ------------------------------------------------------------------------------------------- the CLI

FAKE_PADDLE2ONNX = '''
"""paddle2onnx as installed, then one integer division by zero appended to the graph it wrote."""
import os, subprocess, sys
import numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper

fake = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in os.environ["PYTHONPATH"].split(os.pathsep) if p != fake))
done = subprocess.run([sys.executable, "-m", "paddle2onnx.command", *sys.argv[1:]], env=env)
path = sys.argv[sys.argv.index("--save_file") + 1]
model = onnx.load(path)
image = model.graph.input[0].name
model.graph.node.extend([helper.make_node("Cast", [image], ["crash/int"], to=TensorProto.INT32),
                         helper.make_node("Div", ["crash/int", "crash/zero"], ["crash/div"])])
model.graph.initializer.append(numpy_helper.from_array(np.zeros((1,), np.int32), "crash/zero"))
shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
model.graph.output.append(helper.make_tensor_value_info("crash/div", TensorProto.INT32, shape))
onnx.save(model, path)
sys.exit(done.returncode)
'''


def test_the_cli_prints_one_line_and_leaves_nothing(tmp_path):
    fake = tmp_path / "fake"
    (fake / "paddle2onnx").mkdir(parents=True)
    (fake / "paddle2onnx" / "__init__.py").write_text("")
    (fake / "paddle2onnx" / "command.py").write_text(FAKE_PADDLE2ONNX)
    folder = export_deploy_folder("ppmattingv2", tmp_path / "d", seed=0, width=0.25, input_shape=[1, 3, 64, 64])
    repo = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake), repo]), TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "out"
    r = run_cli("convert", folder, "--to", "onnx", "-o", out, env=env)
    assert r.returncode == 1, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("edgematte: error:")]
    assert errors == [f"edgematte: error: {out}/model.onnx: ONNX Runtime {SIGFPE_LINE}"], r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["d", "fake", "tmp"]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_tool_killed_by_a_signal_says_so_in_its_one_line(tmp_path):
    """Every subprocess tool (opt, paddle2onnx, onnx2tf) reports a native abort by its signal, with its last words."""
    from edgematte.core.tools import run_tool

    abort = "import os, signal, sys; print('F1202 check failed: dims'); sys.stdout.flush(); os.abort()"
    done = run_tool([sys.executable, "-c", abort], what="fake opt", timeout_s=60)
    assert done.returncode == -6
    assert done.error_line() == "died with SIGABRT (signal 6): F1202 check failed: dims"
    quiet = run_tool([sys.executable, "-c", "import os; os.abort()"], what="fake opt", timeout_s=60)
    assert quiet.error_line() == "died with SIGABRT (signal 6)"
    failed = run_tool([sys.executable, "-c", "raise SystemExit(3)"], what="fake opt", timeout_s=60)
    assert failed.error_line() == "exit code 3"
