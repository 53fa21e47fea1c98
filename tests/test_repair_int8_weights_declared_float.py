"""The int8_weights_declared_float repair: a weights-only INT8 program (int8 conv weights Paddle Lite makes float at
load) declares those weights INT8; opt wants them declared FP32, as it will compute with them.

Programs are tests/test_converter_program.py's TinyMattingNet, exported with paddle.jit.save and written weights-only
by edgematte.quant.paddle_weight_int8. That such an .nb computes with the rounded weights is in
tests/test_quant_paddle_weight_int8.py.
"""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("paddle", reason="the converter tests need paddlepaddle (edgematte[convert])")

from paddle.base.proto import framework_pb2  # noqa: E402

from edgematte.converter.program import parse_program, read_program  # noqa: E402
from edgematte.converter.repairs.base import RepairContext  # noqa: E402
from edgematte.converter.repairs.paddle_program import int8_weights_declared_float as repair  # noqa: E402
from edgematte.converter.repairs.paddle_program import relu6_threshold  # noqa: E402
from edgematte.quant.paddle_weight_int8 import write_weight_int8_model  # noqa: E402
from tests.test_converter_program import export_tiny_net  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8_weights_models")
    tiny = export_tiny_net(root / "tiny", [1, 3, 32, 32])
    info = write_weight_int8_model(tiny, root / "w8")
    return {"tiny": tiny, "w8": root / "w8", "quantized": info.quantized}


def _program(folder):
    return parse_program(read_program(folder / "model.pdmodel").program_bytes)


def _declared(program):
    return {v.name: v.type.lod_tensor.tensor.data_type for v in program.blocks[0].vars}


def test_marked_int8_weights_are_declared_fp32_and_nothing_else_changes(models):
    program = _program(models["w8"])
    before = _declared(program)
    assert {n for n, t in before.items() if t == framework_pb2.VarType.INT8} == set(models["quantized"])

    matches = repair.REPAIR.apply(program, RepairContext(where="w8"))

    assert sorted(m.record["variable"] for m in matches) == sorted(models["quantized"])
    assert all(m.changed and m.record["declared"] == "INT8" for m in matches)
    after = _declared(program)
    assert {n: t for n, t in after.items() if n not in models["quantized"]} == \
        {n: t for n, t in before.items() if n not in models["quantized"]}
    assert all(after[n] == framework_pb2.VarType.FP32 for n in models["quantized"])
    assert repair.REPAIR.apply(program, RepairContext(where="w8")) == []  # applied again: nothing left to match


def test_an_int8_variable_no_marked_op_reads_is_left_alone(models):
    program = _program(models["w8"])
    for op in program.blocks[0].ops:  # drop the marks: the int8 declarations are no longer Lite's to dequantize
        for attr in [a for a in op.attrs if a.name == "quantize_weight_bits"]:
            op.attrs.remove(attr)
    before = program.SerializeToString()
    assert repair.REPAIR.apply(program, RepairContext(where="w8")) == []
    assert program.SerializeToString() == before
    assert repair.REPAIR.apply(_program(models["tiny"]), RepairContext(where="tiny")) == []


def test_unrepaired_program_is_rejected_by_opt_itself(models, tmp_path):
    """Why the repair exists: opt 2.13 looks for a calib kernel from the declared int8 weight to the float conv."""
    pytest.importorskip("paddlelite", reason="needs paddlelite 2.13rc0 (edgematte[convert])")
    program = _program(models["w8"])
    relu6_threshold.REPAIR.apply(program, RepairContext(where="w8"))  # the tiny net's other need (trap 9)
    (tmp_path / "model.pdmodel").write_bytes(program.SerializeToString())
    opt_cli = Path(sys.executable).with_name("paddle_lite_opt")
    done = subprocess.run(
        [str(opt_cli), f"--model_file={tmp_path / 'model.pdmodel'}",
         f"--param_file={models['w8'] / 'model.pdiparams'}", "--valid_targets=x86",
         f"--optimize_out={tmp_path / 'raw'}"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode != 0
    assert "Can't find a 'calib' kernel to trans" in done.stdout + done.stderr
    assert not (tmp_path / "raw.nb").exists()
