"""`edgematte convert --int8` (Paddle Lite and TFLite paths) on the tiny model: numerics recorded, and equal to a
fresh evaluation by the runtime on the same held-out images. The conversion (conftest's ``int8_conversion``) also
builds the QDQ ONNX model, whose record is checked here too (its quantizer in tests/test_quant_onnx_int8.py): every
user of the conversion in one file, so one test worker builds it."""

import json

import numpy as np
import pytest

from edgematte.core.metrics import matting_numerics
from edgematte.quant.calibration import split_calibration_evaluation
from edgematte.quant.onnx_int8 import FILE_NAME
from edgematte.quant.tflite.ops import tflite_ops
from edgematte.runtime.backends import open_backend
from edgematte.runtime.matter import Matter
from edgematte.runtime.profiles import get_profile


def test_int8_artefacts_carry_numerics(int8_conversion):
    m = json.loads((int8_conversion / "manifest.json").read_text())
    int8 = {a["path"]: a for a in m["artefacts"] if a["precision"] == "int8"}
    assert set(int8) == {"model_x86_int8.nb", "model_arm_int8.nb", "model_int8.tflite", "model_int8_io.tflite",
                         "model_int8_qdq.onnx"}  # the QDQ model: tests/test_quant_onnx_int8.py
    for a in int8.values():
        n = a["numerics"]
        assert set(n) >= {"mad", "max_abs", "frac_over_8_255", "sad", "mse", "grad", "conn", "eval_images"}
        assert n["eval_images"] == 4 and 0 < n["mad"] <= 0.02 and n["within_budget"]
        assert 0 < a["size_ratio_vs_fp32"] < 0.6
    assert m["int8"]["calibration"]["calibration_count"] == 8
    assert not set(m["int8"]["calibration"]["calibration"]) & set(m["int8"]["evaluation_images"])
    assert int8["model_arm_int8.nb"]["parity"]["runs_on_host"] is False
    # Every artefact says how to feed it (the Android app reads these); Lite int8 keeps float I/O.
    shape = m["model"]["input_shape"]
    for name in ("model_x86_int8.nb", "model_arm_int8.nb"):
        assert [(t["shape"], t["dtype"]) for t in int8[name]["inputs"]] == [(shape, "float32")], name
        assert len(int8[name]["outputs"]) == 1 and int8[name]["outputs"][0]["dtype"] == "float32"
    assert all(a["inputs"] and a["outputs"] for a in m["artefacts"])
    # The Paddle program repairs run on what opt reads for every .nb; PTQ's re-saved program already has relu6's
    # threshold, so there they match and change nothing.
    relu6 = {r["artefact"]: (r["matched"], r["changed"]) for r in m["repairs"] if r["name"] == "relu6_threshold"}
    assert relu6 == {"model_x86.nb": (6, 6), "model_arm.nb": (6, 6), "model_x86_int8.nb": (6, 0),
                     "model_arm_int8.nb": (6, 0)}
    # The TFLite INT8 models come from the SavedModel onnx2tf wrote from the repaired copy: the same repairs.
    tflite_repairs = {}
    for r in m["repairs"]:
        if r["kind"] == "onnx2tf_input":
            tflite_repairs.setdefault(r["artefact"], []).append((r["name"], r["changed"]))
    assert set(tflite_repairs) == {"model_fp32.tflite", "model_int8.tflite", "model_int8_io.tflite",
                                   "model_dynamic.tflite"}
    assert len({tuple(v) for v in tflite_repairs.values()}) == 1
    assert dict(tflite_repairs["model_int8.tflite"])["full_rank_add"] > 0
    # PP-MattingV2's average pools (all VALID) run in the full-integer files as depthwise convolutions (XNNPACK
    # takes int8 pools only so), each recorded
    float_pools = [op for op in tflite_ops(int8_conversion / "model_fp32.tflite") if op["op"] == "AVERAGE_POOL_2D"]
    for name in ("model_int8.tflite", "model_int8_io.tflite"):
        ops = tflite_ops(int8_conversion / name)
        assert not [op for op in ops if op["op"] == "AVERAGE_POOL_2D"], name
        assert len(int8[name]["quantization"]["average_pools_as_depthwise"]) == len(float_pools) >= 10, name
    # its channel means (MEAN over the channels, one channel kept) run as 1x1 convolutions, each recorded
    float_means = [op for op in tflite_ops(int8_conversion / "model_fp32.tflite") if op["op"] == "MEAN"
                   and op["outputs"][0]["shape"][-1] == 1 < op["inputs"][0]["shape"][-1]]
    for name in ("model_int8.tflite", "model_int8_io.tflite"):
        means = int8[name]["quantization"]["channel_means_as_convolutions"]
        assert len(means) == len(float_means) >= 10, name
        assert not [op for op in tflite_ops(int8_conversion / name) if op["op"] == "MEAN" and op["outputs"][0]["name"]
                    in means], name
    # every TFLite file carries the exact TFLite repairs, as read from the file: PP-MattingV2's fusion blocks
    # concatenate one-channel maps and slice their attention maps into one-channel pieces
    exact = {}
    for r in m["repairs"]:
        if r["kind"] == "tflite":
            exact.setdefault(r["artefact"], {})[r["name"]] = r["changed"]
    assert set(exact) == {"model_fp32.tflite", "model_int8.tflite", "model_int8_io.tflite", "model_dynamic.tflite"}
    for artefact, changed in exact.items():
        assert changed["single_channel_concatenation"] >= 4 and changed["channel_slices_as_split"] >= 4, artefact


def test_every_fallback_choice_reports_latency_against_fp32(int8_conversion):
    m = json.loads((int8_conversion / "manifest.json").read_text())
    fp32 = m["int8"]["fp32_latency_ms"]
    assert set(fp32) == {"tflite", "nb_x86", "onnx"} and all(v > 0 for v in fp32.values())
    entries = {a["path"]: a for a in m["artefacts"]}
    lite_history = entries["model_x86_int8.nb"]["quantization"]["history"]
    tflite_history = entries["model_int8.tflite"]["quantization"]["fallback"]["history"]
    for history in (lite_history, tflite_history):
        assert history and all(h["latency_ms"] > 0 and 0 < h["mad"] for h in history)
    assert entries["model_x86_int8.nb"]["quantization"]["latency_ms"] in [h["latency_ms"] for h in lite_history]
    assert entries["model_arm_int8.nb"]["quantization"]["latency_ms"] is None  # not measurable on x86
    report = (int8_conversion / "report.md").read_text()
    for name, history in (("model_x86_int8.nb", lite_history), ("model_int8.tflite", tflite_history)):
        section = report.split(f"Fallback choices of `{name}`")[1].split("\n\n")[1]
        rows = [r for r in section.splitlines() if r.startswith("| ") and not r.startswith("| choice")]
        assert len(rows) == len(history)
        for row, h in zip(rows, history):
            cells = [c.strip() for c in row.strip("|").split("|")]
            assert float(cells[2]) == pytest.approx(h["mad"], abs=5e-5)
            assert float(cells[3]) == pytest.approx(h["latency_ms"], abs=0.05)
    assert "Fallback choices of `model_int8_io.tflite`" not in report  # one search, shown once


@pytest.mark.parametrize("artefact", ["model_x86_int8.nb", "model_int8_io.tflite", "model_dynamic.tflite",
                                      "model_int8_qdq.onnx"])
def test_reported_mad_equals_a_fresh_runtime_evaluation(int8_conversion, artefact):
    m = json.loads((int8_conversion / "manifest.json").read_text())
    entry = next(a for a in m["artefacts"] if a["path"] == artefact)
    reported = entry["numerics"]
    if artefact == "model_int8_io.tflite":
        assert entry["inputs"][0]["dtype"] == "int8" and entry["inputs"][0]["quant"] is not None
    split = split_calibration_evaluation(calib_count=8)
    assert list(split.evaluation_names) == m["int8"]["evaluation_images"]
    int8 = Matter.from_manifest(int8_conversion, artefact=artefact)
    fp32 = Matter(open_backend("paddle_inference", int8_conversion / "reference", threads=2), get_profile("android"),
                  layout="nchw", input_hw=(256, 256))
    fresh = matting_numerics((int8(rgb), fp32(rgb)) for rgb in split.evaluation)
    for key in ("mad", "max_abs", "sad", "mse"):
        assert np.isclose(fresh[key], reported[key], rtol=1e-5, atol=1e-7), (key, fresh[key], reported[key])


def test_int8_nb_kernel_census_matches_the_program(int8_conversion):
    """Every conv of the Paddle program is in the .nb once: int8 unless kept float by the fallback."""
    import paddle

    m = json.loads((int8_conversion / "manifest.json").read_text())
    paddle.enable_static()
    try:
        program, _, _ = paddle.static.load_inference_model(str(int8_conversion / "reference" / "model"),
                                                           paddle.static.Executor(paddle.CPUPlace()))
    finally:
        paddle.disable_static()
    convs = [op for op in program.global_block().ops if op.type in ("conv2d", "depthwise_conv2d")]
    for name in ("model_x86_int8.nb", "model_arm_int8.nb"):
        entry = next(a for a in m["artefacts"] if a["path"] == name)
        census, kept = entry["kernels"], entry["quantization"]["kept_float"]
        assert sum(census["convolutions"].values()) == len(convs)
        assert census["convolutions"].get("float", 0) == len([w for w in kept if w.startswith("conv2d_")])
        assert census["calib"] > 0  # int8 convs are fed by fp32 -> int8 conversions
        assert f"`{name}` kernels: {census['convolutions']['int8']} of {len(convs)} convolutions in int8" in (
            int8_conversion / "report.md").read_text()


def test_the_conversion_records_the_qdq_model_with_its_numerics(int8_conversion):
    m = json.loads((int8_conversion / "manifest.json").read_text())
    entry = next(a for a in m["artefacts"] if a["path"] == FILE_NAME)
    assert (entry["format"], entry["precision"], entry["runtime"], entry["layout"]) == (
        "onnx", "int8", "onnxruntime", "nchw")
    n = entry["numerics"]
    assert n["eval_images"] == 4 and 0 < n["mad"] and n["budget_mad"] == 0.02
    quantization = entry["quantization"]
    if n["within_budget"]:
        assert n["mad"] <= 0.02
    else:  # the search ran and the manifest says what stayed float
        assert quantization["fallback"]["searched"] and quantization["kept_float"]["nodes"]
    assert quantization["quantization"]["calibration_count"] == 8
    assert quantization["qdq"]["per_channel_weights"] > 50 and quantization["qdq"]["onnxruntime_cpu"]["integer_kernels"]
    assert [(t["shape"], t["dtype"]) for t in entry["inputs"]] == [(m["model"]["input_shape"], "float32")]
    assert 0 < entry["size_ratio_vs_fp32"] < 0.4
    assert m["int8"]["fp32_latency_ms"]["onnx"] > 0 and quantization["latency_ms"] > 0
    assert {r["artefact"] for r in m["repairs"] if r["artefact"] == FILE_NAME}  # model.onnx's repairs are in it
    assert f"Fallback choices of `{FILE_NAME}`" in (int8_conversion / "report.md").read_text()
