"""TFLite INT8 with an accuracy budget: full-integer files, int8 I/O, kept-float names, the search.

The network is a tiny SavedModel built here with TensorFlow (in a subprocess, as the converter
does: TensorFlow never loads into the test process), shaped like the trouble PP-MattingV2 has:

    x [1, 24, 24, 3] -> conv3x3 + relu -> "narrow" (range about [0, 1.6])
                     -> conv3x3 (weights 40x larger) + relu -> "wide" (range about [0, 60])
    narrow -> depthwise 3x3 + relu -> "detail"            (a consumer outside the concatenation)
    concat(narrow, wide) -> conv3x3 (16 channels) + relu -> "mixed"
    concat(detail, mixed) -> conv3x3 -> sigmoid -> alpha [1, 24, 24, 1]

The concatenation ties ``narrow`` to the scale of ``wide`` (40x wider) unless it is untied. The
builder also writes the float outputs on the evaluation inputs (the fp32 reference) and TF's own
``converter.convert()`` int8 model, to check that the staged quantization gives the same numbers.
onnx2tf is not needed for any of this (the SavedModel is what it would hand over).
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgematte.core.errors import EdgematteError
from edgematte.quant import budget
from edgematte.quant.tflite import check_kept_float, quantize_int8
from edgematte.quant.tflite.ranges import mse_optimal_range
from edgematte.quant.tflite_int8 import (
    FILE_NAMES,
    build_tflite_int8,
    float_compute_ops,
    layer_quantization_errors,
    model_ops,
    output_mad,
    run_float_io,
    split_keep_float,
)
from edgematte.runtime.backends.litert import LiteRTBackend, dequantize, quantize

SIZE = 24
CALIBRATION_COUNT = 12
EVALUATION_COUNT = 4

_BUILD_TINY = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf

    folder = sys.argv[1]
    rng = np.random.default_rng(0)

    def weight(*shape, scale=0.4):
        return tf.constant(rng.normal(0.0, scale, shape).astype(np.float32))

    w_narrow, w_wide = weight(3, 3, 3, 6), weight(3, 3, 3, 6, scale=16.0)
    w_detail = weight(3, 3, 6, 1)
    w_mix = weight(3, 3, 12, 16, scale=0.02)  # > 1024 weights: dynamic range quantizes only such tensors
    w_out = weight(3, 3, 22, 1, scale=0.06)

    class Tiny(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, %(size)d, %(size)d, 3], tf.float32, name="img")])
        def __call__(self, img):
            narrow = tf.nn.relu(tf.nn.conv2d(img, w_narrow, 1, "SAME"))
            wide = tf.nn.relu(tf.nn.conv2d(img, w_wide, 1, "SAME"))
            detail = tf.nn.relu(tf.nn.depthwise_conv2d(narrow, w_detail, [1, 1, 1, 1], "SAME"))
            mixed = tf.nn.relu(tf.nn.conv2d(tf.concat([narrow, wide], -1), w_mix, 1, "SAME"))
            logit = tf.nn.conv2d(tf.concat([detail, mixed], -1), w_out, 1, "SAME")
            return {"alpha": tf.sigmoid(logit)}

    module = Tiny()
    tf.saved_model.save(module, folder + "/saved_model", signatures=module.__call__.get_concrete_function())

    # smooth image-like inputs in [-1, 1]: calibration and (different) evaluation batches
    yy, xx = np.meshgrid(np.linspace(0, 1, %(size)d), np.linspace(0, 1, %(size)d), indexing="ij")
    def images(count, seed):
        r = np.random.default_rng(seed)
        out = []
        for _ in range(count):
            f, p = r.uniform(0.5, 3, (3, 2)), r.uniform(0, 6.3, 3)
            planes = [np.sin(2 * np.pi * (f[c, 0] * yy + f[c, 1] * xx) + p[c]) for c in range(3)]
            out.append(np.stack(planes, -1)[None].astype(np.float32) * r.uniform(0.5, 1.0))
        return np.stack(out)
    calibration, evaluation = images(%(calib)d, 1), images(%(eval)d, 2)
    np.save(folder + "/calibration.npy", calibration)
    np.save(folder + "/evaluation.npy", evaluation)
    np.save(folder + "/reference.npy", np.stack([module(x)["alpha"].numpy() for x in evaluation]))

    def representative():
        for batch in calibration:
            yield [batch]
    converter = tf.lite.TFLiteConverter.from_saved_model(folder + "/saved_model")
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    open(folder + "/tf_converter_int8.tflite", "wb").write(converter.convert())
""") % {"size": SIZE, "calib": CALIBRATION_COUNT, "eval": EVALUATION_COUNT}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_int8")
    done = subprocess.run([sys.executable, "-c", _BUILD_TINY, str(folder)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"folder": folder, "saved_model": folder / "saved_model",
            "calibration": np.load(folder / "calibration.npy"), "evaluation": np.load(folder / "evaluation.npy"),
            "reference": np.load(folder / "reference.npy")}


def evaluator(tiny):
    """The lead's callback, here: MAD of the artefact's alpha against the float SavedModel's."""
    calls = []

    def evaluate(path):
        calls.append(path.name)
        outputs = run_float_io(path, list(tiny["evaluation"]))
        return {"mad": output_mad(outputs, list(tiny["reference"])),
                "max_abs": float(max(np.abs(o - r).max() for o, r in zip(outputs, tiny["reference"])))}

    evaluate.calls = calls
    return evaluate


def node_named(ops, prefix):
    """The output name of the op whose name starts with ``prefix`` (onnx2tf-free TF names, e.g. 'Relu_1')."""
    names = [op["outputs"][0]["name"] for op in ops if op["outputs"]]
    matches = [n for n in names if prefix in n.split(";")[0]]
    assert len(matches) == 1, (prefix, names)
    return matches[0]


@pytest.fixture(scope="module")
def loose_build(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("loose")
    evaluate = evaluator(tiny)
    records = build_tflite_int8(tiny["saved_model"], tiny["calibration"], out, evaluate, budget_mad=0.5,
                                latency_runs=3, threads=1, work_dir=tiny["folder"] / "work")
    return out, records, evaluate


# ---------------------------------------------------------------------------------------------
# The files


def test_int8_files_exist_run_and_are_integer(loose_build):
    out, records, evaluate = loose_build
    assert sorted(p.name for p in out.iterdir()) == sorted(FILE_NAMES.values())
    by_file = {r["file"]: r for r in records}
    assert set(by_file) == set(FILE_NAMES.values())
    for record in records:
        assert record["size_bytes"] == (out / record["file"]).stat().st_size > 0
        assert record["latency_ms"] > 0 and record["numerics"]["mad"] == record["mad"]
        assert record["meets_budget"] is True  # 0.5 is a budget any working model meets
    # full integer: every op computes in int8 (only the float-I/O model's QUANTIZE/DEQUANTIZE touch float)
    for name in ("model_int8.tflite", "model_int8_io.tflite"):
        assert float_compute_ops(out / name) == [], name
        record = by_file[name]
        assert record["precision"] == "int8" and record["kept_float"] == {"nodes": [], "ops": []}
        assert record["fallback"]["searched"] is False and len(record["fallback"]["history"]) == 1
        assert record["quantization"] == {"activation_ranges": "mse", "untie_ratio": 4.0,
                                          "calibration_count": CALIBRATION_COUNT}
        # the narrow concatenation input got its own scale (see test_untie_...)
        assert len(record["untied"]) == 1
    io_backend = LiteRTBackend(out / "model_int8_io.tflite")
    assert io_backend.inputs[0].dtype == io_backend.outputs[0].dtype == "int8"
    assert LiteRTBackend(out / "model_int8.tflite").inputs[0].dtype == "float32"
    # dynamic range: int8 weights, float activations
    dynamic_ops = model_ops(out / "model_dynamic.tflite")
    convs = [op for op in dynamic_ops if op["op"] == "CONV_2D"]
    assert len(convs) == 4 and all(op["outputs"][0]["dtype"] == "float32" for op in convs)
    # TF quantizes only weight tensors of more than 1024 values: the 3x3x12x16 conv's
    assert [op["inputs"][1]["shape"] for op in convs if op["inputs"][1]["dtype"] == "int8"] == [[16, 3, 3, 12]]
    assert by_file["model_dynamic.tflite"]["precision"] == "dynamic"
    # measured numbers, not just files: the int8 models are close to float, dynamic range closer
    assert by_file["model_int8.tflite"]["mad"] < 0.03
    assert by_file["model_dynamic.tflite"]["mad"] < by_file["model_int8.tflite"]["mad"]
    print({r["file"]: round(r["mad"], 5) for r in records})


def test_int8_io_equals_float_io_within_one_output_step(loose_build, tiny):
    out, _, _ = loose_build
    float_io, int8_io = LiteRTBackend(out / "model_int8.tflite"), LiteRTBackend(out / "model_int8_io.tflite")
    spec_in, spec_out = int8_io.inputs[0], int8_io.outputs[0]
    step = spec_out.quant[0]
    worst = 0.0
    for x in tiny["evaluation"]:
        from_float = float_io.run(x)
        from_int8 = dequantize(int8_io.run(quantize(x, spec_in)), spec_out)
        worst = max(worst, float(np.abs(from_float - from_int8).max()))
    assert worst <= step * 1.0001, (worst, step)
    print(f"int8-I/O vs float-I/O: max {worst:.3g} (one output step = {step:.3g})")


def test_staged_quantization_matches_tf_converter(tiny, tmp_path):
    # calibration then mlir_quantize, with TF's min/max ranges and no untying, is what
    # converter.convert() does in one go
    ours = quantize_int8(tiny["saved_model"], tiny["calibration"], tmp_path / "ours.tflite", untie_ratio=None,
                         activation_ranges="minmax")
    theirs = tiny["folder"] / "tf_converter_int8.tflite"
    for x in tiny["evaluation"]:
        assert np.array_equal(LiteRTBackend(ours).run(x), LiteRTBackend(theirs).run(x))


def test_untie_gives_narrow_concat_input_its_own_scale(loose_build, tiny):
    out, records, _ = loose_build
    untied_model = out / "model_int8.tflite"
    tied_model = tiny["folder"] / "tf_converter_int8.tflite"  # TF's shared scales

    def narrow_scale(path):
        ops = model_ops(path)
        # the depthwise conv reads "narrow" directly: its input scale is narrow's scale
        (depthwise,) = [op for op in ops if op["op"] == "DEPTHWISE_CONV_2D"]
        (concat,) = [op for op in ops if op["op"] == "CONCATENATION" and op["outputs"][0]["shape"][-1] == 12]
        return depthwise["inputs"][0]["scale"], concat["outputs"][0]["scale"]

    tied, tied_concat = narrow_scale(tied_model)
    untied, untied_concat = narrow_scale(untied_model)
    assert tied == pytest.approx(tied_concat)  # shared with the 40x wider input
    assert untied < tied_concat / 8  # its own range
    evaluate = evaluator(tiny)
    tied_mad, untied_mad = evaluate(tied_model)["mad"], evaluate(untied_model)["mad"]
    assert untied_mad < 0.8 * tied_mad, (untied_mad, tied_mad)
    print(f"narrow scale {tied:.4g} -> {untied:.4g}; MAD {tied_mad:.5f} -> {untied_mad:.5f}")


# ---------------------------------------------------------------------------------------------
# Kept-float names


def test_keep_float_names_are_honoured(loose_build, tiny, tmp_path):
    out, _, _ = loose_build
    ops = model_ops(out / "model_int8.tflite")
    mixed_conv = node_named(ops, "Relu_3")  # the conv after the first concatenation
    records = build_tflite_int8(tiny["saved_model"], tiny["calibration"], tmp_path, evaluator(tiny),
                                budget_mad=None, keep_float=[mixed_conv, "DEPTHWISE_CONV_2D"], io_dtypes=("int8",),
                                dynamic_range=False, work_dir=tiny["folder"] / "work")
    (record,) = records
    assert record["kept_float"] == {"nodes": [mixed_conv], "ops": ["DEPTHWISE_CONV_2D"]}
    written = model_ops(tmp_path / "model_int8_io.tflite")
    by_name = {op["outputs"][0]["name"]: op for op in written}
    assert by_name[mixed_conv]["op"] == "CONV_2D" and by_name[mixed_conv]["outputs"][0]["dtype"] == "float32"
    assert by_name[mixed_conv]["inputs"][1]["dtype"] == "float32"  # float weights too
    depthwise = [op for op in written if op["op"] == "DEPTHWISE_CONV_2D"]
    assert depthwise and all(op["outputs"][0]["dtype"] == "float32" for op in depthwise)
    other_convs = [op for op in written if op["op"] == "CONV_2D" and op["outputs"][0]["name"] != mixed_conv]
    assert len(other_convs) == 3 and all(op["outputs"][0]["dtype"] == "int8" for op in other_convs)


def test_unknown_keep_float_names_fail_in_one_line(loose_build, tiny, tmp_path):
    with pytest.raises(EdgematteError) as caught:
        quantize_int8(tiny["saved_model"], None, tmp_path / "x.tflite", keep_float_nodes=["model/no_such_op"],
                      calibrated_model=tiny["folder"] / "work" / "calibrated.tflite", log_path=tmp_path / "q.log")
    assert "'model/no_such_op' is not the output of any op" in str(caught.value)
    assert "\n" not in str(caught.value) and not (tmp_path / "x.tflite").exists()
    with pytest.raises(EdgematteError, match="'BATCH_MATMUL' is not in the model"):
        check_kept_float(loose_build[0] / "model_int8.tflite", [], ["BATCH_MATMUL"])


def test_a_refused_full_integer_model_still_gives_the_dynamic_range_one(tiny, tmp_path, monkeypatch):
    """TensorFlow's quantizer refusing the calibrated model (as it does RVM at 720x1280) costs the full-integer
    files only: the dynamic-range model needs no calibration and is written, its record saying why it is alone."""
    from edgematte.quant import tflite_int8

    refusal = "saved_model: int8 quantization failed: RuntimeError (log: q.log)"

    def refused(self, *args, **kwargs):
        raise EdgematteError(refusal)

    monkeypatch.setattr(tflite_int8._JobRunner, "full_integer", refused)
    (record,) = build_tflite_int8(tiny["saved_model"], tiny["calibration"], tmp_path / "out", evaluator(tiny),
                                  budget_mad=None, work_dir=tmp_path / "work")
    assert record["precision"] == "dynamic" and record["full_integer_not_built"] == refusal
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model_dynamic.tflite"]
    assert LiteRTBackend(tmp_path / "out" / "model_dynamic.tflite").run(tiny["evaluation"][0]).shape
    with pytest.raises(EdgematteError, match="int8 quantization failed"):  # nothing else asked for: the refusal
        build_tflite_int8(tiny["saved_model"], tiny["calibration"], tmp_path / "out2", evaluator(tiny),
                          budget_mad=None, dynamic_range=False, work_dir=tmp_path / "work")


def _range_error(histogram, low, high, a, b):
    """Expected squared int8 error of values at the bin centres for the range [a, b], by direct summation."""
    edges = np.linspace(low, high, len(histogram) + 1)
    centres = (edges[1:] + edges[:-1]) / 2
    p = histogram / histogram.sum()
    inside = (centres >= a) & (centres <= b)
    return float((p * (centres - np.clip(centres, a, b)) ** 2).sum() + ((b - a) / 255) ** 2 / 12 * p[inside].sum())


def test_mse_range_clips_outliers_but_not_a_uniform_spread():
    # uniform values: any clipping costs more than it saves in rounding
    assert mse_optimal_range(np.ones(2048), 0.0, 10.0) == (0.0, 10.0)
    rng = np.random.default_rng(0)
    # a million values in [0, 1] and 20 spread out to 100: the range is cut short of 100 (where
    # clipping those 20 starts to cost more than the coarser rounding of all the others saves) ...
    values = np.concatenate([rng.random(1_000_000), rng.uniform(1, 100, 20)])
    histogram = np.histogram(values, 2048, (0.0, 100.0))[0]
    low, high = mse_optimal_range(histogram, 0.0, 100.0)
    assert low == 0.0 and 50.0 < high < 90.0, high
    # ... and no candidate end does better (brute force over a grid of upper ends)
    best = min(_range_error(histogram, 0.0, 100.0, 0.0, b) for b in np.linspace(12.5, 100.0, 176))
    assert _range_error(histogram, 0.0, 100.0, low, high) <= best * 1.01
    # signed: a million normal values and 20 outliers on each side: both ends cut, zero inside,
    # and no pair of grid ends does better
    values = np.concatenate([rng.normal(0.0, 1.0, 1_000_000), rng.uniform(-80, -5, 20), rng.uniform(5, 40, 20)])
    lo, hi = float(values.min()), float(values.max())
    histogram = np.histogram(values, 2048, (lo, hi))[0]
    low, high = mse_optimal_range(histogram, lo, hi)
    assert lo < low < 0 < high < hi and high - low < 0.8 * (hi - lo), (lo, low, high, hi)
    best = min(_range_error(histogram, lo, hi, a, b)
               for a in np.linspace(lo, lo / 8, 48) for b in np.linspace(hi, hi / 8, 48))
    assert _range_error(histogram, lo, hi, low, high) <= best * 1.01


def test_split_keep_float():
    assert split_keep_float(["BATCH_MATMUL", "model/tf.concat_3/concat", "PartitionedCall:0"]) == (
        ["model/tf.concat_3/concat", "PartitionedCall:0"], ["BATCH_MATMUL"])


# ---------------------------------------------------------------------------------------------
# The budget search


def test_tight_budget_keeps_layers_float_and_reports_history(tiny, tmp_path):
    evaluate = evaluator(tiny)
    # every layer of a 4-conv net is more than 5 % of it: lift the cost cap to exercise the search
    records = build_tflite_int8(tiny["saved_model"], tiny["calibration"], tmp_path, evaluate, budget_mad=1e-5,
                                max_steps=2, max_group_fraction=1.0, sensitivity_images=3, dynamic_range=False,
                                work_dir=tiny["folder"] / "work")
    by_io = {r["io_dtype"]: r for r in records}
    record = by_io["float32"]
    history = record["fallback"]["history"]
    assert record["fallback"]["searched"] is True
    # step 0 is plain full int8; a budget of 1e-5 cannot be met in 2 steps, so both were tried
    assert [h["step"] for h in history] == [0, 1, 2]
    assert history[0]["kept_float_nodes"] == [] and history[0]["added"] is None
    assert len(history[1]["kept_float_nodes"]) >= 1
    assert set(history[1]["kept_float_nodes"]) < set(history[2]["kept_float_nodes"])
    for step in history:
        assert step["mad"] > 0 and step["size_bytes"] > 0
    assert history[2]["macs_float"] > history[1]["macs_float"] > 0
    # unmet budget: the most accurate step is chosen, and said so
    assert record["meets_budget"] is False
    assert record["mad"] == min(h["mad"] for h in history) < history[0]["mad"]
    assert record["kept_float"]["nodes"], "the search kept nothing float"
    # the chosen nodes really are float in both written flavours
    for r in records:
        check_kept_float(tmp_path / r["file"], r["kept_float"]["nodes"], [])
    ranking = record["fallback"]["ranking"]
    assert len(ranking) >= 5 and ranking[0]["gain"] >= ranking[-1]["gain"]
    print([(h["step"], h["added"], round(h["mad"], 6)) for h in history])


def test_layer_errors_from_the_debugger(tiny):
    rows = layer_quantization_errors(tiny["saved_model"], None, tiny["calibration"][:2],
                                     calibrated_model=tiny["folder"] / "work" / "calibrated.tflite")
    ops = {row["op"] for row in rows}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "CONCATENATION", "LOGISTIC"} <= ops
    for row in rows:
        assert row["scale"] > 0 and 0.0 <= row["rmse_steps"] < 3.0, row
    assert [r["sqnr_db"] for r in rows] == sorted(r["sqnr_db"] for r in rows)
    # a quantized conv output keeps well above 20 dB of signal over its rounding noise
    conv = [r for r in rows if r["op"] == "CONV_2D"]
    assert max(r["sqnr_db"] for r in conv) > 20


# ---------------------------------------------------------------------------------------------
# The search logic alone (no TensorFlow)


def _op(name, op_type, inputs, out_shape=(1, 8, 8, 4), weights=None):
    tensors = [{"name": i, "shape": [1, 8, 8, 4]} for i in inputs]
    if weights is not None:
        tensors.append({"name": name + "/w", "shape": list(weights)})
    return {"op": op_type, "inputs": tensors, "outputs": [{"name": name, "shape": list(out_shape)}]}


def test_layer_groups_take_exclusive_scale_preserving_feeders():
    ops = [
        _op("pad", "PAD", ["img"]),
        _op("conv1", "CONV_2D", ["pad"], weights=(4, 3, 3, 4)),
        _op("pool", "AVERAGE_POOL_2D", ["conv1"]),   # feeds two ops: no group takes it
        _op("conv2", "CONV_2D", ["pool"], weights=(4, 1, 1, 4)),
        _op("conv2/requantize", "MUL", ["conv2", "one"]),  # an untie identity: never a group
        _op("concat", "CONCATENATION", ["pool", "conv2/requantize"], out_shape=(1, 8, 8, 8)),
        _op("conv3", "CONV_2D", ["concat"], weights=(1, 3, 3, 8), out_shape=(1, 8, 8, 1)),
        _op("alpha", "LOGISTIC", ["conv3"], out_shape=(1, 8, 8, 1)),
    ]
    groups = {g.anchor: g for g in budget.layer_groups(ops)}
    assert list(groups) == ["conv1", "conv2", "conv3", "alpha"]
    assert groups["conv1"].nodes == ("conv1", "pad")
    assert groups["conv2"].nodes == ("conv2",)
    assert groups["conv3"].nodes == ("conv3", "concat")
    assert groups["conv1"].macs == 256 * 3 * 3 * 4 + 256  # conv + pad (one per output element)
    assert groups["conv3"].macs == 64 * 3 * 3 * 8 + 512


def test_op_type_groups_and_the_cost_cap():
    ops = [
        _op("conv1", "CONV_2D", ["img"], weights=(4, 3, 3, 4)),      # 9216 MACs
        _op("mul1", "MUL", ["conv1", "s1"]),                         # 256
        _op("mul2", "MUL", ["mul1", "s2"]),                          # 256
        _op("big", "CONV_2D", ["mul2"], weights=(4, 7, 7, 64)),      # 802816: over 5 % of the total
    ]
    candidates = {g.label: g for g in budget.candidate_groups(ops)}
    assert set(candidates) == {"CONV_2D conv1", "MUL mul1", "MUL mul2", "every MUL (2)"}
    every_mul = candidates["every MUL (2)"]
    assert every_mul.nodes == ("mul1", "mul2") and every_mul.macs == 512 and every_mul.anchors == 2
    # two CONV_2D, but their union costs more than the cap as well
    assert "every CONV_2D (2)" in {g.label for g in budget.op_type_groups(budget.layer_groups(ops))}


def _group(name, macs=1):
    return budget.LayerGroup(anchor=name, anchor_op="CONV_2D", nodes=(name,), op_types=("CONV_2D",), macs=macs)


def test_search_stops_at_the_first_step_meeting_the_budget():
    groups = [_group("a"), _group("b"), _group("c"), _group("d")]
    ranked = budget.rank_groups(groups, 0.02, lambda sets: [0.019, 0.012, 0.0199, 0.015])
    assert [s.group.anchor for s in ranked] == ["b", "d", "a", "c"]
    assert ranked[0].gain == pytest.approx(0.008)
    asked = []

    def evaluate_steps(candidates):
        asked.extend(candidates)
        results = []
        for mad in (0.013, 0.0095, 0.009):
            results.append({"mad": mad, "size_bytes": 100})
            if mad <= 0.01:
                break
        return results

    result = budget.search_fallback({"mad": 0.02, "size_bytes": 90}, ranked, 0.01, evaluate_steps, max_steps=3)
    # c's gain (1e-4) is below 1 % of the MAD: never tried
    assert asked == [("b",), ("b", "d"), ("b", "d", "a")]
    assert result.meets_budget and result.kept_float_nodes == ["b", "d"] and result.mad == 0.0095
    assert [h["step"] for h in result.history] == [0, 1, 2]


def test_search_skips_groups_already_kept():
    every = budget.LayerGroup(anchor="MUL", anchor_op="MUL", nodes=("m1", "m2"), op_types=("MUL", "MUL"), macs=2,
                              anchors=2)
    ranked = budget.rank_groups([every, _group("m1"), _group("c")], 0.02, lambda sets: [0.01, 0.015, 0.018])
    result = budget.search_fallback({"mad": 0.02}, ranked, 0.001,
                                    lambda c: [{"mad": 0.01 - 0.001 * len(x)} for x in c], max_steps=3)
    assert [h["added"] for h in result.history] == [None, "every MUL (2)", "CONV_2D c"]
    assert result.kept_float_nodes == ["m1", "m2", "c"]


def test_search_hard_cap_and_unmet_budget():
    groups = [_group(n) for n in "abcdef"]
    ranked = budget.rank_groups(groups, 0.02, lambda sets: [0.018, 0.017, 0.016, 0.015, 0.014, 0.013])
    result = budget.search_fallback({"mad": 0.02}, ranked, 0.001,
                                    lambda c: [{"mad": 0.02 - 0.001 * len(x)} for x in c], max_steps=2)
    assert len(result.history) == 3 and not result.meets_budget
    assert result.kept_float_nodes == ["f", "e"] and result.mad == pytest.approx(0.018)
    nothing = budget.search_fallback({"mad": 0.005}, ranked, 0.01, lambda c: pytest.fail("no search needed"))
    assert nothing.meets_budget and nothing.kept_float_nodes == [] and len(nothing.history) == 1


_PYRAMID = textwrap.dedent("""
    import json
    import sys

    import numpy as np
    import tensorflow as tf

    from edgematte.quant.tflite.calibration import calibrate
    from edgematte.quant.tflite.quantize import mlir_quantize
    from edgematte.quant.tflite.untie import SAME_SCALE_OPS, untie_concatenation_scales

    folder = sys.argv[1]
    rng = np.random.default_rng(0)
    w1, w2 = (tf.constant(rng.normal(0, 0.5, (3, 3, 3, 3)).astype(np.float32)) for _ in range(2))

    class Pyramid(tf.Module):  # an image pooled twice, each level concatenated with wide features
        @tf.function(input_signature=[tf.TensorSpec([1, 16, 16, 3], tf.float32, name="img")])
        def __call__(self, img):
            a = tf.nn.avg_pool2d(img, 2, 2, "VALID")
            b = tf.nn.avg_pool2d(a, 2, 2, "VALID")
            x = tf.concat([a, tf.nn.conv2d(a, w1, 1, "SAME") * 20.0], -1)
            y = tf.concat([b, tf.nn.conv2d(b, w2, 1, "SAME") * 30.0], -1)
            return tf.reduce_mean(x, axis=[1, 2]) + tf.reduce_mean(y, axis=[1, 2])

    module = Pyramid()
    tf.saved_model.save(module, folder, signatures=module.__call__.get_concrete_function())
    batches = rng.uniform(0, 1, (8, 1, 16, 16, 3)).astype(np.float32)
    calibrated = calibrate(folder, batches)
    result = {}
    for label, after in (("mul", ()), ("conv", SAME_SCALE_OPS)):
        model, untied = untie_concatenation_scales(calibrated, 4.0, conv_identity_after=after)
        interpreter = tf.lite.Interpreter(model_content=model)
        interpreter.allocate_tensors()
        outputs = []
        for batch in batches[:2]:
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
            interpreter.invoke()
            outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).tolist())
        ops = [op["op_name"] for op in interpreter._get_ops_details()]
        result[label] = {"untied": untied, "ops": ops, "outputs": outputs}
        try:
            quantized = tf.lite.Interpreter(model_content=mlir_quantize(model, "float32"))
            result[label]["int8_ops"] = [op["op_name"] for op in quantized._get_ops_details()]
        except RuntimeError as error:
            result[label]["refused"] = str(error)
    interpreter = tf.lite.Interpreter(model_content=calibrated)
    interpreter.allocate_tensors()
    result["float"] = []
    for batch in batches[:2]:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
        interpreter.invoke()
        result["float"].append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).tolist())
    print(json.dumps(result))
""")


def test_untie_after_a_same_scale_op_requantizes_with_a_convolution(tmp_path):
    """An image pooled twice, each level concatenated with far wider features (RVM's encoder at 720x1280): untied by
    MUL identities, TensorFlow refuses the model (MLIR folds each MUL into its pool, which then needs two scales).
    Untied by 1x1 depthwise convolutions of weight 1, the float model computes exactly what it did and TensorFlow
    quantizes it, each identity a requantization of its own."""
    done = subprocess.run([sys.executable, "-c", _PYRAMID, str(tmp_path / "saved_model")], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    mul, conv = found["mul"], found["conv"]
    # both pooled levels are far narrower than what they are concatenated with: both are untied
    assert [u["identity"] for u in mul["untied"]] == ["MUL", "MUL"]
    assert [u["identity"] for u in conv["untied"]] == ["DEPTHWISE_CONV_2D", "DEPTHWISE_CONV_2D"]
    assert conv["ops"].count("DEPTHWISE_CONV_2D") == 2 and "MUL" not in conv["ops"]
    assert mul["outputs"] == conv["outputs"] == found["float"]  # identities: the float model is unchanged
    assert "'tfl.average_pool_2d' op quantization parameters violate the same scale constraint" in mul["refused"]
    assert "refused" not in conv and conv["int8_ops"].count("DEPTHWISE_CONV_2D") == 2  # kept as requantizations
