"""matte_inputs on real files with the tiny conversion: folders, bad inputs, outputs and their numbers."""

import struct
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from edgematte.core.errors import EdgematteError
from edgematte.core.samples import sample_photo
from edgematte.runtime.batch import (
    NAMED_COLOURS,
    FrameRenderer,
    estimate_foreground,
    matte_inputs,
    parse_background,
    parse_save,
)
from edgematte.runtime.imageio import read_image, read_image_and_alpha, write_image
from edgematte.runtime.matter import Matter


@pytest.fixture(scope="module")
def matter(tiny_conversion):
    return Matter.from_manifest(tiny_conversion, threads=2)


def expected_alpha8(matter, path):
    """The 8-bit alpha computed directly: read, Matter, the profile's 8-bit rounding."""
    return matter.profile.alpha_to_uint8(matter(read_image(path)))


def png_header_only(width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def make_photo_folder(root: Path):
    """Good photos in nested folders, the awkward-but-valid kinds, and broken files."""
    portrait = sample_photo("astronaut")[::2, ::2]  # 256 x 256
    scene = sample_photo("coffee")[::2, ::2]        # 200 x 300
    write_image(root / "a.jpg", portrait)
    write_image(root / "sub" / "deeper" / "b.png", scene)
    write_image(root / "sub" / "gray.png", cv2.cvtColor(scene, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(root / "sub" / "deep16.png"), cv2.cvtColor(scene, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    transparency = np.zeros(scene.shape[:2], np.uint8)
    transparency[:, : scene.shape[1] // 2] = 255
    write_image(root / "sub" / "rgba.png", np.dstack((scene, transparency)))
    write_image(root / "one.png", np.full((1, 1, 3), 200, np.uint8))
    Image.fromarray(scene).convert("CMYK").save(root / "cmyk.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 300 wide x 200 high, shown rotated 90 degrees: 200 wide x 300 high
    Image.fromarray(scene).save(root / "rotated.jpg", exif=exif.tobytes(), quality=95)
    (root / "notes.txt").write_text("not a photo\n")
    (root / "empty.jpg").write_bytes(b"")
    whole = (root / "a.jpg").read_bytes()
    (root / "sub" / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "huge.png").write_bytes(png_header_only(20000, 20000))
    return scene, transparency


def test_folder_keeps_relative_paths_handles_odd_images_and_reports_bad_files(tmp_path, matter):
    photos, out = tmp_path / "photos", tmp_path / "out"
    scene, transparency = make_photo_folder(photos)
    write_image(tmp_path / "plain.png", scene)  # the RGBA photo's colours without alpha, for comparison

    report = matte_inputs([str(photos)], out, matter)

    bad = {"notes.txt": "neither a supported image", "empty.jpg": "empty file", "sub/truncated.jpg": "truncated",
           "huge.png": "megapixels"}
    failures = {str(Path(i).relative_to(photos)): reason for i, reason in report.failures}
    assert set(failures) == set(bad)
    for name, words in bad.items():
        assert words in failures[name] and str(photos / name) in failures[name] and "\n" not in failures[name]
    assert (report.done, report.failed, report.exit_code) == (8, 4, 1)
    assert report.frames == 8 and report.frames_per_second > 0

    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a_alpha.png", "cmyk_alpha.png", "one_alpha.png", "rotated_alpha.png", "sub/deep16_alpha.png",
                       "sub/deeper/b_alpha.png", "sub/gray_alpha.png", "sub/rgba_alpha.png"]
    # What was written is what Matter computes directly, for the plain and the awkward files alike.
    for name in ("a", "cmyk", "one", "sub/deeper/b"):
        source = next(photos.glob(name + ".*"))
        assert np.array_equal(read_image_and_alpha(out / f"{name}_alpha.png")[0][:, :, 0],
                              expected_alpha8(matter, source)), name
    plain = expected_alpha8(matter, tmp_path / "plain.png")
    # A 16-bit PNG of v * 257 reads back as exactly v, so its alpha is the 8-bit photo's.
    assert np.array_equal(cv2.imread(str(out / "sub/deep16_alpha.png"), cv2.IMREAD_UNCHANGED), plain)
    # Gray is matted as the three-channel replica of itself.
    gray = cv2.cvtColor(scene, cv2.COLOR_RGB2GRAY)
    assert np.array_equal(cv2.imread(str(out / "sub/gray_alpha.png"), cv2.IMREAD_UNCHANGED),
                          matter.profile.alpha_to_uint8(matter(np.repeat(gray[:, :, None], 3, axis=2))))
    # RGBA: the model's alpha times the file's: kept where opaque, zero where transparent.
    rgba_alpha = cv2.imread(str(out / "sub/rgba_alpha.png"), cv2.IMREAD_UNCHANGED)
    opaque = transparency == 255
    assert np.array_equal(rgba_alpha[opaque], plain[opaque]) and rgba_alpha[~opaque].max() == 0
    # EXIF orientation 6 is applied: the alpha has the shown (rotated) size.
    assert cv2.imread(str(out / "rotated_alpha.png"), cv2.IMREAD_UNCHANGED).shape == (300, 200)
    assert cv2.imread(str(out / "one_alpha.png"), cv2.IMREAD_UNCHANGED).shape == (1, 1)


def test_composite_and_rgba_outputs_have_the_photo_size_and_the_profile_numbers(tmp_path, matter):
    photo = sample_photo("chelsea")  # 300 x 451
    write_image(tmp_path / "cat.png", photo)
    write_image(tmp_path / "cat.jpg", photo)
    backdrop = sample_photo("rocket")  # 427 x 640: resized to each photo
    write_image(tmp_path / "backdrop.png", backdrop)

    report = matte_inputs([str(tmp_path / "cat.png"), str(tmp_path / "cat.jpg")], tmp_path / "out", matter,
                          background=str(tmp_path / "backdrop.png"), save="composite,alpha,rgba")
    # Both inputs want OUT/cat_*: the second is refused instead of overwriting the first.
    assert report.done == 1 and "would overwrite those of" in report.failures[0][1]
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["cat_alpha.png", "cat_composite.png", "cat_rgba.png"]

    alpha = matter(photo)
    composite = read_image(tmp_path / "out" / "cat_composite.png")
    assert composite.shape == photo.shape
    assert np.array_equal(composite, matter.profile.composite(photo, alpha, backdrop))
    rgb, rgba_alpha = read_image_and_alpha(tmp_path / "out" / "cat_rgba.png")
    assert np.array_equal(rgb, photo) and np.array_equal(rgba_alpha, matter.profile.alpha_to_uint8(alpha))

    # A JPEG input gets a JPEG composite; a colour background and "blur" work the same way.
    for background, expected_colour in (("0,255,0", (0, 255, 0)), ("blur", "blur")):
        out = tmp_path / f"out_{background}"
        report = matte_inputs([str(tmp_path / "cat.jpg")], out, matter, background=background)
        assert report.exit_code == 0
        assert sorted(p.name for p in out.iterdir()) == ["cat_alpha.png", "cat_composite.jpg"]
        jpeg = read_image(out / "cat_composite.jpg").astype(int)
        exact = matter.profile.composite(read_image(tmp_path / "cat.jpg"), matter(read_image(tmp_path / "cat.jpg")),
                                         expected_colour).astype(int)
        assert jpeg.shape == photo.shape and np.abs(jpeg - exact).mean() < 3.0  # JPEG's loss only


def test_overlapped_and_sequential_runs_write_the_same_files(tmp_path, matter):
    for name in ("astronaut", "coffee", "chelsea"):
        write_image(tmp_path / "in" / f"{name}.png", sample_photo(name))
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    results = {}
    for overlapped in (False, True):
        out = tmp_path / f"out_{overlapped}"
        report = matte_inputs([str(tmp_path / "in")], out, matter, background="white", overlapped=overlapped)
        assert (report.done, report.failed) == (3, 1) and "broken.png" in report.failures[0][0]
        assert [item.input for item in report.items] == sorted(item.input for item in report.items)
        results[overlapped] = {p.name: p.read_bytes() for p in out.iterdir()}
    assert len(results[True]) == 6 and results[True] == results[False]


def test_output_folder_inside_the_input_is_not_matted_again(tmp_path, matter):
    write_image(tmp_path / "a.png", sample_photo("chelsea")[::4, ::4])
    assert matte_inputs([str(tmp_path)], tmp_path / "mattes", matter).done == 1
    report = matte_inputs([str(tmp_path)], tmp_path / "mattes", matter)  # a.png only, not mattes/a_alpha.png
    assert [Path(i.input).name for i in report.items] == ["a.png"]


def test_missing_input_is_reported_and_option_errors_name_the_option(tmp_path, matter):
    report = matte_inputs([str(tmp_path / "nope.jpg")], tmp_path / "out", matter)
    assert report.exit_code == 1 and "no such file or folder" in report.failures[0][1]
    with pytest.raises(EdgematteError, match="--save composite needs --background"):
        matte_inputs([str(tmp_path)], tmp_path / "out", matter, save=("alpha", "composite"))
    with pytest.raises(EdgematteError, match="--save alpha,mask: choose"):
        parse_save("alpha,mask")
    assert parse_save("composite, ALPHA") == ("alpha", "composite")


def test_parse_background(tmp_path):
    assert parse_background("blur") == "blur"
    assert parse_background("#00ff00") == (0, 255, 0) == parse_background("#0F0") == parse_background("0, 255, 0")
    assert parse_background("White") == NAMED_COLOURS["white"] == (255, 255, 255)
    write_image(tmp_path / "bg.png", np.full((5, 7, 3), 9, np.uint8))
    image = parse_background(str(tmp_path / "bg.png"))
    assert image.shape == (5, 7, 3) and image.dtype == np.uint8
    for text, words in (("#12345", "3 or 6 hex digits"), ("0,255,256", "0..255"), ("no-such.png", "not 'blur'")):
        with pytest.raises(EdgematteError, match=f"--background .*{words}"):
            parse_background(text)
    (tmp_path / "bad.png").write_bytes(b"text")
    with pytest.raises(EdgematteError, match="--background: .*bad.png"):
        parse_background(str(tmp_path / "bad.png"))
    for blank in ("", "  "):  # was taken as "no background" and silently ignored
        with pytest.raises(EdgematteError, match=rf"^--background {blank!r}: empty; give an image file"):
            parse_background(blank)
    with pytest.raises(EdgematteError, match="^--background: /dev/zero: is a character device, not a regular image"):
        parse_background("/dev/zero")


def test_the_output_folder_is_made_or_refused_before_any_input_is_read(tmp_path, capsys):
    from .test_hostile_runtime_inputs import write_tiny_model

    tiny = Matter.from_manifest(write_tiny_model(tmp_path / "conversion"))
    write_image(tmp_path / "in" / "a.png", sample_photo("chelsea")[::8, ::8])
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(EdgematteError) as caught:
        matte_inputs([str(tmp_path / "in")], tmp_path / "blocker" / "out", tiny)
    assert str(caught.value) == f"{tmp_path / 'blocker'}: is a file, not a folder, so the output folder cannot be " \
                                "written in it"
    assert capsys.readouterr().err == ""  # one error, not one warning per input
    report = matte_inputs([str(tmp_path / "in")], tmp_path / "new" / "out", tiny)
    assert report.exit_code == 0 and (tmp_path / "new" / "out" / "a_alpha.png").is_file()
    empty = matte_inputs([], tmp_path / "empty", tiny)
    assert empty.exit_code == 1 and (tmp_path / "empty").is_dir()


def test_fg_estimate_without_pymatting_is_a_one_line_error(tmp_path, matter, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymatting", None)  # import pymatting -> ImportError
    with pytest.raises(EdgematteError, match="--fg-estimate needs the pymatting package"):
        matte_inputs([str(tmp_path)], tmp_path / "out", matter, save="rgba", fg_estimate=True)
    assert not (tmp_path / "out").exists()


def test_foreground_estimation_recovers_the_foreground_colour(tmp_path, matter):
    pytest.importorskip("pymatting", reason="pymatting is not installed here (optional, for --fg-estimate)")
    # A red subject blended over blue with a soft ramp: the estimate must take the blue out.
    h, w = 64, 96
    alpha = np.tile(np.clip((np.arange(w) - 30) / 36.0, 0, 1), (h, 1)).astype(np.float32)
    red, blue = np.array([220, 30, 30], np.float64), np.array([20, 40, 230], np.float64)
    photo = np.rint(alpha[:, :, None] * red + (1 - alpha[:, :, None]) * blue).astype(np.uint8)
    foreground = estimate_foreground(photo, alpha)
    soft = (alpha > 0.2) & (alpha < 0.8)
    assert np.abs(foreground[soft].astype(float) - red).mean() < 2  # measured 0.06; the raw photo is off by 68
    assert np.abs(photo[soft].astype(float) - red).mean() > 60
    rendered = FrameRenderer(matter.profile, ("rgba",), fg_estimate=True)(photo, alpha)
    assert np.array_equal(rendered["rgba"][:, :, :3], foreground)
    write_image(tmp_path / "in.png", photo)
    report = matte_inputs([str(tmp_path / "in.png")], tmp_path / "out", matter, save="rgba", fg_estimate=True)
    assert report.exit_code == 0 and (tmp_path / "out" / "in_rgba.png").is_file()
