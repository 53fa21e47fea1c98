"""ONNX INT8 in QDQ form: per-channel int8 weights, uint8 activations, the budget search, kept-float nodes.

Most tests use a tiny ONNX model built here with onnx.helper (opset 11, as paddle2onnx writes), shaped like
PP-MattingV2's trouble: two branches of very different ranges concatenated, a depthwise conv, an Add:

    img [1, 3, 24, 24] -> conv + relu -> "narrow" (small weights)
                       -> conv + relu -> "wide" (weights 16x larger)
    narrow -> depthwise conv + relu -> "detail" -> 1x1 conv -> "lifted"
    concat(narrow, wide) -> conv + relu -> "mixed";  add(mixed, lifted) -> "summed"
    concat(detail, summed) -> conv -> sigmoid -> alpha [1, 1, 24, 24]

The conversion's own QDQ artefact is checked in tests/test_quant_int8_pipeline.py, on the INT8 conversion built there
once (one file: one test worker builds it).
"""


import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgematte.core.errors import EdgematteError
from edgematte.quant.onnx_int8 import (
    ALGO_CALIBRATION,
    FILE_NAME,
    QdqQuantizer,
    build_onnx_int8,
    calibration_settings,
    runtime_census,
)
from edgematte.quant.tflite_int8 import output_mad
from edgematte.runtime.backends.onnxruntime import OnnxRuntimeBackend

from .conftest import run_main
from .test_hostile_runtime_inputs import one_error_line

SIZE = 24


def _conv(name, x, out, weight, group=1, pad=1):
    return [helper.make_node("Conv", [x, f"{name}.w_0", f"{name}.b_0"], [out], name=name, group=group,
                             pads=[pad] * 4, kernel_shape=list(weight.shape[2:])),
            numpy_helper.from_array(weight, f"{name}.w_0"),
            numpy_helper.from_array(np.full(weight.shape[0], 0.05, np.float32), f"{name}.b_0")]


def tiny_model(path):
    rng = np.random.default_rng(0)

    def w(*shape, scale=0.4):
        return rng.normal(0.0, scale, shape).astype(np.float32)

    parts = [_conv("conv_narrow", "img", "narrow_pre", w(6, 3, 3, 3)),
             _conv("conv_wide", "img", "wide_pre", w(6, 3, 3, 3, scale=6.4)),
             _conv("conv_detail", "narrow", "detail_pre", w(6, 1, 3, 3), group=6),
             _conv("conv_lift", "detail", "lifted", w(8, 6, 1, 1, scale=0.3), pad=0),
             _conv("conv_mix", "both", "mixed_pre", w(8, 12, 3, 3, scale=0.02)),
             _conv("conv_out", "joined", "logit", w(1, 14, 3, 3, scale=0.06))]
    nodes = [p[0] for p in parts]
    nodes += [helper.make_node("Relu", [f"{n}_pre"], [n], name=f"relu_{n}")
              for n in ("narrow", "wide", "detail", "mixed")]
    nodes += [helper.make_node("Concat", ["narrow", "wide"], ["both"], name="concat_both", axis=1),
              helper.make_node("Add", ["mixed", "lifted"], ["summed"], name="add_summed"),
              helper.make_node("Concat", ["detail", "summed"], ["joined"], name="concat_joined", axis=1),
              helper.make_node("Sigmoid", ["logit"], ["alpha"], name="sigmoid_alpha")]
    order = {n: i for i, n in enumerate(["conv_narrow", "conv_wide", "relu_narrow", "relu_wide", "conv_detail",
                                         "relu_detail", "conv_lift", "concat_both", "conv_mix", "relu_mixed",
                                         "add_summed", "concat_joined", "conv_out", "sigmoid_alpha"])}
    graph = helper.make_graph(sorted(nodes, key=lambda n: order[n.name]), "tiny",
                              [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
                              [helper.make_tensor_value_info("alpha", TensorProto.FLOAT, [1, 1, SIZE, SIZE])],
                              [t for p in parts for t in p[1:]])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def images(count, seed):
    """Smooth image-like NCHW inputs in [-1, 1]."""
    r = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, SIZE), np.linspace(0, 1, SIZE), indexing="ij")
    out = []
    for _ in range(count):
        f, p = r.uniform(0.5, 3, (3, 2)), r.uniform(0, 6.3, 3)
        planes = [np.sin(2 * np.pi * (f[c, 0] * yy + f[c, 1] * xx) + p[c]) for c in range(3)]
        out.append((np.stack(planes)[None] * r.uniform(0.5, 1.0)).astype(np.float32))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_onnx_int8")
    path = tiny_model(folder / "model.onnx")
    evaluation = images(4, 2)
    reference = [OnnxRuntimeBackend(path, threads=1).run(x) for x in evaluation]
    return {"folder": folder, "model": path, "calibration": images(12, 1), "evaluation": evaluation,
            "reference": reference}


def evaluator(tiny):
    def evaluate(path):
        backend = OnnxRuntimeBackend(path, threads=1)
        return {"mad": output_mad([backend.run(x) for x in tiny["evaluation"]], tiny["reference"])}

    return evaluate


@pytest.fixture(scope="module")
def loose(tiny):
    out = tiny["folder"] / "out" / FILE_NAME
    record = build_onnx_int8(tiny["model"], tiny["calibration"], out, evaluator(tiny), budget_mad=0.5, latency_runs=2,
                             threads=1, work_dir=tiny["folder"] / "work_loose")
    return out, record


def weight_dequantizers(model):
    """{Conv node name: the DequantizeLinear node feeding its weight} of a QDQ model."""
    producer = {o: n for n in model.graph.node for o in n.output}
    return {n.name: producer[n.input[1]] for n in model.graph.node
            if n.op_type == "Conv" and producer.get(n.input[1]) is not None
            and producer[n.input[1]].op_type == "DequantizeLinear"}


def test_qdq_file_has_per_channel_int8_weights_and_runs(loose, tiny):
    out, record = loose
    model = onnx.load(str(out))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > 0
    initializers = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    dequantizers = weight_dequantizers(model)
    assert len(dequantizers) == 6  # every conv's weight is int8
    for conv, dq in dequantizers.items():
        weight, scale = initializers[dq.input[0]], initializers[dq.input[1]]
        axis = next(a.i for a in dq.attribute if a.name == "axis")
        assert weight.dtype == np.int8 and axis == 0 and scale.shape == (weight.shape[0],), conv
        assert not np.any(initializers[dq.input[2]])  # symmetric weights: zero points 0
    activation_zero_points = [initializers[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert all(z.dtype == np.uint8 for z in activation_zero_points)
    assert [i.name for i in model.graph.input] == ["img"] and model.graph.input[0].type.tensor_type.elem_type == 1
    assert model.graph.output[0].type.tensor_type.elem_type == 1  # float I/O
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 13  # raised from 11
    # it runs, near the float model, and ONNX Runtime turns the convs into integer kernels
    mad = output_mad([OnnxRuntimeBackend(out, threads=1).run(x) for x in tiny["evaluation"]], tiny["reference"])
    assert 0 < mad == record["mad"] < 0.05
    assert record["qdq"]["per_channel_weights"] == 6 and record["qdq"]["onnxruntime_cpu"]["integer_kernels"] >= 6
    assert record["qdq"]["onnxruntime_cpu"]["float_compute_nodes"] == []
    settings = record["quantization"]
    assert (settings["format"], settings["per_channel"], settings["activation_type"], settings["weight_type"]) == (
        "QDQ", True, "QUInt8", "QInt8")
    assert settings["calibrate_method"] == "MinMax" and settings["calibrator_options"] == {"moving_average": True}
    assert settings["opset"] == {"fp32": 11, "quantized": 13} and settings["calibration_count"] == 12
    assert record["meets_budget"] is True and record["fallback"]["searched"] is False
    assert record["latency_ms"] > 0 and record["kept_float"] == {"nodes": [], "ops": []}
    assert not list(out.parent.glob("*.tmp*")) and [p.name for p in out.parent.iterdir()] == [FILE_NAME]


def test_the_quantizer_is_quantize_static_split_in_two(tiny, tmp_path):
    """One calibration serving every variant gives what ONNX Runtime's quantize_static writes."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    quantizer = QdqQuantizer(tiny["model"], tiny["calibration"], "avg", tmp_path)
    ours = quantizer.write(tmp_path / "ours.onnx")
    feeds = iter([{"img": x} for x in tiny["calibration"]])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(feeds, None)

    theirs = tmp_path / "theirs.onnx"
    quantize_static(quantizer.prepared, theirs, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, extra_options={"CalibMovingAverage": True})
    a, b = OnnxRuntimeBackend(ours, threads=1), OnnxRuntimeBackend(theirs, threads=1)
    for x in tiny["evaluation"]:
        assert np.array_equal(a.run(x), b.run(x))


def test_every_node_kept_float_is_the_float_model_bit_for_bit(tiny, tmp_path):
    """Kept nodes read the float tensors their inputs were quantized from, Relus the quantizer folded put back:
    with every node kept, nothing of int8 is left and the output is the float model's."""
    quantizer = QdqQuantizer(tiny["model"], tiny["calibration"], "avg", tmp_path)
    every = [op["outputs"][0]["name"] for op in quantizer.ops]
    path = quantizer.write(tmp_path / "all_float.onnx", every)
    census = runtime_census(path, tmp_path, [quantizer.node_names[n] for n in every])
    assert census["integer_kernels"] == 0 and census["quantize_dequantize"] == 0
    backend = OnnxRuntimeBackend(path, threads=1)
    for x, reference in zip(tiny["evaluation"], tiny["reference"]):
        assert np.array_equal(backend.run(x), reference)


def test_keep_float_names_nodes_weights_and_op_types(tiny, tmp_path):
    evaluate = evaluator(tiny)
    record = build_onnx_int8(tiny["model"], tiny["calibration"], tmp_path / FILE_NAME, evaluate, budget_mad=None,
                             keep_float=["conv_mix", "conv_lift.w_0", "DEPTHWISE_CONV_2D", "Add", "conv2d_99.w_0"],
                             threads=1, work_dir=tmp_path / "work")
    assert record["kept_float"] == {"nodes": ["mixed_pre", "lifted", "detail_pre", "summed"],
                                    "ops": ["DEPTHWISE_CONV_2D", "Add"]}
    assert record["keep_float_unmatched"] == ["conv2d_99.w_0"]  # a Paddle name: for the other formats
    assert set(record["quantization"]["excluded_nodes"]) == {"conv_mix", "conv_lift", "conv_detail", "add_summed"}
    floats = set(record["qdq"]["onnxruntime_cpu"]["float_compute_nodes"])
    assert {"conv_mix", "conv_lift", "conv_detail", "add_summed"} <= floats
    assert set(weight_dequantizers(onnx.load(str(tmp_path / FILE_NAME)))) == {"conv_narrow", "conv_wide", "conv_out"}


def test_a_tiny_budget_keeps_the_most_sensitive_groups_float(tiny, tmp_path):
    # every layer of this net is more than 5 % of it: lift the cost cap to exercise the search
    record = build_onnx_int8(tiny["model"], tiny["calibration"], tmp_path / FILE_NAME, evaluator(tiny),
                             budget_mad=1e-6, max_steps=2, max_group_fraction=1.0, sensitivity_images=3, threads=1,
                             latency_runs=2, work_dir=tmp_path / "work")
    fallback = record["fallback"]
    history = fallback["history"]
    assert fallback["searched"] is True and [h["step"] for h in history] == [0, 1, 2]
    assert history[0]["kept_float_nodes"] == [] and history[0]["added"] is None
    assert set(history[1]["kept_float_nodes"]) < set(history[2]["kept_float_nodes"])
    assert all(h["mad"] > 0 and h["size_bytes"] > 0 and h["latency_ms"] > 0 for h in history)
    ranking = fallback["ranking"]
    assert len(ranking) >= 5 and ranking[0]["gain"] >= ranking[-1]["gain"] > -1
    # unmet: the most accurate step is chosen, it is more accurate than plain int8, and its nodes are float
    assert record["meets_budget"] is False
    assert record["mad"] == min(h["mad"] for h in history) < history[0]["mad"]
    assert record["kept_float"]["nodes"] and record["quantization"]["excluded_nodes"]
    floats = set(record["qdq"]["onnxruntime_cpu"]["float_compute_nodes"])
    anchors = [r["anchor"] for r in ranking if r["label"] == history[1]["added"]]
    assert anchors and any(n in floats for n in record["quantization"]["excluded_nodes"])
    print([(h["step"], h["added"], round(h["mad"], 6)) for h in history])


def test_algo_mapping_and_refusal():
    assert {a: ALGO_CALIBRATION[a][0] for a in ALGO_CALIBRATION} == {
        "avg": "MinMax", "abs_max": "MinMax", "hist": "Percentile", "KL": "Entropy"}
    with pytest.raises(EdgematteError, match="ONNX Runtime has no MSE") as refused:
        calibration_settings("mse")
    assert "\n" not in str(refused.value)


def test_convert_refuses_an_algo_onnx_runtime_lacks_before_any_work(capsys, tmp_path):
    code, out, err = run_main(capsys, "convert", "ppmattingv2", "--seed", "0", "--width", "0.25", "--input-shape",
                              1, 3, 64, 64, "--to", "onnx", "--int8", "--algo", "mse", "-o", tmp_path / "out")
    one_error_line(code, err, None, "--algo mse: ONNX Runtime has no MSE", "leave onnx out of --to")
    assert out == "" and not (tmp_path / "out").exists()
