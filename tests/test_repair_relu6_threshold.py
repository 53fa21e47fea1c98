"""The relu6_threshold repair: Paddle Lite opt aborts on paddle 2.6's relu6, the patched program converts.

Programs are tests/test_converter_program.py's TinyMattingNet (conv + BN + relu6 + pools + resizes), exported
with paddle.jit.save as users' models are. That the patched program's .nb matches Paddle Inference is in
tests/test_converter_paddle_lite.py.
"""

import subprocess
import sys
from pathlib import Path

import pytest

paddle = pytest.importorskip("paddle", reason="the converter tests need paddlepaddle (edgematte[convert])")

from paddle.base.proto import framework_pb2  # noqa: E402

from edgematte.converter.program import parse_program, read_program  # noqa: E402
from edgematte.converter.repairs.base import RepairContext  # noqa: E402
from edgematte.converter.repairs.paddle_program import relu6_threshold as repair  # noqa: E402
from tests.test_converter_program import FEED_NAME, export_tiny_net  # noqa: E402


class NoRelu6Net(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 4, 3, padding=1)

    def forward(self, img):
        return paddle.nn.functional.relu(self.conv(img))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("relu6_models")
    paddle.jit.save(NoRelu6Net(), str(root / "no_relu6" / "model"),
                    input_spec=[paddle.static.InputSpec([1, 3, 16, 16], "float32", name=FEED_NAME)])
    return {"tiny": export_tiny_net(root / "tiny", [-1, 3, -1, -1]), "no_relu6": root / "no_relu6"}


def _program(folder):
    return parse_program(read_program(folder / "model.pdmodel").program_bytes)


def test_relu6_gets_a_float_six_and_nothing_else_changes(models):
    original = read_program(models["tiny"] / "model.pdmodel").program_bytes
    program = framework_pb2.ProgramDesc.FromString(original)

    matches = repair.REPAIR.apply(program, RepairContext(where="tiny"))

    assert [(m.changed, m.record["action"]) for m in matches] == [(True, "patched")]
    relu6 = [op for op in program.blocks[0].ops if op.type == "relu6"]
    assert matches[0].record["op_index"] == list(program.blocks[0].ops).index(relu6[0])
    assert matches[0].record["output"] == relu6[0].outputs[0].arguments[0]
    threshold = [a for a in relu6[0].attrs if a.name == "threshold"]
    assert len(threshold) == 1 and threshold[0].type == framework_pb2.FLOAT and threshold[0].f == 6.0
    patched = program.SerializeToString()
    # applied again: the relu6 is matched and kept, the program stays byte for byte the same
    again = repair.REPAIR.apply(program, RepairContext(where="tiny"))
    assert [(m.changed, m.record["action"]) for m in again] == [(False, "kept")]
    assert program.SerializeToString() == patched
    # apart from the new attribute, the program is the exported one
    relu6[0].attrs.remove(threshold[0])
    assert program == framework_pb2.ProgramDesc.FromString(original)


def test_a_program_without_relu6_matches_nothing_and_changes_nothing(models):
    program = _program(models["no_relu6"])
    before = program.SerializeToString()
    assert repair.REPAIR.apply(program, RepairContext(where="no_relu6")) == []
    assert program.SerializeToString() == before


def test_unpatched_export_is_rejected_by_opt_itself(models, tmp_path):
    """Why the repair exists: opt 2.13 aborts on paddle 2.6's relu6 (docs/toolchain.md, trap 9)."""
    pytest.importorskip("paddlelite", reason="needs paddlelite 2.13rc0 (edgematte[convert])")
    opt_cli = Path(sys.executable).with_name("paddle_lite_opt")
    done = subprocess.run(
        [str(opt_cli), f"--model_file={models['tiny'] / 'model.pdmodel'}",
         f"--param_file={models['tiny'] / 'model.pdiparams'}", "--valid_targets=x86",
         f"--optimize_out={tmp_path / 'raw'}"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode != 0
    assert "No attributes called threshold found for relu6" in done.stdout + done.stderr
    assert not (tmp_path / "raw.nb").exists()
