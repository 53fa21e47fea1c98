"""Issue #16 in small: a seeded zoo model at another seed (1) and a non-square size (288x480) stays alive, its
exported deploy folder reproduces it in Paddle Inference within the bound derived from measured float noise
(the converter's rule for an fp32 artefact on the float32 dygraph model's max abs against the same model in
float64), its .pdparams round trip is bit for bit, and a deploy folder with one weight changed in its .pdiparams
fails that same bound (the check can fail).

The measuring code is ``benchmarks/zoo_seeds_sizes.py`` (its full results: ``benchmarks/results/zoo_seeds_sizes.md``).
"""

import struct

import numpy as np
import pytest

from edgematte.converter.float64_program import derived_bound
from edgematte.converter.program import _framework_pb2
from edgematte.runtime.backends.paddle_inference import PaddleInferenceBackend
from edgematte.zoo.registry import get_model_spec

from .conftest import load_benchmark

SEED, HW = 1, (288, 480)


bench = load_benchmark("zoo_seeds_sizes")


def perturb_one_weight(pdiparams, delta: float) -> int:
    """Add ``delta`` to the first value of the first float32 tensor with more than one value in a combined
    .pdiparams (records: uint32 version, uint64 LoD levels + their data, uint32 version, int32 length + TensorDesc,
    raw data); return that value's byte offset."""
    fp = _framework_pb2()
    data = bytearray(pdiparams.read_bytes())
    pos = 0
    while pos < len(data):
        (levels,) = struct.unpack_from("<Q", data, pos + 4)
        pos += 12
        for _ in range(levels):
            (n,) = struct.unpack_from("<Q", data, pos)
            pos += 8 + n
        _, desc_len = struct.unpack_from("<Ii", data, pos)
        desc = fp.VarType.TensorDesc()
        desc.ParseFromString(bytes(data[pos + 8:pos + 8 + desc_len]))
        pos += 8 + desc_len
        numel = int(np.prod([int(d) for d in desc.dims]))
        assert desc.data_type == fp.VarType.FP32, "only float32 tensors expected"
        if numel > 1:
            (value,) = struct.unpack_from("<f", data, pos)
            struct.pack_into("<f", data, pos, value + delta)
            pdiparams.write_bytes(bytes(data))
            return pos
        pos += 4 * numel
    raise AssertionError("no tensor to perturb")


@pytest.mark.parametrize("name", ["modnet_mobilenetv2", "rvm_mobilenetv3"])
def test_seed1_at_288x480_is_alive_exported_within_the_noise_bound_and_a_changed_weight_is_caught(tmp_path, name):
    spec = get_model_spec(name)
    kept = {}
    (record,) = bench.run_seed(name, SEED, [HW], tmp_path, log=lambda *_: None, keep=kept)
    alive, check = record["alive"], record["check"]
    print(f"{name}: std {alive['std']:.3f}, mid {alive['mid_share']:.1%}, noise {check['dygraph_fp32_vs_fp64']:.2e}, "
          f"program vs dygraph {check['program_vs_dygraph']:.2e}, vs fp64 {check['program_vs_fp64']:.2e}, "
          f"bound {check['bound']:.2e}")
    assert alive["shape"] == [1, 1, *HW]
    assert alive["alive"] and alive["std"] > 0.05 and alive["mid_share"] > 1e-3
    assert 0 < check["dygraph_fp32_vs_fp64"] < 1e-3  # float noise, not a broken cast
    assert check["bound"] == derived_bound(check["dygraph_fp32_vs_fp64"])
    assert check["program_vs_dygraph"] <= check["bound"] and check["program_vs_fp64"] <= check["bound"]
    assert check["ok"]
    assert record["round_trip"]["identical"] and record["round_trip"]["max_abs"] == 0.0
    assert record["ok"]

    # one weight of the exported program changed: the same rule must reject it
    perturb_one_weight(kept["folder"] / "model.pdiparams", 1e-4)
    backend = PaddleInferenceBackend(kept["folder"], threads=2)
    changed = bench.run_program(backend, spec, kept["model"], kept["inputs"][HW], HW)
    verdict = bench.judge(spec, kept["fp32"][HW], kept["fp64"][HW], changed)
    print(f"{name}, one weight + 1e-4: program vs dygraph {verdict['program_vs_dygraph']:.2e} "
          f"(bound {verdict['bound']:.2e}), alive std {bench.alive_figures(changed)['std']:.3f}")
    assert verdict["program_vs_dygraph"] > verdict["bound"] and not verdict["ok"]
    # the changed program still looks like a matte: only the noise-derived bound catches it
    assert bench.alive_figures(changed)["alive"]
