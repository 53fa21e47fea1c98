"""Seeded weights, the safe .pdparams reader and layout checks."""

import pickle
import zlib

import numpy as np
import pytest

from edgematte.core.errors import EdgematteError
from edgematte.zoo.weights import (
    check_layout,
    count_parameters,
    format_layout,
    parse_layout,
    read_pdparams,
    seeded_array,
    seeded_state_dict,
)


def test_official_tables_round_trip_and_count(data_dir):
    for name, params in (("ppmattingv2", 8_947_488), ("humanmatting", 63_889_670)):
        text = (data_dir / f"{name}.state_dict.tsv").read_text()
        layout = parse_layout(text)
        assert format_layout(layout) == text
        assert count_parameters(layout) == params


def test_seed_formula_by_leaf():
    # Values recomputed from the documented formula with numpy's frozen legacy generator.
    def z(key, shape, seed):
        return np.random.RandomState((zlib.crc32(key.encode()) + seed) % 2**32).standard_normal(shape)

    assert np.array_equal(seeded_array("a.bn._mean", (4,), 3), (0.1 * z("a.bn._mean", (4,), 3)).astype(np.float32))
    assert np.array_equal(seeded_array("a.bn._variance", (4,), 0),
                          np.exp(0.2 * z("a.bn._variance", (4,), 0)).astype(np.float32))
    assert np.array_equal(seeded_array("a.conv.bias", (4,), 0), (0.1 * z("a.conv.bias", (4,), 0)).astype(np.float32))
    assert np.array_equal(seeded_array("a.bn.weight", (4,), 0),
                          (1 + 0.1 * z("a.bn.weight", (4,), 0)).astype(np.float32))
    k = seeded_array("a.conv.weight", (8, 2, 3, 3), 1)
    assert np.array_equal(k, (z("a.conv.weight", (8, 2, 3, 3), 1) * np.sqrt(2 / 18)).astype(np.float32))
    assert k.dtype == np.float32
    # seeds change values; the same seed is reproducible
    assert not np.array_equal(seeded_array("x.weight", (3, 3, 1, 1), 0), seeded_array("x.weight", (3, 3, 1, 1), 1))
    assert np.array_equal(seeded_array("x.weight", (3, 3, 1, 1), 5), seeded_array("x.weight", (3, 3, 1, 1), 5))
    # crc32 + seed wraps modulo 2**32 instead of failing
    seeded_array("x.weight", (2, 2), 2**32 - 1)


def test_reads_what_paddle_save_writes(tmp_path):
    import paddle
    net = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4))
    path = tmp_path / "w.pdparams"
    paddle.save(net.state_dict(), str(path))
    weights = read_pdparams(path)
    assert list(weights) == list(net.state_dict())
    for k, v in net.state_dict().items():
        assert np.array_equal(weights[k], v.numpy())


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_every_pickle_protocol_loads(tmp_path, protocol):
    """paddle.save takes protocols 2-4 (protocol 2 writes bytes through ``_codecs.encode``, which the restricted
    unpickler allows as a plain function of two strings); 0, 1 and 5 are written with pickle itself, as a user's
    own conversion script might."""
    import paddle
    net = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4))
    path = tmp_path / "w.pdparams"
    if 2 <= protocol <= 4:
        paddle.save(net.state_dict(), str(path), protocol=protocol)
    else:
        path.write_bytes(pickle.dumps({k: v.numpy() for k, v in net.state_dict().items()}, protocol=protocol))
    weights = read_pdparams(path)
    assert list(weights) == list(net.state_dict())
    assert all(np.array_equal(weights[k], v.numpy()) for k, v in net.state_dict().items())


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps({"conv.weight": _Evil(marker)}, protocol=4))
    with pytest.raises(EdgematteError) as e:
        read_pdparams(path)
    assert str(path) in str(e.value) and "refusing to load global" in str(e.value)
    assert "system" in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"", "not a readable .pdparams"),
        (pickle.dumps([1, 2, 3]), "top level is list"),
        (pickle.dumps({"a": "text"}), "not a numpy array"),
    ],
)
def test_bad_pdparams_give_one_line_errors(tmp_path, payload, message):
    path = tmp_path / "bad.pdparams"
    path.write_bytes(payload)
    with pytest.raises(EdgematteError, match=message):
        read_pdparams(path)


def test_truncated_pdparams(tmp_path):
    path = tmp_path / "t.pdparams"
    path.write_bytes(pickle.dumps({"w": np.ones((64, 64), np.float32)}, protocol=4)[:-100])
    with pytest.raises(EdgematteError, match="t.pdparams"):
        read_pdparams(path)


def test_check_layout_reports_each_kind():
    layout = [("a.weight", (2, 3), "float32"), ("b.bias", (2,), "float32"), ("c.weight", (4,), "float32")]
    weights = seeded_state_dict(layout, 0)
    assert check_layout(layout, weights).ok
    del weights["a.weight"]
    weights["b.bias"] = np.zeros(3, np.float32)
    weights["extra"] = np.zeros(1, np.float32)
    check = check_layout(layout, weights)
    assert check.missing == ["a.weight"]
    assert check.unexpected == ["extra"]
    assert check.misshaped == [("b.bias", (2,), (3,))]
    assert "1 missing" in check.summary() and "b.bias expects [2], file has [3]" in check.summary()


def test_joins_tensors_paddle_split(tmp_path):
    # paddle.save with protocol 2 or 3 splits a tensor over 1 GiB into 1-D slices plus this map (as paddle.load
    # joins them); the same structure at a small size
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    saved = {"a": np.ones(2, np.float32), "w@@.0": w.ravel()[:5], "w@@.1": w.ravel()[5:],
             "UnpackBigParamInfor@@": {"w": {"OriginShape": (3, 4), "slices": ["w@@.0", "w@@.1"]}}}
    path = tmp_path / "big.pdparams"
    path.write_bytes(pickle.dumps(saved, protocol=2))
    weights = read_pdparams(path)
    assert list(weights) == ["a", "w"] and np.array_equal(weights["w"], w)
    saved["UnpackBigParamInfor@@"]["w"]["slices"].append("w@@.2")
    path.write_bytes(pickle.dumps(saved, protocol=2))
    with pytest.raises(EdgematteError) as e:
        read_pdparams(path)
    assert str(e.value) == f"{path}: UnpackBigParamInfor@@ entry 'w' names slice 'w@@.2', not in the file"


def test_numpy2_module_names(tmp_path):
    # numpy 2 names its private modules numpy._core; files it wrote load under numpy 1 too
    data = pickle.dumps({"w": np.full((2, 2), 3, np.float32)}, protocol=2)
    assert b"numpy.core.multiarray\n_reconstruct" in data
    path = tmp_path / "np2.pdparams"
    path.write_bytes(data.replace(b"numpy.core.multiarray\n", b"numpy._core.multiarray\n"))
    assert np.array_equal(read_pdparams(path)["w"], np.full((2, 2), 3, np.float32))


def test_entries_must_be_numeric(tmp_path):
    path = tmp_path / "s.pdparams"
    path.write_bytes(pickle.dumps({"w": np.array([b"ab"])}, protocol=2))
    with pytest.raises(EdgematteError) as e:
        read_pdparams(path)
    assert str(e.value) == f"{path}: not a safe .pdparams state_dict (refusing numpy dtype 'S2' (only numeric dtypes))"
