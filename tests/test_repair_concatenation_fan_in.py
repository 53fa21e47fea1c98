"""The concatenation_fan_in repair: concatenations of more than 5 inputs (two-channel maps here: one-channel ones
are stacked first, test_repair_single_channel_concatenation) become concatenations of at most 5, which XNNPACK takes,
computing the same bits (float32 and full-integer TFLite models built by TensorFlow)."""

import pytest

from edgematte.converter.tflite_repairs import repair_tflite_file, repairs_in_file
from tests.tflite_patterns import build_pattern_models, delegated_alone, repaired_copy


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_pattern_models("wide_concatenations", tmp_path_factory.mktemp("wide_concatenations"))


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_wide_concatenations_become_parts_xnnpack_takes_with_the_same_bits(models, precision, tmp_path):
    delegated_before = delegated_alone(models[precision], "CONCATENATION")

    path, applied, ops_before, ops_after = repaired_copy(models[precision], tmp_path, seed=1)

    fan_in = next(a for a in applied if a["name"] == "concatenation_fan_in")
    # the 6- and 13-input concatenations, not the 5-input one: 6 = (5) + 1, 13 = (5) + (5) + (3), one new
    # concatenation per group of more than one input
    assert sorted((r["inputs"], r["parts"]) for r in fan_in["records"]) == [(6, 2), (13, 3)]
    assert (fan_in["matched"], fan_in["changed"]) == (2, 2)
    assert ops_before.count("CONCATENATION") == 3 and ops_after.count("CONCATENATION") == 3 + 1 + 3
    # XNNPACK took the 5-input concatenation only; now it takes every one
    assert sorted(delegated_before) == [False, False, True]
    assert delegated_alone(path, "CONCATENATION") == [True] * 7
    assert [(r["name"], r["matched"]) for r in repairs_in_file(path)] == [("concatenation_fan_in", 2)]


def test_a_model_without_wide_concatenations_is_left_as_it_was(models, tmp_path):
    path, _, _, _ = repaired_copy(models["float32"], tmp_path, seed=1)
    repaired = path.read_bytes()
    applied = repair_tflite_file(path)  # again: nothing left to match
    assert path.read_bytes() == repaired
    assert [(a["name"], a["matched"], a["changed"]) for a in applied] == [
        ("identity_resize", 0, 0), ("single_channel_concatenation", 0, 0), ("concatenation_fan_in", 0, 0),
        ("channel_slices_as_split", 0, 0), ("int8_broadcast_multiply", 0, 0),
        ("pixel_pair_convolutions", 0, 0)]
