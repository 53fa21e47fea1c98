"""Videos frame by frame, and the three-stage pipeline that overlaps decoding with inference.

``matte_video`` reads with ``cv2.VideoCapture`` and writes ``mp4v`` MP4 files with ``cv2.VideoWriter``
at the input's frame rate and size, through one :class:`~edgematte.runtime.matter.Matter` (one
interpreter, reused for every frame; a recurrent model carries its states from frame to frame and starts
each video from zero states). Every audio track of the input is carried into each MP4 output
(:mod:`edgematte.runtime.audio_track`, PyAV: copied packet for packet, or as AAC where MP4 cannot hold
the codec); the PNG sequence of ``rgba`` has none.

Outputs for ``IN/clip.mp4`` with stem ``OUT/clip``:

- ``alpha``: ``OUT/clip_alpha.mp4``, the 8-bit alpha as gray (written as three equal channels, since
  mp4v has no gray mode); lossy, like any MP4.
- ``composite``: ``OUT/clip_composite.mp4``.
- ``rgba``: ``OUT/clip_rgba/frame_000000.png`` ... (MP4 has no alpha channel, so RGBA is a PNG sequence).

Every output appears complete or not at all (written beside its target and renamed at the end).

A video that ends early is a failure, not a shorter success: when fewer frames decode than the
container declares (a file cut short, a damaged stream), :func:`matte_video` raises one line naming
the file, the frames read and declared, and what FFmpeg said; its outputs are not published (a
previous run's outputs stay as they were), and the batch reports the file as failed (exit 1). See
:data:`FRAME_COUNT_SLACK` for the tolerance. The file is checked as a user file
(:func:`~edgematte.core.userfiles.check_user_file`: a FIFO or a device is refused, never opened) and
FFmpeg's own stderr lines are captured (:func:`~edgematte.core.native_output.captured_native_stderr`
around each open, read and release; decoding runs in the reading thread, :data:`DECODE_PARAMS`) and turned
into the reason, never printed (``--debug`` shows them).

:func:`run_overlapped` runs decode + preprocess in a reader thread, the model in the calling thread
and postprocess + encode in a writer thread, with small bounded queues between them. It is off by
default: on the two shared cores of the development host it did not help (720p, tiny model, alpha
only: 24.6 frames/s sequential, 18.7 overlapped: the three threads compete for two busy cores),
and ``tests/test_runtime_video.py`` prints both rates so a machine with more cores can decide.
"""

import collections
import contextlib
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import cv2
import numpy as np

from ..core import console
from ..core.errors import EdgematteError
from ..core.fsutil import atomic_dir, atomic_path
from ..core.native_output import captured_native_stderr
from ..core.userfiles import check_user_file
from .audio_track import add_audio, audio_track_count

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv")
"""File name endings taken for videos (images are recognised by content, videos by name)."""

VIDEO_FOURCC = "mp4v"
DEFAULT_FPS = 30.0
"""Frame rate written when the container does not state one."""
QUEUE_DEPTH = 2
"""Items waiting between two pipeline stages: enough to absorb jitter, little memory (720p: 2.7 MB a frame)."""

FRAME_COUNT_SLACK = 2
"""Frames a video may decode short of its declared count without being called truncated, when FFmpeg said
nothing while decoding it (with any FFmpeg complaint, one missing frame is enough).

Measured with OpenCV 4.11.0 (its bundled FFmpeg) on 1339 files it wrote itself: mp4v in .mp4/.mov/.avi/.mkv,
MJPG in .avi/.mkv, XVID and FFV1 in .avi, VP80 in .webm; 1 to 301 frames at 0.5 to 333 frames/s. The declared
count (``CAP_PROP_FRAME_COUNT``) equalled the decoded count in every one. Where a container stores no count
(Matroska, WebM) OpenCV estimates it as duration x frame rate, rounded, which for variable frame rates or
odd last-frame durations can be off by a frame or two (not seen here, but the estimate is not exact by
construction); 2 covers that. Truncation loses more, and FFmpeg says so: a 30-frame MJPG .mkv cut at half its
bytes decodes 14 frames, cut at 99% 29, each time with "File ended prematurely"; a cut .avi or a cut
MP4 whose index comes first ("faststart") likewise, with "partial file" or decoder errors."""
DECODE_PARAMS = [cv2.CAP_PROP_N_THREADS, 1] if hasattr(cv2, "CAP_PROP_N_THREADS") else []
"""One decoding thread. FFmpeg's frame-threaded decoder logs from its worker threads while Python is busy
elsewhere (the model), where no capture can catch it: with them, "[mpeg4 @ 0x...] ac-tex damaged" reached
the terminal. Decoding in the reading thread keeps every message inside the read that caused it, at a small
cost measured on this 2-core host (mp4v, per frame): 720p 1.11 -> 1.19 ms, 1080p 2.17 -> 2.91 ms, against
tens of ms for the model. (OpenCV before 4.6 has no such property: there, decoding stays threaded.)"""
FFMPEG_HINTS = {"moov atom not found": "no MP4 index: cut short, still being recorded, or no MP4 at all"}
"""FFmpeg messages worth a plainer gloss in the one-line reason."""
_FFMPEG_LINE = re.compile(r"^\[[^\]\s]+ @ (?:0x)?[0-9a-fA-F]+\]\s*(?P<text>.+)$")
_OPENCV_LINE = re.compile(r"^\[\s*(?:WARN|ERROR)[^\]]*\]\s*(?:global\s+\S+\s+)?(?P<text>.+)$")
_KEPT_LINES = 64

_END = object()
_POLL_S = 0.1


def run_overlapped(items: Iterable, prepare: Callable, infer: Callable, finish: Callable,
                   overlapped: bool = True, depth: int = QUEUE_DEPTH) -> None:
    """``finish(infer(prepare(item)))`` for every item, in order, with the three stages overlapped.

    ``prepare`` (and the iteration of ``items`` itself, e.g. decoding) runs in a reader thread,
    ``infer`` in the calling thread (the interpreter stays on one thread), ``finish`` in a writer
    thread. Items pass through queues of ``depth`` entries, so at most about ``2 * depth + 3`` items
    are alive at once. An exception in any stage (or Ctrl-C) stops all three and is re-raised here;
    no thread is left blocked. ``overlapped=False`` runs everything in the calling thread.
    """
    if not overlapped:
        for item in items:
            finish(infer(prepare(item)))
        return
    prepared: queue.Queue = queue.Queue(depth)
    inferred: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    errors: List[BaseException] = []

    def put(target: queue.Queue, value) -> bool:
        while not stop.is_set():
            try:
                target.put(value, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def get(source: queue.Queue):
        while True:
            try:
                return source.get(timeout=_POLL_S)
            except queue.Empty:
                if stop.is_set():
                    return _END

    def fail(error: BaseException) -> None:
        errors.append(error)
        stop.set()

    def reader() -> None:
        try:
            for item in items:
                if not put(prepared, prepare(item)):
                    return
        except BaseException as error:  # noqa: B902 - handed to the calling thread
            fail(error)
        finally:
            put(prepared, _END)

    def writer() -> None:
        try:
            while True:
                value = get(inferred)
                if value is _END:
                    return
                finish(value)
        except BaseException as error:  # noqa: B902 - handed to the calling thread
            fail(error)

    threads = [threading.Thread(target=reader, name="edgematte-read", daemon=True),
               threading.Thread(target=writer, name="edgematte-write", daemon=True)]
    for thread in threads:
        thread.start()
    try:
        while True:
            value = get(prepared)
            if value is _END or not put(inferred, infer(value)):
                break
    except BaseException as error:  # noqa: B902 - includes KeyboardInterrupt: stop the threads first
        fail(error)
    finally:
        put(inferred, _END)
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]


# ----------------------------------------------------------------------------------------------
# Reading and writing videos
# ----------------------------------------------------------------------------------------------


@dataclass
class VideoInfo:
    """What the container says: frame size, frame rate, and the frame count (an estimate; 0 = unknown)."""

    width: int
    height: int
    fps: float
    frame_count: int


def native_reason(lines: Iterable[str]) -> Optional[str]:
    """The last thing FFmpeg (else OpenCV) said in captured stderr ``lines``, labelled; ``None`` if nothing.

    ``"[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d0] moov atom not found"`` -> ``"FFmpeg: moov atom not found; no MP4
    index: ..."`` (:data:`FFMPEG_HINTS`). The last line is the one nearest to where reading stopped.
    """
    found = {"FFmpeg": None, "OpenCV": None}
    for line in lines:
        for name, pattern in (("FFmpeg", _FFMPEG_LINE), ("OpenCV", _OPENCV_LINE)):
            match = pattern.match(line.strip())
            if match:
                found[name] = match["text"].strip()
                break
    name = "FFmpeg" if found["FFmpeg"] else "OpenCV"
    text = found[name]
    if text is None:
        return None
    hint = FFMPEG_HINTS.get(text)
    return f"{name}: {text}; {hint}" if hint else f"{name}: {text}"


def open_video(path) -> Tuple[cv2.VideoCapture, VideoInfo]:
    """``(capture, info)`` for a video file; EdgematteError naming the file when OpenCV cannot read it.

    The path is checked first (:func:`check_user_file`: a regular file within the size bound, so a FIFO
    never blocks) and passed to OpenCV absolute (a name like ``concat:a|b`` is a file, not an FFmpeg
    protocol). What FFmpeg prints while opening is captured and becomes the reason when it fails.
    """
    path = Path(path)
    check_user_file(path, "video")
    if path.stat().st_size == 0:
        raise EdgematteError(f"{path}: empty file (0 bytes), not a video")
    with captured_native_stderr() as said:
        name = str(path.absolute())
        capture = cv2.VideoCapture(name, cv2.CAP_ANY, DECODE_PARAMS) if DECODE_PARAMS else cv2.VideoCapture(name)
        opened = capture.isOpened()
        if not opened:
            capture.release()
    reason = native_reason(said)
    if not opened:
        raise EdgematteError(f"{path}: OpenCV cannot open this file as a video ("
                             + (reason or "corrupt, or a codec its FFmpeg lacks") + ")")
    fps = capture.get(cv2.CAP_PROP_FPS)
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)  # -2**63 (FFmpeg's "no value") for a still image
    info = VideoInfo(width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                     fps=float(fps) if fps and np.isfinite(fps) and fps > 0 else DEFAULT_FPS,
                     frame_count=int(count) if np.isfinite(count) and count > 0 else 0)
    if info.width <= 0 or info.height <= 0:  # FFmpeg found no frame to take the size from (a header alone)
        release(capture)
        raise EdgematteError(f"{path}: no frame could be decoded (empty or corrupt video: it states no frame size"
                             + (f"; {reason}" if reason else "") + ")")
    return capture, info


def read_frames(capture: cv2.VideoCapture, said: Optional[collections.deque] = None) -> Iterator[np.ndarray]:
    """RGB uint8 H x W x 3 frames until the stream ends (the capture is released at the end).

    Each read runs inside :func:`captured_native_stderr`, so FFmpeg's complaints about a damaged stream stay
    off the terminal; they are appended to ``said`` when given (one thread at a time may capture fd 2: read
    from one thread only).
    """
    try:
        while True:
            with captured_native_stderr() as lines:
                ok, bgr = capture.read()
            if said is not None:
                said.extend(lines)
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        release(capture, said)


def release(capture: cv2.VideoCapture, said: Optional[collections.deque] = None) -> None:
    """Release ``capture`` with FFmpeg's last words (a decoder flushing a damaged stream) captured into ``said``."""
    with captured_native_stderr() as lines:
        capture.release()
    if said is not None:
        said.extend(lines)


def check_complete(path, read: int, declared: int, said: Iterable[str] = ()) -> None:
    """Raise a one-line :class:`EdgematteError` when ``read`` frames fall short of the ``declared`` count.

    Short by more than :data:`FRAME_COUNT_SLACK` frames, or by any frame when FFmpeg complained while
    decoding (``said``); nothing is checked when the count is unknown (``declared`` 0).
    """
    reason = native_reason(said)
    if read == 0:
        raise EdgematteError(f"{path}: no frame could be decoded (empty or corrupt video"
                             + (f"; {reason}" if reason else "") + ")")
    short = declared - read
    if declared <= 0 or short <= 0 or (short <= FRAME_COUNT_SLACK and reason is None):
        return
    raise EdgematteError(f"{path}: only {read} of {declared} declared frames could be decoded (truncated or corrupt"
                         + (f"; {reason}" if reason else "") + "); no output written for it")


def _audio_muxer(video_file: Path, audio_from: Path):
    """An ExitStack exit that, when the block succeeded, rewrites ``video_file`` with ``audio_from``'s audio."""

    def exit_(exc_type, exc, traceback) -> bool:
        if exc_type is None:
            silent = video_file.with_name(video_file.name + ".silent.mp4")
            os.replace(video_file, silent)
            try:
                add_audio(silent, audio_from, video_file)
            finally:
                silent.unlink(missing_ok=True)
        return False

    return exit_


def video_frames(path) -> Iterator[np.ndarray]:
    """The RGB uint8 H x W x 3 frames of the video ``path``, in order; once read to the end, checked complete
    (:func:`check_complete`: a truncated file raises a one-line error naming it, never ends as a shorter clip)."""
    capture, info = open_video(path)
    said: collections.deque = collections.deque(maxlen=_KEPT_LINES)
    read = 0
    for frame in read_frames(capture, said):
        read += 1
        yield frame
    check_complete(path, read, info.frame_count, said)


class _VideoOutputs:
    """The writers of one video's outputs, each into a temporary sibling renamed into place on success."""

    def __init__(self, out_stem: Path, kinds, info: VideoInfo, stack: contextlib.ExitStack,
                 audio_from: Optional[Path] = None):
        self.paths: List[Path] = []
        self._writers: Dict[str, cv2.VideoWriter] = {}
        self._frames_dir: Optional[Path] = None
        size = (info.width, info.height)
        for kind in kinds:
            if kind == "rgba":
                target = out_stem.parent / f"{out_stem.name}_rgba"
                self._frames_dir = stack.enter_context(atomic_dir(target))
                self.paths.append(target)
                continue
            target = out_stem.parent / f"{out_stem.name}_{kind}.mp4"
            temporary = stack.enter_context(atomic_path(target, suffix=".mp4"))
            if audio_from is not None:  # after the writer's release, before the rename: exits run last-in first
                stack.push(_audio_muxer(temporary, audio_from))
            with captured_native_stderr() as said:
                writer = cv2.VideoWriter(str(temporary.absolute()), cv2.VideoWriter_fourcc(*VIDEO_FOURCC),
                                         info.fps, size)
            if not writer.isOpened():
                reason = native_reason(said)
                raise EdgematteError(f"{target}: OpenCV cannot write an {VIDEO_FOURCC} video of {size[0]}x{size[1]} "
                                     f"at {info.fps:g} frames/s here" + (f" ({reason})" if reason else ""))
            stack.callback(writer.release)  # runs before the rename: the file is complete when it appears
            self._writers[kind] = writer
            self.paths.append(target)

    def write(self, index: int, outputs: Dict[str, np.ndarray]) -> None:
        for kind, writer in self._writers.items():
            image = outputs[kind]
            writer.write(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR))
        if self._frames_dir is not None:
            rgba = cv2.cvtColor(outputs["rgba"], cv2.COLOR_RGBA2BGRA)
            path = self._frames_dir / f"frame_{index:06d}.png"
            if not cv2.imwrite(str(path), rgba):
                raise EdgematteError(f"{path}: OpenCV could not write this PNG frame")


# ----------------------------------------------------------------------------------------------
# Matting a video
# ----------------------------------------------------------------------------------------------


@dataclass
class VideoResult:
    """One matted video: outputs written, frames, wall seconds, per-stage seconds summed over frames."""

    outputs: List[Path]
    frames: int
    seconds: float
    timings: Dict[str, float] = field(default_factory=dict)
    audio_tracks: int = 0

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Frame:
    index: int
    rgb: np.ndarray
    tensor: np.ndarray = None
    state: object = None
    output: np.ndarray = None
    timings: Dict[str, float] = field(default_factory=dict)


def matte_video(path, out_stem, matter, render: Callable[[np.ndarray, np.ndarray], Dict[str, np.ndarray]],
                kinds=("alpha",), overlapped: bool = False, keep_audio: bool = True) -> VideoResult:
    """Matte every frame of the video ``path`` and write the ``kinds`` of output under ``out_stem``.

    ``matter`` is a :class:`~edgematte.runtime.matter.Matter`; ``render(rgb, alpha)`` turns one
    RGB uint8 frame and its float32 alpha into ``{kind: image}`` (``alpha`` uint8 H x W, ``rgba``
    uint8 H x W x 4, ``composite`` uint8 H x W x 3), as ``edgematte.runtime.batch`` builds it.
    ``overlapped`` runs decode/pre, model and post/encode in three threads (:func:`run_overlapped`;
    off by default, see the module doc). ``keep_audio=False`` writes the outputs without the input's audio (its
    audio is then not even opened: a clip whose audio cannot be carried over still gives its mattes).
    A progress bar (hidden under ``--quiet``) counts frames and shows frames/s. Raises
    :class:`EdgematteError` naming the file for an unreadable or empty video, and for one that decodes
    short of its declared frame count (:func:`check_complete`); outputs of a failed run are removed
    and earlier outputs at the same names are left as they were.
    """
    path, out_stem = Path(path), Path(out_stem)
    capture, info = open_video(path)
    try:
        audio_tracks = audio_track_count(path) if keep_audio else 0
    except BaseException:
        release(capture)
        raise
    totals = {"read_s": 0.0, "pre_s": 0.0, "model_s": 0.0, "post_s": 0.0, "write_s": 0.0}
    counter = {"frames": 0, "read": 0}
    said: collections.deque = collections.deque(maxlen=_KEPT_LINES)  # FFmpeg's lines while decoding
    start = time.perf_counter()

    def frames() -> Iterator[_Frame]:
        source = read_frames(capture, said)
        while True:
            t0 = time.perf_counter()
            rgb = next(source, None)
            if rgb is None:
                return
            counter["read"] += 1
            yield _Frame(counter["read"] - 1, rgb, timings={"read_s": time.perf_counter() - t0})

    def prepare(frame: _Frame) -> _Frame:
        if frame.rgb.shape[:2] != (info.height, info.width):
            raise EdgematteError(f"{path}: frame {frame.index} is {frame.rgb.shape[1]}x{frame.rgb.shape[0]}, the video "
                                 f"says {info.width}x{info.height} (size changes mid-stream are not supported)")
        t0 = time.perf_counter()
        frame.tensor, frame.state = matter.model_input(frame.rgb)
        frame.timings["pre_s"] = time.perf_counter() - t0
        return frame

    def infer(frame: _Frame) -> _Frame:
        t0 = time.perf_counter()
        frame.output = matter.run_tensor(frame.tensor)
        frame.tensor = None
        frame.timings["model_s"] = time.perf_counter() - t0
        return frame

    try:
        with contextlib.ExitStack() as stack, \
                console.progress(length=max(info.frame_count, 1), label=path.name) as bar:
            writers = _VideoOutputs(out_stem, kinds, info, stack, audio_from=path if audio_tracks else None)

            def finish(frame: _Frame) -> None:
                t0 = time.perf_counter()
                alpha = matter.profile.postprocess(frame.output, frame.state)
                t1 = time.perf_counter()
                writers.write(frame.index, render(frame.rgb, alpha))
                frame.timings.update(post_s=t1 - t0, write_s=time.perf_counter() - t1)
                for name, seconds in frame.timings.items():
                    totals[name] += seconds
                counter["frames"] += 1
                bar.label = f"{path.name} {counter['frames'] / (time.perf_counter() - start):.1f} frames/s"
                bar.update(1)

            run_overlapped(frames(), prepare, infer, finish, overlapped=overlapped)
            # Inside the stack: a video that ended early publishes nothing (its temporary outputs are removed).
            check_complete(path, counter["read"], info.frame_count, said)
    finally:
        release(capture)
    return VideoResult(outputs=writers.paths, frames=counter["frames"], seconds=time.perf_counter() - start,
                       timings=totals, audio_tracks=audio_tracks)
