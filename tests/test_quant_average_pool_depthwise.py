"""Integer average pools become depthwise convolutions that XNNPACK runs (quant.tflite.average_pool_depthwise).

A tiny SavedModel (tests/quantized_rewrites.py: TensorFlow in a subprocess) pools an image-like
input the ways PP-MattingV2 does (4x4 and 2x2 windows of the photo, a 3x3 window at stride 2 on padded features, an
8x8 window tiling the features as its pyramid pooling does, which becomes a chain of 4x4 and 2x2) and once with SAME
padding, which must stay a pool.
"""

import numpy as np

from tests.quantized_rewrites import quantize_and_rewrite

_POOLS = """
    w1, w2, w3 = (tf.constant(rng.normal(0, 0.5, (3, 3, c, 8)).astype(np.float32)) for c in (3, 8, 8))

    class Model(tf.Module):  # pools between convolutions, as in PP-MattingV2's encoder, and of the image itself
        @tf.function(input_signature=[tf.TensorSpec([1, 32, 32, 3], tf.float32, name="img")])
        def __call__(self, img):
            features = tf.nn.relu(tf.nn.conv2d(img, w1, 1, "SAME"))
            half = tf.nn.avg_pool2d(features, 2, 2, "VALID")
            mixed = tf.nn.relu(tf.nn.conv2d(half, w2, 1, "SAME"))
            strided = tf.nn.avg_pool2d(tf.pad(mixed, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 2, "VALID")
            return {"quarter": tf.nn.avg_pool2d(img, 4, 4, "VALID"), "half": half, "strided": strided,
                    "after": tf.nn.conv2d(strided, w3, 1, "SAME"), "same": tf.nn.avg_pool2d(features, 3, 1, "SAME"),
                    "pyramid": tf.nn.avg_pool2d(features, 8, 8, "VALID")}
"""


def test_valid_int8_pools_run_in_xnnpack_as_convolutions_within_two_output_steps(tmp_path):
    found = quantize_and_rewrite(_POOLS, "edgematte.quant.tflite.average_pool_depthwise", "average_pools_as_depthwise",
                                 tmp_path / "saved_model")
    pools, convs = found["before"], found["after"]
    # TensorFlow names a signature's outputs PartitionedCall:<k>, k in the sorted order of their keys
    label = {f"PartitionedCall:{k}": name for k, name in enumerate(sorted(["quarter", "half", "strided", "after",
                                                                            "same", "pyramid"]))}
    assert pools["ops"].count("AVERAGE_POOL_2D") == 5
    # the four VALID pools are convolutions now (the 8x8 one two: 4x4, then 2x2); the SAME one (its border windows
    # are smaller) stays a pool
    assert sorted(label[name] for name in found["rewritten"]) == ["half", "pyramid", "quarter", "strided"]
    assert convs["ops"].count("AVERAGE_POOL_2D") == 1
    assert convs["ops"].count("DEPTHWISE_CONV_2D") == 5
    # XNNPACK takes int8 pools only as convolutions: the pools between convolutions cut its graph in three pieces
    assert (pools["partitions"], convs["partitions"]) == (3, 1)
    difference = {label[name]: np.abs(np.array(convs["outputs"][name]) - np.array(before)).max()
                  for name, before in pools["outputs"].items()}
    assert difference["same"] == 0  # not rewritten
    # the same window means, rounded otherwise in the last bit (output steps); not an identity by accident
    assert max(difference[name] for name in ("half", "quarter", "strided")) in (1, 2), difference
    # the chain rounds once more (half a step of the pool input's scale, here the output's too): still within 2
    assert difference["pyramid"] <= 2, difference


def test_tiling_windows_factor_into_stages_xnnpack_runs_in_one_pass():
    from edgematte.quant.tflite.average_pool_depthwise import MAX_TAPS, pools_rewritten, tiling_stages

    assert MAX_TAPS == 25
    assert tiling_stages(16, 16) == [(4, 4), (4, 4)]  # PP-MattingV2's pyramid pooling at 128x128
    assert tiling_stages(8, 8) == [(4, 4), (2, 2)]
    assert tiling_stages(32, 32) == [(4, 4), (4, 4), (2, 2)]
    assert tiling_stages(6, 6) == [(2, 2), (3, 3)]
    assert tiling_stages(49, 1) == [(7, 1), (7, 1)]
    assert tiling_stages(5, 5) == [(5, 5)]  # small enough: one convolution
    assert tiling_stages(7, 7) == [(7, 7)]  # prime: cannot be chained
    assert tiling_stages(14, 14) == [(14, 14)]  # 2 x 7: a 7x7 stage would be as slow
    # a chain's first convolution writes <output>/stage0: only the pool's own output is listed
    ops = [{"op": "DEPTHWISE_CONV_2D", "inputs": [{"name": "x"}, {"name": "p/average_pool_weights"}],
            "outputs": [{"name": "p/stage0"}]},
           {"op": "DEPTHWISE_CONV_2D", "inputs": [{"name": "p/stage0"}, {"name": "p/average_pool_weights1"}],
            "outputs": [{"name": "p"}]},
           {"op": "DEPTHWISE_CONV_2D", "inputs": [{"name": "y"}, {"name": "dw/weights"}], "outputs": [{"name": "dw"}]}]
    assert pools_rewritten(ops) == ["p"]
