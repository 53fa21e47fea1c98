"""The pixel_pair_convolutions repair: in int8 files, chains of 3-wide convolutions with at most 8 outputs at 256x256
or more run on pairs of pixels, their border columns from a strip, computing the same bits; what it must leave
alone is left (16 outputs, stride 2, below the size, float files)."""

from pathlib import Path

import numpy as np
import pytest

from tests.tflite_patterns import build_pattern_models, delegated_alone, input_shape, repaired_copy, run_model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_pattern_models("full_resolution_head", tmp_path_factory.mktemp("full_resolution_head"))


def _weight_shapes(path: Path):
    from edgematte.runtime.tflite_flatbuffer import TFLiteModelEdit

    edit = TFLiteModelEdit(path.read_bytes())
    return sorted(tuple(int(d) for d in edit.graph.tensors[int(op.inputs[1])].shape)
                  for op in edit.graph.operators if edit.op_name(op) == "CONV_2D")


def test_int8_chains_run_on_pixel_pairs_with_the_same_bits(models, tmp_path):
    path, applied, ops_before, ops_after = repaired_copy(models["int8"], tmp_path, seed=3)

    paired = next(a for a in applied if a["name"] == "pixel_pair_convolutions")
    found = sorted((r["convolutions"], r["ops"], r["height"], r["width"]) for r in paired["records"])
    # "single": conv + TANH; the head: two 3x3 convolutions, the 1x1 and the sigmoid; "deep": three convolutions
    assert found == [(1, 2, 256, 256), (2, 4, 256, 256), (3, 3, 256, 256)]
    assert paired["matched"] == paired["changed"] == 3
    # each chain's convolutions once on pairs and once on the strip; "wide", "strided", "small" and the decoder once
    assert ops_after.count("CONV_2D") == ops_before.count("CONV_2D") + 7
    before, after = _weight_shapes(models["int8"]), _weight_shapes(path)
    assert (8, 3, 3, 19) in before and (16, 3, 2, 38) in after  # 19 -> 8 becomes 2 x 19 -> 2 x 8 over 2 pairs
    assert (16, 3, 2, 16) in after and (2, 1, 1, 16) in after  # 8 -> 8 and the 1x1 8 -> 1, block-diagonal
    assert before.count((16, 3, 3, 3)) == after.count((16, 3, 3, 3)) == 2  # "wide" (16 outputs), the decoder
    # 3 -> 4: "single" and "deep"'s first (each now on the strip), "strided" and "small" (128x128), untouched
    assert before.count((4, 3, 3, 3)) == after.count((4, 3, 3, 3)) == 4
    assert all(delegated_alone(path, "CONV_2D")) and all(delegated_alone(path, "SLICE"))


def test_float_files_keep_their_convolutions(models, tmp_path):
    _, applied, ops_before, ops_after = repaired_copy(models["float32"], tmp_path, seed=3)
    assert next(a for a in applied if a["name"] == "pixel_pair_convolutions")["matched"] == 0
    assert ops_after.count("CONV_2D") == ops_before.count("CONV_2D")


def test_the_float_rewrite_also_computes_the_same_bits(models, tmp_path):
    """Float files are not paired by default (ARM's float kernels are 8 wide), but the rewrite is exact there too:
    the same products in the same order, with zero products between them."""
    from edgematte.converter.repairs.tflite.pixel_pair_convolutions import pair_pixels
    from edgematte.runtime.tflite_flatbuffer import TFLiteModelEdit

    edit = TFLiteModelEdit(models["float32"].read_bytes())
    assert len(pair_pixels(edit, ("float32",))) == 3
    path = tmp_path / "paired.tflite"
    path.write_bytes(edit.to_bytes())
    rng = np.random.default_rng(11)
    feeds = [rng.uniform(-1, 1, input_shape(path)).astype(np.float32) for _ in range(2)]
    _, before = run_model(models["float32"], feeds)
    _, after = run_model(path, feeds)
    for b, a in zip(before, after):
        for name in b:
            assert b[name].tobytes() == a[name].tobytes(), name


def test_a_wrong_border_would_be_seen(models, tmp_path):
    """The border columns matter: the paired chain's output with its left border taken one column off differs from
    the original there and only there."""
    from edgematte.converter.repairs.tflite import pixel_pair_convolutions as pairs
    from edgematte.runtime.tflite_flatbuffer import TFLiteModelEdit

    edit = TFLiteModelEdit(models["int8"].read_bytes())
    original_slice = pairs._slice

    def off_by_one(edit_, source, begin, size, name, new_ops):
        if name.endswith("/left_border"):
            begin = [0, 0, 1, 0]
        return original_slice(edit_, source, begin, size, name, new_ops)

    pairs._slice = off_by_one
    try:
        pairs.pair_pixels(edit)
    finally:
        pairs._slice = original_slice
    path = tmp_path / "wrong.tflite"
    path.write_bytes(edit.to_bytes())
    feed = (np.random.default_rng(5).uniform(-1, 1, input_shape(path)) * 127).astype(np.int8)
    _, [before] = run_model(models["int8"], [feed])
    _, [after] = run_model(path, [feed])
    wrong = [name for name in before if not np.array_equal(before[name], after[name])]
    assert sorted(before[name].shape for name in wrong) == [(1, 256, 256, 1), (1, 256, 256, 2), (1, 256, 256, 4)]
    for name in wrong:  # the head's alpha, "deep" and "single"
        columns = np.nonzero((before[name] != after[name]).any(axis=(0, 1, 3)))[0]
        assert columns.min() == 0 and columns.max() < 3  # only the left border's columns


def test_a_float_output_int8_file_keeps_its_final_dequantize(int8_conversion):
    """The chain stops before the model's output conversion: the DEQUANTIZE still writes the alpha, so the int8
    output step is still found (``device arm-check`` compares int8 files in those steps)."""
    from edgematte.converter.tflite_repairs import repairs_in_file
    from edgematte.device.arm_check import output_quantization_step
    from edgematte.quant.tflite.ops import tflite_ops

    path = int8_conversion / "model_int8.tflite"
    assert any(r["name"] == "pixel_pair_convolutions" and r["changed"] == 1 for r in repairs_in_file(path))
    assert [op["op"] for op in tflite_ops(path)[-2:]] == ["CONCATENATION", "DEQUANTIZE"]
    assert output_quantization_step(path, np.zeros(1, np.float32), []) == pytest.approx(1 / 256)
