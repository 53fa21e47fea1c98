"""Videos in, videos out (frame count, size, frame rate, alpha numbers), truncated videos, and the overlapped
pipeline."""

import re
import struct
import threading
import time

import cv2
import numpy as np
import pytest

from edgematte.core.errors import EdgematteError
from edgematte.core.fsutil import OUTPUT_MARKER
from edgematte.core.samples import sample_photo
from edgematte.runtime.batch import FrameRenderer, matte_inputs
from edgematte.runtime.matter import Matter
from edgematte.runtime.video import (
    FRAME_COUNT_SLACK,
    check_complete,
    matte_video,
    native_reason,
    open_video,
    read_frames,
    run_overlapped,
)


@pytest.fixture(scope="module")
def matter(tiny_conversion):
    return Matter.from_manifest(tiny_conversion, threads=2)


def write_clip(path, frames=90, size=(1280, 720), fps=30.0):
    """A synthetic clip: the astronaut portrait sliding over a flat backdrop (mp4v)."""
    width, height = size
    person = cv2.cvtColor(sample_photo("astronaut"), cv2.COLOR_RGB2BGR)
    side = min(512, height - 8)
    person = cv2.resize(person, (side, side), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    step = max(1, (width - side) // frames)
    for i in range(frames):
        frame = np.full((height, width, 3), (40, 120, 200), np.uint8)
        x = i * step
        frame[4:4 + side, x:x + side] = person
        writer.write(frame)
    writer.release()
    return path


def _boxes(data, start, end):
    """``(type, offset, header size, size)`` of the MP4 boxes in ``data[start:end]``."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        yield kind, pos, header, size
        pos += size


def faststart(data: bytes) -> bytes:
    """An MP4 (ftyp, ..., mdat, moov, as OpenCV writes it) with its moov index moved to the front, as streaming
    files have it (``ffmpeg -movflags faststart``): cut short, such a file still opens and declares every frame."""
    top = {kind: (pos, size) for kind, pos, _, size in _boxes(data, 0, len(data))}
    moov_at, moov_size = top[b"moov"]
    moov = bytearray(data[moov_at:moov_at + moov_size])

    def shift_chunk_offsets(start, end):
        for kind, pos, header, size in _boxes(moov, start, end):
            if kind in (b"trak", b"mdia", b"minf", b"stbl"):
                shift_chunk_offsets(pos + header, pos + size)
            elif kind in (b"stco", b"co64"):
                fmt, width = (">I", 4) if kind == b"stco" else (">Q", 8)
                (entries,) = struct.unpack(">I", moov[pos + header + 4:pos + header + 8])
                for i in range(entries):
                    at = pos + header + 8 + i * width
                    (offset,) = struct.unpack(fmt, moov[at:at + width])
                    moov[at:at + width] = struct.pack(fmt, offset + moov_size)

    shift_chunk_offsets(8, moov_size)
    ftyp_at, ftyp_size = top[b"ftyp"]
    assert ftyp_at == 0 and moov_at > ftyp_size
    return data[:ftyp_size] + bytes(moov) + data[ftyp_size:moov_at] + data[moov_at + moov_size:]


def cut_clip(path, keep: float, frames=30, fast=True):
    """A 160x120 mp4v clip of ``frames`` frames (index first when ``fast``) cut to ``keep`` of its bytes."""
    write_clip(path, frames=frames, size=(160, 120))
    data = faststart(path.read_bytes()) if fast else path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path


def decoded(path):
    capture, _ = open_video(path)
    return list(read_frames(capture))


@pytest.fixture(scope="module")
def clip_720p(tmp_path_factory):
    """3 s of 720p at 30 frames/s."""
    return write_clip(tmp_path_factory.mktemp("clip") / "walk.mp4")


def test_video_in_video_out_same_frames_size_and_rate(tmp_path, matter, clip_720p):
    report = matte_inputs([str(clip_720p)], tmp_path, matter, background="#00ff00", overlapped=False)
    assert report.exit_code == 0, report.failures
    item = report.items[0]
    assert item.kind == "video" and item.frames == 90 and report.frames_per_second > 0
    print(f"\n720p, tiny model, alpha + composite, sequential: {report.frames_per_second:.1f} frames/s; "
          f"ms per frame: { {k: round(v / 90 * 1000, 1) for k, v in item.timings.items()} }")
    inputs = decoded(clip_720p)
    for kind in ("alpha", "composite"):
        path = tmp_path / f"walk_{kind}.mp4"
        capture, info = open_video(path)
        capture.release()
        assert (info.width, info.height, info.fps) == (1280, 720, 30.0)
        assert len(decoded(path)) == 90
    # The alpha video holds the alpha of each decoded input frame, up to mp4v's loss.
    alphas = decoded(tmp_path / "walk_alpha.mp4")
    for index in (0, 45, 89):
        expected = matter.profile.alpha_to_uint8(matter(inputs[index])).astype(int)
        frame = alphas[index].astype(int)
        # Gray written as three equal channels; YUV 4:2:0 leaves them a level or two apart.
        assert np.abs(frame[:, :, 0] - frame[:, :, 2]).max() <= 3  # measured 1
        difference = np.abs(frame[:, :, 1] - expected)
        assert difference.mean() < 3.0 and difference.max() <= 16, index  # measured 1.4-1.6 and 8-10 levels


def test_overlapped_pipeline_matches_sequential_and_is_timed(tmp_path, matter, clip_720p):
    render = FrameRenderer(matter.profile, ("alpha",))
    results = {}
    for overlapped in (False, True):
        result = matte_video(clip_720p, tmp_path / f"{overlapped}" / "walk", matter, render, ("alpha",),
                             overlapped=overlapped)
        results[overlapped] = result
        assert result.frames == 90
    print(f"\n720p alpha only: sequential {results[False].frames_per_second:.1f} frames/s, "
          f"overlapped {results[True].frames_per_second:.1f} frames/s")
    same = [np.array_equal(a, b) for a, b in zip(decoded(tmp_path / "False" / "walk_alpha.mp4"),
                                                 decoded(tmp_path / "True" / "walk_alpha.mp4"))]
    assert len(same) == 90 and all(same)


def test_rgba_video_becomes_a_png_sequence_with_exact_alpha(tmp_path, matter):
    clip = write_clip(tmp_path / "short.avi", frames=12, size=(320, 240), fps=12.5)
    report = matte_inputs([str(clip)], tmp_path / "out", matter, save="rgba")
    assert report.exit_code == 0, report.failures
    frames = sorted(p for p in (tmp_path / "out" / "short_rgba").iterdir() if p.name != OUTPUT_MARKER)
    assert [f.name for f in frames] == [f"frame_{i:06d}.png" for i in range(12)]
    inputs = decoded(clip)
    for index in (0, 11):
        bgra = cv2.imread(str(frames[index]), cv2.IMREAD_UNCHANGED)
        assert bgra.shape == (240, 320, 4)
        assert np.array_equal(bgra[:, :, 2::-1], inputs[index])
        assert np.array_equal(bgra[:, :, 3], matter.profile.alpha_to_uint8(matter(inputs[index])))


def test_broken_videos_are_reported_in_one_line_and_leave_nothing(tmp_path, matter):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "noise.mp4").write_bytes(np.random.RandomState(0).bytes(5000))
    (tmp_path / "in" / "empty.mov").write_bytes(b"")
    report = matte_inputs([str(tmp_path / "in")], tmp_path / "out", matter, background="blur")
    reasons = dict(report.failures)
    assert report.exit_code == 1 and len(reasons) == 2
    assert "empty file (0 bytes)" in reasons[str(tmp_path / "in" / "empty.mov")]
    assert "cannot open this file as a video" in reasons[str(tmp_path / "in" / "noise.mp4")]
    assert all(str(tmp_path) in r and "\n" not in r for r in reasons.values())
    assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))
    with pytest.raises(EdgematteError, match="no such video file"):
        open_video(tmp_path / "missing.mp4")


# ----------------------------------------------------------------------------- truncated videos


def test_faststart_copy_decodes_like_the_original(tmp_path):
    clip = write_clip(tmp_path / "a.mp4", frames=10, size=(160, 120))
    fast = tmp_path / "fast.mp4"
    fast.write_bytes(faststart(clip.read_bytes()))
    assert fast.read_bytes()[4:8] == b"ftyp" and fast.read_bytes().index(b"moov") < fast.read_bytes().index(b"mdat")
    original, moved = decoded(clip), decoded(fast)
    assert len(original) == len(moved) == 10 and all(np.array_equal(a, b) for a, b in zip(original, moved))


def test_truncated_video_fails_with_frames_read_and_declared_and_keeps_earlier_outputs(tmp_path, matter):
    clip = cut_clip(tmp_path / "clip.mp4", keep=0.5)
    capture, info = open_video(clip)
    capture.release()
    assert info.frame_count == 30  # the index survives the cut: 30 frames declared
    out = tmp_path / "out"
    out.mkdir()
    earlier = out / "clip_alpha.mp4"
    earlier.write_bytes(b"an earlier run's output")
    report = matte_inputs([str(clip)], out, matter, background="blur")
    assert report.exit_code == 1 and report.done == 0
    ((name, reason),) = report.failures
    readable = len(decoded(clip))  # 13 with OpenCV 4.11.0: half the bytes, fewer than half the frames
    assert 0 < readable < 30 - FRAME_COUNT_SLACK
    expected = (re.escape(f"{clip}: only {readable} of 30 declared frames could be decoded (truncated or corrupt; "
                          "FFmpeg: stream 0, offset ") + r"0x[0-9a-f]+: partial file\); no output written for it")
    assert name == str(clip) and re.fullmatch(expected, reason), reason
    assert report.items[0].outputs == [] and report.frames == 0
    assert earlier.read_bytes() == b"an earlier run's output"
    assert sorted(p.name for p in out.iterdir()) == ["clip_alpha.mp4"]  # no composite, no temporary file


def test_an_mp4_without_its_index_names_what_ffmpeg_said(tmp_path):
    clip = cut_clip(tmp_path / "clip.mp4", keep=0.5, fast=False)  # as OpenCV writes MP4s: the index comes last
    with pytest.raises(EdgematteError) as failure:
        open_video(clip)
    assert str(failure.value) == (f"{clip}: OpenCV cannot open this file as a video (FFmpeg: moov atom not found; "
                                  "no MP4 index: cut short, still being recorded, or no MP4 at all)")


def test_frame_count_slack_and_ffmpeg_complaints():
    complaint = ["[matroska,webm @ 0x5581c0e0] File ended prematurely"]
    check_complete("a.mkv", 30, 30)
    check_complete("a.mkv", 31, 30)  # more than declared: fine
    check_complete("a.mkv", 30 - FRAME_COUNT_SLACK, 30)  # an estimated count a frame or two off
    check_complete("a.mkv", 5, 0)  # no declared count: nothing to compare
    with pytest.raises(EdgematteError, match=r"^a\.mkv: only 27 of 30 declared frames could be decoded \(truncated "
                                             r"or corrupt\); no output written for it$"):
        check_complete("a.mkv", 30 - FRAME_COUNT_SLACK - 1, 30)
    with pytest.raises(EdgematteError, match=r"^a\.mkv: only 29 of 30 .*\(truncated or corrupt; FFmpeg: File ended "
                                             r"prematurely\)"):
        check_complete("a.mkv", 29, 30, complaint)
    with pytest.raises(EdgematteError, match=r"^a\.mkv: no frame could be decoded \(empty or corrupt video; FFmpeg: "
                                             r"File ended prematurely\)$"):
        check_complete("a.mkv", 0, 30, complaint)


def test_native_reason_takes_ffmpeg_last_then_opencv():
    assert native_reason([]) is None and native_reason(["plain text from somewhere"]) is None
    assert native_reason(["[mpeg4 @ 0x55c6b09e91c0] ac-tex damaged at 0 3",
                          "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55c6b0a8d400] stream 0, offset 0xda4a: partial file",
                          "[ WARN:0@0.114] global cap_ffmpeg_impl.hpp:1541 grabFrame packet read max attempts"]) \
        == "FFmpeg: stream 0, offset 0xda4a: partial file"
    assert native_reason(["[ WARN:0@0.114] global cap_ffmpeg_impl.hpp:1541 grabFrame packet read max attempts"]) \
        == "OpenCV: grabFrame packet read max attempts"


# ----------------------------------------------------------------------------- run_overlapped


def test_run_overlapped_keeps_order_and_overlaps_stages():
    seen = []

    def slow(value):  # time.sleep releases the GIL like the real stages' OpenCV/NumPy/interpreter work
        time.sleep(0.02)
        return value

    start = time.perf_counter()
    run_overlapped(range(20), lambda x: slow(x * 2), lambda x: slow(x + 1), lambda x: seen.append(slow(x)))
    overlapped = time.perf_counter() - start
    assert seen == [2 * i + 1 for i in range(20)]
    # 20 items x 3 stages x 20 ms: 1.2 s one after another, about 0.4 s overlapped.
    assert overlapped < 0.9, overlapped


@pytest.mark.parametrize("failing_stage", ["items", "prepare", "infer", "finish"])
def test_run_overlapped_reraises_any_stage_error_without_leaving_threads(failing_stage):
    before = threading.active_count()

    def maybe_fail(stage):
        def step(value):
            if stage == failing_stage and value == 5:
                raise EdgematteError(f"{stage} failed on 5")
            return value
        return step

    def items():
        for i in range(100):
            maybe_fail("items")(i)
            yield i

    with pytest.raises(EdgematteError, match=f"{failing_stage} failed on 5"):
        run_overlapped(items(), maybe_fail("prepare"), maybe_fail("infer"), maybe_fail("finish"))
    assert threading.active_count() == before
