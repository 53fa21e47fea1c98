"""The instance_norm_saved_stats repair: opt refuses paddle 2.6's instance_norm without SavedMean/SavedVariance;
with them added the .nb converts and computes what Paddle computes. The net is conv -> InstanceNorm2D -> conv,
exported with paddle.jit.save as MODNet's low-resolution branch is."""

import numpy as np
import paddle
import pytest

from edgematte.converter.paddle_lite import optimize
from edgematte.converter.program import parse_program
from edgematte.converter.repairs.base import RepairContext
from edgematte.converter.repairs.paddle_program import instance_norm_saved_stats as repair
from edgematte.core.errors import EdgematteError
from edgematte.runtime.backends import open_backend
from edgematte.runtime.isolated import run_isolated

SHAPE = [1, 3, 16, 20]


class InstanceNormNet(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 4, 3, padding=1)
        self.norm = paddle.nn.InstanceNorm2D(4)
        self.head = paddle.nn.Conv2D(4, 1, 1)

    def forward(self, img):
        return paddle.nn.functional.sigmoid(self.head(paddle.nn.functional.relu(self.norm(self.conv(img)))))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("instance_norm")
    paddle.seed(3)
    net = InstanceNormNet()
    net.eval()
    paddle.jit.save(net, str(folder / "model"), input_spec=[paddle.static.InputSpec(SHAPE, "float32", "img")])
    return folder


def _instance_norm_outputs(program):
    op = next(o for o in program.blocks[0].ops if o.type == "instance_norm")
    return sorted(s.parameter for s in op.outputs if s.arguments)


def test_paddle_exports_instance_norm_without_its_statistics(exported):
    assert _instance_norm_outputs(parse_program((exported / "model.pdmodel").read_bytes())) == ["Y"]


def test_without_the_repair_opt_refuses(exported, tmp_path, monkeypatch):
    from edgematte.converter.repairs import registry

    monkeypatch.setitem(registry.ORDER, "paddle_program", ("paddle_program.relu6_threshold",))
    with pytest.raises(EdgematteError, match="opt failed for x86: is_dispensable [|][|] is_have_output"):
        optimize(exported, tmp_path / "model.nb", "x86")


def test_with_the_repair_the_nb_equals_paddle(exported, tmp_path):
    info = optimize(exported, tmp_path / "model.nb", "x86")
    (record,) = [r for r in info.applied_repairs if r["name"] == "instance_norm_saved_stats"]
    assert (record["matched"], record["changed"]) == (1, 1)
    assert record["records"][0]["added"] == ["SavedMean", "SavedVariance"]
    x = np.random.RandomState(0).uniform(-1, 1, SHAPE).astype(np.float32)
    got = run_isolated("paddle_lite", tmp_path / "model.nb", [x]).outputs[0]
    expected = open_backend("paddle_inference", exported, threads=1).run(x)
    assert np.abs(got - expected).max() < 1e-5


def test_the_added_outputs_are_declared_and_a_complete_op_is_kept(exported):
    program = parse_program((exported / "model.pdmodel").read_bytes())
    (match,) = repair.apply(program, RepairContext())
    assert match.changed and _instance_norm_outputs(program) == ["SavedMean", "SavedVariance", "Y"]
    declared = {v.name: list(v.type.lod_tensor.tensor.dims) for v in program.blocks[0].vars}
    y = match.record["output"]
    assert declared[f"{y}@SavedMean"] == declared[f"{y}@SavedVariance"] == [1 * 4]  # N * C
    (again,) = repair.apply(program, RepairContext())
    assert not again.changed and again.record["action"] == "kept"
