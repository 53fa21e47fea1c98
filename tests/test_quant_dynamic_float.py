"""Dynamic-range TFLite with layers kept float: the weight swap, its proof, and the budget search.

The network is a tiny SavedModel built here with TensorFlow (in a subprocess, as the converter does), a chain
of 3x3 convolutions whose weights all have more than 1024 elements (dynamic range quantizes only those), one
of them read by two convolutions:

    x [1, 16, 16, 8] -> conv a -> conv b -> conv c (w_shared) -> conv d (w_shared) -> conv e -> 1x1 -> sigmoid

The weights are scaled so that each hybrid op's on-the-fly input quantization costs a visible MAD.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgematte.core.errors import EdgematteError
from edgematte.quant import budget
from edgematte.quant.tflite.float_weights import KEPT_FLOAT_SUFFIX, KeptFloatBuilder, hybrid_weights
from edgematte.quant.tflite.ops import tflite_ops
from edgematte.quant.tflite_int8 import build_tflite_int8, output_mad, run_float_io

SIZE = 16

_BUILD = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf

    folder, seed = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(seed)

    def weight(*shape):
        fan_in = shape[0] * shape[1] * shape[2]
        return tf.constant(rng.normal(0.0, 1.6 / np.sqrt(fan_in), shape).astype(np.float32))

    w_a, w_b, w_shared, w_e = weight(3, 3, 8, 16), weight(3, 3, 16, 16), weight(3, 3, 16, 16), weight(3, 3, 16, 8)
    w_out = weight(1, 1, 8, 1)

    class Chain(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, %(size)d, %(size)d, 8], tf.float32, name="img")])
        def __call__(self, img):
            x = tf.nn.tanh(tf.nn.conv2d(img, w_a, 1, "SAME"))
            x = tf.nn.tanh(tf.nn.conv2d(x, w_b, 1, "SAME"))
            x = tf.nn.tanh(tf.nn.conv2d(x, w_shared, 1, "SAME"))
            x = tf.nn.tanh(tf.nn.conv2d(x, w_shared, 1, "SAME"))
            x = tf.nn.tanh(tf.nn.conv2d(x, w_e, 1, "SAME"))
            return {"alpha": tf.sigmoid(4.0 * tf.nn.conv2d(x, w_out, 1, "SAME"))}

    module = Chain()
    tf.saved_model.save(module, folder + "/saved_model", signatures=module.__call__.get_concrete_function())
    r = np.random.default_rng(7)
    calibration = r.uniform(-1, 1, (6, 1, %(size)d, %(size)d, 8)).astype(np.float32)
    evaluation = r.uniform(-1, 1, (3, 1, %(size)d, %(size)d, 8)).astype(np.float32)
    np.save(folder + "/calibration.npy", calibration)
    np.save(folder + "/evaluation.npy", evaluation)
    np.save(folder + "/reference.npy", np.stack([module(x)["alpha"].numpy() for x in evaluation]))
    converter = tf.lite.TFLiteConverter.from_saved_model(folder + "/saved_model")
    open(folder + "/float.tflite", "wb").write(converter.convert())
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    open(folder + "/dynamic.tflite", "wb").write(converter.convert())
""") % {"size": SIZE}


def _build(folder, seed):
    done = subprocess.run([sys.executable, "-c", _BUILD, str(folder), str(seed)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"folder": folder, "saved_model": folder / "saved_model", "float": (folder / "float.tflite").read_bytes(),
            "dynamic": (folder / "dynamic.tflite").read_bytes(),
            "calibration": np.load(folder / "calibration.npy"), "evaluation": np.load(folder / "evaluation.npy"),
            "reference": np.load(folder / "reference.npy")}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("chain"), seed=0)


def _outputs(content: bytes, inputs, tmp_path, name="variant.tflite"):
    path = tmp_path / name
    path.write_bytes(content)
    return run_float_io(path, list(inputs), threads=1)


def _weight_inputs(content: bytes, tmp_path):
    """{op output name: dtype of its weight input} for the model's CONV_2D ops, in order."""
    path = tmp_path / "inspect.tflite"
    path.write_bytes(content)
    return [(op["outputs"][0]["name"], op["inputs"][1]["dtype"]) for op in tflite_ops(path) if op["op"] == "CONV_2D"]


def test_pairs_list_every_hybrid_op_in_order(chain, tmp_path):
    pairs = hybrid_weights(chain["dynamic"], chain["float"])
    # a, b, c, d, e hold > 1024 weights; the 1x1 output conv (8 weights) stays float in the dynamic model
    assert [p.op for p in pairs] == ["CONV_2D"] * 5
    assert [p.shape for p in pairs] == [(16, 3, 3, 8), (16, 3, 3, 16), (16, 3, 3, 16), (16, 3, 3, 16), (8, 3, 3, 16)]
    assert all(0.3 < p.max_steps <= 0.5 + 1e-3 for p in pairs)
    assert pairs[2].tensor == pairs[3].tensor, "the shared weight is one int8 tensor read by two convs"
    kinds = _weight_inputs(chain["dynamic"], tmp_path)
    assert [dtype for _, dtype in kinds] == ["int8"] * 5 + ["float32"]


def test_every_op_float_is_the_float_model_bit_for_bit(chain, tmp_path):
    builder = KeptFloatBuilder(chain["dynamic"], chain["float"])
    nodes = [p.node for p in builder.pairs]
    everything = builder.build(nodes)
    twin = _outputs(chain["float"], chain["evaluation"], tmp_path, "twin.tflite")
    for got, want in zip(_outputs(everything, chain["evaluation"], tmp_path), twin):
        np.testing.assert_array_equal(got, want)
    # the int8 copies are dropped: the file is the float model's size, not float plus int8
    assert abs(len(everything) - len(chain["float"])) < 0.02 * len(chain["float"])
    assert len(chain["dynamic"]) < 0.5 * len(chain["float"])
    # nothing kept: the dynamic model as it was; the builder is reusable after each variant
    assert builder.build([]) == bytes(chain["dynamic"])
    dynamic = _outputs(chain["dynamic"], chain["evaluation"], tmp_path, "dynamic.tflite")
    assert output_mad(dynamic, twin) > 1e-4, "the dynamic model must differ from float for these tests to mean much"
    np.testing.assert_array_equal(_outputs(builder.build(nodes), chain["evaluation"][:1], tmp_path)[0], twin[0])


def test_a_shared_weight_stays_int8_for_the_op_that_stays_hybrid(chain, tmp_path):
    builder = KeptFloatBuilder(chain["dynamic"], chain["float"])
    c, d = builder.pairs[2].node, builder.pairs[3].node
    only_c = _weight_inputs(builder.build([c]), tmp_path)
    assert only_c[2] == (c, "float32") and only_c[3] == (d, "int8")
    path = tmp_path / "only_c.tflite"
    path.write_bytes(builder.build([c]))
    weight_names = [op["inputs"][1]["name"] for op in tflite_ops(path) if op["op"] == "CONV_2D"]
    assert weight_names[2] == weight_names[3] + KEPT_FLOAT_SUFFIX
    # both readers kept: the one tensor turns float, no copy
    both = builder.build([c, d])
    assert _weight_inputs(both, tmp_path)[2:4] == [(c, "float32"), (d, "float32")]
    path.write_bytes(both)
    assert not any(t["name"].endswith(KEPT_FLOAT_SUFFIX) for op in tflite_ops(path) for t in op["inputs"])
    # and it computes what float weights give: kept c and d, quantized a, b, e
    reference = _outputs(chain["float"], chain["evaluation"], tmp_path, "twin.tflite")
    assert output_mad(_outputs(both, chain["evaluation"], tmp_path), reference) < \
        output_mad(_outputs(chain["dynamic"], chain["evaluation"], tmp_path, "dyn.tflite"), reference)


def test_unknown_nodes_and_foreign_twins_are_refused(chain, tmp_path_factory):
    builder = KeptFloatBuilder(chain["dynamic"], chain["float"])
    with pytest.raises(EdgematteError,
                       match=r"^not a dynamic-range \(int8 weight\) op of the model: 'nope' and 1 more$"):
        builder.build([builder.pairs[0].node, "nope", "nope either"])
    other = _build(tmp_path_factory.mktemp("other_seed"), seed=1)
    with pytest.raises(EdgematteError, match=r"^op \d+ \(CONV_2D\) input 1: the int8 weight is \d+\.\d\d steps from "
                                             r"the float twin's \(at most 0\.5 when they are the same weight\)$"):
        hybrid_weights(chain["dynamic"], other["float"])
    with pytest.raises(EdgematteError, match=r"^float twin: not a readable \.tflite flatbuffer"):
        hybrid_weights(chain["dynamic"], b"TFL3" + bytes(40))


def test_tight_budget_keeps_the_costliest_weights_float(chain, tmp_path):
    def evaluate(path):
        outputs = run_float_io(path, list(chain["evaluation"]), threads=1)
        return {"mad": output_mad(outputs, list(chain["reference"]))}

    plain = evaluate(chain["folder"] / "dynamic.tflite")["mad"]
    budget_mad = plain / 2  # measured: the 4 costliest of 5 float meet it, the 3 costliest do not
    records = build_tflite_int8(chain["saved_model"], chain["calibration"], tmp_path, evaluate,
                                budget_mad=budget_mad, io_dtypes=("float32",), max_steps=4, sensitivity_images=2,
                                threads=1, work_dir=tmp_path / "work")
    record = next(r for r in records if r["precision"] == "dynamic")
    fallback = record["fallback"]
    history = fallback["history"]
    assert fallback["searched"] is True and history[0]["mad"] == pytest.approx(plain)
    assert len(fallback["ranking"]) == 5 and fallback["ranking"][0]["gain"] >= fallback["ranking"][-1]["gain"]
    # bisection over 5 ranked ops: 2 first, then 1 or 3, ...
    assert history[1]["added"] == "the 2 costliest" and len(history[1]["kept_float_nodes"]) == 2
    assert record["meets_budget"] is True and record["mad"] <= budget_mad
    kept = record["kept_float"]["nodes"]
    assert 1 <= len(kept) < 5
    assert kept == [r["anchor"] for r in fallback["ranking"][:len(kept)]]
    # the published file is the chosen variant: its kept ops read float weights, the others int8
    kinds = dict(_weight_inputs((tmp_path / record["file"]).read_bytes(), tmp_path))
    assert {n for n, dtype in kinds.items() if dtype == "float32"} >= set(kept)
    assert sum(dtype == "int8" for dtype in kinds.values()) >= 1
    assert evaluate(tmp_path / record["file"])["mad"] == pytest.approx(record["mad"])


def _group(name, macs=1):
    return budget.LayerGroup(anchor=name, anchor_op="CONV_2D", nodes=(name,), op_types=("CONV_2D",), macs=macs)


def test_rank_by_cost_and_bisection():
    groups = [_group(n, macs=i + 1) for i, n in enumerate("abcdefgh")]
    ranked = budget.rank_by_cost(groups, lambda sets: [0.01, 0.05, 0.0, 0.03, 0.02, 0.04, 0.001, 0.002])
    assert [s.group.anchor for s in ranked] == ["b", "f", "d", "e", "a", "h", "g", "c"]
    # the MAD falls as more of the costliest are kept float: meets 0.01 from 3 on
    asked = []

    def evaluate(nodes):
        asked.append(len(nodes))
        return {"mad": [0.06, 0.04, 0.02, 0.009, 0.007, 0.005, 0.003, 0.001, 0.0][len(nodes)]}

    result = budget.search_prefix({"mad": 0.06}, ranked, 0.01, evaluate, max_steps=8)
    assert asked == [4, 2, 3] and result.meets_budget and result.kept_float_nodes == ["b", "f", "d"]
    assert [h["added"] for h in result.history] == [None, "the 4 costliest", "the 2 costliest", "the 3 costliest"]
    assert result.history[3]["macs_float"] == 2 + 6 + 4
    # a cap of 2 evaluations: the shortest head evaluated to meet it (4)
    capped = budget.search_prefix({"mad": 0.06}, ranked, 0.01, evaluate, max_steps=2)
    assert capped.kept_float_nodes == ["b", "f", "d", "e"] and len(capped.history) == 3
    # never met within the cap: the most accurate head evaluated, said so
    unmet = budget.search_prefix({"mad": 0.06}, ranked, 1e-6, evaluate, max_steps=3)
    assert not unmet.meets_budget and len(unmet.kept_float_nodes) == 7 and unmet.mad == pytest.approx(0.001)
    assert budget.search_prefix({"mad": 0.005}, ranked, 0.01, lambda n: pytest.fail("no search")).kept_float_nodes == []
