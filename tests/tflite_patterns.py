"""Small ``.tflite`` models with the patterns the ``tflite`` repairs rewrite, built by TensorFlow in a subprocess
(TensorFlow never loads into the test process): float32, and full integer (int8 I/O) calibrated on random inputs."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

_BUILD = textwrap.dedent("""
    import json
    import sys

    import numpy as np
    import tensorflow as tf

    folder, pattern = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(0)
    w = tf.constant(rng.normal(0, 0.5, (3, 3, 3, 8)).astype(np.float32))

    def features(x):
        return tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME"))

    def wide_concatenations(x):  # 6 and 13 two-channel maps (13: 5 + 5 + 3 -> 3 parts), 5 that XNNPACK takes
        f = features(x)
        maps = [f[..., :2] * float(k + 1) for k in range(13)]
        return {"six": tf.nn.relu(tf.concat(maps[:6], -1)), "thirteen": tf.concat(maps, -1),
                "five": tf.concat(maps[:5], -1)}

    def single_channel_maps(x):  # PP-MattingV2's channel means and maxima of three inputs; two maps; a mixed one
        f = features(x)
        parts = [f[..., :3], f[..., 3:], f * 0.5]
        maps = [m for p in parts for m in (tf.reduce_mean(p, -1, keepdims=True), tf.reduce_max(p, -1, keepdims=True))]
        return {"six": tf.concat(maps, -1), "two": tf.concat(maps[:2], -1),
                "mixed": tf.concat([maps[0], f[..., :2]], -1)}

    def channel_slices(x):  # three one-channel slices covering a 3-channel map; slices that do not cover theirs
        f = features(x)
        attention = tf.sigmoid(f[..., :3])
        weighted = [f * attention[..., k:k + 1] for k in range(3)]
        return {"weighted": tf.concat(weighted, -1), "partial": f[..., 0:2] + f[..., 2:4],
                "strided": f[..., 0:8:2]}

    def identity_resizes(x):  # to the input's own size (bilinear, nearest), to another size, one a model output
        f = features(x)
        same = tf.raw_ops.ResizeBilinear(images=f, size=[16, 16], half_pixel_centers=True)
        aligned = tf.raw_ops.ResizeBilinear(images=f * 0.5, size=[16, 16], align_corners=True)
        nearest = tf.raw_ops.ResizeNearestNeighbor(images=f, size=[16, 16])
        return {"sum": same + aligned + nearest * 2.0, "up": tf.raw_ops.ResizeBilinear(images=f, size=[32, 32]),
                "output": tf.raw_ops.ResizeBilinear(images=f * 3.0, size=[16, 16])}

    def conv(x, outputs, size=3, stride=1):
        weights = rng.normal(0, 1.0 / np.sqrt(size * size * int(x.shape[-1])), (size, size, int(x.shape[-1]), outputs))
        return tf.nn.conv2d(x, weights.astype(np.float32), stride, "SAME") + rng.normal(0, 0.1, outputs).astype(
            np.float32)

    def full_resolution_head(x):  # 256x256: PP-MattingV2's head; chains of 1 and 3 convolutions; what stays
        low = tf.nn.avg_pool2d(x, 2, 2, "VALID")
        up = tf.raw_ops.ResizeBilinear(images=tf.nn.relu(conv(low, 16)), size=[256, 256], half_pixel_centers=True)
        head = tf.nn.relu(conv(tf.nn.relu(conv(tf.concat([up, x], -1), 8)), 8))
        return {"alpha": tf.sigmoid(conv(head, 1, size=1)), "single": tf.tanh(conv(x + 0.5, 4)),
                "deep": conv(tf.nn.relu(conv(tf.nn.relu(conv(x + 1.0, 4)), 4)), 2),
                "wide": tf.nn.relu(conv(x - 1.0, 16)), "strided": conv(x - 2.0, 4, stride=2),
                "small": tf.tanh(conv(low - 0.5, 4))}

    build = {"wide_concatenations": wide_concatenations, "single_channel_maps": single_channel_maps,
             "channel_slices": channel_slices, "identity_resizes": identity_resizes,
             "full_resolution_head": full_resolution_head}[pattern]
    side = 256 if pattern == "full_resolution_head" else 16
    spec = tf.TensorSpec([1, side, side, 3], tf.float32, name="img")
    fn = tf.function(build, input_signature=[spec])
    concrete = fn.get_concrete_function()
    written = {}
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], fn)
    written["float32"] = converter.convert()

    def representative():
        for _ in range(8):
            yield [rng.uniform(-1, 1, (1, side, side, 3)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], fn)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    written["int8"] = converter.convert()
    paths = {}
    for precision, data in written.items():
        path = f"{folder}/{pattern}_{precision}.tflite"
        open(path, "wb").write(data)
        paths[precision] = path
    print(json.dumps(paths))
""")


def build_pattern_models(pattern: str, folder: Path) -> Dict[str, Path]:
    """``{"float32": path, "int8": path}`` of the tiny model ``pattern`` (``"wide_concatenations"``,
    ``"single_channel_maps"``, ``"channel_slices"``, ``"identity_resizes"``: 16x16; ``"full_resolution_head"``:
    256x256) written into ``folder``."""
    done = subprocess.run([sys.executable, "-c", _BUILD, str(folder), pattern], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return {k: Path(v) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def input_shape(path) -> Tuple[int, ...]:
    """The shape of the first input of the ``.tflite`` at ``path``."""
    from ai_edge_litert.interpreter import Interpreter

    return tuple(int(d) for d in Interpreter(model_path=str(path)).get_input_details()[0]["shape"])


def run_model(path, feeds) -> Tuple[List[str], List[dict]]:
    """The op types of the ``.tflite`` at ``path`` and its outputs ``{name: array}`` for each feed (1 thread)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    interpreter.allocate_tensors()
    outputs = []
    for feed in feeds:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], feed)
        interpreter.invoke()
        outputs.append({d["name"]: interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()})
    return ops, outputs


def delegated_alone(path, op_type: str) -> List[bool]:
    """For each op of ``op_type`` in the ``.tflite`` at ``path``: whether XNNPACK takes it, cut out as a one-op
    model."""
    from ai_edge_litert.interpreter import Interpreter

    from edgematte.runtime.tflite_flatbuffer import parse_model, submodel

    model = parse_model(Path(path).read_bytes())
    types = [op["op_name"] for op in Interpreter(model_path=str(path))._get_ops_details()]
    taken = []
    for index, op in enumerate(model.subgraphs[0].operators):
        if types[index] == op_type:
            interpreter = Interpreter(model_content=submodel(model, [index], list(op.outputs)), num_threads=1)
            interpreter.allocate_tensors()  # XNNPACK is applied here
            taken.append(interpreter._interpreter.NumNodes() > 1)  # the op, and XNNPACK's node when it took it
    return taken


def repaired_copy(model: Path, folder: Path, seed: int) -> Tuple[Path, List[dict], List[str], List[str]]:
    """A copy of ``model`` in ``folder`` given the TFLite repairs (``repair_tflite_file``), checked here on its own:
    the same outputs bit for bit on 3 random inputs. Returns ``(path, applied records, op types before, after)``."""
    from edgematte.converter.tflite_repairs import repair_tflite_file

    path = folder / "model.tflite"
    path.write_bytes(model.read_bytes())
    rng = np.random.default_rng(seed)
    integer = "int8" in model.name
    feeds = [(rng.uniform(-1, 1, input_shape(path)) * (127 if integer else 1)).astype(
        np.int8 if integer else np.float32) for _ in range(3)]
    ops_before, before = run_model(path, feeds)
    applied = repair_tflite_file(path)
    ops_after, after = run_model(path, feeds)
    for b, a in zip(before, after):
        assert b.keys() == a.keys()
        for name in b:
            assert b[name].dtype == a[name].dtype and np.array_equal(b[name], a[name]), name
    return path, applied, ops_before, ops_after
