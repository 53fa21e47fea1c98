"""Integer channel means become 1x1 convolutions (quant.tflite.channel_mean_convolution).

A tiny SavedModel (tests/quantized_rewrites.py: TensorFlow in a subprocess) takes channel means as
PP-MattingV2's fusion blocks do (over 8 and over 3 channels, one channel kept), a mean over the pixels and one
without kept dimensions, which must stay MEANs.
"""

import numpy as np

from tests.quantized_rewrites import quantize_and_rewrite

_MEANS = """
    w = tf.constant(rng.normal(0, 0.5, (3, 3, 3, 8)).astype(np.float32))

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 32, 32, 3], tf.float32, name="img")])
        def __call__(self, img):
            features = tf.nn.relu(tf.nn.conv2d(img, w, 1, "SAME"))
            return {"features": tf.reduce_mean(features, -1, keepdims=True),
                    "image": tf.reduce_mean(img, 3, keepdims=True),
                    "pixels": tf.reduce_mean(features, [1, 2], keepdims=True),
                    "dropped": tf.reduce_mean(features, -1) * 2.0}
"""


def test_int8_channel_means_become_convolutions_within_one_output_step(tmp_path):
    found = quantize_and_rewrite(_MEANS, "edgematte.quant.tflite.channel_mean_convolution",
                                 "channel_means_as_convolutions", tmp_path / "saved_model")
    means, convs = found["before"], found["after"]
    # TensorFlow names a signature's outputs PartitionedCall:<k>, k in the sorted order of their keys
    label = {f"PartitionedCall:{k}": name for k, name in enumerate(sorted(["features", "image", "pixels",
                                                                            "dropped"]))}
    assert means["ops"].count("MEAN") == 4
    assert len(found["rewritten"]) == 2  # the two channel means that keep their channel
    assert (convs["ops"].count("MEAN"), convs["ops"].count("CONV_2D")) == (2, 1 + 2)
    assert convs["partitions"] == 1
    difference = {label[name]: np.abs(np.array(convs["outputs"][name]) - np.array(before)).max()
                  for name, before in means["outputs"].items()}
    assert difference["pixels"] == 0 and difference["dropped"] == 0  # not rewritten
    # the same means; the convolution's fixed-point multiplier may round the last bit otherwise (here: no step
    # apart on these inputs; on PP-MattingV2 512x512 some pixels are)
    assert max(difference["features"], difference["image"]) <= 1, difference
