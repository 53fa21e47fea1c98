"""onnx2tf killed after its SavedModel was complete: the TFLite files come from that SavedModel in a process of
their own, and are then as right as onnx2tf's own.

MODNet-ResNet50_vd at full size gets onnx2tf killed for memory (SIGKILL) in its float16 step (288x480) or its
float32 one (512x512). Here the real onnx2tf converts the tiny matting graph once; each test then plays that run
back with the death cut in where the real ones happened: the exit status of a SIGKILL, the log cut after the
last line onnx2tf printed, and only the files it had finished by then.
"""

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgematte.converter import tflite as conv
from edgematte.core.errors import EdgematteError
from edgematte.core.tools import ToolResult
from edgematte.runtime.backends.litert import LiteRTBackend
from edgematte.runtime.model_io import layout_to_onnx, onnx_to_layout

from .test_converter_tflite import H, W, build_tiny_matting_onnx, onnxruntime_alpha

FP32_TOLERANCE = 1e-5  # as for onnx2tf's own files (test_converter_tflite)
FP16_TOLERANCE = 5e-3
KILLED = -9


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    return build_tiny_matting_onnx(tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture(scope="module")
def real_run(tiny_onnx, tmp_path_factory):
    """What the real onnx2tf leaves in its work folder for the tiny graph: the folder and the log."""
    kept = tmp_path_factory.mktemp("onnx2tf_run")
    real_run_tool = conv.run_tool

    def keep(argv, **kwargs):
        done = real_run_tool(argv, **kwargs)
        shutil.copytree(Path(kwargs["cwd"]) / "saved_model", kept / "saved_model")
        return done

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv, "run_tool", keep)
        conv.convert_to_tflite(tiny_onnx, kept / "out")
    log = (kept / "out" / conv.DEFAULT_LOG_NAME).read_text()
    assert conv.ONNX2TF_SAVED_MODEL_DONE in log and conv.ONNX2TF_FP32_DONE in log
    return kept / "saved_model", log


def killed_after(real_run, last_line: str, finished, half_written=()):
    """A ``run_tool`` stand-in: onnx2tf's real run played back as if SIGKILL came right after ``last_line`` was
    printed, when only the ``finished`` TFLite files (onnx2tf's names) had been written and the
    ``half_written`` ones were cut short."""
    saved_model, log = real_run

    def run_tool(argv, *, what, cwd, log_file, **kwargs):
        target = Path(cwd) / "saved_model"
        shutil.copytree(saved_model, target, ignore=shutil.ignore_patterns("*.tflite"))
        for name in finished:
            shutil.copyfile(saved_model / name, target / name)
        for name in half_written:
            (target / name).write_bytes((saved_model / name).read_bytes()[:1000])
        cut = log[:log.index(last_line) + len(last_line)] + "\n" if last_line else ""
        Path(log_file).write_text(cut)
        return ToolResult(argv=list(argv), returncode=KILLED, output=cut, seconds=1.0, log_path=Path(log_file),
                          timed_out=False)

    return run_tool


def max_error(entry: dict, tiny_onnx) -> float:
    """The TFLite file's largest alpha error against ONNX Runtime on a random image, read by its recorded layouts."""
    x = np.random.default_rng(3).random((1, 3, H, W), dtype=np.float32)
    backend = LiteRTBackend(entry["path"], threads=1)
    alpha = layout_to_onnx(backend.run(onnx_to_layout(x, entry["inputs"][0]["layout"])), entry["outputs"][0]["layout"])
    return float(np.abs(alpha - onnxruntime_alpha(tiny_onnx, x)).max())


def test_killed_in_the_float16_step_keeps_its_float32_file_and_makes_float16_apart(real_run, tiny_onnx, tmp_path,
                                                                                  monkeypatch):
    # MODNet-ResNet50_vd at 288x480: killed after "Float32 tflite output complete!", float16 half-written
    monkeypatch.setattr(conv, "run_tool", killed_after(real_run, conv.ONNX2TF_FP32_DONE, ["model_float32.tflite"],
                                                       half_written=["model_float16.tflite"]))
    info = conv.convert_to_tflite(tiny_onnx, tmp_path / "out", saved_model_dir=tmp_path / "saved_model")
    recovered = info["recovered"]
    assert recovered["files"] == {"fp32": "onnx2tf", "fp16": "saved_model"} and info["not_built"] == {}
    assert recovered["onnx2tf"] == ("onnx2tf died with SIGKILL (signal 9; the out-of-memory killer sends it when "
                                    "memory runs out): Float32 tflite output complete!")
    # the float32 file is onnx2tf's own, byte for byte
    assert Path(info["files"]["fp32"]["path"]).read_bytes() == (real_run[0] / "model_float32.tflite").read_bytes()
    fp16 = info["files"]["fp16"]
    assert [o["name"] for o in fp16["outputs"]] == ["alpha"]  # TensorFlow's output_0, renamed as in ONNX
    assert (fp16["inputs"][0]["layout"], fp16["outputs"][0]["layout"]) == ("nhwc", "nhwc")
    assert max_error(info["files"]["fp32"], tiny_onnx) <= FP32_TOLERANCE
    assert max_error(fp16, tiny_onnx) <= FP16_TOLERANCE
    assert (tmp_path / "saved_model" / "saved_model.pb").is_file()  # still there for --int8
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model_fp16.tflite", "model_fp32.tflite",
                                                                     "onnx2tf.log"]


def test_killed_in_the_float32_step_makes_both_from_the_saved_model(real_run, tiny_onnx, tmp_path, monkeypatch):
    # MODNet-ResNet50_vd at 512x512: killed after "saved_model output complete!", float32 half-written
    monkeypatch.setattr(conv, "run_tool", killed_after(real_run, conv.ONNX2TF_SAVED_MODEL_DONE, [],
                                                       half_written=["model_float32.tflite"]))
    info = conv.convert_to_tflite(tiny_onnx, tmp_path / "out")
    assert info["recovered"]["files"] == {"fp32": "saved_model", "fp16": "saved_model"}
    fp32 = info["files"]["fp32"]
    assert [(o["name"], o["shape"]) for o in fp32["outputs"]] == [("alpha", [1, H, W, 1])]
    assert [(i["name"], i["shape"]) for i in fp32["inputs"]] == [("img", [1, H, W, 3])]
    error = max_error(fp32, tiny_onnx)
    assert error <= FP32_TOLERANCE
    assert max_error(info["files"]["fp16"], tiny_onnx) <= FP16_TOLERANCE
    print(f"fp32 made from the SavedModel: max abs {error:.2e} against ONNX Runtime")


def test_a_float16_that_cannot_be_had_is_reported_and_float32_kept(real_run, tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setattr(conv, "run_tool", killed_after(real_run, conv.ONNX2TF_FP32_DONE, ["model_float32.tflite"]))
    real_convert = conv.convert_saved_model

    def float16_killed_too(saved_model_dir, precision, out, output_names, timeout_s):
        if precision == "fp16":
            raise EdgematteError("TFLite fp16 from the SavedModel died with SIGKILL (signal 9)")
        return real_convert(saved_model_dir, precision, out, output_names, timeout_s)

    monkeypatch.setattr(conv, "convert_saved_model", float16_killed_too)
    info = conv.convert_to_tflite(tiny_onnx, tmp_path / "out")
    assert list(info["files"]) == ["fp32"]
    assert info["not_built"] == {"fp16": info["recovered"]["onnx2tf"] + "; then TFLite fp16 from the SavedModel "
                                         "died with SIGKILL (signal 9)"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model_fp32.tflite", "onnx2tf.log"]


def test_killed_before_its_saved_model_was_complete_fails_in_one_line(real_run, tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setattr(conv, "run_tool", killed_after(real_run, "saved_model output started", []))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("the user's")
    with pytest.raises(EdgematteError) as caught:
        conv.convert_to_tflite(tiny_onnx, out)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{tiny_onnx}: TFLite conversion failed: onnx2tf died with "
                                                      "SIGKILL (signal 9; the out-of-memory killer")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_a_float32_that_cannot_be_had_fails_naming_both_deaths(real_run, tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setattr(conv, "run_tool", killed_after(real_run, conv.ONNX2TF_SAVED_MODEL_DONE, []))

    def killed_again(saved_model_dir, precision, out, output_names, timeout_s):
        raise EdgematteError(f"TFLite {precision} from the SavedModel died with SIGKILL (signal 9)")

    monkeypatch.setattr(conv, "convert_saved_model", killed_again)
    with pytest.raises(EdgematteError) as caught:
        conv.convert_to_tflite(tiny_onnx, tmp_path / "out")
    assert ("onnx2tf died with SIGKILL (signal 9; the out-of-memory killer sends it when memory runs out): "
            "saved_model output complete!; then TFLite fp32 from the SavedModel died with SIGKILL (signal 9)"
            in str(caught.value))
    assert not (tmp_path / "out").exists()


def test_the_stage_fails_only_when_fp16_was_asked_for():
    from edgematte.pipeline.stages import tflite as stage

    def context(fp16):
        return SimpleNamespace(options=SimpleNamespace(fp16=fp16), onnx_path=Path("m/.work/bridge.onnx"),
                               out=Path("m"), manifest=SimpleNamespace(extra={}))

    default = context(None)
    stage._fp16_not_built(default, "onnx2tf died with SIGKILL")
    assert default.manifest.extra == {"fp16_skipped": "fp16 TFLite not built: onnx2tf died with SIGKILL"}
    with pytest.raises(EdgematteError, match=r"^m: the fp16 TFLite asked for \(--fp16\) could not be "
                                             r"made: onnx2tf died with SIGKILL$"):
        stage._fp16_not_built(context(True), "onnx2tf died with SIGKILL")
