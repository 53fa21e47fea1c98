"""The zero_d_fill_constant repair: a Paddle Lite .nb aborts on a 0-D fill_constant; with shape [1] it runs and
computes what Paddle computes. The program is `argmax(conv(x)) == 1`, as PaddleSeg's PP-HumanMatting writes it."""

import subprocess
import sys

import numpy as np
import paddle
import pytest

from edgematte.converter.paddle_lite import optimize
from edgematte.converter.program import parse_program
from edgematte.converter.repairs.base import RepairContext
from edgematte.converter.repairs.paddle_program import zero_d_fill_constant as repair
from edgematte.runtime.backends import open_backend

SHAPE = (1, 3, 32, 32)


@pytest.fixture(scope="module")
def argmax_equal(tmp_path_factory):
    folder = tmp_path_factory.mktemp("argmax_equal")
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            x = paddle.static.data("x", list(SHAPE), "float32")
            labels = paddle.argmax(paddle.static.nn.conv2d(x, 3, 1), axis=1)
            out = paddle.unsqueeze(paddle.cast(labels == 1, "float32"), 1)
        executor = paddle.static.Executor(paddle.CPUPlace())
        executor.run(startup)
        paddle.static.save_inference_model(str(folder / "model"), [x], [out], executor, program=main)
    finally:
        paddle.disable_static()
    return folder


def _zero_d_constants(program):
    block = program.blocks[0]
    dims = {v.name: list(v.type.lod_tensor.tensor.dims) for v in block.vars}
    return [op for op in block.ops if op.type == "fill_constant"
            and dims[[a for s in op.outputs for a in s.arguments][0]] == []]


def test_paddle_writes_the_comparison_with_a_0d_constant(argmax_equal):
    program = parse_program((argmax_equal / "model.pdmodel").read_bytes())
    assert len(_zero_d_constants(program)) == 1


def test_without_the_repair_the_nb_aborts_the_process(argmax_equal, tmp_path, monkeypatch):
    from edgematte.converter.repairs import registry

    monkeypatch.setitem(registry.ORDER, "paddle_program", ("paddle_program.relu6_threshold",))
    optimize(argmax_equal, tmp_path / "unrepaired.nb", "x86")
    code = ("import numpy as np, edgematte\nfrom edgematte.runtime.backends import open_backend\n"
            f"open_backend('paddle_lite', {str(tmp_path / 'unrepaired.nb')!r}, threads=1)"
            f".run(np.zeros({SHAPE}, np.float32))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode < 0 and "no valid out_shape" in run.stderr  # SIGABRT, measured


def test_with_the_repair_the_nb_runs_and_equals_paddle(argmax_equal, tmp_path):
    info = optimize(argmax_equal, tmp_path / "model.nb", "x86")
    (record,) = [r for r in info.applied_repairs if r["name"] == "zero_d_fill_constant"]
    assert (record["matched"], record["changed"]) == (1, 1)
    assert record["records"][0]["action"] == "reshaped"
    assert record["records"][0]["reason"] == "read only by equal against operands of rank >= 1"
    for seed in range(4):
        x = np.random.RandomState(seed).uniform(-1, 1, SHAPE).astype(np.float32)
        got = open_backend("paddle_lite", tmp_path / "model.nb", threads=1).run(x)
        expected = open_backend("paddle_inference", argmax_equal, threads=1).run(x)
        np.testing.assert_array_equal(got, expected)


def test_a_0d_constant_read_by_anything_else_is_kept(argmax_equal):
    program = parse_program((argmax_equal / "model.pdmodel").read_bytes())
    (constant,) = _zero_d_constants(program)
    name = constant.outputs[0].arguments[0]
    reader = program.blocks[0].ops.add()  # a reshape reading it: [1] and [] would give different shapes there
    reader.type = "reshape2"
    slot = reader.inputs.add()
    slot.parameter = "X"
    slot.arguments.append(name)
    (match,) = repair.apply(program, RepairContext())
    assert not match.changed and match.record["action"] == "kept"
    assert _zero_d_constants(program) == [constant]


def test_a_nb_that_aborts_ends_as_one_line_and_leaves_nothing(argmax_equal, tmp_path, monkeypatch):
    """Without the repair the x86 .nb aborts when it runs; the parity run is isolated in a child process, so the
    conversion stops with one line naming the file and the signal, and nothing is left behind."""
    from edgematte.converter.repairs import registry
    from edgematte.core.errors import EdgematteError
    from edgematte.pipeline.context import ConvertOptions
    from edgematte.pipeline.run import convert
    from edgematte.runtime.isolated import run_isolated

    monkeypatch.setitem(registry.ORDER, "paddle_program", ("paddle_program.relu6_threshold",))
    optimize(argmax_equal, tmp_path / "unrepaired.nb", "x86")
    with pytest.raises(EdgematteError) as caught:
        run_isolated("paddle_lite", tmp_path / "unrepaired.nb", [np.zeros(SHAPE, np.float32)])
    assert str(caught.value).startswith(f"{tmp_path / 'unrepaired.nb'}: paddle_lite crashed (SIGABRT) while running")
    assert "no valid out_shape" in str(caught.value) and "\n" not in str(caught.value)

    out = tmp_path / "conversion"
    with pytest.raises(EdgematteError) as caught:
        convert(str(argmax_equal), out, ConvertOptions(formats=("lite",), lite_targets=("x86",),
                                                       input_shape=list(SHAPE)))
    assert f"{out}/model_x86.nb: paddle_lite crashed (SIGABRT)" in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unrepaired.nb"]
