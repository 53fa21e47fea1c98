"""The benchmark scripts in benchmarks/ run on a small conversion and report what they claim.

Timings are not asserted (speed lives in benchmarks/results, not in tests); the alpha errors are: the
plain tools' known faults must show, and the converter's artefacts must equal the reference.
"""

import re
import subprocess
import sys

from .conftest import REPO, load_benchmark


def rows(markdown: str) -> dict:
    """The first table of (a part of) compare_runtimes' report: first cell -> cells."""
    table = {}
    for line in markdown.splitlines():
        if table and not line.startswith("|"):
            break
        if line.startswith("| ") and not line.startswith(("| entry", "| artefact", "|---")):
            cells = [c.strip() for c in line.strip("|").split("|")]
            table[cells[0]] = cells
    return table


def test_compare_runtimes_shows_the_plain_tools_faults_and_ours_correct(tiny_conversion, tmp_path):
    report = tmp_path / "runtimes.md"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "compare_runtimes.py"), str(tiny_conversion),
                        "--rounds", "1", "--max-rounds", "1", "--warmup", "0", "--check-photos", "1",
                        "--report", str(report)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    table = rows(report.read_text())
    error = {name: float(cells[9]) for name, cells in table.items() if re.fullmatch(r"[0-9.e+-]+", cells[9] or "x")}
    assert error["Paddle Inference, fixed config (reference)"] == 0.0
    assert error["Paddle Inference, default config"] > 1e-2  # the oneDNN fusion pass that miscomputes PP-MattingV2
    for name in ("model_x86.nb", "model.onnx", "model_fp32.tflite"):
        assert error[name] <= 1e-4, (name, error[name])
    # The plain paddle2onnx model either runs wrong (uneven adaptive pools) or cannot run at all.
    plain = table["ONNX Runtime, plain paddle2onnx model"]
    assert plain[3].startswith("failed:") or float(plain[9]) > 1e-2, plain
    assert "GFLOP/s" in report.read_text() and "% of peak" in report.read_text()
    # the head's share: each TFLite artefact beside its copy without the full-resolution tail, in the same rounds
    head = "RESIZE_BILINEAR CONCATENATION CONV_2D CONV_2D CONV_2D LOGISTIC"
    tails = rows(report.read_text().split("## The full-resolution tail (TFLite artefacts)")[1])
    tail_ops, whole, cut, tail_ms, paired, share = tails["model_fp32.tflite"][1:]
    assert tail_ops == head and set(tails) == {"model_fp32.tflite", "model_fp16.tflite"}
    assert abs(float(tail_ms) - (float(whole) - float(cut))) <= 0.11 and " to " in paired
    assert share.endswith("%") or share.startswith("not resolved")  # one round of a tiny model: either can be


def test_a_tail_the_rounds_cannot_tell_from_noise_gets_no_share():
    compare = load_benchmark("compare_runtimes")

    def pair(whole_ms, cut_ms):
        whole = compare.Entry("model_fp32.tflite", "litert", "fp32", samples=[ms / 1000 for ms in whole_ms])
        return compare.Entry("cut", "litert", "fp32", samples=[ms / 1000 for ms in cut_ms], tail_of=whole,
                             tail_ops=["CONV_2D"])

    resolved = compare.tail_lines([pair([50, 51, 52, 50], [42, 43, 43, 41])])[-1]  # per round 8, 8, 9, 9 ms
    assert resolved == "| model_fp32.tflite | CONV_2D | 50.5 | 42.5 | 8.0 | 8.0 to 9.0 | 16% |"
    # bimodal timings (PP-MattingV2 at 256x256 on a busy host): the medians differ, the rounds do not agree
    noisy = compare.tail_lines([pair([7, 12, 7, 12], [11, 7, 13, 7])])[-1]  # per round -4, 5, -6, 5 ms
    assert noisy.startswith("| model_fp32.tflite | CONV_2D | 9.5 | 9.0 | 0.5 | -4.5 to 5.0 | not resolved: ")


def test_an_acceptance_run_of_some_models_keeps_the_other_rows_of_the_earlier_run(tmp_path):
    acceptance = load_benchmark("official_acceptance")
    host = {"cpu": "x", "cores": 2, "threads": 2, "python": "3.10", "date": "2026-12-01T10:00:00",
            "edgematte_commit": "aaa"}

    def row(model, ok, run=None):
        record = {"model": model, "size": "512x512", "ok": ok, "seconds": {"total": 1.0}, "artefacts": []}
        return dict(record, run=run) if run else record

    earlier = {"size": "512x512", "command": "official_acceptance.py", "host": host,
               "models": [row("modnet_mobilenetv2", False), row("rvm_mobilenetv3", True), row("ppmattingv2", True)]}
    acceptance.write_results(earlier, tmp_path)
    run = {"command": "official_acceptance.py --models modnet_mobilenetv2 humanmatting", "date": "2026-12-03",
           "commit": "bbb"}
    now = {"size": "512x512", "command": run["command"], "host": dict(host, edgematte_commit="bbb"),
           "models": [row("modnet_mobilenetv2", True, run), row("humanmatting", True, run)]}

    merged = acceptance.merge_earlier(now, acceptance.read_earlier(tmp_path, "512x512"))

    assert [(r["model"], r["ok"], r["run"]["commit"]) for r in merged["models"]] == [
        ("ppmattingv2", True, "aaa"), ("humanmatting", True, "bbb"), ("modnet_mobilenetv2", True, "bbb"),
        ("rvm_mobilenetv3", True, "aaa")]  # the script's model order; the failed row replaced by the new one
    text = acceptance.markdown(merged)
    assert "1. `official_acceptance.py` on 2026-12-01T10:00:00, edgematte commit aaa" in text
    assert "2. `official_acceptance.py --models modnet_mobilenetv2 humanmatting` on 2026-12-03" in text
    assert "| modnet_mobilenetv2 | 2 | 512x512 | ok |" in text and "| rvm_mobilenetv3 | 1 | 512x512 | ok |" in text
    # another size or no earlier file: the run stands alone
    assert acceptance.merge_earlier(now, None) == now
    assert acceptance.merge_earlier(now, dict(earlier, size="288x480")) == now
    (tmp_path / "official_acceptance_512x512.json").write_text("{not json")
    assert acceptance.read_earlier(tmp_path, "512x512") is None


def test_video_benchmark_clip_matches_its_true_alpha_and_reports_each_tflite_artefact(tiny_conversion, tmp_path):
    """The 720p benchmark on a 0.2 s clip, the tiny conversion standing in for PP-MattingV2: the decoded frames are
    the scene seen through the same camera as the true alphas, and each TFLite fp32/INT8 artefact gets a row."""
    import json

    import cv2
    import numpy as np

    from edgematte.runtime.video import video_frames

    video = load_benchmark("video_720p")
    work = tmp_path / "work"
    work.mkdir()
    (work / "ppmattingv2").symlink_to(tiny_conversion)  # an existing conversion is reused, never redone
    assert video.main(["--work", str(work), "--models", "ppmattingv2", "--seconds", "0.2",
                       "--results", str(tmp_path / "results")]) == 0
    doc = json.loads((tmp_path / "results" / "video_720p.json").read_text())
    assert doc["frames"] == 6 and [row["artefact"] for row in doc["rows"]] == ["model_fp32.tflite"]
    row = doc["rows"][0]
    assert row["frames"] == 6 and row["frames_per_second"] > 0 and "vs_fp32" not in row
    assert 0 <= row["vs_truth"]["dtssd"] < 1 and 0 <= row["vs_truth"]["mad"] < 1
    # The clip is the scene through video.camera, as the true alphas are (mp4v costs a few levels).
    image, alpha = video.scene()
    frames = list(video_frames(work / "clip_0.2s.mp4"))
    for index in (0, 5):
        expected = cv2.warpAffine(image, video.camera(index, 6), video.FRAME_WH, flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
        assert np.abs(frames[index].astype(int) - expected).mean() < 4, index
    truths = list(video.true_alphas(alpha, 6))
    assert truths[0].shape == (720, 1280) and np.abs(truths[5] - truths[0]).mean() > 1e-3  # the camera moves
    assert "| ppmattingv2 | 256x320 | model_fp32.tflite |" in (tmp_path / "results" / "video_720p.md").read_text()
    # A later run of another model adds its rows; a run of the same model replaces its own.
    earlier = tmp_path / "results" / "video_720p.json"
    rvm_row = {"model": "rvm_mobilenetv3", "artefact": "model_fp32.tflite"}
    merged = video.merged_rows(earlier, [rvm_row], 6)
    assert [(r["model"], r["date"]) for r in merged] == [("ppmattingv2", doc["date"]), ("rvm_mobilenetv3", doc["date"])]
    assert [r["model"] for r in video.merged_rows(earlier, [dict(row, frames_per_second=1.0)], 6)] == ["ppmattingv2"]
    assert video.merged_rows(earlier, [rvm_row], 300) == [dict(rvm_row, date=doc["date"])]  # another clip length
