"""Golden vectors (edgematte/runtime/vectors.py): complete, and consistent with what each profile states.

The checks recompute each step from its stated formula with independent code (float64 numpy, OpenCV,
fractions), so a wrong vector cannot pass by agreeing with itself. The Java side's parity with these
vectors is tested in android_demo/core (host-test.sh); the host-JVM end-to-end in test_android_core.py.
"""

import json
from fractions import Fraction

import cv2
import numpy as np
import pytest

from edgematte.core.errors import EdgematteError
from edgematte.runtime.backends.base import Backend, TensorSpec
from edgematte.runtime.profiles import ANDROID_CONSTANTS
from edgematte.runtime.vectors import (
    BACKGROUND_COLOUR,
    DEFAULT_INPUT_HW,
    NORMALIZATION_VARIANTS,
    STAND_IN_QUANT,
    GoldenImage,
    golden_images,
    main,
    read_golden_vectors,
    write_golden_vectors,
)

COMMON_ARRAYS = {"input_rgb", "pre_resized", "pre_normalized", "pre_tensor_nchw", "pre_tensor_nhwc", "quant_input",
                 "model_output", "quant_output", "quant_output_dequantized", "post_output", "post_alpha", "alpha8",
                 "background_blur", "composite_colour", "composite_blur", "composite_image"}
PROFILE_ARRAYS = {"android": {"pre_padded", "post_cropped", "post_resized"},
                  "paddleseg-android": {"post_stretched", "post_scaled"}}


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    out = tmp_path_factory.mktemp("vectors") / "golden"
    write_golden_vectors(out)
    return read_golden_vectors(out)


IMAGES = ("portrait", "landscape", "tiny", "rgba")
VARIANTS = ("unit", "imagenet", "raw")


def _android_cases(vectors):
    """The ``android`` cases with the default normalization (no transforms: mean = std = 0.5)."""
    return [c for c in vectors.cases if c["profile"] == "android" and "variant" not in c]


def test_every_case_holds_every_array_with_its_recorded_shape(vectors):
    ids = [c["id"] for c in vectors.cases]
    # The cases of the default normalization first, as before the variants existed, then the variants.
    assert ids == [f"{p}/{i}" for p in ("android", "paddleseg-android") for i in IMAGES] + [
        f"{p}@{v}/{i}" for p in ("android", "paddleseg-android") for v in VARIANTS for i in IMAGES]
    for case in vectors.cases:
        expected = (COMMON_ARRAYS | PROFILE_ARRAYS[case["profile"]]
                    | ({"input_alpha"} if case["image"] == "rgba" else set()))
        assert set(case["arrays"]) == expected, case["id"]
        h, w = case["original_hw"]
        for name in case["arrays"]:
            vectors.array(case, name)  # raises when the file disagrees with index.json
        assert vectors.array(case, "post_alpha").shape == (h, w)
        assert vectors.array(case, "composite_image").shape == (h, w, 3)
        assert case["model_hw"] == list(DEFAULT_INPUT_HW)
    index = vectors.index
    assert index["schema"] == "edgematte.golden/1" and index["generator"]["side"] == "python"
    assert index["model"]["kind"] == "stand-in" and index["model"]["input_hw"] == [96, 128]
    assert index["background_colour"] == list(BACKGROUND_COLOUR)


def test_recorded_constants_are_the_android_constants(vectors):
    recorded = vectors.index["profiles"]["android"]["constants"]
    assert recorded == json.loads(json.dumps(ANDROID_CONSTANTS.as_dict()))
    assert recorded["normalize_offset"] == 127.5 and recorded["fraction_bits"] == 11


def test_images_cover_portrait_odd_landscape_tiny_and_real_alpha():
    images = {image.name: image for image in golden_images()}
    assert images["portrait"].rgb.shape == (256, 256, 3)
    h, w = images["landscape"].rgb.shape[:2]
    assert w > h and (h % 2 or w % 2)
    assert images["tiny"].rgb.shape == (7, 5, 3)
    rgba = images["rgba"]
    assert rgba.alpha.shape == rgba.rgb.shape[:2]
    assert rgba.alpha.min() == 0 and rgba.alpha.max() == 255 and ((rgba.alpha > 0) & (rgba.alpha < 255)).mean() > 0.1
    # Colour under fully transparent pixels is kept (unpremultiplied), so ignoring alpha is really tested.
    assert rgba.rgb[rgba.alpha == 0].max() > 50


def _letterbox_reference(src_hw, box_hw):
    scale = min(Fraction(box_hw[0], src_hw[0]), Fraction(box_hw[1], src_hw[1]))
    half_up = [int(Fraction(side) * scale + Fraction(1, 2)) for side in src_hw]
    return [min(box, max(1, side)) for side, box in zip(half_up, box_hw)]


def test_android_preprocessing_follows_its_stated_arithmetic(vectors):
    for case in _android_cases(vectors):
        rgb = vectors.array(case, "input_rgb")
        resized = vectors.array(case, "pre_resized")
        rh, rw = case["resized_hw"]
        assert [rh, rw] == _letterbox_reference(case["original_hw"], case["model_hw"]), case["id"]
        assert resized.shape == (rh, rw, 3) and resized.dtype == np.uint8
        # A resize, not garbage: within a few gray levels of OpenCV's area/linear resize on average.
        interpolation = cv2.INTER_AREA if rh < rgb.shape[0] else cv2.INTER_LINEAR
        reference = cv2.resize(rgb, (rw, rh), interpolation=interpolation).astype(np.float64)
        assert np.abs(resized - reference).mean() < 2.0, case["id"]

        normalized = vectors.array(case, "pre_normalized")
        exact = (resized.astype(np.float64) - 127.5) / 127.5
        assert np.abs(normalized - exact).max() <= 6e-8  # float32 nearest: half an ulp of values <= 1
        padded = vectors.array(case, "pre_padded")
        assert np.array_equal(padded[:rh, :rw], normalized)
        outside = np.ones(padded.shape[:2], bool)
        outside[:rh, :rw] = False
        assert (padded[outside] == 0.0).all()
        assert np.array_equal(vectors.array(case, "pre_tensor_nchw"), padded.transpose(2, 0, 1)[None])
        assert np.array_equal(vectors.array(case, "pre_tensor_nhwc"), padded[None])


def test_android_postprocessing_follows_its_stated_arithmetic(vectors):
    for case in _android_cases(vectors):
        rh, rw = case["resized_hw"]
        h, w = case["original_hw"]
        output = vectors.array(case, "model_output")
        cropped = vectors.array(case, "post_cropped")
        assert np.array_equal(cropped, output[0, 0, :rh, :rw])
        resized = vectors.array(case, "post_resized")
        # Same half-pixel bilinear as OpenCV's INTER_LINEAR, weights rounded to 1/2048: nearly equal.
        reference = cv2.resize(cropped, (w, h), interpolation=cv2.INTER_LINEAR)
        assert np.abs(resized - reference).max() < 2e-3, case["id"]
        alpha = vectors.array(case, "post_alpha")
        assert np.array_equal(alpha, np.clip(resized, 0, 1))
        assert output.min() < 0 or output.max() > 1  # the stand-in's range makes the clamp matter somewhere

        alpha8 = vectors.array(case, "alpha8").astype(np.int64)
        reference8 = np.floor(alpha.astype(np.float64) * 255 + 0.5)
        assert np.abs(alpha8 - reference8).max() <= 1 and (alpha8 != reference8).mean() < 1e-3


def _blend_reference(rgb, alpha, background):
    a = np.clip(alpha.astype(np.float64), 0, 1)[:, :, None]
    return np.floor(rgb * a + background.astype(np.float64) * (1 - a) + 0.5)


def test_composites_follow_the_blend_formula(vectors):
    for case in vectors.cases:
        rgb = vectors.array(case, "input_rgb").astype(np.float64)
        alpha = vectors.array(case, "post_alpha")
        colour = np.broadcast_to(np.array(BACKGROUND_COLOUR, np.float64), rgb.shape)
        blur = vectors.array(case, "background_blur")
        for name, background in (("composite_colour", colour), ("composite_blur", blur)):
            diff = np.abs(vectors.array(case, name) - _blend_reference(rgb, alpha, background))
            assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (case["id"], name)
        # The blur keeps the average colour and removes detail.
        assert np.abs(blur.mean(axis=(0, 1)) - rgb.mean(axis=(0, 1))).max() < 8, case["id"]
        if min(rgb.shape[:2]) >= 64:
            detail = np.abs(np.diff(rgb, axis=1)).mean()
            assert np.abs(np.diff(blur.astype(np.float64), axis=1)).mean() < detail / 3, case["id"]
        composite_image = vectors.array(case, "composite_image")
        opaque = alpha >= 1
        assert np.array_equal(composite_image[opaque], rgb[opaque].astype(np.uint8))


def test_quantization_vectors_follow_litert_rules(vectors):
    assert vectors.index["quant"]["input"]["source"] == "stand-in"
    in_scale = STAND_IN_QUANT["input"]["scale"]
    out_scale, out_zero = STAND_IN_QUANT["output"]["scale"], STAND_IN_QUANT["output"]["zero_point"]
    for case in vectors.cases:
        tensor = vectors.array(case, "pre_tensor_nchw")
        quant_input = vectors.array(case, "quant_input")
        assert quant_input.dtype == np.int8
        # 1/128 is a power of two: tensor * 128 is exact, so float64 gives the same ties-to-even result.
        assert np.array_equal(quant_input, np.clip(np.rint(tensor.astype(np.float64) / in_scale), -128, 127))
        quant_output = vectors.array(case, "quant_output").astype(np.int64)
        output = vectors.array(case, "model_output").astype(np.float64)
        reference = np.clip(np.rint(output / out_scale) + out_zero, -128, 127)
        assert np.abs(quant_output - reference).max() == 0
        assert quant_output.min() == -128 or quant_output.max() == 127 or case["image"] == "tiny"
        dequantized = vectors.array(case, "quant_output_dequantized")
        assert np.array_equal(dequantized, ((quant_output - out_zero) * out_scale).astype(np.float32))


def test_paddleseg_android_vectors_stretch_and_scale(vectors):
    for case in (c for c in vectors.cases if c["profile"] == "paddleseg-android"):
        output = vectors.array(case, "model_output")[0, 0].astype(np.float64)
        stretched = vectors.array(case, "post_stretched")
        if output.min() == output.max():  # the stand-in saturates on raw 0..255 input (the tiny image)
            assert case["variant"] == "raw" and not stretched.any()  # the demo: 0 / (0 + 1e-11) -> 0
            continue
        reference = np.floor((output - output.min()) / (output.max() - output.min()) * 255)
        assert np.abs(stretched - reference).max() <= 1
        assert stretched.min() == 0 and stretched.max() >= 254
        scaled = vectors.array(case, "post_scaled")
        assert np.array_equal(vectors.array(case, "post_alpha"), scaled.astype(np.float32) / np.float32(255))
        assert case["resized_hw"] == case["model_hw"]  # aspect ignored, no padding


def test_vectors_are_deterministic(vectors, tmp_path):
    again = read_golden_vectors(write_golden_vectors(tmp_path / "again"))
    assert again.index == vectors.index
    for case in vectors.cases:
        for name in case["arrays"]:
            assert np.array_equal(again.array(case["id"], name), vectors.array(case, name)), (case["id"], name)


class _Int8Backend(Backend):
    """A fake int8-I/O model: alpha = mean of the dequantized channels, in NHWC like onnx2tf's TFLite."""

    name = "fake-int8"

    def __init__(self):
        super().__init__("fake.tflite")
        self.seen = []

    @property
    def inputs(self):
        return [TensorSpec("img", (1, 32, 48, 3), "int8", (0.0078125, 0))]

    @property
    def outputs(self):
        return [TensorSpec("alpha", (1, 32, 48, 1), "int8", (1 / 256, -128))]

    def run(self, x):
        self.seen.append(x.dtype)
        mean = (x.astype(np.float32) * 0.0078125).mean(axis=3, keepdims=True)
        return np.clip(np.rint(mean * 256) - 128, -128, 127).astype(np.int8)


def test_an_int8_backend_drives_sizes_layout_and_quantization(tmp_path):
    backend = _Int8Backend()
    tiny = [image for image in golden_images() if image.name in ("tiny", "landscape")]
    written = read_golden_vectors(write_golden_vectors(tmp_path / "int8", profiles=("android",), model=backend,
                                                       images=tiny))
    assert backend.seen == [np.dtype(np.int8)] * 2
    index = written.index
    assert index["model"]["kind"] == "backend" and index["model"]["input_hw"] == [32, 48]
    assert index["quant"]["input"] == {"dtype": "int8", "scale": 0.0078125, "zero_point": 0, "source": "model"}
    for case in written.cases:
        assert case["layout"] == "nhwc" and case["model_hw"] == [32, 48]
        output = written.array(case, "model_output")
        assert output.dtype == np.float32 and output.shape == (1, 32, 48, 1)
        assert np.all(np.abs(output * 256 - np.rint(output * 256)) < 1e-4)  # dequantized steps of 1/256


def test_bad_requests_fail_with_one_line_errors(tmp_path):
    image = GoldenImage("x", "test", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="unique"):
        write_golden_vectors(tmp_path / "dup", images=[image, image])
    with pytest.raises(EdgematteError, match="unknown profile"):
        write_golden_vectors(tmp_path / "bad", profiles=("nope",), images=[image])
    with pytest.raises(EdgematteError, match="not a model file"):
        write_golden_vectors(tmp_path / "bad", model=tmp_path / "model.bin", images=[image])
    with pytest.raises(EdgematteError, match="no golden-vector index"):
        read_golden_vectors(tmp_path)
    (tmp_path / "index.json").write_text('{"schema": "other/1"}')
    with pytest.raises(EdgematteError, match="unknown schema"):
        read_golden_vectors(tmp_path)
    assert not (tmp_path / "bad").exists() and not (tmp_path / "dup").exists()


def test_module_entry_point_writes_vectors(tmp_path, capsys):
    assert main([str(tmp_path / "cli"), "--profile", "android", "--input-size", "40", "56"]) == 0
    assert "wrote 16 golden-vector cases" in capsys.readouterr().out  # 4 images x (default + 3 variants)
    written = read_golden_vectors(tmp_path / "cli")
    assert [c["model_hw"] for c in written.cases] == [[40, 56]] * 16
    assert main([str(tmp_path / "cli1"), "--profile", "android", "--no-variants", "--input-size", "40", "56"]) == 0
    assert "wrote 4 golden-vector cases" in capsys.readouterr().out
    assert main([str(tmp_path / "cli2"), "--profile", "nope"]) == 1
    assert "unknown profile" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Normalization variants: the Android profiles with a model's Normalize
# ---------------------------------------------------------------------------------------------


def _variant_cases(vectors, variant):
    return [c for c in vectors.cases if c.get("variant") == variant]


def test_default_cases_are_unchanged_by_the_variants(vectors, tmp_path):
    """Writing without variants gives the same default cases, array for array (the vectors Java knew before)."""
    alone = read_golden_vectors(write_golden_vectors(tmp_path / "alone", variants=()))
    assert alone.cases == vectors.cases[:8] and all("transforms" not in c for c in alone.cases)
    for case in alone.cases:
        for name in case["arrays"]:
            assert np.array_equal(alone.array(case, name), vectors.array(case["id"], name)), (case["id"], name)
    for name in ("android", "paddleseg-android"):
        assert alone.index["profiles"][name] == vectors.index["profiles"][name]
        assert vectors.index["profiles"][name]["normalize"]["mean"] == [0.5] * 3


def test_variant_cases_record_their_transforms_and_keep_the_geometry(vectors):
    for variant in VARIANTS:
        cases = _variant_cases(vectors, variant)
        assert [c["id"] for c in cases] == [f"{p}@{variant}/{i}" for p in ("android", "paddleseg-android")
                                            for i in IMAGES]
        for case in cases:
            assert case["transforms"] == NORMALIZATION_VARIANTS[variant]
            default = vectors.case(f"{case['profile']}/{case['image']}")
            for key in ("original_hw", "model_hw", "resized_hw", "crop_hw"):
                assert case[key] == default[key], (case["id"], key)
            # The raw variant's ResizeByShort(512) is ignored: the app's geometry, the same pixels.
            assert np.array_equal(vectors.array(case, "pre_resized"), vectors.array(default, "pre_resized"))
            padded = vectors.array(case, "pre_padded") if case["profile"] == "android" else None
            if padded is not None:
                rh, rw = case["resized_hw"]
                outside = np.ones(padded.shape[:2], bool)
                outside[:rh, :rw] = False
                assert (padded[outside] == 0.0).all() and not np.signbit(padded[outside]).any()
                assert np.array_equal(padded[:rh, :rw], vectors.array(case, "pre_normalized"))


def test_unit_variant_is_rgb_over_255_exactly(vectors):
    """RVM's mean 0 / std 1: android's exact rule (v - 0f) / 255f and the demo's (v / 255f - 0) / 1 are v / 255f."""
    for case in _variant_cases(vectors, "unit"):
        resized = vectors.array(case, "pre_resized")
        expected = resized.astype(np.float32) / np.float32(255)
        assert np.array_equal(vectors.array(case, "pre_normalized"), expected), case["id"]
        # Correctly rounded: within half a float32 ulp of the true quotient.
        truth = resized.astype(np.float64) / 255
        assert np.abs(expected - truth).max() <= np.spacing(np.float32(1)) / 4
        rule = "exact" if case["profile"] == "android" else "paddleseg"
        description = vectors.index["profiles"][f"{case['profile']}@unit"]["normalize"]
        assert description["rule"] == rule and description["mean"] == [0.0] * 3 and description["std"] == [1.0] * 3
    assert vectors.index["profiles"]["android@unit"]["normalize"]["expression"] == "(v - 0.0f) / 255.0f in float32"


def test_imagenet_variant_follows_the_two_rounding_rule(vectors):
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    for case in _variant_cases(vectors, "imagenet"):
        resized = vectors.array(case, "pre_resized")
        normalized = vectors.array(case, "pre_normalized")
        # A few pixels with Python floats: float32(v) / 255 in float32, then each float64 step stored as float32.
        for y, x in ((0, 0), (resized.shape[0] // 2, resized.shape[1] // 3), (-1, -1)):
            for c in range(3):
                v = int(resized[y, x, c])
                step = np.float32(float(np.float32(v) / np.float32(255)) - mean[c])
                assert normalized[y, x, c] == np.float32(float(step) / std[c]), (case["id"], y, x, c)
        # Three float32 roundings: v / 255 and x - mean (each <= 3e-8, grown by 1 / std <= 4.5) and the result
        # (<= 1.2e-7 below 2.7): within 4e-7 of the true value.
        truth = (resized.astype(np.float64) / 255 - np.array(mean)) / np.array(std)
        assert np.abs(normalized - truth).max() < 4e-7
        description = vectors.index["profiles"][f"{case['profile']}@imagenet"]["normalize"]
        assert description["rule"] == "paddleseg" and description["mean"] == list(mean)
        assert description["std"] == list(std)


def test_raw_variant_feeds_pixel_values(vectors):
    for case in _variant_cases(vectors, "raw"):
        resized = vectors.array(case, "pre_resized")
        assert np.array_equal(vectors.array(case, "pre_normalized"), resized.astype(np.float32))
        description = vectors.index["profiles"][f"{case['profile']}@raw"]["normalize"]
        assert description["rule"] == "none" and description["mean"] is None


# ---------------------------------------------------------------------------------------------
# Models with several inputs: trimap and recurrent-state vectors (android_demo/core: TrimapTest,
# FeedPlanParityTest). Checked here with hand-written transposes and thresholds, not model_io/trimap.
# ---------------------------------------------------------------------------------------------


def _snap_reference(values):
    """Nearest of 0/128/255 for uint8 values, the lower level on a tie (64 -> 0; 192 is nearer 255)."""
    v = values.astype(np.int64)
    return np.where(v <= 64, 0.0, np.where(v <= 191, 128.0, 255.0)).astype(np.float32)


def test_trimap_vectors_snap_the_profiles_resize_and_pad_with_background(vectors):
    trimaps = vectors.index["trimaps"]
    assert trimaps["levels"] == [0.0, 128.0, 255.0]
    cases = {c["id"]: c for c in trimaps["cases"]}
    assert sorted(cases) == sorted(f"trimap/{p}/{t}" for p in ("android", "paddleseg-android")
                                   for t in ("columns", "banded", "tiny", "channels"))
    for case in cases.values():
        tensor = vectors.array(case, "trimap_tensor")
        resized = vectors.array(case, "pre_resized")
        rh, rw = resized.shape
        assert tensor.shape == (1, 1, *DEFAULT_INPUT_HW) and tensor.dtype == np.float32
        if case["profile"] == "android":
            assert [rh, rw] == _letterbox_reference(case["original_hw"], DEFAULT_INPUT_HW), case["id"]
        else:
            assert (rh, rw) == DEFAULT_INPUT_HW  # stretched, no padding
        assert np.array_equal(tensor[0, 0, :rh, :rw], _snap_reference(resized)), case["id"]
        outside = np.ones(DEFAULT_INPUT_HW, bool)
        outside[:rh, :rw] = False
        assert (tensor[0, 0][outside] == 0.0).all(), case["id"]
    for profile in ("android", "paddleseg-android"):
        # 0/255 columns halved: 127.5 everywhere, unknown after snapping.
        columns = cases[f"trimap/{profile}/columns"]
        assert (vectors.array(columns, "trimap_tensor") == 128.0).all()
        # The resizes made values between the levels, so snapping changed something.
        banded = vectors.array(cases[f"trimap/{profile}/banded"], "pre_resized")
        assert (~np.isin(banded, (0, 128, 255))).sum() > 50
        # Only the first channel of a 3-channel trimap counts.
        channels = cases[f"trimap/{profile}/channels"]
        assert vectors.array(channels, "input_trimap").shape == (107, 160, 3)
        assert np.array_equal(vectors.array(channels, "trimap_tensor"),
                              vectors.array(cases[f"trimap/{profile}/banded"], "trimap_tensor"))


def test_synthetic_trimap_vectors_are_the_stated_ellipses(vectors):
    synthetic = vectors.index["trimaps"]["synthetic"]
    assert [c["hw"] for c in synthetic] == [[96, 128], [33, 20], [7, 5], [1, 1]]
    for case in synthetic:
        h, w = case["hw"]
        trimap = vectors.array(case, "synthetic_trimap")
        assert trimap.shape == (1, 1, h, w)
        for y in range(h):
            for x in range(w):
                def inside(ry, rx):
                    dy = (y - (h - 1) / 2) / max(ry * h, 1.0)
                    dx = (x - (w - 1) / 2) / max(rx * w, 1.0)
                    return dy * dy + dx * dx <= 1.0
                expected = 255.0 if inside(0.30, 0.22) else 128.0 if inside(0.42, 0.34) else 0.0
                assert trimap[0, 0, y, x] == expected, (case["id"], y, x)
    big = vectors.array(synthetic[0], "synthetic_trimap")[0, 0]
    assert set(np.unique(big)) == {0.0, 128.0, 255.0} and np.array_equal(big, big[::-1, ::-1])


def _to_nchw(array, layout):
    return array.transpose(0, 3, 1, 2) if layout == "nhwc" else array


def _from_nchw(array, layout):
    return array.transpose(0, 2, 3, 1) if layout == "nhwc" else array


def test_recurrent_vectors_feed_each_state_from_the_previous_steps_output(vectors):
    recurrent = vectors.index["recurrent"]
    roles = {r["name"]: r for r in recurrent["inputs"] + recurrent["outputs"]}
    fed_orders = {c["id"]: c["fed"] for c in recurrent["cases"]}
    assert fed_orders == {"recurrent/nchw": ["src", "r1i", "r2i"], "recurrent/nhwc": ["r2i", "src", "r1i"],
                          "recurrent/positional": ["src", "r1i", "r2i"]}  # the constant is never fed
    for case in recurrent["cases"]:
        in_layouts = case["input_layouts"] or [case["layout"]] * len(case["fed"])
        out_layouts = case["output_layouts"] or [case["layout"]] * len(case["fetched"])
        output_of = {roles[name]["pair"]: j for j, name in enumerate(case["fetched"]) if roles[name]["role"] == "state"}
        assert output_of == {"r1i": case["fetched"].index("r1o"), "r2i": case["fetched"].index("r2o")}
        changed = 0
        for k in range(case["steps"]):
            for i, name in enumerate(case["fed"]):
                fed = vectors.array(case, f"step{k}_feed{i}")
                if name == "src":
                    expected = vectors.array(case, f"step{k}_src")
                elif k == 0:
                    expected = np.zeros(roles[name]["shape"], np.float32)
                else:
                    j = output_of[name]
                    expected = _to_nchw(vectors.array(case, f"step{k - 1}_output{j}"), out_layouts[j])
                    changed += int(expected.any())
                assert np.array_equal(fed, _from_nchw(expected, in_layouts[i])), (case["id"], k, name)
            # The alpha is the stated formula of what was fed (float64 here, float32 in the vectors).
            nchw = {name: _to_nchw(vectors.array(case, f"step{k}_feed{i}"), in_layouts[i]).astype(np.float64)
                    for i, name in enumerate(case["fed"])}
            src, r1, r2 = nchw["src"], nchw["r1i"], nchw["r2i"]
            pha = (src[0, 0] * 0.25 + src[0, 1] * 0.5 + np.kron(r1[0, 0], np.ones((2, 2))) * 0.125
                   + np.kron(r2[0, 1], np.ones((4, 4))) * 0.0625)
            j = case["fetched"].index("pha")
            assert np.abs(_to_nchw(vectors.array(case, f"step{k}_output{j}"), out_layouts[j])[0, 0] - pha).max() < 1e-6
        assert changed == 4  # two states, two steps after the first, never zero
    # Output r1o of the onnx2tf-like artefact stays channels-first while its input r1i is channels-last.
    nhwc = next(c for c in recurrent["cases"] if c["id"] == "recurrent/nhwc")
    assert vectors.array(nhwc, "step1_output0").shape == (1, 4, 4, 6)
    assert vectors.array(nhwc, "step1_feed2").shape == (1, 4, 6, 4)


def test_sequence_vectors_run_each_profile_over_a_clip_with_states_fed_back(vectors):
    """Each fixed-step profile case (variants too) in front of the recurrent stand-in, both artefact layouts: the
    first frame from zero states, every later frame fed the previous frame's paired state outputs; the image feed
    is the profile's tensor of the frame and the alpha the profile's postprocess of the stand-in's pha."""
    from edgematte.runtime.profiles import profile_for_model

    sequences = vectors.index["sequences"]
    keys = ["android", "paddleseg-android"] + [f"{p}@{v}" for p in ("android", "paddleseg-android") for v in VARIANTS]
    assert sorted(c["id"] for c in sequences["cases"]) == sorted(f"sequence/{k}/{a}" for k in keys
                                                                  for a in ("nchw", "nhwc"))
    roles = {r["name"]: r for r in sequences["inputs"] + sequences["outputs"]}
    for case in sequences["cases"]:
        profile = profile_for_model(case["profile"], case.get("transforms"))
        fed = [name.split(":")[0].lower() for name in case["inputs"]]  # "r2i:0", "R1I" -> the roles' names
        fetched = [name.split(":")[0].lower() for name in case["outputs"]]
        in_layouts = case["input_layouts"] or [case["layout"]] * 3
        out_layouts = case["output_layouts"] or [case["layout"]] * 4
        assert case["image_layout"] == in_layouts[fed.index("src")] and case["frames"] == 3
        frames = [vectors.array(case, f"frame{k}_rgb") for k in range(3)]
        assert all(f.shape == (30, 41, 3) for f in frames) and not np.array_equal(frames[0], frames[1])
        for k, rgb in enumerate(frames):
            feeds = {name: _to_nchw(vectors.array(case, f"frame{k}_feed{i}"), in_layouts[i])
                     for i, name in enumerate(fed)}
            tensor, state = profile.preprocess(rgb, (8, 12), layout="nchw")
            assert np.array_equal(feeds["src"], tensor), (case["id"], k)
            for name in ("r1i", "r2i"):
                j = fetched.index(roles[name]["pair"])
                previous = (np.zeros(roles[name]["shape"], np.float32) if k == 0
                            else _to_nchw(vectors.array(case, f"frame{k - 1}_output{j}"), out_layouts[j]))
                assert np.array_equal(feeds[name], previous), (case["id"], k, name)
            if k > 0:
                assert feeds["r1i"].any() and feeds["r2i"].any()
            src, r1, r2 = (feeds[n].astype(np.float64) for n in ("src", "r1i", "r2i"))
            pha = (src[0, 0] * 0.25 + src[0, 1] * 0.5 + np.kron(r1[0, 0], np.ones((2, 2))) * 0.125
                   + np.kron(r2[0, 1], np.ones((4, 4))) * 0.0625)
            j = fetched.index("pha")
            output = _to_nchw(vectors.array(case, f"frame{k}_output{j}"), out_layouts[j])
            assert (np.abs(output[0, 0] - pha) <= 1e-6 * np.maximum(1, np.abs(pha))).all()  # raw: pixels to 255
            alpha = vectors.array(case, f"frame{k}_alpha")
            assert alpha.shape == (30, 41) and alpha.dtype == np.float32 and 0 <= alpha.min() <= alpha.max() <= 1
            assert np.array_equal(alpha, profile.postprocess(output, state))
            assert np.array_equal(vectors.array(case, f"frame{k}_alpha8"),
                                  np.floor(alpha * np.float32(255) + np.float32(0.5)).astype(np.uint8))
    # The carried states matter: the default android clip's third frame differs from that frame from zero states,
    # and its alpha is mostly strictly inside (0, 1) (the clamp at 0 reached too).
    case = next(c for c in sequences["cases"] if c["id"] == "sequence/android/nchw")
    android = profile_for_model("android")
    third = vectors.array(case, "frame2_alpha")
    src = vectors.array(case, "frame2_feed0")
    alone = (src[:, :1] * np.float32(0.25) + src[:, 1:2] * np.float32(0.5))  # zero states: the image terms alone
    _, state = android.preprocess(vectors.array(case, "frame2_rgb"), (8, 12))
    assert np.abs(android.postprocess(alone, state) - third).max() > 0.01
    assert 0.5 < ((third > 0) & (third < 1)).mean() < 1 and (third == 0).any()
