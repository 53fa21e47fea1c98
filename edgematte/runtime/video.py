"""Videos frame by frame, and the three-stage pipeline that overlaps decoding with inference.

``matte_video`` reads with ``cv2.VideoCapture`` and writes ``mp4v`` MP4 files with ``cv2.VideoWriter``
at the input's frame rate and size, through one :class:`~edgematte.runtime.matter.Matter` (one
interpreter, reused for every frame). Audio is not carried over: the outputs are silent.

Outputs for ``IN/clip.mp4`` with stem ``OUT/clip``:

- ``alpha``: ``OUT/clip_alpha.mp4``, the 8-bit alpha as gray (written as three equal channels, since
  mp4v has no gray mode); lossy, like any MP4.
- ``composite``: ``OUT/clip_composite.mp4``.
- ``rgba``: ``OUT/clip_rgba/frame_000000.png`` ... (MP4 has no alpha channel, so RGBA is a PNG sequence).

Every output appears complete or not at all (written beside its target and renamed at the end).

:func:`run_overlapped` runs decode + preprocess in a reader thread, the model in the calling thread
and postprocess + encode in a writer thread, with small bounded queues between them. It is off by
default: on the two shared cores of the development host it did not help (720p, tiny model, alpha
only: 24.6 frames/s sequential, 18.7 overlapped: the three threads compete for two busy cores),
and ``tests/test_runtime_video.py`` prints both rates so a machine with more cores can decide.
"""

import contextlib
import queue
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

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv")
"""File name endings taken for videos (images are recognised by content, videos by name)."""

VIDEO_FOURCC = "mp4v"
DEFAULT_FPS = 30.0
"""Frame rate written when the container does not state one."""
QUEUE_DEPTH = 2
"""Items waiting between two pipeline stages: enough to absorb jitter, little memory (720p: 2.7 MB a frame)."""

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


def open_video(path) -> Tuple[cv2.VideoCapture, VideoInfo]:
    """``(capture, info)`` for a video file; EdgematteError naming the file when OpenCV cannot read it."""
    path = Path(path)
    if not path.is_file():
        raise EdgematteError(f"{path}: no such video file")
    if path.stat().st_size == 0:
        raise EdgematteError(f"{path}: empty file (0 bytes), not a video")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise EdgematteError(f"{path}: OpenCV cannot open this file as a video (corrupt, or a codec its FFmpeg lacks)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    info = VideoInfo(width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                     fps=float(fps) if fps and np.isfinite(fps) and fps > 0 else DEFAULT_FPS,
                     frame_count=max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))))
    return capture, info


def read_frames(capture: cv2.VideoCapture) -> Iterator[np.ndarray]:
    """RGB uint8 H x W x 3 frames until the stream ends (the capture is released at the end)."""
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


class _VideoOutputs:
    """The writers of one video's outputs, each into a temporary sibling renamed into place on success."""

    def __init__(self, out_stem: Path, kinds, info: VideoInfo, stack: contextlib.ExitStack):
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
            writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*VIDEO_FOURCC), info.fps, size)
            if not writer.isOpened():
                raise EdgematteError(f"{target}: OpenCV cannot write an {VIDEO_FOURCC} video of "
                                     f"{size[0]}x{size[1]} here")
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
                kinds=("alpha",), overlapped: bool = False) -> VideoResult:
    """Matte every frame of the video ``path`` and write the ``kinds`` of output under ``out_stem``.

    ``matter`` is a :class:`~edgematte.runtime.matter.Matter`; ``render(rgb, alpha)`` turns one
    RGB uint8 frame and its float32 alpha into ``{kind: image}`` (``alpha`` uint8 H x W, ``rgba``
    uint8 H x W x 4, ``composite`` uint8 H x W x 3), as ``edgematte.runtime.batch`` builds it.
    ``overlapped`` runs decode/pre, model and post/encode in three threads (:func:`run_overlapped`;
    off by default, see the module doc).
    A progress bar (hidden under ``--quiet``) counts frames and shows frames/s. Raises
    :class:`EdgematteError` naming the file for an unreadable or empty video; outputs of a failed
    run are removed.
    """
    path, out_stem = Path(path), Path(out_stem)
    capture, info = open_video(path)
    totals = {"read_s": 0.0, "pre_s": 0.0, "model_s": 0.0, "post_s": 0.0, "write_s": 0.0}
    counter = {"frames": 0}
    start = time.perf_counter()

    def frames() -> Iterator[_Frame]:
        source = read_frames(capture)
        index = 0
        while True:
            t0 = time.perf_counter()
            rgb = next(source, None)
            if rgb is None:
                return
            yield _Frame(index, rgb, timings={"read_s": time.perf_counter() - t0})
            index += 1

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
            writers = _VideoOutputs(out_stem, kinds, info, stack)

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
            if counter["frames"] == 0:
                raise EdgematteError(f"{path}: no frame could be decoded (empty or corrupt video)")
    finally:
        capture.release()
    return VideoResult(outputs=writers.paths, frames=counter["frames"], seconds=time.perf_counter() - start,
                       timings=totals)
