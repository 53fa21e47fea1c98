"""The int8_broadcast_multiply repair: int8 MULs by one channel of a split map get that channel spread by a 1x1
convolution and multiply without broadcast, computing the same bits; float models are left alone (the fusion
blocks' attention weighting, as TensorFlow writes it)."""

import pytest

from tests.tflite_patterns import build_pattern_models, delegated_alone, repaired_copy


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_pattern_models("channel_slices", tmp_path_factory.mktemp("channel_slices"))


def test_int8_multiplications_by_one_channel_multiply_without_broadcast_with_the_same_bits(models, tmp_path):
    path, applied, ops_before, ops_after = repaired_copy(models["int8"], tmp_path, seed=5)

    spread = next(a for a in applied if a["name"] == "int8_broadcast_multiply")
    # the features (8 channels) weighted by each of the three attention channels
    assert sorted((r["channel"], r["channels"]) for r in spread["records"]) == [(0, 8), (1, 8), (2, 8)]
    assert ops_after.count("MUL") == ops_before.count("MUL")
    assert ops_after.count("CONV_2D") == ops_before.count("CONV_2D") + 3
    assert ops_after.count("SPLIT") == 0  # its three outputs are no longer read
    assert delegated_alone(path, "MUL") == [True] * ops_after.count("MUL")


def test_float_models_are_left_alone(models, tmp_path):
    _, applied, _, ops_after = repaired_copy(models["float32"], tmp_path, seed=5)
    assert next(a for a in applied if a["name"] == "int8_broadcast_multiply")["matched"] == 0
    assert ops_after.count("SPLIT") == 1
