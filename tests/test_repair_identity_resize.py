"""The identity_resize repair: resizes to the size their input already has are taken out (bilinear with half-pixel
centres or aligned corners, nearest), computing the same bits; a resize to another size and one whose output is a
model output stay (float32 and full-integer TFLite models built by TensorFlow)."""

import pytest

from edgematte.converter.tflite_repairs import repairs_in_file
from tests.tflite_patterns import build_pattern_models, repaired_copy


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_pattern_models("identity_resizes", tmp_path_factory.mktemp("identity_resizes"))


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_resizes_to_their_own_size_are_taken_out_with_the_same_bits(models, precision, tmp_path):
    path, applied, ops_before, ops_after = repaired_copy(models[precision], tmp_path, seed=4)

    resizes = next(a for a in applied if a["name"] == "identity_resize")
    assert sorted(r["op"] for r in resizes["records"]) == ["RESIZE_BILINEAR", "RESIZE_BILINEAR",
                                                           "RESIZE_NEAREST_NEIGHBOR"]
    assert all(r["shape"] == [1, 16, 16, 8] for r in resizes["records"])
    # the 2x one and the one the model returns stay
    assert (ops_before.count("RESIZE_BILINEAR"), ops_after.count("RESIZE_BILINEAR")) == (4, 2)
    assert (ops_before.count("RESIZE_NEAREST_NEIGHBOR"), ops_after.count("RESIZE_NEAREST_NEIGHBOR")) == (1, 0)
    assert [(r["name"], r["matched"]) for r in repairs_in_file(path)] == [("identity_resize", 3)]
