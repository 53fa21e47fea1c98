"""The adaptive_pool_windows repair: paddle2onnx's adaptive pools are wrong, found, judged, and replaced exactly.

The reference is Paddle itself: Paddle Inference with the broken oneDNN fusion pass deleted
(docs/toolchain.md, trap 8) for whole nets, Paddle dygraph for the pooling replacement alone. The nets are
tests/test_converter_onnx.py's PyramidNet (input 4x the pooled grid), converted by plain paddle2onnx and
repaired here through the repair's own entry point (no onnxsim, no other repair).
"""

import subprocess
import sys
import textwrap

import numpy as np
import onnx
import onnxruntime
import paddle
import paddle.nn.functional as F
import pytest
from paddle.base.proto import framework_pb2

from edgematte.converter.onnx import run_paddle2onnx
from edgematte.converter.program import locate_model_files, parse_program, read_program
from edgematte.converter.repairs.base import RepairContext
from edgematte.converter.repairs.onnx import adaptive_pool_windows as repair
from edgematte.converter.repairs.onnx.graph import attr
from edgematte.core.errors import EdgematteError
from tests.test_converter_onnx import (
    EXPECTED_ACTIONS,
    GRIDS,
    PARITY_TOLERANCE,
    _build_pyramid_net,
    _paddle_reference,
    _photo,
)

BROKEN_THRESHOLD = 1e-3  # the unrepaired graph must be off by at least this much


def _context(model_dir):
    model_file = locate_model_files(model_dir).model
    program = parse_program(read_program(model_file).program_bytes, str(model_file))
    return RepairContext(where=str(model_file), paddle_program=program)


@pytest.fixture(scope="module", params=GRIDS, ids=lambda g: f"grid{g[0]}x{g[1]}")
def converted(request, tmp_path_factory):
    """(grid, paddle model dir, plain paddle2onnx .onnx, repaired model, the repair's matches) for one grid."""
    grid = request.param
    root = tmp_path_factory.mktemp(f"pyramid{grid[0]}x{grid[1]}")
    model_dir = _build_pyramid_net(root / "paddle", grid)
    raw = root / "paddle2onnx.onnx"
    run_paddle2onnx(model_dir, raw)
    model = onnx.load(str(raw))
    matches = repair.REPAIR.apply(model, _context(model_dir))
    onnx.checker.check_model(model, full_check=True)
    return grid, model_dir, raw, model, matches


def test_every_adaptive_pool_is_found_and_judged_correctly(converted):
    grid, _, _, model, matches = converted
    records = [m.record for m in matches]
    assert [r["action"] for r in records] == EXPECTED_ACTIONS[grid]
    assert [m.changed for m in matches] == [a == "replaced" for a in EXPECTED_ACTIONS[grid]]
    assert [tuple(r["output_hw"]) for r in records] == [
        (2, 2), (4, 4), (6, 6), ((2 * grid[0] + 2) // 3, (2 * grid[1] + 2) // 3), (3, 3)]
    assert [r["pooling"] for r in records] == ["avg"] * 4 + ["max"]
    assert all(tuple(r["input_hw"]) == grid for r in records)
    for r in records:
        if r["action"] == "replaced":
            assert r["self_check_max_abs"] <= 1e-6
            assert "MatMul" not in r["replacement"]  # explicit windows, never a dense matrix product
    # The ordinary 3x3 stride-1 pool is still there (replacements only use 1-D kernels).
    kernels = [list(attr(n, "kernel_shape")) for n in model.graph.node if n.op_type == "AveragePool"]
    assert [3, 3] in kernels
    assert not any(n.op_type == "MatMul" and "exact_adaptive" in n.name for n in model.graph.node)


def test_repaired_graph_matches_paddle_inference(converted):
    grid, model_dir, _, model, _ = converted
    x = _photo((4 * grid[0], 4 * grid[1]))
    reference = _paddle_reference(model_dir, x)
    got = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"img": x})[0]
    err = float(np.abs(got - reference).max())
    print(f"grid {grid}: repaired paddle2onnx graph vs Paddle Inference max abs {err:.3g}")
    assert got.shape == reference.shape and 0.05 < reference.std()
    assert err <= PARITY_TOLERANCE


# Measured with this net: unrepaired grid 8x8 is off by about 0.03, grid 7x10 by about 0.06.
def test_unrepaired_graph_is_measurably_wrong(converted):
    grid, model_dir, raw, _, _ = converted
    x = _photo((4 * grid[0], 4 * grid[1]))
    if grid == (4, 4):
        # paddle2onnx writes stride 0 for 4 -> 6 bins: ONNX Runtime dies with SIGFPE, so run it apart.
        script = textwrap.dedent(f"""
            import numpy as np, onnxruntime
            s = onnxruntime.InferenceSession({str(raw)!r}, providers=["CPUExecutionProvider"])
            s.run(None, {{"img": np.zeros((1, 3, 16, 16), np.float32)}})
            print("ran")
        """)
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        print(f"grid {grid}: unrepaired ONNX in ONNX Runtime -> return code {done.returncode}")
        assert done.returncode != 0 and "ran" not in done.stdout
        strides = [list(attr(n, "strides")) for n in onnx.load(str(raw)).graph.node if n.op_type == "AveragePool"]
        assert [0, 0] in strides
        return
    reference = _paddle_reference(model_dir, x)
    session = onnxruntime.InferenceSession(str(raw), providers=["CPUExecutionProvider"])
    err = float(np.abs(session.run(None, {"img": x})[0] - reference).max())
    print(f"grid {grid}: UNREPAIRED ONNX vs Paddle Inference max abs {err:.3g}")
    assert err >= BROKEN_THRESHOLD


def _replacement_model(in_hw, out_hw, kind):
    nodes, constants = repair.exact_adaptive_pool_nodes("x", "y", in_hw, out_hw, kind, "t")
    graph = onnx.helper.make_graph(
        nodes, "t", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, *in_hw])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, *out_hw])], initializer=constants)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 11)])
    model.ir_version = 6
    onnx.checker.check_model(model, full_check=True)
    return model, nodes


# Sizes: even and uneven, H != W, bins above the input size (upsampling), single rows/columns, 1 bin.
REPLACEMENT_CASES = [
    ((8, 8), (6, 6)), ((7, 10), (4, 4)), ((4, 4), (6, 6)), ((7, 10), (6, 6)), ((16, 16), (6, 6)),
    ((13, 5), (3, 7)), ((1, 9), (1, 4)), ((5, 1), (9, 2)), ((32, 24), (5, 1)), ((9, 11), (9, 11)),
    ((3, 17), (2, 6)), ((6, 6), (4, 4)), ((12, 20), (5, 3)), ((2, 2), (7, 5)),
]


@pytest.mark.parametrize("kind", ["avg", "max"])
def test_replacement_equals_paddle_adaptive_pooling(kind):
    paddle_pool = {"avg": F.adaptive_avg_pool2d, "max": F.adaptive_max_pool2d}[kind]
    rng = np.random.default_rng(1)
    worst = 0.0
    for in_hw, out_hw in REPLACEMENT_CASES:
        model, nodes = _replacement_model(in_hw, out_hw, kind)
        assert {n.op_type for n in nodes} <= {"AveragePool", "MaxPool", "Gather", "Concat", "Identity"}
        x = rng.standard_normal((1, 2, *in_hw)).astype(np.float32)
        session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        got = session.run(None, {"x": x})[0]
        want = paddle_pool(paddle.to_tensor(x), list(out_hw)).numpy()
        assert got.shape == want.shape == (1, 2, *out_hw), (in_hw, out_hw)
        err = float(np.abs(got - want).max())
        assert err <= 1e-6, (in_hw, out_hw, err)
        worst = max(worst, err)
    print(f"{kind}: worst replacement error over {len(REPLACEMENT_CASES)} size pairs {worst:.3g}")


def test_replacement_stays_small():
    """Per axis at most one pool per distinct window size, one Concat and one Gather."""
    _, nodes = _replacement_model((8, 8), (6, 6), "avg")  # all windows of size 2 at starts 0,1,2,4,5,6
    assert [n.op_type for n in nodes] == ["AveragePool", "Gather", "AveragePool", "Gather"]
    _, nodes = _replacement_model((16, 7), (4, 7), "avg")  # 16 -> 4 tiles (one strided pool), 7 -> 7 identity
    assert [n.op_type for n in nodes] == ["AveragePool"]
    assert list(attr(nodes[0], "strides")) == [4, 1]


def test_adaptive_windows_follow_paddles_rule():
    # Hand-computed: bin i covers [floor(i*in/out), ceil((i+1)*in/out)).
    assert repair.adaptive_windows(8, 6) == [(0, 2), (1, 3), (2, 4), (4, 6), (5, 7), (6, 8)]
    assert repair.adaptive_windows(4, 6) == [(0, 1), (0, 2), (1, 2), (2, 3), (2, 4), (3, 4)]
    assert repair.adaptive_windows(7, 4) == [(0, 2), (1, 4), (3, 6), (5, 7)]
    assert repair.adaptive_windows(10, 5) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]


# ---------------------------------------------------------------------------------- no pattern


def _program_with_a_plain_pool():
    """A Paddle program whose only pool2d is an ordinary 3x3 stride-1 average pool (``adaptive=False``)."""
    program = framework_pb2.ProgramDesc()
    op = program.blocks.add(idx=0, parent_idx=-1).ops.add()
    op.type = "pool2d"
    for slot, name in (("X", "x"), ("Out", "y")):
        var = (op.inputs if slot == "X" else op.outputs).add()
        var.parameter, var.arguments[:] = slot, [name]
    for name, value in (("adaptive", False), ("ksize", [3, 3]), ("pooling_type", "avg")):
        a = op.attrs.add()
        a.name = name
        if isinstance(value, bool):
            a.type, a.b = framework_pb2.BOOLEAN, value
        elif isinstance(value, list):
            a.type = framework_pb2.INTS
            a.ints.extend(value)
        else:
            a.type, a.s = framework_pb2.STRING, value
    return program


def _plain_pool_graph():
    """The ONNX graph of that program: on an 8x8 input its 3x3 stride-1 pool looks exactly like adaptive 8 -> 6."""
    node = onnx.helper.make_node("AveragePool", ["x"], ["y"], name="pool", kernel_shape=[3, 3], strides=[1, 1])
    graph = onnx.helper.make_graph(
        [node], "plain", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 8, 8])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 6, 6])])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 11)])
    model.ir_version = 6
    return model


def test_a_program_without_adaptive_pools_matches_nothing_and_changes_nothing():
    program = _program_with_a_plain_pool()
    assert repair.read_adaptive_pools(program) == []
    model = _plain_pool_graph()
    before = model.SerializeToString()
    assert repair.REPAIR.apply(model, RepairContext(where="plain", paddle_program=program)) == []
    assert model.SerializeToString() == before


def test_the_paddle_program_is_required():
    with pytest.raises(ValueError, match="Paddle program"):
        repair.REPAIR.apply(_plain_pool_graph(), RepairContext(where="plain"))


def test_pools_are_repaired_when_onnx_cannot_infer_their_input_shape(tmp_path):
    """PP-Matting's first pool reads a Resize whose sizes ONNX shape inference does not fold: no static input
    shape on the ONNX side. The frozen Paddle program's declared shape stands in, and the result is exact."""
    grid = (7, 10)
    model_dir = _build_pyramid_net(tmp_path / "paddle", grid)
    raw = tmp_path / "paddle2onnx.onnx"
    run_paddle2onnx(model_dir, raw)
    model = onnx.load(str(raw))
    for dim in model.graph.input[0].type.tensor_type.shape.dim:
        dim.dim_param = "dynamic"  # ONNX now knows no size anywhere
    del model.graph.value_info[:]
    context = _context(model_dir)
    unknown = onnx.ModelProto()
    unknown.CopyFrom(model)
    program_without_shapes = framework_pb2.ProgramDesc()
    program_without_shapes.CopyFrom(context.paddle_program)
    for var in program_without_shapes.blocks[0].vars:
        if var.type.type == framework_pb2.VarType.LOD_TENSOR and not var.persistable:
            del var.type.lod_tensor.tensor.dims[:]
    with pytest.raises(EdgematteError, match="is not static; freeze the input shape first"):
        repair.REPAIR.apply(unknown, RepairContext(context.where, program_without_shapes))
    matches = repair.REPAIR.apply(model, context)
    assert [m.record["action"] for m in matches] == EXPECTED_ACTIONS[grid]
    x = _photo((4 * grid[0], 4 * grid[1]))
    got = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"img": x})[0]
    assert float(np.abs(got - _paddle_reference(model_dir, x)).max()) <= PARITY_TOLERANCE
