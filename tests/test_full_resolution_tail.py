"""The full-resolution tail compare_runtimes times by difference (benchmarks/full_resolution_tail.py, issue #19).

On PaddleSeg's PP-MattingV2 architecture (the tiny seeded conversion at 256x320): the tail is the head after the
decoder (in an int8 file, the head on pixel pairs), the copy without it computes the decoder's output bit for bit,
and a model whose last op is not at full resolution has no tail.
"""

import numpy as np

from .conftest import load_benchmark

tail = load_benchmark("full_resolution_tail")
HEAD = ["RESIZE_BILINEAR", "CONCATENATION", "CONV_2D", "CONV_2D", "CONV_2D", "LOGISTIC"]


def _op(name, *output_shapes):
    return {"op": name, "inputs": [], "outputs": [{"index": 0, "shape": list(s)} for s in output_shapes]}


def test_the_tail_is_the_run_of_trailing_ops_at_the_photos_size():
    ops = [_op("CONV_2D", (1, 128, 160, 16)), _op("RESIZE_BILINEAR", (1, 256, 320, 16)),
           _op("CONV_2D", (1, 256, 320, 8)), _op("LOGISTIC", (1, 256, 320, 1))]
    assert tail.full_resolution_tail(ops, (256, 320)) == 1
    assert tail.full_resolution_tail(ops, (320, 256)) == 4  # a transposed size is not the photo's: no tail
    # the last op writes a low-resolution state as well (a recurrent model): no tail
    recurrent = ops[:-1] + [_op("CONV_2D", (1, 256, 320, 1), (1, 64, 80, 16))]
    assert tail.full_resolution_tail(recurrent, (256, 320)) == 4
    # every op at full resolution: no body left to compare against, so no tail
    assert tail.full_resolution_tail(ops[1:], (256, 320)) == 3
    # the head on pixel pairs ([1, H, W/2, 2C]) with its border strip ([1, H, 4, C]), as the int8 files hold it
    paired = ops[:2] + [_op("RESHAPE", (1, 256, 160, 32)), _op("CONV_2D", (1, 256, 160, 16)),
                        _op("SLICE", (1, 256, 4, 16)), _op("CONV_2D", (1, 256, 4, 8)),
                        _op("CONCATENATION", (1, 256, 320, 8))]
    assert tail.full_resolution_tail(paired, (256, 320)) == 1
    assert tail.full_resolution_tail(paired[:1] + [_op("CONV_2D", (1, 256, 640, 8))], (256, 320)) == 2


def test_the_copy_without_the_tail_computes_the_decoders_output_exactly(tiny_conversion, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    source = tiny_conversion / "model_fp32.tflite"
    ops = tail.without_full_resolution_tail(source, tmp_path / "cut.tflite")
    assert ops == HEAD

    photo = np.random.default_rng(0).random((1, 256, 320, 3), dtype=np.float32)
    whole = Interpreter(str(source), experimental_preserve_all_tensors=True)
    whole.allocate_tensors()
    whole.set_tensor(whole.get_input_details()[0]["index"], photo)
    whole.invoke()
    runner = tail.RunsUpToTheTail(tmp_path / "cut.tflite", threads=1)
    (decoder,) = runner.backend.outputs
    assert decoder.shape == (1, 128, 160, 8)  # the last decoder output (width 0.25: 8 channels), before the resize
    runner.run_tensor(photo)
    got = runner.backend._interpreter.get_tensor(runner.backend._output_details[0]["index"])
    named = {d["name"]: d["index"] for d in whole.get_tensor_details()}
    np.testing.assert_array_equal(got, whole.get_tensor(named[decoder.name]))


def test_an_integer_models_tail_is_its_head_on_pixel_pairs_and_its_copy_is_fed_quantized(int8_conversion, tmp_path):
    source = int8_conversion / "model_int8_io.tflite"
    ops = tail.without_full_resolution_tail(source, tmp_path / "cut.tflite")
    # the pixel_pair_convolutions repair: the head's convolutions on pairs, the border by the original ops on a strip
    # cut from the concatenation's two inputs, the three parts joined along the width
    strip = ["SLICE", "SLICE", "CONCATENATION"] * 2 + ["CONCATENATION"]
    assert ops == HEAD[:2] + ["RESHAPE"] + HEAD[2:] + strip + HEAD[2:] + ["RESHAPE", "SLICE", "SLICE", "SLICE",
                                                                          "CONCATENATION"]
    runner = tail.RunsUpToTheTail(tmp_path / "cut.tflite", threads=1)
    assert runner.input_spec.quant is not None  # the int8 input the artefact's profile quantizes to
    runner.run_tensor(np.random.default_rng(0).random((1, 256, 256, 3), dtype=np.float32))
