"""The channel_slices_as_split repair: one-channel slices covering a tensor become one SPLIT, computing the same bits;
slices that do not cover their tensor in equal pieces stay (float32 and full-integer TFLite models)."""

import pytest

from edgematte.converter.tflite_repairs import repairs_in_file
from tests.tflite_patterns import build_pattern_models, delegated_alone, repaired_copy


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_pattern_models("channel_slices", tmp_path_factory.mktemp("channel_slices"))


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_slices_covering_a_tensor_become_one_split_with_the_same_bits(models, precision, tmp_path):
    path, applied, ops_before, ops_after = repaired_copy(models[precision], tmp_path, seed=2)

    split = next(a for a in applied if a["name"] == "channel_slices_as_split")
    assert [(r["axis"], r["pieces"]) for r in split["records"]] == [(3, 3)]
    # 7 slices before: the attention's three are one SPLIT; the first three channels of the features (to 3
    # channels, not covering 8), the two halves of 4 of 8 and the stride-2 slice stay
    assert ops_before.count("STRIDED_SLICE") == 7
    if precision == "float32":
        assert (ops_after.count("STRIDED_SLICE"), ops_after.count("SPLIT")) == (4, 1)
        assert delegated_alone(path, "SPLIT") == [True]  # XNNPACK takes a SPLIT of 2 to 4 outputs
        assert [(r["name"], r["matched"]) for r in repairs_in_file(path)] == [("channel_slices_as_split", 1)]
    else:  # int8: the SPLIT only fed the broadcast MULs, which int8_broadcast_multiply then rewrites
        assert (ops_after.count("STRIDED_SLICE"), ops_after.count("SPLIT")) == (4, 0)
        assert [(r["name"], r["matched"]) for r in repairs_in_file(path)] == [("channel_slices_as_split", 1),
                                                                              ("int8_broadcast_multiply", 3)]
