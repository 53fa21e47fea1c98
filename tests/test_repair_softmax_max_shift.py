"""The softmax_max_shift repair: Paddle Lite's x86 softmax overflows on logits above ~88; shifted by the maximum,
the .nb computes what Paddle computes. The program is conv -> x1000 -> softmax over channels, PP-HumanMatting's
glance head in miniature."""

import numpy as np
import paddle
import pytest

from edgematte.converter.paddle_lite import optimize
from edgematte.converter.program import parse_program
from edgematte.converter.repairs.base import RepairContext
from edgematte.converter.repairs.paddle_program import softmax_max_shift as repair
from edgematte.runtime.backends import open_backend
from edgematte.runtime.isolated import run_isolated

SHAPE = [1, 3, 8, 10]


class LargeLogits(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 3, 1)

    def forward(self, img):
        return paddle.nn.functional.softmax(self.conv(img) * 1000.0, axis=1)[:, :1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("softmax")
    paddle.seed(5)
    paddle.jit.save(LargeLogits(), str(folder / "model"),
                    input_spec=[paddle.static.InputSpec(SHAPE, "float32", "img")])
    return folder


def _x(seed=0):
    return np.random.RandomState(seed).uniform(-1, 1, SHAPE).astype(np.float32)


def test_without_the_repair_the_x86_nb_is_wrong(exported, tmp_path, monkeypatch):
    from edgematte.converter.repairs import registry

    monkeypatch.setitem(registry.ORDER, "paddle_program", ("paddle_program.relu6_threshold",))
    optimize(exported, tmp_path / "unrepaired.nb", "x86")
    got = run_isolated("paddle_lite", tmp_path / "unrepaired.nb", [_x()]).outputs[0]
    expected = open_backend("paddle_inference", exported, threads=1).run(_x())
    assert np.isnan(got).any() or np.abs(got - expected).max() > 0.5  # overflowed exp()


def test_with_the_repair_the_x86_nb_equals_paddle(exported, tmp_path):
    info = optimize(exported, tmp_path / "model.nb", "x86")
    (record,) = [r for r in info.applied_repairs if r["name"] == "softmax_max_shift"]
    assert (record["matched"], record["changed"]) == (1, 1) and record["records"][0]["axis"] == 1
    for seed in range(3):
        got = run_isolated("paddle_lite", tmp_path / "model.nb", [_x(seed)]).outputs[0]
        expected = open_backend("paddle_inference", exported, threads=1).run(_x(seed))
        assert not np.isnan(got).any() and np.abs(got - expected).max() < 1e-6


def test_the_shifted_program_computes_the_same_in_paddle_and_is_not_shifted_twice(exported, tmp_path):
    program = parse_program((exported / "model.pdmodel").read_bytes())
    (match,) = repair.apply(program, RepairContext())
    assert match.changed
    types = [op.type for op in program.blocks[0].ops]
    assert types[types.index("softmax") - 2:types.index("softmax") + 1] == ["reduce_max", "elementwise_sub", "softmax"]
    (again,) = repair.apply(program, RepairContext())
    assert not again.changed and again.record["reason"] == "already shifted"
    folder = tmp_path / "shifted"
    folder.mkdir()
    (folder / "model.pdmodel").write_bytes(program.SerializeToString())
    (folder / "model.pdiparams").write_bytes((exported / "model.pdiparams").read_bytes())
    shifted = open_backend("paddle_inference", folder, threads=1).run(_x())
    assert np.abs(shifted - open_backend("paddle_inference", exported, threads=1).run(_x())).max() < 1e-6
