"""Hostile inputs for `edgematte matte` on videos and for `edgematte bench`: a FIFO named like a video, videos cut
short (with or without their MP4 index), a file named like an FFmpeg protocol, and benchmarks whose every
configuration fails. Each must end in one line naming the file and the problem, a non-zero exit status, nothing
of FFmpeg's own chatter on the terminal, and no output presented as a success."""

import os
import re

from edgematte.runtime.video import open_video, read_frames

from .conftest import run_cli
from .test_runtime_video import cut_clip, faststart, write_clip


def stderr_lines(r):
    return r.stderr.splitlines()


def test_a_fifo_named_like_a_video_fails_at_once_in_one_line(tiny_conversion, tmp_path):
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    # Opening a FIFO for reading waits for a writer: without the check this run would hang until the timeout.
    r = run_cli("matte", fifo, "--model", tiny_conversion, "-o", out, timeout=120)
    assert r.returncode == 1
    assert stderr_lines(r) == [f"edgematte: warning: {fifo}: is a FIFO, not a regular video file",
                               f"matted 0 of 1 inputs (0 frames, 0.0 frames/s) into {out}; 1 failed"]


def test_cut_videos_fail_one_line_each_and_ffmpeg_stays_off_the_terminal(tiny_conversion, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_clip(inputs / "good.mp4", frames=6, size=(160, 120))
    recorded = cut_clip(inputs / "recorded.mp4", keep=0.5, fast=False)  # index last, as OpenCV writes it: lost
    streamed = cut_clip(inputs / "streamed.mp4", keep=0.5)  # index first: 30 frames declared, fewer there
    headless = inputs / "headless.mp4"  # index first, not one frame's bytes after it
    write_clip(headless, frames=30, size=(160, 120))
    data = faststart(headless.read_bytes())
    headless.write_bytes(data[:data.index(b"mdat") + 4])
    out = tmp_path / "out"
    r = run_cli("matte", inputs, "--model", tiny_conversion, "-o", out)
    assert r.returncode == 1
    lines = stderr_lines(r)
    assert len(lines) == 4 and not any(" @ 0x" in line or "WARN" in line for line in lines), lines
    assert lines[0] == (f"edgematte: warning: {headless}: no frame could be decoded (empty or corrupt video: it "
                        "states no frame size)")
    assert lines[1] == (f"edgematte: warning: {recorded}: OpenCV cannot open this file as a video (FFmpeg: moov atom "
                        "not found; no MP4 index: cut short, still being recorded, or no MP4 at all)")
    assert re.fullmatch(re.escape(f"edgematte: warning: {streamed}: only ") + r"\d+"
                        + re.escape(" of 30 declared frames could be decoded (truncated or corrupt; FFmpeg: stream 0, "
                                    "offset ") + r"0x[0-9a-f]+: partial file\); no output written for it", lines[2])
    assert re.fullmatch(re.escape("matted 1 of 4 inputs (6 frames, ") + r"[0-9.]+"
                        + re.escape(f" frames/s) into {out}; 3 failed"), lines[3]), lines[3]
    assert sorted(p.name for p in out.iterdir()) == ["good_alpha.mp4"]


def test_a_video_named_like_an_ffmpeg_protocol_is_read_as_the_file_it_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_clip(tmp_path / "four.mp4", frames=4, size=(160, 120))
    os.rename(tmp_path / "four.mp4", tmp_path / "concat:clip.mp4")
    write_clip(tmp_path / "clip.mp4", frames=2, size=(160, 120))  # what FFmpeg's concat protocol would read
    capture, info = open_video("concat:clip.mp4")
    assert info.frame_count == 4 and len(list(read_frames(capture))) == 4


def test_a_benchmark_whose_every_configuration_fails_creates_nothing(tiny_conversion, tmp_path):
    out = tmp_path / "new" / "bench"
    r = run_cli("bench", tiny_conversion, "--threads", "1", "--runs", "1", "--warmup", "0", "--size", "64x64",
                "--artefacts", "model_arm.nb", "-o", out)
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("edgematte: error:")]
    assert len(errors) == 1 and errors[0].startswith(
        f"edgematte: error: {out}: 1 of 1 configurations failed on local, so no report was written: "
        "model_arm.nb x 1 threads: ")
    assert not (tmp_path / "new").exists()


def test_a_fifo_given_as_a_bench_report_fails_at_once(tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    os.mkfifo(report / "bench.json")
    r = run_cli("bench-merge", report, "-o", tmp_path / "merged", timeout=60)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [f"edgematte: error: {report}/bench.json: is a FIFO, not a regular manifest file"]
    assert not (tmp_path / "merged").exists()
