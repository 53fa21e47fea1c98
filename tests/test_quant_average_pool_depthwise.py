"""Integer average pools become depthwise convolutions that XNNPACK runs (quant.tflite.average_pool_depthwise).

A tiny SavedModel built here (in a subprocess: TensorFlow never loads into the test process) pools an image-like
input the ways PP-MattingV2 does (4x4 and 2x2 windows of the photo, a 3x3 window at stride 2 on padded features)
and once with SAME padding, which must stay a pool. It is calibrated and quantized as the converter does, then
rewritten; both run in LiteRT with XNNPACK.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np

_POOLS = textwrap.dedent("""
    import json
    import sys

    import numpy as np
    import tensorflow as tf

    from edgematte.quant.tflite.average_pool_depthwise import average_pools_as_depthwise
    from edgematte.quant.tflite.calibration import calibrate
    from edgematte.quant.tflite.quantize import mlir_quantize

    folder = sys.argv[1]
    rng = np.random.default_rng(0)
    w1, w2, w3 = (tf.constant(rng.normal(0, 0.5, (3, 3, c, 8)).astype(np.float32)) for c in (3, 8, 8))

    class Pools(tf.Module):  # pools between convolutions, as in PP-MattingV2's encoder, and of the image itself
        @tf.function(input_signature=[tf.TensorSpec([1, 32, 32, 3], tf.float32, name="img")])
        def __call__(self, img):
            features = tf.nn.relu(tf.nn.conv2d(img, w1, 1, "SAME"))
            half = tf.nn.avg_pool2d(features, 2, 2, "VALID")
            mixed = tf.nn.relu(tf.nn.conv2d(half, w2, 1, "SAME"))
            strided = tf.nn.avg_pool2d(tf.pad(mixed, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 2, "VALID")
            return {"quarter": tf.nn.avg_pool2d(img, 4, 4, "VALID"), "half": half, "strided": strided,
                    "after": tf.nn.conv2d(strided, w3, 1, "SAME"), "same": tf.nn.avg_pool2d(features, 3, 1, "SAME")}

    module = Pools()
    tf.saved_model.save(module, folder, signatures=module.__call__.get_concrete_function())
    batches = rng.uniform(-1, 1, (8, 1, 32, 32, 3)).astype(np.float32)
    quantized = mlir_quantize(calibrate(folder, batches), "int8")
    rewritten, names = average_pools_as_depthwise(quantized)
    found = {"rewritten": names}
    for label, model in (("pools", quantized), ("convolutions", rewritten)):
        interpreter = tf.lite.Interpreter(model_content=model, num_threads=1)
        ops = [op["op_name"] for op in interpreter._get_ops_details()]
        interpreter.allocate_tensors()
        details = interpreter.get_input_details()[0]
        outputs = {}
        for k, batch in enumerate(batches[:3]):
            scale, zero = details["quantization"]
            interpreter.set_tensor(details["index"], np.clip(np.round(batch / scale) + zero, -128, 127).astype(np.int8))
            interpreter.invoke()
            for d in interpreter.get_output_details():
                outputs.setdefault(d["name"], []).append(interpreter.get_tensor(d["index"]).astype(int).tolist())
        # nodes beyond the model's own ops are XNNPACK partitions
        found[label] = {"ops": ops, "partitions": interpreter._interpreter.NumNodes() - len(ops), "outputs": outputs}
    print(json.dumps(found))
""")


def test_valid_int8_pools_run_in_xnnpack_as_convolutions_within_two_output_steps(tmp_path):
    done = subprocess.run([sys.executable, "-c", _POOLS, str(tmp_path / "saved_model")], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    pools, convs = found["pools"], found["convolutions"]
    # TensorFlow names a signature's outputs PartitionedCall:<k>, k in the sorted order of their keys
    label = {f"PartitionedCall:{k}": name for k, name in enumerate(sorted(["quarter", "half", "strided", "after",
                                                                            "same"]))}
    assert pools["ops"].count("AVERAGE_POOL_2D") == 4
    # the three VALID pools are convolutions now; the SAME one (its border windows are smaller) stays a pool
    assert sorted(label[name] for name in found["rewritten"]) == ["half", "quarter", "strided"]
    assert convs["ops"].count("AVERAGE_POOL_2D") == 1
    assert convs["ops"].count("DEPTHWISE_CONV_2D") == 3
    # XNNPACK takes int8 pools only as convolutions: the pools between convolutions cut its graph in three pieces
    assert (pools["partitions"], convs["partitions"]) == (3, 1)
    difference = {label[name]: np.abs(np.array(convs["outputs"][name]) - np.array(before)).max()
                  for name, before in pools["outputs"].items()}
    assert difference["same"] == 0  # not rewritten
    # the same window means, rounded otherwise in the last bit (output steps); not an identity by accident
    assert max(difference[name] for name in ("half", "quarter", "strided")) in (1, 2), difference
