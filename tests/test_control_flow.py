"""Inlining ``if`` branches decided by fixed shapes and constants (edgematte/converter/control_flow.py).

Small programs are compiled here by paddle's dy2static (``paddle.jit.to_static`` + ``paddle.jit.save``), the way
PaddleSeg exports; each is run by Paddle before and after inlining, on the same inputs, and must give the same
bits. The last test does the same on PaddleSeg's own RVM export (``if downsample_ratio != 1``).
"""

import shutil

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
from paddle.static import InputSpec

from edgematte.converter.control_flow import condition_variables, inline_constant_branches
from edgematte.converter.program import parse_program, static_mode
from edgematte.converter.static_program import (
    _assign_value_op,
    _declared_attr_types,
    fetchable_static_variables,
    fold_static_values,
)
from edgematte.core.errors import EdgematteError
from tests.official_models import build_official_folder

CONTROL_FLOW = {"conditional_block", "select_input", "logical_not"}


class RatioNet(paddle.nn.Layer):
    """RVM's pattern: a scalar input ``ratio`` [1] decides whether the image is resized, convolved, resized back."""

    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 4, 3, padding=1)

    def forward(self, x, ratio):
        if ratio != 1:
            y = F.interpolate(x, scale_factor=ratio, mode="bilinear", align_corners=False)
            y = self.conv(y)
            y = F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=False)
        else:
            y = self.conv(x)
        return y * 2.0 + 1.0


class ShapeNet(paddle.nn.Layer):
    """A condition on the input's height only."""

    def forward(self, x):
        if x.shape[2] > 32:
            x = F.avg_pool2d(x, 2)
        else:
            x = x + 1.0
        return x * 3.0


class NestedNet(paddle.nn.Layer):
    """An ``if`` inside a branch: its condition is computed inside the outer branch's block."""

    def forward(self, x, ratio):
        y = x
        if ratio != 1:
            y = x * ratio
            if y.shape[2] > 32:
                y = y - 1.0
        return y + 1.0


class ValueNet(paddle.nn.Layer):
    """A condition on the image's values: never to be frozen."""

    def forward(self, x):
        if x.mean() > 0:
            x = x * 2.0
        return x + 1.0


IMAGE = InputSpec([1, 3, None, None], "float32", "x")
RATIO = InputSpec([1], "float32", "ratio")


def _export(layer, specs, folder):
    """``folder/model.pdmodel`` + ``.pdiparams`` as paddle.jit.save writes them; returns the folder."""
    was_static = not paddle.in_dynamic_mode()
    paddle.disable_static()
    try:
        paddle.seed(0)
        net = layer()
        net.eval()
        paddle.jit.save(paddle.jit.to_static(net, input_spec=specs), str(folder / "model"))
    finally:
        if was_static:
            paddle.enable_static()
    return folder


def _run(program_bytes, folder, feeds, names=(), work=None):
    """The program's outputs, then the values of ``names``, after one Paddle run on ``feeds`` (name -> array);
    the weights are ``folder``'s. Inputs the program no longer takes are not fed."""
    work = work or folder / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    (work / "model.pdmodel").write_bytes(program_bytes)
    if (folder / "model.pdiparams").is_file():  # a net without weights has none
        shutil.copyfile(folder / "model.pdiparams", work / "model.pdiparams")
    with static_mode(), paddle.static.scope_guard(paddle.static.Scope()):
        executor = paddle.static.Executor(paddle.CPUPlace())
        program, feed_names, fetches = paddle.static.load_inference_model(str(work / "model"), executor)
        values = executor.run(program, feed={n: feeds[n] for n in feed_names}, fetch_list=[*fetches, *names])
    return values[:len(fetches)], dict(zip(names, values[len(fetches):]))


def _image(h, w=None, seed=0):
    return np.random.RandomState(seed).uniform(-1, 1, (1, 3, h, w or h)).astype(np.float32)


def _block0_types(program):
    return {op.type for op in program.blocks[0].ops}


def _inline_checked(folder, feeds, rounds=1):
    """Inline ``folder``'s program with conditions from Paddle runs (``rounds`` times: nested ``if`` s need one
    run per level); check the result runs and gives the original's bits. Returns (program, reports)."""
    source = (folder / "model.pdmodel").read_bytes()
    expected, _ = _run(source, folder, feeds)
    program, reports = parse_program(source), []
    for _ in range(rounds):
        names = condition_variables(program)
        _, values = _run(program.SerializeToString(), folder, feeds, names)
        reports.append(inline_constant_branches(program, values))
    got, _ = _run(program.SerializeToString(), folder, feeds)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    return program, reports


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("control_flow")
    return {name: _export(layer, specs, (root / name)) for name, layer, specs in [
        ("ratio", RatioNet, [IMAGE, RATIO]), ("shape", ShapeNet, [IMAGE]),
        ("nested", NestedNet, [IMAGE, RATIO]), ("value", ValueNet, [IMAGE])]}


@pytest.mark.parametrize("ratio, taken, dropped", [(0.5, 1, 2), (1.0, 2, 1)])
def test_scalar_input_branch_is_inlined_bit_for_bit(exported, ratio, taken, dropped):
    folder = exported["ratio"]
    source = parse_program((folder / "model.pdmodel").read_bytes())
    assert [op.type for op in source.blocks[0].ops if op.type in CONTROL_FLOW | {"cast"}] == [
        "conditional_block", "logical_not", "conditional_block", "cast", "select_input"]
    program, [report] = _inline_checked(folder, {"x": _image(32), "ratio": np.array([ratio], np.float32)})
    assert not _block0_types(program) & CONTROL_FLOW and len(program.blocks) == 1
    assert (report.inlined, report.dropped, report.undecided) == ([taken], [dropped], [])
    assert report.removed == {"logical_not": 1, "cast": 1, "not_equal": 1, "fill_constant": 1}
    assert report.as_dict()["select_input"] == 1 and report.changed
    # The taken branch's ops, in block 0 with its variables declared there; nothing of the other branch.
    ops = [op.type for op in program.blocks[0].ops]
    assert ops.count("bilinear_interp_v2") == (2 if ratio != 1 else 0) and ops.count("conv2d") == 1
    declared = {v.name for v in program.blocks[0].vars}
    assert {a for op in program.blocks[0].ops for s in (*op.inputs, *op.outputs) for a in s.arguments} <= declared


@pytest.mark.parametrize("h, taken", [(64, 1), (16, 2)])
def test_shape_condition_is_inlined_bit_for_bit(exported, h, taken):
    folder = exported["shape"]
    source = parse_program((folder / "model.pdmodel").read_bytes())
    # shape -> slice -> greater_than: decided by the input's shape alone, so listed as static too.
    assert condition_variables(source, static_only=True) == condition_variables(source) != []
    program, [report] = _inline_checked(folder, {"x": _image(h)})
    assert report.inlined == [taken] and not _block0_types(program) & CONTROL_FLOW and len(program.blocks) == 1


@pytest.mark.parametrize("ratio, h, rounds", [(0.5, 64, 2), (0.5, 16, 2), (1.0, 64, 1)])
def test_nested_condition_is_inlined_after_one_more_run(exported, ratio, h, rounds):
    folder = exported["nested"]
    feeds = {"x": _image(h), "ratio": np.array([ratio], np.float32)}
    program, reports = _inline_checked(folder, feeds, rounds)
    assert not _block0_types(program) & CONTROL_FLOW and len(program.blocks) == 1
    if ratio != 1:  # the inner if came out with the outer branch and waited for its condition
        assert reports[0].inlined == [1] and reports[0].undecided and reports[1].undecided == []
        assert reports[1].inlined == [2 if h > 32 else 3]
    else:  # the outer branch not taken: its nested blocks go with it
        assert reports[0].dropped == [1] and reports[0].inlined == [4]


def test_unknown_condition_leaves_the_program_untouched(exported):
    folder = exported["ratio"]
    source = (folder / "model.pdmodel").read_bytes()
    program = parse_program(source)
    report = inline_constant_branches(program, {"unrelated": np.array([True])})
    assert program.SerializeToString() == source
    assert not report.changed and report.undecided == condition_variables(program)
    # A known mask alone replaces the select_input; the conditional_blocks stay.
    mask = next(a for op in program.blocks[0].ops if op.type == "select_input" for s in op.inputs
                if s.parameter == "Mask" for a in s.arguments)
    report = inline_constant_branches(program, {mask: np.array([1], np.int32)})
    assert "select_input" not in _block0_types(program) and "conditional_block" in _block0_types(program)
    assert len(report.selected) == 1 and report.inlined == [] and len(program.blocks) == 3


def test_partly_decided_program_keeps_block_indices_and_runs(exported, tmp_path):
    """Only the first condition known: its block is inlined and left empty, block 2 keeps its index and its
    conditional_block still runs there."""
    folder = exported["ratio"]
    feeds = {"x": _image(32), "ratio": np.array([0.5], np.float32)}
    program = parse_program((folder / "model.pdmodel").read_bytes())
    expected, values = _run(program.SerializeToString(), folder, feeds, condition_variables(program)[:1], tmp_path)
    report = inline_constant_branches(program, values)
    assert report.inlined == [1] and len(report.undecided) == 2
    assert [len(b.ops) for b in program.blocks][1:] == [0, 4] and "conditional_block" in _block0_types(program)
    got, _ = _run(program.SerializeToString(), folder, feeds, work=tmp_path / "b")
    np.testing.assert_array_equal(got[0], expected[0])


def test_value_conditions_are_not_static(exported):
    program = parse_program((exported["value"] / "model.pdmodel").read_bytes())
    assert condition_variables(program) != [] and condition_variables(program, static_only=True) == []


def _rename_local(program, block_index, old, new):
    block = program.blocks[block_index]
    next(v for v in block.vars if v.name == old).name = new
    for op in block.ops:
        for slot in (*op.inputs, *op.outputs):
            slot.arguments[:] = [new if a == old else a for a in slot.arguments]


def test_a_local_that_shadows_a_block0_name_is_renamed(exported, tmp_path):
    folder = exported["ratio"]
    feeds = {"x": _image(32), "ratio": np.array([0.5], np.float32)}
    expected, _ = _run((folder / "model.pdmodel").read_bytes(), folder, feeds, work=tmp_path / "a")
    program = parse_program((folder / "model.pdmodel").read_bytes())
    clash = "tmp_2"  # a variable of block 0 (the scale after the if), now also a local of the taken branch
    assert clash in {v.name for v in program.blocks[0].vars}
    _rename_local(program, 1, "conv2d_0.tmp_0", clash)
    shadowed, values = _run(program.SerializeToString(), folder, feeds, condition_variables(program), tmp_path / "b")
    np.testing.assert_array_equal(shadowed[0], expected[0])  # Paddle keeps the two apart (child scope)
    report = inline_constant_branches(program, values)
    assert report.renamed == {clash: f"{clash}.inlined1"}
    got, _ = _run(program.SerializeToString(), folder, feeds, work=tmp_path / "c")
    np.testing.assert_array_equal(got[0], expected[0])


def test_non_scalar_condition_follows_paddle_every_input_non_empty(exported, tmp_path):
    """Without is_scalar_condition Paddle runs a block iff every Input is non-empty: here both run, and the
    mask picks one."""
    folder = exported["ratio"]
    feeds = {"x": _image(32), "ratio": np.array([0.5], np.float32)}
    expected, _ = _run((folder / "model.pdmodel").read_bytes(), folder, feeds, work=tmp_path / "a")
    program = parse_program((folder / "model.pdmodel").read_bytes())
    for op in program.blocks[0].ops:
        for attr in op.attrs:
            if attr.name == "is_scalar_condition":
                attr.b = False
    names = condition_variables(program)
    # the branches' convolution weights (named by Paddle's process-wide counter: conv2d_N.w_0)
    weights = {arg for block in program.blocks[1:] for op in block.ops if op.type == "conv2d"
               for var in op.inputs if var.parameter == "Filter" for arg in var.arguments}
    assert "x" in names and weights and weights <= set(names), (names, weights)
    _, values = _run(program.SerializeToString(), folder, feeds, names, tmp_path / "b")
    report = inline_constant_branches(program, values)
    assert report.inlined == [1, 2] and report.dropped == []
    got, _ = _run(program.SerializeToString(), folder, feeds, work=tmp_path / "c")
    np.testing.assert_array_equal(got[0], expected[0])


def test_malformed_programs_and_values_are_one_line_errors(exported):
    source = (exported["ratio"] / "model.pdmodel").read_bytes()
    program = parse_program(source)
    cond, not_cond, mask = condition_variables(program)
    for values, message in [({cond: np.array([1.0], np.float32)}, "needs a non-empty bool tensor"),
                            ({cond: np.zeros([0], bool)}, "needs a non-empty bool tensor"),
                            ({mask: np.array([2], np.int32)}, "does not index its 2 inputs"),
                            ({cond: np.array([True]), not_cond: np.array([False]), mask: np.array([0], np.int32)},
                             "the condition and mask values disagree")]:
        edited = parse_program(source)
        with pytest.raises(EdgematteError, match=message) as e:
            inline_constant_branches(edited, values)
        assert "\n" not in str(e.value) and edited.SerializeToString() == source  # nothing half done
    block = next(a for op in program.blocks[0].ops for a in op.attrs if a.name == "sub_block")
    block.block_idx = 7
    with pytest.raises(EdgematteError, match="sub_block 7 is not a block of the program"):
        inline_constant_branches(program, {cond: np.array([True])})


# ----------------------------------------------------------------------------- PaddleSeg's RVM
RVM_FEEDS = {"img": (1, 3, 128, 128), "r1": (1, 16, 16, 16), "r2": (1, 20, 8, 8), "r3": (1, 40, 4, 4),
             "r4": (1, 64, 2, 2)}


def _ratio_as_constant(program, value):
    """Replace the ``downsample_ratio`` feed by an ``assign_value`` of ``value`` after the other feeds (Paddle
    wants every feed op first), their columns renumbered."""
    block = program.blocks[0]
    ops = [op for op in block.ops if not (op.type == "feed" and op.outputs[0].arguments[0] == "downsample_ratio")]
    feeds = [op for op in ops if op.type == "feed"]
    for column, op in enumerate(feeds):
        next(a for a in op.attrs if a.name == "col").i = column
    dtype = next(v.type.lod_tensor.tensor.data_type for v in block.vars if v.name == "downsample_ratio")
    assign = _assign_value_op("downsample_ratio", np.array([value], np.float32), dtype,
                              _declared_attr_types("assign_value"))
    copies = []
    for op in [*feeds, assign, *[op for op in ops if op.type != "feed"]]:
        copies.append(type(op)())
        copies[-1].CopyFrom(op)
    del block.ops[:]
    block.ops.extend(copies)


def test_paddleseg_rvm_refiner_branch_is_inlined_bit_for_bit(tmp_path):
    folder = build_official_folder("rvm_mobilenetv3", tmp_path / "rvm")
    rng = np.random.RandomState(0)
    feeds = {name: rng.uniform(-1, 1, shape).astype(np.float32) for name, shape in RVM_FEEDS.items()}
    feeds["downsample_ratio"] = np.array([0.25], np.float32)
    source = (folder / "model.pdmodel").read_bytes()
    expected, _ = _run(source, folder, feeds)
    # alpha, foreground, then the next states: the shapes fed (r1..r4 at 1/8..1/64 of the image at ratio 0.25)
    assert [o.shape for o in expected] == [(1, 1, 128, 128), *RVM_FEEDS.values()]

    program = parse_program(source)
    # What PaddleSeg wrote: block 1 = the refiner (the ratio != 1 path, 37 ops), block 2 = two assigns.
    assert [len(b.ops) for b in program.blocks] == [374, 37, 2]
    assert condition_variables(program, static_only=True) == []  # downsample_ratio is still an input
    _ratio_as_constant(program, 0.25)
    names = condition_variables(program, static_only=True)
    assert names == ["tmp_24", "logical_not_0.tmp_0", "cast_0.tmp_0"]
    _, values = _run(program.SerializeToString(), folder, feeds, names)
    report = inline_constant_branches(program, values)
    assert (report.inlined, report.dropped, report.renamed, report.undecided) == ([1], [2], {}, [])
    assert report.selected == {"_generated_var_6": "_generated_var_0", "_generated_var_7": "_generated_var_1"}
    assert not _block0_types(program) & CONTROL_FLOW and len(program.blocks) == 1
    assert len(program.blocks[0].ops) == 374 - 1 + 37 - 3 - 4 + 2  # -feed +branch -if ops -dead conditions +assign

    got, _ = _run(program.SerializeToString(), folder, feeds)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)

    # Then the caller's fold: the refiner's shape -> slice -> interpolate sizes, now in block 0, and the constant
    # ratio become attributes (paddle2onnx maps interpolate's Scale tensor wrongly; a scale attribute it maps).
    static = fetchable_static_variables(program)
    assert {"shape_7.tmp_0_slice_1", "downsample_ratio"} <= set(static)
    _, values = _run(program.SerializeToString(), folder, feeds, static)
    folded = fold_static_values(program, values)
    assert folded.attributes.items() >= {"bilinear_interp_v2.Scale": 1, "bilinear_interp_v2.SizeTensor": 2}.items()
    model = folder / "inlined"
    model.mkdir()
    (model / "model.pdmodel").write_bytes(program.SerializeToString())
    shutil.copyfile(folder / "model.pdiparams", model / "model.pdiparams")
    got, _ = _run(program.SerializeToString(), folder, feeds)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)

    # paddle2onnx takes the straight-line program: no If node, and ONNX Runtime agrees with Paddle.
    import onnx
    import onnxruntime

    from edgematte.converter.onnx import run_paddle2onnx

    run_paddle2onnx(model, tmp_path / "rvm.onnx")
    graph = onnx.load(tmp_path / "rvm.onnx").graph
    assert "If" not in {n.op_type for n in graph.node}
    session = onnxruntime.InferenceSession(str(tmp_path / "rvm.onnx"), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {i.name: feeds[i.name] for i in graph.input})
    for a, b in zip(outputs, expected):
        np.testing.assert_allclose(a, b, atol=1e-4)
