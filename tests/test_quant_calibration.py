"""edgematte.quant.calibration: folders (good, bad, empty), the built-in set, the disjoint split, tensors."""

import hashlib
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edgematte.core.errors import EdgematteError
from edgematte.quant.calibration import (
    BUILTIN_EVALUATION_PHOTOS,
    MIN_CALIBRATION_IMAGES,
    MIN_IMAGE_SIDE,
    builtin_calibration_images,
    calibration_tensors,
    check_calibration_tensors,
    load_calibration_array,
    load_calibration_images,
    split_calibration_evaluation,
)
from edgematte.runtime.profiles import get_profile
from edgematte.zoo.registry import get_model_spec

pytest.importorskip("skimage", reason="the built-in calibration set needs scikit-image (edgematte[convert])")

# A fixed-size model input for the profile checks.
INPUT_HW = (64, 96)
# The deploy.yaml transforms the fastdeploy/paddleseg profiles need (the zoo holds each model's).
PPMATTINGV2 = get_model_spec("ppmattingv2").transforms
EXTENSIONS = (".jpg", ".png", ".bmp", ".webp", ".tiff")


def pixels_digest(rgb):
    return hashlib.sha256(repr(rgb.shape).encode() + np.ascontiguousarray(rgb).tobytes()).hexdigest()


def photo(seed, height=48, width=40):
    """A smooth random RGB uint8 image (compresses like a photo)."""
    rng = np.random.RandomState(seed)
    small = rng.randint(0, 256, (4, 4, 3)).astype(np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def write(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(path.suffix, rgb[:, :, ::-1].copy())
    assert ok
    path.write_bytes(data.tobytes())


def make_photo_folder(root, count, sizes=None):
    """``count`` distinct photos, alternating formats, half of them in a sub-folder."""
    for i in range(count):
        height, width = sizes[i] if sizes else (48 + 4 * i, 40 + 8 * i)
        sub = root / "more" if i % 2 else root
        write(sub / f"photo{i:02d}{EXTENSIONS[i % len(EXTENSIONS)]}", photo(i, height, width))
    return root


# ----------------------------------------------------------------------------- folders
def test_folder_counts_used_and_skipped_files(tmp_path, capsys):
    folder = make_photo_folder(tmp_path / "calib", 9)
    (folder / "notes.txt").write_text("not an image")
    (folder / "empty.jpg").write_bytes(b"")
    write(folder / "cut.png", photo(99))
    (folder / "cut.png").write_bytes((folder / "cut.png").read_bytes()[:60])  # truncated PNG
    write(folder / "tiny.png", photo(98, 8, 8))
    (folder / "more" / "copy.jpg").write_bytes((folder / "photo00.jpg").read_bytes())  # same pixels as photo00.jpg

    images, report = load_calibration_images(folder)

    assert report.used_count == len(images) == 9
    assert all(im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3 for im in images)
    reasons = dict(report.skipped)
    assert set(reasons) == {"notes.txt", "empty.jpg", "cut.png", "tiny.png", "more/copy.jpg"}
    assert "not an image" in reasons["notes.txt"]
    assert "empty" in reasons["empty.jpg"]
    assert "tiny.png" not in report.used and f"smaller than {MIN_IMAGE_SIDE}" in reasons["tiny.png"]
    assert reasons["more/copy.jpg"] == "same pixels as photo00.jpg"
    assert "corrupt" in reasons["cut.png"] or "truncated" in reasons["cut.png"]
    # every skip is warned about, by name
    err = capsys.readouterr().err
    assert err.count("edgematte: warning: calibration: skipping") == 5
    assert "notes.txt" in err
    assert report.as_dict()["skipped_count"] == 5 and "9 images used" in report.summary()


# A FIFO among the photos used to block the run forever: a child process with a timeout keeps a regression from
# hanging the tests.
LOAD_IN_A_CHILD = """
import sys
from edgematte.quant.calibration import load_calibration_images
images, report = load_calibration_images(sys.argv[1])
print(len(images), report.skipped)
"""


def test_fifos_and_special_files_in_the_folder_are_skipped_without_blocking(tmp_path):
    folder = make_photo_folder(tmp_path / "calib", MIN_CALIBRATION_IMAGES)
    os.mkfifo(folder / "pipe.jpg")
    (folder / "more" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    done = subprocess.run([sys.executable, "-c", LOAD_IN_A_CHILD, str(folder)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (f"{MIN_CALIBRATION_IMAGES} [('pipe.jpg', 'is a FIFO, not a regular image file'), "
                           "('more/gone.png', 'no such image file')]\n")
    assert done.stderr.splitlines() == [
        f"edgematte: warning: calibration: skipping {folder}/pipe.jpg: is a FIFO, not a regular image file",
        f"edgematte: warning: calibration: skipping {folder}/more/gone.png: no such image file"]


def test_skips_are_labelled_by_the_folders_purpose_and_names_stay_on_one_line(tmp_path, capsys):
    folder = make_photo_folder(tmp_path / "data", 2)
    (folder / "two\nlines.txt").write_text("not an image")
    images, report = load_calibration_images(folder, minimum=1, purpose="evaluation", option="--data")
    assert len(images) == 2 and report.skipped == [("two\nlines.txt", "not an image (no JPEG, PNG, WebP, BMP, "
                                                                        "TIFF or PNM header)")]
    assert capsys.readouterr().err == (f"edgematte: warning: evaluation: skipping {folder}/two\\nlines.txt: not an "
                                       "image (no JPEG, PNG, WebP, BMP, TIFF or PNM header)\n")
    assert "\n" not in report.summary() and "two\\nlines.txt" in report.summary()
    with pytest.raises(EdgematteError, match=r"nowhere: evaluation folder not found$"):
        load_calibration_images(tmp_path / "nowhere", purpose="evaluation", option="--data")
    with pytest.raises(EdgematteError, match=r"two\\nlines.txt: --data needs a folder of images, this is a file$"):
        load_calibration_images(folder / "two\nlines.txt", purpose="evaluation", option="--data")


def test_images_of_any_size_and_format_are_read_as_rgb(tmp_path):
    folder = tmp_path / "calib"
    sizes = [(30 + 37 * i, 300 - 25 * i) for i in range(MIN_CALIBRATION_IMAGES)]
    make_photo_folder(folder, MIN_CALIBRATION_IMAGES, sizes)
    images, report = load_calibration_images(folder)
    assert sorted(im.shape[:2] for im in images) == sorted(sizes)
    # RGB order, not OpenCV's BGR: the PNG (lossless) comes back exactly
    png = images[report.used.index("more/photo01.png")]
    assert np.array_equal(png, photo(1, *sizes[1]))


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgematteError,
                       match=r"found 0 usable images in .*empty, need at least 8; the folder has no files"):
        load_calibration_images(tmp_path / "empty")


def test_folder_of_non_images_is_a_clear_error(tmp_path, capsys):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(3):
        (folder / f"readme{i}.md").write_text("# text")
    with pytest.raises(EdgematteError, match=r"found 0 usable images in .*docs, need at least 8; 3 files skipped, "
                                             r"e\.g\. readme0\.md: not an image"):
        load_calibration_images(folder)
    assert capsys.readouterr().err.count("skipping") == 3


def test_too_few_images_says_how_many_are_needed(tmp_path):
    folder = make_photo_folder(tmp_path / "few", 3)
    with pytest.raises(EdgematteError, match=r"found 3 usable images in .*few, need at least 8$"):
        load_calibration_images(folder)


def test_missing_folder_and_file_instead_of_folder(tmp_path):
    with pytest.raises(EdgematteError, match="calibration folder not found"):
        load_calibration_images(tmp_path / "nowhere")
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(EdgematteError, match="needs a folder"):
        load_calibration_images(tmp_path / "a.jpg")


def test_folder_split_is_disjoint_deterministic_and_limited(tmp_path):
    folder = make_photo_folder(tmp_path / "calib", 20)
    split = split_calibration_evaluation(folder, calib_count=10, eval_count=3, seed=5)
    assert len(split.evaluation) == 3 and len(split.calibration) == 10
    assert not set(split.calibration_names) & set(split.evaluation_names)
    assert not {pixels_digest(im) for im in split.calibration} & {pixels_digest(im) for im in split.evaluation}
    assert split.report.not_read == 20 - 13
    again = split_calibration_evaluation(folder, calib_count=10, eval_count=3, seed=5)
    assert again.calibration_names == split.calibration_names and again.evaluation_names == split.evaluation_names
    other = split_calibration_evaluation(folder, calib_count=10, eval_count=3, seed=6)
    assert other.evaluation_names != split.evaluation_names  # the seed picks the photos, not the file order


def test_folder_split_needs_calibration_plus_evaluation_images(tmp_path):
    folder = make_photo_folder(tmp_path / "calib", 10)
    with pytest.raises(EdgematteError, match=r"found 10 usable images in .*calib, need at least 12 \(8 to calibrate "
                                             r"with and 4 held out to evaluate on\)"):
        split_calibration_evaluation(folder, eval_count=4)


def test_calibration_count_below_minimum_is_refused():
    with pytest.raises(EdgematteError, match=f"--calib-count 3: need at least {MIN_CALIBRATION_IMAGES}"):
        split_calibration_evaluation(calib_count=3)


# ----------------------------------------------------------------------------- built-in set
def test_builtin_set_is_deterministic_and_prefix_stable():
    first = builtin_calibration_images(14, seed=0)
    again = builtin_calibration_images(14, seed=0)
    shorter = builtin_calibration_images(9, seed=0)
    assert [pixels_digest(a) for a in first] == [pixels_digest(b) for b in again]
    assert [pixels_digest(a) for a in first[:9]] == [pixels_digest(b) for b in shorter]
    assert len({pixels_digest(a) for a in first}) == 14  # every augmentation is a new image
    assert all(a.dtype == np.uint8 and a.shape[2] == 3 and min(a.shape[:2]) >= MIN_IMAGE_SIDE for a in first)
    other_seed = builtin_calibration_images(14, seed=1)
    # originals (the first 6) are the same photos; augmentations follow the seed
    assert [pixels_digest(a) for a in first[:6]] == [pixels_digest(b) for b in other_seed[:6]]
    assert not {pixels_digest(a) for a in first[6:]} & {pixels_digest(b) for b in other_seed[6:]}


def test_builtin_split_holds_out_whole_photos():
    split = split_calibration_evaluation(calib_count=16, eval_count=6)
    assert len(split.calibration) == 16 and len(split.evaluation) == 6
    held_out = set(BUILTIN_EVALUATION_PHOTOS)
    assert {name.split("~")[0] for name in split.evaluation_names} == held_out
    assert not {name.split("~")[0] for name in split.calibration_names} & held_out
    assert not {pixels_digest(im) for im in split.calibration} & {pixels_digest(im) for im in split.evaluation}
    # the held-out originals are evaluated as they are
    assert split.evaluation_names[:2] == list(BUILTIN_EVALUATION_PHOTOS)


# ----------------------------------------------------------------------------- tensors
def test_profile_letterboxes_images_of_any_size(tmp_path):
    images = [photo(i, h, w) for i, (h, w) in enumerate([(50, 50), (200, 90), (31, 400), (64, 96)])]
    tensors = calibration_tensors(images, get_profile("fastdeploy", PPMATTINGV2).preprocess, INPUT_HW)
    assert tensors.shape == (4, 1, 3) + INPUT_HW and tensors.dtype == np.float32
    # the tensors are what the profile itself produces, image by image
    for rgb, tensor in zip(images, tensors):
        assert np.array_equal(tensor, get_profile("fastdeploy", PPMATTINGV2).preprocess(rgb, INPUT_HW, "nchw")[0])


def test_profile_that_cannot_fit_an_image_names_it():
    images = [photo(0, 64, 96), photo(1, 100, 100)]
    with pytest.raises(EdgematteError, match="calibration image b.jpg: profile 'paddleseg'"):
        calibration_tensors(images, get_profile("paddleseg", PPMATTINGV2).preprocess, INPUT_HW,
                            names=["a.jpg", "b.jpg"])


def test_tensor_checks():
    shape = [1, 3, 8, 8]
    good = np.zeros((5, 1, 3, 8, 8), dtype=np.float32)
    assert len(check_calibration_tensors(good, shape)) == 5
    assert len(check_calibration_tensors([np.zeros((1, 3, 8, 12), np.float64)], [-1, 3, -1, -1])) == 1
    with pytest.raises(EdgematteError,
                       match=r"tensor 0 of 5 has shape \[1, 3, 8, 9\]; the model input is \[1, 3, 8, 8\]"):
        check_calibration_tensors(np.zeros((5, 1, 3, 8, 9), np.float32), shape)
    with pytest.raises(EdgematteError, match="uint8; expected float"):
        check_calibration_tensors(np.zeros((2, 1, 3, 8, 8), np.uint8), shape)
    bad = good.copy()
    bad[3, 0, 0, 0, 0] = np.nan
    with pytest.raises(EdgematteError, match="tensor 3 of 5 has NaN"):
        check_calibration_tensors(bad, shape)
    with pytest.raises(EdgematteError, match="no calibration tensors"):
        check_calibration_tensors([], shape)


def test_calibration_array_file_of_the_wrong_shape_is_an_error(tmp_path):
    shape = [1, 3, 8, 8]
    np.save(tmp_path / "good.npy", np.zeros((4, 1, 3, 8, 8), np.float32))
    np.save(tmp_path / "hwc.npy", np.zeros((4, 8, 8, 3), np.float32))
    np.save(tmp_path / "size.npy", np.zeros((4, 1, 3, 16, 16), np.float32))
    np.savez(tmp_path / "many.npz", a=np.zeros(3))
    assert len(load_calibration_array(tmp_path / "good.npy", shape)) == 4
    with pytest.raises(EdgematteError, match=r"hwc.npy: array has shape \[4, 8, 8, 3\]; expected \[K, 1, 3, 8, 8\]"):
        load_calibration_array(tmp_path / "hwc.npy", shape)
    with pytest.raises(EdgematteError, match=r"size.npy: tensor 0 of 4 has shape \[1, 3, 16, 16\]"):
        load_calibration_array(tmp_path / "size.npy", shape)
    with pytest.raises(EdgematteError, match="npz archive"):
        load_calibration_array(tmp_path / "many.npz", shape)
