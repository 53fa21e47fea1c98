"""The repair registry: every repair listed once, self-describing, one module and one test file each;
a model without any pattern comes back unchanged with every repair reporting matched 0."""

import ast
from pathlib import Path

import numpy as np
import pytest

from edgematte.converter.repairs import registry
from edgematte.converter.repairs.base import (
    KINDS,
    ONNX,
    ONNX2TF_INPUT,
    ONNX_ARTEFACT,
    PADDLE_PROGRAM,
    TFLITE,
    Repair,
    RepairContext,
)

REPAIRS_DIR = Path(registry.__file__).parent
TESTS_DIR = Path(__file__).parent
EXPECTED = {PADDLE_PROGRAM: ["relu6_threshold", "zero_d_fill_constant", "instance_norm_saved_stats",
                            "softmax_max_shift", "int8_weights_declared_float"],
            ONNX: ["adaptive_pool_windows", "resize_to_one_pixel", "unsqueezed_pad_fold", "channel_slice_pushdown"],
            ONNX2TF_INPUT: ["instance_norm_split_mean", "full_rank_add", "ambiguous_input_identity"],
            ONNX_ARTEFACT: ["conv_per_concatenated_part", "channel_reduction_per_pixel", "attention_product_per_pixel"],
            TFLITE: ["identity_resize", "single_channel_concatenation", "concatenation_fan_in",
                     "channel_slices_as_split", "int8_broadcast_multiply", "pixel_pair_convolutions"]}


def test_each_repair_is_listed_once_and_says_what_why_and_how():
    names = []
    for kind in KINDS:
        repairs = registry.repairs_for(kind)
        assert [r.name for r in repairs] == EXPECTED[kind]
        for r in repairs:
            assert isinstance(r, Repair) and r.applies_to == kind
            assert all(getattr(r, f).strip() for f in ("matches", "changes", "why")), r.name
            assert callable(r.apply)
            # one module per repair, under the folder of its kind, and one test file
            assert (REPAIRS_DIR / kind / f"{r.name}.py").is_file()
            assert (TESTS_DIR / f"test_repair_{r.name}.py").is_file()
        names += [r.name for r in repairs]
    assert len(names) == len(set(names))
    assert registry.repairs_for(ONNX)[0].preserves_outputs is False  # corrections run before normalizations
    # the copy onnx2tf reads computes what the ONNX artefact computes: bit for bit, except the repairs that only
    # re-associate float sums (run first, proven within rounding by converter/tflite.py repair_bridge)
    assert [r.name for r in registry.repairs_for(ONNX2TF_INPUT) if not r.preserves_outputs] == [
        "instance_norm_split_mean"]
    # the published ONNX's own rewrites re-associate sums or move data (all proven within rounding by
    # converter/onnx.py tune_onnx_artefact)
    assert [r.name for r in registry.repairs_for(ONNX_ARTEFACT) if r.preserves_outputs] == [
        "attention_product_per_pixel"]
    # the .tflite files only get rewrites that move data, proven bit for bit (converter/tflite_repairs.py)
    assert all(r.preserves_outputs for r in registry.repairs_for(TFLITE))
    with pytest.raises(ValueError, match="no repairs"):
        registry.repairs_for("nb")


def test_every_repair_module_is_registered():
    modules = {f"{p.parent.name}.{p.stem}" for kind in KINDS for p in (REPAIRS_DIR / kind).glob("*.py")
               if p.stem not in ("__init__", "graph")}
    assert modules == {m for kind in KINDS for m in registry.ORDER[kind]}


def test_an_onnx_graph_without_any_pattern_is_unchanged_and_matches_nothing():
    onnx = pytest.importorskip("onnx")
    framework_pb2 = pytest.importorskip("paddle.base.proto.framework_pb2")
    nodes = [onnx.helper.make_node("Constant", [], ["pads"],
                                   value=onnx.numpy_helper.from_array(np.zeros(8, np.int64))),
             onnx.helper.make_node("Pad", ["x", "pads"], ["p"], mode="reflect"),
             onnx.helper.make_node("AveragePool", ["p"], ["y"], kernel_shape=[3, 3], strides=[1, 1])]
    model = onnx.helper.make_model(
        onnx.helper.make_graph(nodes, "plain", [onnx.helper.make_tensor_value_info("x", 1, [1, 2, 8, 8])],
                               [onnx.helper.make_tensor_value_info("y", 1, [1, 2, 6, 6])]),
        opset_imports=[onnx.helper.make_opsetid("", 11)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    program = framework_pb2.ProgramDesc()
    program.blocks.add(idx=0, parent_idx=-1)  # a Paddle program with no adaptive pools
    before = model.SerializeToString()

    applied = registry.apply_all(ONNX, model, RepairContext(where="plain", paddle_program=program))

    assert model.SerializeToString() == before
    assert [(a["name"], a["kind"], a["matched"], a["changed"], a["records"]) for a in applied] == [
        ("adaptive_pool_windows", ONNX, 0, 0, []), ("resize_to_one_pixel", ONNX, 0, 0, []),
        ("unsqueezed_pad_fold", ONNX, 0, 0, []), ("channel_slice_pushdown", ONNX, 0, 0, [])]
    assert registry.changed(applied) == 0
    assert registry.summary(applied) == [
        {"name": r.name, "kind": ONNX, "matched": 0, "changed": 0, "why": r.why} for r in registry.repairs_for(ONNX)]
    only_preserving = registry.apply_all(ONNX, model, RepairContext(paddle_program=program), preserves_outputs=True)
    assert [a["name"] for a in only_preserving] == ["unsqueezed_pad_fold", "channel_slice_pushdown"]


def test_a_paddle_program_without_any_pattern_is_unchanged_and_matches_nothing():
    framework_pb2 = pytest.importorskip("paddle.base.proto.framework_pb2")
    program = framework_pb2.ProgramDesc()
    op = program.blocks.add(idx=0, parent_idx=-1).ops.add()
    op.type = "relu"
    before = program.SerializeToString()

    applied = registry.apply_all(PADDLE_PROGRAM, program, RepairContext(where="relu only"))

    assert program.SerializeToString() == before
    assert registry.summary(applied) == [{"name": r.name, "kind": PADDLE_PROGRAM, "matched": 0, "changed": 0,
                                          "why": r.why} for r in registry.repairs_for(PADDLE_PROGRAM)]


# The layers, bottom first: a module may import edgematte modules of its own layer and those below.
ALLOWED_FOR_REPAIRS = ("edgematte.core", "edgematte.runtime", "edgematte.converter")


def _edgematte_imports(path: Path):
    module_name = ".".join(path.relative_to(REPAIRS_DIR.parents[2]).with_suffix("").parts)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module_name.rsplit(".", node.level)[0]
                yield f"{base}.{node.module}" if node.module else base
            elif node.module:
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_repairs_import_only_core_runtime_and_converter():
    files = sorted(REPAIRS_DIR.rglob("*.py"))
    assert len(files) >= 8
    for path in files:
        for module in _edgematte_imports(path):
            if module.split(".")[0] == "edgematte":
                assert module.startswith(ALLOWED_FOR_REPAIRS), f"{path.name} imports {module}"
