"""A clip's audio carried into matted videos: copied packet for packet where MP4 holds the codec, as AAC where
it does not; frames written equal frames read; a silent clip stays silent."""

import av
import numpy as np
import pytest

from edgematte.core.errors import EdgematteError
from edgematte.core.samples import sample_photo
from edgematte.runtime.audio_track import add_audio, audio_track_count
from edgematte.runtime.batch import matte_inputs
from edgematte.runtime.matter import Matter

TONE_HZ = 440.0
RATE = 48000
FPS = 25
FRAMES = 30
SIZE = (160, 96)


@pytest.fixture(scope="module")
def matter(tiny_conversion):
    return Matter.from_manifest(tiny_conversion, threads=2)


def tone_clip(path, audio_codec=None, sample_format="fltp", layout="stereo"):
    """FRAMES frames of the astronaut sliding right (mpeg4), with a 440 Hz tone as long as the video in
    ``audio_codec`` (``None``: no audio track)."""
    person = np.ascontiguousarray(sample_photo("astronaut")[::8, ::8][:SIZE[1] - 8, :SIZE[1] - 8])
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=FPS)
        video.width, video.height, video.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        audio = None
        if audio_codec:
            audio = out.add_stream(audio_codec, rate=RATE)
            audio.layout = layout
        for i in range(FRAMES):
            frame = np.full((SIZE[1], SIZE[0], 3), (200, 120, 40), np.uint8)
            x = i * 2
            frame[4:4 + person.shape[0], x:x + person.shape[1]] = person
            out.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(video.encode(None))
        if audio is None:
            return path
        samples = int(RATE * FRAMES / FPS)
        wave = 0.3 * np.sin(2 * np.pi * TONE_HZ * np.arange(samples) / RATE)
        channels = len(audio.layout.channels)
        step = audio.codec_context.frame_size or 1024
        for start in range(0, samples, step):
            chunk = np.repeat(wave[start:start + step][None], channels, axis=0)
            if sample_format == "s16":  # packed: one row of interleaved samples
                chunk = (chunk.T.reshape(1, -1) * 32767).astype(np.int16)
            else:
                chunk = chunk.astype(np.float32)
            frame = av.AudioFrame.from_ndarray(chunk, format=sample_format, layout=layout)
            frame.sample_rate, frame.pts = RATE, start
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return path


def audio_packets(path):
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def decoded_audio(path) -> np.ndarray:
    """The first channel of the first audio track, float."""
    with av.open(str(path)) as container:
        return np.concatenate([f.to_ndarray()[0].astype(np.float64) for f in container.decode(audio=0)])


def frame_count(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def peak_hz(samples) -> float:
    window = samples[RATE // 10:RATE // 10 + RATE // 2]  # half a second, past the encoder's priming
    return float(np.argmax(np.abs(np.fft.rfft(window)))) * RATE / len(window)


def test_matte_keeps_an_aac_track_packet_for_packet_and_every_frame(tmp_path, matter):
    clip = tone_clip(tmp_path / "call.mp4", "aac")
    report = matte_inputs([str(clip)], tmp_path / "out", matter, background="#00ff00", save=("alpha", "composite"))
    assert report.exit_code == 0, report.failures
    assert report.items[0].frames == FRAMES
    source_packets = audio_packets(clip)
    assert len(source_packets) >= 40  # 1.2 s of AAC at 1024 samples a packet
    for kind in ("alpha", "composite"):
        output = tmp_path / "out" / f"call_{kind}.mp4"
        assert frame_count(output) == FRAMES
        assert audio_packets(output) == source_packets, kind  # copied, never re-encoded
        with av.open(str(output)) as container:
            (track,) = container.streams.audio
            assert (track.codec_context.name, track.rate, len(track.layout.channels)) == ("aac", RATE, 2)
    assert abs(peak_hz(decoded_audio(tmp_path / "out" / "call_composite.mp4")) - TONE_HZ) <= 2


def test_no_audio_writes_the_frames_without_the_track_and_never_opens_it(tmp_path, matter, monkeypatch):
    from edgematte.runtime import video

    clip = tone_clip(tmp_path / "call.mp4", "aac")
    opened = []
    monkeypatch.setattr(video, "audio_track_count", lambda path: opened.append(path) or 1)
    report = matte_inputs([str(clip)], tmp_path / "out", matter, save=("alpha",), keep_audio=False)
    assert report.exit_code == 0, report.failures
    output = tmp_path / "out" / "call_alpha.mp4"
    assert opened == [] and audio_track_count(output) == 0 and frame_count(output) == FRAMES


def test_a_codec_mp4_cannot_hold_becomes_aac_with_the_same_tone_and_length(tmp_path):
    clip = tone_clip(tmp_path / "voice.mov", "pcm_mulaw", sample_format="s16", layout="mono")
    silent = tone_clip(tmp_path / "silent.mp4")
    with av.open(str(tmp_path / "probe.mp4"), "w") as probe:
        assert "pcm_mulaw" not in probe.supported_codecs  # the case under test
    assert add_audio(silent, clip, tmp_path / "voiced.mp4") == 1
    with av.open(str(tmp_path / "voiced.mp4")) as container:
        (track,) = container.streams.audio
        assert (track.codec_context.name, track.rate, len(track.layout.channels)) == ("aac", RATE, 1)
    source, output = decoded_audio(clip), decoded_audio(tmp_path / "voiced.mp4")
    assert abs(peak_hz(output) - TONE_HZ) <= 2
    # AAC adds its priming and pads the last packet: under 3 packets of 1024 samples longer.
    assert 0 <= len(output) - len(source) < 3 * 1024
    assert frame_count(tmp_path / "voiced.mp4") == FRAMES


def test_a_silent_clip_stays_silent(tmp_path, matter):
    clip = tone_clip(tmp_path / "mute.mp4")
    assert audio_track_count(clip) == 0
    assert add_audio(clip, clip, tmp_path / "never.mp4") == 0
    assert not (tmp_path / "never.mp4").exists()
    report = matte_inputs([str(clip)], tmp_path / "out", matter, background="#00ff00", save=("composite",))
    assert report.exit_code == 0, report.failures
    output = tmp_path / "out" / "mute_composite.mp4"
    assert audio_track_count(output) == 0 and frame_count(output) == FRAMES


def test_an_unreadable_audio_source_is_one_line_naming_it(tmp_path):
    silent = tone_clip(tmp_path / "silent.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 4096)
    with pytest.raises(EdgematteError, match=r"junk\.mp4: FFmpeg cannot open this file \(.+\)$"):
        add_audio(silent, junk, tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()
