"""The single_channel_concatenation repair: one-channel maps concatenated on the channel axis become a stack of the
maps, transposed, computing the same bits; a concatenation with a wider input stays (float32 and full-integer TFLite
models built by TensorFlow)."""

import pytest

from edgematte.converter.tflite_repairs import repairs_in_file
from tests.tflite_patterns import build_pattern_models, delegated_alone, repaired_copy


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_pattern_models("single_channel_maps", tmp_path_factory.mktemp("single_channel_maps"))


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_one_channel_maps_are_stacked_and_transposed_with_the_same_bits(models, precision, tmp_path):
    path, applied, ops_before, ops_after = repaired_copy(models[precision], tmp_path, seed=3)

    stacked = next(a for a in applied if a["name"] == "single_channel_concatenation")
    # the six maps and the two, not the concatenation of a map with two channels of the features
    assert sorted((r["maps"], r["height"], r["width"]) for r in stacked["records"]) == [(2, 16, 16), (6, 16, 16)]
    assert (ops_before.count("TRANSPOSE"), ops_after.count("TRANSPOSE")) == (0, 2)
    assert ops_after.count("RESHAPE") - ops_before.count("RESHAPE") == 4
    # six maps: the stacking concatenation is then split by concatenation_fan_in (5 + 1)
    assert next(a for a in applied if a["name"] == "concatenation_fan_in")["changed"] == 1
    assert all(delegated_alone(path, op_type) == [True] * ops_after.count(op_type)
               for op_type in ("CONCATENATION", "TRANSPOSE", "RESHAPE"))
    assert {(r["name"], r["matched"]) for r in repairs_in_file(path)} == {("single_channel_concatenation", 2),
                                                                          ("concatenation_fan_in", 1)}
