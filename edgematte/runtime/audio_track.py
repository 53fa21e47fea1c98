"""A video's audio carried into a matted output video, with PyAV (FFmpeg's own libraries).

OpenCV reads and writes video frames only, so ``matte_video`` writes each output video silent and
:func:`add_audio` then muxes the input's audio tracks into it:

- the video packets are copied as they are (never decoded again);
- each audio track is copied packet for packet when the output container can hold its codec
  (AAC, MP3, Opus, ALAC, AC-3 in MP4), so the sound is bit for bit the input's;
- a codec the container cannot hold (PCM in MP4, Vorbis in MP4...) is decoded and encoded as AAC at its
  own sample rate and channel layout (:data:`FALLBACK_AUDIO_CODEC`).

Packets of the two inputs are interleaved by time (a merge, so memory stays a few packets), and the
output keeps the input's audio timing: an audio track that starts before or runs past the video stays so.
Errors are one line naming the file and what FFmpeg said (:class:`~edgematte.core.errors.EdgematteError`).
"""

import heapq
from fractions import Fraction
from pathlib import Path
from typing import Iterator, List, Tuple

from ..core.errors import EdgematteError

FALLBACK_AUDIO_CODEC = "aac"
"""Encoder for an audio codec the output container cannot hold (FFmpeg's native AAC, in every PyAV build)."""
FALLBACK_AUDIO_BIT_RATE = 192_000
"""Bits/s for the fallback encoder per track: transparent for a stereo track at 48 kHz."""


def _open(path: Path, mode: str = "r", **options):
    import av  # imported here: a PyAV import costs about 0.1 s, paid only by video runs

    try:
        return av.open(str(path), mode, **options)
    except av.FFmpegError as error:
        raise EdgematteError(f"{path}: FFmpeg cannot open this file ({_said(error)})") from None


def _said(error) -> str:
    """FFmpeg's message in a PyAV error, without the path PyAV appends."""
    text = getattr(error, "strerror", None) or str(error)
    return str(text).strip()


def audio_track_count(path) -> int:
    """How many audio tracks the media file ``path`` holds (0 when none); the file must be checked first."""
    with _open(Path(path)) as container:
        return len(container.streams.audio)


def _packet_time(packet) -> Fraction:
    stamp = packet.dts if packet.dts is not None else packet.pts
    return Fraction(stamp) * packet.time_base if stamp is not None else Fraction(0)


def _timed(packets, order: int) -> Iterator[Tuple[Fraction, int, int, object]]:
    """``(time, input order, sequence, packet)`` for each packet that holds data (the demuxer's final
    empty packets carry none)."""
    for sequence, packet in enumerate(packets):
        if packet.size == 0:
            continue
        yield _packet_time(packet), order, sequence, packet


class _Transcoder:
    """Decodes one audio track and encodes it as :data:`FALLBACK_AUDIO_CODEC` into ``output``."""

    def __init__(self, source_stream, output):
        import av

        context = source_stream.codec_context
        self.stream = output.add_stream(FALLBACK_AUDIO_CODEC, rate=context.sample_rate)
        self.stream.layout = context.layout
        self.stream.bit_rate = FALLBACK_AUDIO_BIT_RATE
        self.stream.time_base = Fraction(1, context.sample_rate)
        encoder = self.stream.codec_context
        # The encoder takes fixed-size frames in its own sample format: the resampler cuts them so.
        self.resampler = av.AudioResampler(format=encoder.format or "fltp", layout=context.layout,
                                           rate=context.sample_rate, frame_size=encoder.frame_size or 1024)

    def packets(self, packet) -> List:
        """Encoded packets for one source ``packet`` (``None``: flush everything left)."""
        frames = packet.decode() if packet is not None else [None]
        out = []
        for frame in frames:
            if frame is not None:
                frame.pts = None  # the resampler and encoder count samples from the start
            for cut in self.resampler.resample(frame):
                out.extend(self.stream.encode(cut))
        if packet is None:
            out.extend(self.stream.encode(None))
        return out


def add_audio(video_only, audio_source, target) -> int:
    """Write ``target``: the video track of ``video_only`` with every audio track of ``audio_source``.

    Returns the number of audio tracks written (0: ``audio_source`` has none, and ``target`` is not
    written). ``target``'s container follows its suffix (``.mp4``). Raises
    :class:`~edgematte.core.errors.EdgematteError` naming the file that failed.
    """
    video_only, audio_source, target = Path(video_only), Path(audio_source), Path(target)
    import av

    with _open(audio_source, metadata_errors="ignore") as source:
        audio_streams = list(source.streams.audio)
        if not audio_streams:
            return 0
        with _open(video_only) as video, _open(target, "w", format=target.suffix.lstrip(".") or "mp4") as output:
            video_stream = video.streams.video[0]
            # Keyed by (input, stream index): 0 is video_only, 1 is audio_source.
            copied = {(0, video_stream.index): output.add_stream_from_template(video_stream)}
            transcoded = {}
            for stream in audio_streams:
                if stream.codec_context.name in output.supported_codecs:
                    copied[(1, stream.index)] = output.add_stream_from_template(stream)
                else:
                    transcoded[(1, stream.index)] = _Transcoder(stream, output)
            try:
                merged = heapq.merge(_timed(video.demux(video_stream), 0),
                                     _timed(source.demux(*audio_streams), 1), key=lambda item: item[:3])
                for _, order, _, packet in merged:
                    key = (order, packet.stream.index)
                    if key in copied:
                        packet.stream = copied[key]
                        output.mux(packet)
                    else:
                        output.mux(transcoded[key].packets(packet))
                for coder in transcoded.values():
                    output.mux(coder.packets(None))
            except av.FFmpegError as error:
                raise EdgematteError(f"{target}: could not add the audio of {audio_source} ({_said(error)})") from None
    return len(audio_streams)
