"""read_image / write_image against small files made here (OpenCV and Pillow as independent writers)."""

import os
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from edgematte.core.errors import EdgematteError
from edgematte.runtime import imageio
from edgematte.runtime.imageio import header_size, read_image, read_image_and_alpha, write_image


def gradient(h, w):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], -1).astype(np.uint8)


def two_colour(h=20, w=40):
    """Left half red, right half blue (RGB)."""
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, : w // 2] = (255, 0, 0)
    rgb[:, w // 2:] = (0, 0, 255)
    return rgb


def assert_names_file(excinfo, path):
    message = str(excinfo.value)
    assert str(path) in message and "\n" not in message


# ---------------------------------------------------------------------------------------------
# Good files
# ---------------------------------------------------------------------------------------------


def test_png_rgb_round_trip_is_exact(tmp_path):
    rgb = gradient(37, 53)
    write_image(tmp_path / "a.png", rgb)
    assert np.array_equal(read_image(tmp_path / "a.png"), rgb)
    rgb_back, alpha = read_image_and_alpha(tmp_path / "a.png")
    assert alpha is None and rgb_back.flags["C_CONTIGUOUS"]


def test_rgba_returns_rgb_and_alpha_separately(tmp_path):
    rgba = np.concatenate([gradient(9, 11), np.arange(99, dtype=np.uint8).reshape(9, 11, 1)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    rgb, alpha = read_image_and_alpha(tmp_path / "a.png")
    assert np.array_equal(rgb, rgba[:, :, :3]) and np.array_equal(alpha, rgba[:, :, 3])
    assert read_image(tmp_path / "a.png").shape == (9, 11, 3)
    # write_image keeps RGBA too
    write_image(tmp_path / "b.png", rgba)
    rgb2, alpha2 = read_image_and_alpha(tmp_path / "b.png")
    assert np.array_equal(rgb2, rgba[:, :, :3]) and np.array_equal(alpha2, rgba[:, :, 3])


def test_grayscale_and_gray_alpha(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    assert np.array_equal(read_image(tmp_path / "g.png"), np.repeat(gray[:, :, None], 3, axis=2))
    Image.fromarray(np.stack([gray, 255 - gray], -1), "LA").save(tmp_path / "la.png")
    rgb, alpha = read_image_and_alpha(tmp_path / "la.png")
    assert np.array_equal(rgb[:, :, 1], gray) and np.array_equal(alpha, 255 - gray)
    Image.fromarray(gray, "L").save(tmp_path / "g.jpg", quality=100)
    assert read_image(tmp_path / "g.jpg").shape == (3, 4, 3)


def test_16_bit_png_is_rounded_to_8_bit(tmp_path):
    values = np.array([0, 128, 129, 257, 385, 386, 32896, 65407, 65408, 65535], np.uint16)
    image = np.repeat(values.reshape(1, -1, 1), 3, axis=2)
    alpha = values.reshape(1, -1, 1)
    cv2.imwrite(str(tmp_path / "a.png"), np.concatenate([image, alpha], axis=2))
    rgb, alpha8 = read_image_and_alpha(tmp_path / "a.png")
    # v * 255 / 65535 = v / 257 rounded half up: 128/257 = 0.498 -> 0, 129/257 = 0.502 -> 1,
    # 385/257 = 1.498 -> 1, 386/257 = 1.502 -> 2, 65407/257 = 254.5 -> 255 (exactly half: up).
    expected = [0, 0, 1, 1, 1, 2, 128, 255, 255, 255]
    assert rgb[0, :, 0].tolist() == expected and alpha8[0].tolist() == expected
    assert np.floor(values / 257 + 0.5).astype(int).tolist() == expected  # the same by float64


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    rgb = gradient(48, 64)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    decoded = read_image(tmp_path / "cmyk.jpg").astype(int)
    pillow = np.asarray(Image.open(tmp_path / "cmyk.jpg").convert("RGB")).astype(int)
    assert decoded.shape == (48, 64, 3)
    assert np.abs(decoded - pillow).mean() < 2  # same file, two decoders
    assert np.abs(decoded - rgb.astype(int)).mean() < 6  # and close to what was saved (CMYK + JPEG loss)


@pytest.mark.parametrize("orientation, check", [
    (6, lambda img: img.shape == (40, 20, 3) and img[2, 10, 0] > 200 and img[-3, 10, 2] > 200),  # 90 deg CW
    (3, lambda img: img.shape == (20, 40, 3) and img[10, 2, 2] > 200 and img[10, -3, 0] > 200),  # 180 deg
    (1, lambda img: img.shape == (20, 40, 3) and img[10, 2, 0] > 200),
])
def test_exif_orientation_is_honoured(tmp_path, orientation, check):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(two_colour()).save(tmp_path / "photo.jpg", exif=exif.tobytes(), quality=95)
    assert check(read_image(tmp_path / "photo.jpg"))


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp", ".tiff", ".ppm"])
def test_one_pixel_images(tmp_path, ext):
    write_image(tmp_path / f"one{ext}", np.array([[[10, 200, 30]]], np.uint8))
    pixel = read_image(tmp_path / f"one{ext}")
    assert pixel.shape == (1, 1, 3)
    assert np.abs(pixel.astype(int) - [10, 200, 30]).max() <= (12 if ext in (".jpg", ".webp") else 0)


@pytest.mark.parametrize("ext, params", [
    (".jpg", []), (".png", []), (".bmp", []), (".tiff", []), (".ppm", []), (".pgm", []),
    (".webp", []), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),  # lossy VP8 and lossless VP8L
])
def test_header_sizes_match_decoded_sizes(ext, params):
    image = gradient(37, 53)
    if ext == ".pgm":
        image = image[:, :, 0]
    ok, encoded = cv2.imencode(ext, image, params)
    data = encoded.tobytes()
    kind = imageio.sniff_format(data)
    assert kind is not None
    assert header_size(data, kind) == (37, 53)


def test_webp_extended_header(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 1
    Image.fromarray(gradient(21, 34)).save(tmp_path / "x.webp", exif=exif.tobytes())
    data = (tmp_path / "x.webp").read_bytes()
    assert data[12:16] == b"VP8X" and header_size(data, "WebP") == (21, 34)
    assert read_image(tmp_path / "x.webp").shape == (21, 34, 3)


# ---------------------------------------------------------------------------------------------
# Bad files: one-line EdgematteError naming the file
# ---------------------------------------------------------------------------------------------


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(EdgematteError, match="empty file") as excinfo:
        read_image(path)
    assert_names_file(excinfo, path)


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("these are not pixels\n")
    with pytest.raises(EdgematteError, match="not a supported image") as excinfo:
        read_image(path)
    assert_names_file(excinfo, path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(EdgematteError, match="no such image file") as excinfo:
        read_image(tmp_path / "missing.png")
    assert_names_file(excinfo, tmp_path / "missing.png")
    with pytest.raises(EdgematteError, match="is a folder, not a regular image file") as excinfo:
        read_image(tmp_path)
    assert_names_file(excinfo, tmp_path)


# A FIFO used to block read_image forever and /dev/zero to be read until memory ran out: a child process with a
# timeout keeps a regression from hanging the tests.
READ_IN_A_CHILD = """
import sys
from edgematte.core.errors import EdgematteError
from edgematte.runtime.imageio import read_image
try:
    read_image(sys.argv[1])
except EdgematteError as error:
    print(error)
"""


def test_fifos_and_devices_are_refused_without_being_read(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    for path, kind in ((tmp_path / "pipe.png", "a FIFO"), ("/dev/zero", "a character device")):
        done = subprocess.run([sys.executable, "-c", READ_IN_A_CHILD, str(path)], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"{path}: is {kind}, not a regular image file\n"


def test_files_above_the_size_limit_are_refused_before_reading(tmp_path):
    path = tmp_path / "big.png"
    write_image(path, gradient(8, 8))
    with pytest.raises(EdgematteError, match=rf"big.png: {path.stat().st_size} bytes, more than the"):
        imageio.read_file_bytes(path, 10)
    assert imageio.read_file_bytes(path) == path.read_bytes()  # MAX_FILE_BYTES: 1 GiB


def test_a_newline_in_a_name_is_escaped_in_every_message(tmp_path):
    for name, content, reason in (("two\nlines.png", b"text", "not a supported image"),
                                  ("gone\nmissing.png", None, "no such image file"),
                                  ("empty\r.png", b"", "empty file")):
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(EdgematteError) as excinfo:
            read_image(path)
        message = str(excinfo.value)
        assert message.startswith(f"{tmp_path}/{name.encode('unicode_escape').decode()}: {reason}"), message
        assert "\n" not in message and "\r" not in message


def test_libpng_warnings_are_kept_off_stderr(tmp_path, capfd):
    data = cv2.imencode(".png", cv2.cvtColor(gradient(6, 9), cv2.COLOR_RGB2BGR))[1].tobytes()
    body = b"icc\x00\x00" + zlib.compress(b"not an ICC profile" * 4)  # libpng: "iCCP: too short"
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    (tmp_path / "p.png").write_bytes(data[:33] + chunk + data[33:])
    cv2.imdecode(np.frombuffer((tmp_path / "p.png").read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
    assert "libpng warning: iCCP: too short" in capfd.readouterr().err  # what OpenCV alone lets through
    assert np.array_equal(read_image(tmp_path / "p.png"), gradient(6, 9))
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("keep", [0.95, 0.5, 0.1])
def test_truncated_jpeg(tmp_path, keep):
    ok, encoded = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8))
    data = encoded.tobytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(EdgematteError, match="truncated JPEG \\(no end-of-image marker") as excinfo:
        read_image(path)
    assert_names_file(excinfo, path)


def test_truncated_png_and_garbage_after_magic(tmp_path):
    ok, encoded = cv2.imencode(".png", gradient(64, 80))
    data = encoded.tobytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(EdgematteError, match="corrupt or truncated PNG") as excinfo:
        read_image(tmp_path / "cut.png")
    assert_names_file(excinfo, tmp_path / "cut.png")
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    with pytest.raises(EdgematteError, match="corrupt JPEG header"):
        read_image(tmp_path / "junk.jpg")
    (tmp_path / "short.png").write_bytes(data[:10])
    with pytest.raises(EdgematteError, match="corrupt PNG header"):
        read_image(tmp_path / "short.png")


def png_header_only(width, height):
    """A PNG signature and a valid IHDR chunk claiming width x height, with no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_huge_images_are_refused_before_decoding(tmp_path, monkeypatch):
    def no_decoding(*args):
        raise AssertionError("the decoder must not run")

    monkeypatch.setattr(imageio.cv2, "imdecode", no_decoding)
    path = tmp_path / "huge.png"
    path.write_bytes(png_header_only(20000, 20000))
    with pytest.raises(EdgematteError, match=r"20000x20000 \(400.0 megapixels\), above the limit of 100 megapixels") \
            as excinfo:
        read_image(path)
    assert_names_file(excinfo, path)

    ok, encoded = cv2.imencode(".jpg", gradient(16, 16))
    data = bytearray(encoded.tobytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 20000, 20000)
    (tmp_path / "huge.jpg").write_bytes(bytes(data))
    with pytest.raises(EdgematteError, match="20000x20000"):
        read_image(tmp_path / "huge.jpg")


def bmp_header_only(width, height):
    return b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24,
                                                                     0, 0, 0, 0, 0, 0)


def tiff_header_only(width, height):
    entries = [(256, 4, 1, width), (257, 4, 1, height)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0\0\0\0"
    return b"II*\x00" + struct.pack("<I", 8) + ifd


@pytest.mark.parametrize("name, data", [
    ("huge.bmp", bmp_header_only(20000, -20000)),  # top-down BMP: negative height
    ("huge.tiff", tiff_header_only(20000, 20000)),
    ("huge.ppm", b"P6\n# a comment\n20000 20000\n255\n" + b"\0" * 64),
])
def test_huge_headers_of_other_formats(tmp_path, monkeypatch, name, data):
    monkeypatch.setattr(imageio.cv2, "imdecode", lambda *a: pytest.fail("the decoder must not run"))
    (tmp_path / name).write_bytes(data)
    with pytest.raises(EdgematteError, match="20000x20000"):
        read_image(tmp_path / name)


def test_pixel_limit_is_adjustable(tmp_path):
    write_image(tmp_path / "a.png", gradient(20, 20))
    with pytest.raises(EdgematteError, match="above the limit of 0.0001 megapixels"):
        read_image(tmp_path / "a.png", max_pixels=100)
    assert read_image(tmp_path / "a.png", max_pixels=400).shape == (20, 20, 3)


def test_float_samples_are_refused(tmp_path):
    cv2.imwrite(str(tmp_path / "f.tiff"), np.zeros((4, 4, 3), np.float32))
    with pytest.raises(EdgematteError, match="unsupported float32 samples") as excinfo:
        read_image(tmp_path / "f.tiff")
    assert_names_file(excinfo, tmp_path / "f.tiff")


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def test_write_image_is_atomic_and_keeps_colours(tmp_path):
    target = tmp_path / "out" / "result.jpg"
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[:] = (250, 10, 10)
    write_image(target, rgb)
    assert np.abs(read_image(target).astype(int) - rgb).max() <= 3  # RGB, not BGR, on disk
    before = target.read_bytes()
    with pytest.raises(EdgematteError, match="cannot write .xyz files") as excinfo:
        write_image(tmp_path / "out" / "result.xyz", rgb)
    assert_names_file(excinfo, tmp_path / "out" / "result.xyz")
    with pytest.raises(EdgematteError, match="no file extension"):
        write_image(tmp_path / "out" / "result", rgb)
    assert target.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["result.jpg"]  # no temporary left
    write_image(target, np.zeros((8, 8), np.uint8))  # replaces the old file
    assert read_image(target).shape == (8, 8, 3)
    with pytest.raises(ValueError):
        write_image(tmp_path / "x.png", np.zeros((4, 4), np.float32))
