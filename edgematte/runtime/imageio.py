"""Reading photos safely and writing results atomically, with OpenCV only (the runtime has no Pillow).

``read_image`` treats every file as untrusted: it opens only regular files of at most ``MAX_FILE_BYTES``
(:mod:`edgematte.core.userfiles`: a FIFO never blocks, ``/dev/zero`` is never read), reads the size from
the header and refuses an image above ``MAX_IMAGE_PIXELS`` before any decoder allocates it, hands OpenCV
only formats whose header it can check (JPEG, PNG, WebP, BMP, TIFF, PNM), keeps libpng's own warnings off
the terminal (:mod:`edgematte.core.native_output`), and turns every failure into a one-line
:class:`EdgematteError` naming the file (:func:`shown_name`: a newline in a name is printed as ``\\n``).

What comes back is always RGB uint8 H x W x 3 (gray is replicated, 16-bit samples are rounded to
8 bits, CMYK JPEGs are converted by OpenCV) plus, from ``read_image_and_alpha``, the file's alpha
channel (uint8 H x W) or ``None``. JPEG EXIF orientation is applied (OpenCV's ``IMREAD_COLOR``
does it, as cameras expect). Other formats are decoded with ``IMREAD_UNCHANGED`` to keep alpha and
16-bit samples, which OpenCV never rotates: their orientation tags are ignored.
"""

import os
import re
import struct
from pathlib import Path
from typing import List, Optional, Tuple

import cv2
import numpy as np

from edgematte.core.errors import EdgematteError
from edgematte.core.fsutil import atomic_path
from edgematte.core.native_output import captured_native_stderr
from edgematte.core.userfiles import LIMITS, open_user_file, read_user_bytes

MAX_IMAGE_PIXELS = 100_000_000
"""Largest image read_image decodes: 100 megapixels (a 108 MP phone sensor needs max_pixels raised)."""

MAX_FILE_BYTES = LIMITS["image"]
"""Largest file read_image opens: every user's image file is bounded alike (``userfiles.LIMITS["image"]``)."""

SUPPORTED_FORMATS = ("JPEG", "PNG", "WebP", "BMP", "TIFF", "PNM")


# ----------------------------------------------------------------------------------------------
# Headers: format and (height, width) without decoding
# ----------------------------------------------------------------------------------------------


class _BadHeader(Exception):
    """The header is malformed or uses a variant we do not hand to a decoder."""


def sniff_format(data: bytes) -> Optional[str]:
    """One of ``SUPPORTED_FORMATS`` from the magic bytes, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[:2] == b"BM":
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if len(data) >= 2 and data[:1] == b"P" and data[1:2] in b"123456":
        return "PNM"
    return None


def _jpeg_layout(data: bytes) -> Tuple[Tuple[int, int], bool]:
    """((height, width) from the frame header, whether an end-of-image marker follows the scan)."""
    pos, size = 2, None
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise _BadHeader("marker expected")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        if marker == 0xD9:
            break
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            if pos + 9 > len(data):
                break
            size = struct.unpack(">HH", data[pos + 5:pos + 9])
        if marker == 0xDA:  # start of scan: entropy-coded data, then (eventually) EOI
            if size is None:
                raise _BadHeader("scan before frame header")
            # In entropy-coded data 0xFF is always followed by 0x00 or a restart marker, and the
            # scan's own header was skipped by its length, so FFD9 here is the real end of image.
            return size, data.find(b"\xff\xd9", pos + 2 + length) >= 0
        pos += 2 + length
    if size is None:
        raise _BadHeader("no frame header")
    return size, False


def _pnm_size(data: bytes) -> Tuple[int, int]:
    tokens, pos = [], 2
    while len(tokens) < 2 and pos < len(data):
        char = data[pos:pos + 1]
        if char == b"#":
            end = data.find(b"\n", pos)
            pos = len(data) if end < 0 else end + 1
        elif char.isspace():
            pos += 1
        else:
            start = pos
            while pos < len(data) and not data[pos:pos + 1].isspace() and data[pos:pos + 1] != b"#":
                pos += 1
            tokens.append(data[start:pos])
    if len(tokens) < 2 or not all(t.isdigit() for t in tokens):
        raise _BadHeader("bad PNM header")
    return int(tokens[1]), int(tokens[0])


def _tiff_size(data: bytes) -> Tuple[int, int]:
    order = "<" if data[:2] == b"II" else ">"
    offset = struct.unpack(order + "I", data[4:8])[0]
    count = struct.unpack(order + "H", data[offset:offset + 2])[0]
    found = {}
    for i in range(count):
        entry = data[offset + 2 + 12 * i: offset + 14 + 12 * i]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (type 3) or LONG
            found[tag] = struct.unpack(order + "H", entry[8:10])[0] if kind == 3 else \
                struct.unpack(order + "I", entry[8:12])[0]
    if 256 not in found or 257 not in found:
        raise _BadHeader("TIFF without ImageWidth/ImageLength")
    return found[257], found[256]


def header_size(data: bytes, kind: str) -> Tuple[int, int]:
    """(height, width) read from the header of ``data`` in format ``kind`` (raises _BadHeader)."""
    return _header(data, kind)[0]


def _header(data: bytes, kind: str) -> Tuple[Tuple[int, int], bool]:
    """((height, width), whether the file can be complete); only JPEG is checked for completeness."""
    try:
        if kind == "JPEG":
            return _jpeg_layout(data)
        return _plain_header_size(data, kind), True
    except (struct.error, IndexError, ValueError) as error:
        raise _BadHeader(str(error)) from error


def _plain_header_size(data: bytes, kind: str) -> Tuple[int, int]:
    if kind == "PNG":
        if data[12:16] != b"IHDR":
            raise _BadHeader("PNG without IHDR")
        width, height = struct.unpack(">II", data[16:24])
        return height, width
    if kind == "WebP":
        chunk = data[12:16]
        if chunk == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return height & 0x3FFF, width & 0x3FFF
        if chunk == b"VP8L":
            bits = struct.unpack("<I", data[21:25])[0]
            return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
        if chunk == b"VP8X":
            return int.from_bytes(data[27:30], "little") + 1, int.from_bytes(data[24:27], "little") + 1
        raise _BadHeader("unknown WebP chunk")
    if kind == "BMP":
        if struct.unpack("<I", data[14:18])[0] == 12:
            width, height = struct.unpack("<hh", data[18:22])
        else:
            width, height = struct.unpack("<ii", data[18:26])
        return abs(height), abs(width)
    if kind == "TIFF":
        return _tiff_size(data)
    if kind == "PNM":
        return _pnm_size(data)
    raise _BadHeader(f"unknown format {kind}")


# ----------------------------------------------------------------------------------------------
# Names in messages
# ----------------------------------------------------------------------------------------------

# C0 and C1 controls, DEL, the Unicode line and paragraph separators, and the lone surrogates that stand
# for undecodable bytes of a file name.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def shown_name(name) -> str:
    """A file name (or any text) as a message prints it: control characters escaped as ``repr`` escapes
    them (a newline becomes ``\\n``), everything else as it is, so a message naming the file stays one line.

    The one helper for names in messages of the runtime's file handling (images, batch runs, calibration
    folders). Escaping is idempotent: text that has no control characters comes back unchanged.
    """
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], str(name))


def renamed_error(error: EdgematteError, path) -> EdgematteError:
    """``error`` (raised by a helper that printed ``path`` as it is) with ``path`` shown by :func:`shown_name`."""
    text, name = str(error), shown_name(path)
    return error if name == str(path) else EdgematteError(text.replace(str(path), name))


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------


def read_file_bytes(path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of an image file the user named, read as :func:`edgematte.core.userfiles.read_user_bytes`
    reads it: a regular file only (a FIFO never blocks, ``/dev/zero`` is never read), at most ``max_bytes``."""
    try:
        return read_user_bytes(path, "image", max_bytes)
    except EdgematteError as error:
        raise renamed_error(error, path) from None


def read_file_head(path, size: int) -> bytes:
    """The first ``size`` bytes of an image file, opened as :func:`read_file_bytes` opens it."""
    try:
        with open_user_file(path, "image", MAX_FILE_BYTES) as f:
            return f.read(size)
    except EdgematteError as error:
        raise renamed_error(error, path) from None
    except OSError as error:
        raise EdgematteError(f"{shown_name(path)}: cannot read: {error.strerror or error}") from None


def _to_uint8(samples: np.ndarray, name: str) -> np.ndarray:
    """uint8 from uint8 or uint16 samples; 16-bit values are rounded: ``(2v + 257) // 514``."""
    if samples.dtype == np.uint8:
        return samples
    if samples.dtype == np.uint16:
        # v * 255 / 65535 = v / 257, rounded half up, in integers.
        return ((2 * samples.astype(np.uint32) + 257) // 514).astype(np.uint8)
    raise EdgematteError(f"{name}: unsupported {samples.dtype} samples; expected 8- or 16-bit images")


def _decode(data: bytes, kind: str, name: str) -> np.ndarray:
    """OpenCV's decoding of ``data``, with libpng's and libjpeg's own stderr lines kept off the terminal
    (shown under ``--debug``); the last of them becomes the reason when decoding fails."""
    # JPEG: IMREAD_COLOR applies EXIF orientation and converts gray/CMYK; JPEG has no alpha.
    flags = cv2.IMREAD_COLOR if kind == "JPEG" else cv2.IMREAD_UNCHANGED
    try:
        with captured_native_stderr() as said:
            decoded = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as error:
        raise EdgematteError(f"{name}: OpenCV cannot decode this {kind} file ({str(error).strip().splitlines()[-1]})") \
            from error
    if decoded is None or decoded.size == 0:
        detail = f": {shown_name(said[-1])}" if said else ""
        raise EdgematteError(f"{name}: corrupt or truncated {kind} file (OpenCV could not decode it{detail})")
    return decoded


def read_image_and_alpha(path, max_pixels: int = MAX_IMAGE_PIXELS) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(RGB uint8 H x W x 3, alpha uint8 H x W or None) from an image file; see the module doc.

    Raises :class:`EdgematteError` naming ``path`` (:func:`shown_name`) for anything that is not a readable
    image within ``max_pixels`` pixels: a FIFO, a device or a folder is refused before anything is read.
    """
    path = Path(path)
    name = shown_name(path)
    data = read_file_bytes(path)
    if not data:
        raise EdgematteError(f"{name}: empty file (0 bytes), not an image")
    kind = sniff_format(data)
    if kind is None:
        raise EdgematteError(f"{name}: not a supported image (expected {', '.join(SUPPORTED_FORMATS)})")
    try:
        (height, width), complete = _header(data, kind)
    except _BadHeader as error:
        raise EdgematteError(f"{name}: corrupt {kind} header ({error})") from error
    _check_pixels(name, height, width, max_pixels)
    if not complete:
        raise EdgematteError(f"{name}: truncated JPEG (no end-of-image marker after the image data)")
    decoded = _decode(data, kind, name)
    _check_pixels(name, decoded.shape[0], decoded.shape[1], max_pixels)

    samples = _to_uint8(decoded, name)
    if samples.ndim == 2:
        samples = samples[:, :, None]
    channels = samples.shape[2]
    alpha = None
    if channels == 1:
        rgb = np.repeat(samples, 3, axis=2)
    elif channels == 2:
        rgb, alpha = np.repeat(samples[:, :, :1], 3, axis=2), samples[:, :, 1]
    elif channels == 3:
        rgb = samples[:, :, ::-1]
    elif channels == 4:
        rgb, alpha = samples[:, :, 2::-1], samples[:, :, 3]
    else:
        raise EdgematteError(f"{name}: unsupported {channels}-channel image")
    rgb = np.ascontiguousarray(rgb)
    return rgb, (None if alpha is None else np.ascontiguousarray(alpha))


def read_image(path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """RGB uint8 H x W x 3 from an image file (any alpha channel dropped); see the module doc."""
    return read_image_and_alpha(path, max_pixels)[0]


def _check_pixels(name: str, height: int, width: int, max_pixels: int) -> None:
    if height < 1 or width < 1:
        raise EdgematteError(f"{name}: image header gives an empty size {width}x{height}")
    if height * width > max_pixels:
        raise EdgematteError(f"{name}: image is {width}x{height} ({height * width / 1e6:.1f} megapixels), "
                             f"above the limit of {max_pixels / 1e6:g} megapixels")


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------


def write_image(path, array: np.ndarray) -> None:
    """Write uint8 (or uint16) H x W gray, H x W x 3 RGB or H x W x 4 RGBA atomically.

    The encoder follows the file extension (.png, .jpg, .webp, ...); the file appears complete or
    not at all (:func:`edgematte.core.fsutil.atomic_path`).
    """
    path = Path(path)
    name = shown_name(path)
    array = np.asarray(array)
    if array.dtype not in (np.uint8, np.uint16) or array.ndim not in (2, 3) \
            or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"write_image needs uint8/uint16 HxW, HxWx3 or HxWx4, got {array.dtype} {array.shape}")
    extension = path.suffix.lower()
    if not extension:
        raise EdgematteError(f"{name}: no file extension to choose an image format from (use .png or .jpg)")
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR if array.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    try:
        ok, encoded = cv2.imencode(extension, array)
    except cv2.error as error:
        raise EdgematteError(f"{name}: OpenCV cannot write {extension} files ({str(error).strip().splitlines()[-1]})") \
            from error
    if not ok:
        raise EdgematteError(f"{name}: OpenCV failed to encode a {array.dtype} {array.shape} image as {extension}")
    try:
        with atomic_path(path, suffix=extension) as tmp:
            tmp.write_bytes(encoded.tobytes())
    except OSError as error:
        raise EdgematteError(f"{name}: cannot write: {error.strerror or error}") from error


def files_below(folder) -> List[Path]:
    """Every entry below ``folder`` that is not a folder, in sorted relative-path order (symlinked folders
    not followed).

    FIFOs, sockets, devices and broken links are listed too: the reader refuses each with one line
    (:func:`read_file_bytes`), so a run reports them as skipped instead of passing over them in silence.
    """
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(Path(root) / name for name in sorted(files))
    return found


def numbered_frames(folder) -> List[Tuple[int, Path]]:
    """The frames of a clip: ``[(number, path)]`` of the files directly in ``folder``, sorted by the number in
    each file name (its last run of digits: ``frame_2.png`` before ``frame_10.png``; the extension does not count).

    Hidden files (``.DS_Store``...) and sub-folders are passed over. One-line :class:`EdgematteError` naming the
    folder or file for: no such folder, a file given, no frames, a name without a number, one number twice, a
    gap in the numbering (the clip would skip frames). The numbering may start anywhere.
    """
    folder = Path(folder)
    if not folder.exists():
        raise EdgematteError(shown_name(f"{folder}: no such folder of frames"))
    if not folder.is_dir():
        raise EdgematteError(shown_name(f"{folder}: not a folder (a clip's frames are numbered files in one folder)"))
    numbered = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        digits = re.findall(r"\d+", path.name[:-len(path.suffix)] if path.suffix else path.name)
        if not digits:
            raise EdgematteError(shown_name(f"{path}: no frame number in the file name (name frames like "
                                            "frame_0001.png)"))
        number = int(digits[-1])
        if number in numbered:
            raise EdgematteError(shown_name(f"{folder}: frame {number} twice: {numbered[number].name} and "
                                            f"{path.name}"))
        numbered[number] = path
    if not numbered:
        raise EdgematteError(shown_name(f"{folder}: no frames (files named by their frame number, e.g. "
                                        "frame_0001.png)"))
    numbers = sorted(numbered)
    missing = next((n + 1 for n, following in zip(numbers, numbers[1:]) if following != n + 1), None)
    if missing is not None:
        raise EdgematteError(shown_name(f"{folder}: frame {missing} is missing (frames {numbers[0]} to "
                                        f"{numbers[-1]}, {len(numbers)} files)"))
    return [(n, numbered[n]) for n in numbers]
