"""Videos in, videos out (frame count, size, frame rate, alpha numbers), and the overlapped pipeline."""

import threading
import time

import cv2
import numpy as np
import pytest

from edgematte.core.errors import EdgematteError
from edgematte.core.samples import sample_photo
from edgematte.runtime.batch import FrameRenderer, matte_inputs
from edgematte.runtime.matter import Matter
from edgematte.runtime.video import matte_video, open_video, read_frames, run_overlapped


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
    frames = sorted((tmp_path / "out" / "short_rgba").iterdir())
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
