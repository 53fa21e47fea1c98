"""Profiles pinned against arithmetic written out here, independently of edgematte.runtime.profiles."""

import json
import math
import subprocess
import sys
from fractions import Fraction

import cv2
import numpy as np
import pytest

from edgematte.core.errors import EdgematteError
from edgematte.runtime import profiles as P
from edgematte.runtime.profiles.transforms import parse_transforms
from edgematte.zoo.registry import get_model_spec

# The models' own deploy.yaml transforms: the zoo registry is their one source (the runtime holds none).
PPMATTINGV2 = get_model_spec("ppmattingv2").transforms
HUMANMATTING = get_model_spec("humanmatting").transforms
# Other models' deploy.yaml transforms, as written there (RVM's; an ImageNet-normalized model; none at all).
RVM = [{"to_rgb": True, "type": "LoadImages"}, {"mean": [0, 0, 0], "std": [1, 1, 1], "type": "Normalize"}]
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGENET = [{"type": "LoadImages"}, {"type": "ResizeByShort", "short_size": 512},
            {"type": "Normalize", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}]
NO_NORMALIZE = [{"type": "LoadImages"}, {"type": "LimitShort", "max_short": 256}]


def smooth_image(h, w, seed=0):
    """uint8 HxWx3 with gentle gradients plus mild noise (resampling errors stay small on it)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([255 * x / max(w - 1, 1), 255 * y / max(h - 1, 1), 127 + 100 * np.sin(x / 37 + y / 53)], -1)
    return np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)


def noise_image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# Independent references
# ---------------------------------------------------------------------------------------------


def reference_bilinear(image, dst_hw, box=1):
    """float64 box-mean (k x k) then half-pixel-centre bilinear; float coordinates throughout."""
    src = image.astype(np.float64)
    if src.ndim == 2:
        src = src[:, :, None]
    H, W = src.shape[:2]
    if box > 1:
        hr, wr = H // box, W // box
        src = src[: hr * box, : wr * box].reshape(hr, box, wr, box, -1).mean(axis=(1, 3))

    def axis(src_len, dst_len, n):
        x = (np.arange(dst_len) + 0.5) * src_len / (box * dst_len) - 0.5
        x = np.clip(x, 0, n - 1)
        i0 = np.floor(x).astype(int)
        i1 = np.minimum(i0 + 1, n - 1)
        return i0, i1, x - i0

    y0, y1, fy = axis(H, dst_hw[0], src.shape[0])
    x0, x1, fx = axis(W, dst_hw[1], src.shape[1])
    rows = src[:, x0] * (1 - fx)[None, :, None] + src[:, x1] * fx[None, :, None]
    return rows[y0] * (1 - fy)[:, None, None] + rows[y1] * fy[:, None, None]


def round_half_up(x):
    return np.floor(x + 0.5)


def paddleseg_normalize(rgb, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
    """PaddleSeg's functional.normalize, as it is written there."""
    im = rgb.astype(np.float32, copy=False) / 255.0
    im -= np.array(mean)[np.newaxis, np.newaxis, :]
    im /= np.array(std)[np.newaxis, np.newaxis, :]
    return im


# ---------------------------------------------------------------------------------------------
# paddleseg
# ---------------------------------------------------------------------------------------------


def test_paddleseg_limit_short_and_int_mult_872x1000_two_step_undo():
    profile = P.get_profile("paddleseg", PPMATTINGV2)
    rgb = smooth_image(872, 1000)
    steps = profile.preprocess_steps(rgb)
    # LimitShort: 872 > 512 -> int(round(1000 * 512 / 872)) = int(round(587.16)) = 587; IntMult: 587 - 587 % 32 = 576.
    assert steps["after_LimitShort"].shape == (512, 587, 3)
    assert steps["after_ResizeToIntMult"].shape == (512, 576, 3)
    expected = cv2.resize(cv2.resize(rgb, (587, 512), interpolation=cv2.INTER_LINEAR), (576, 512),
                          interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(steps["resized"], expected)
    assert np.array_equal(steps["normalized"], paddleseg_normalize(expected))  # bit for bit
    assert steps["tensor"].shape == (1, 3, 512, 576) and steps["tensor"].dtype == np.float32
    assert np.array_equal(steps["tensor"][0], paddleseg_normalize(expected).transpose(2, 0, 1))
    state = steps["state"]
    assert state.resize_log == (("LimitShort", (872, 1000)), ("ResizeToIntMult", (512, 587)))

    output = np.random.default_rng(1).random((1, 1, 512, 576)).astype(np.float32)
    post = profile.postprocess_steps(output, state)
    back1 = cv2.resize(output[0, 0], (587, 512), interpolation=cv2.INTER_LINEAR)
    back2 = cv2.resize(back1, (1000, 872), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(post["undo_ResizeToIntMult"], back1)
    assert np.array_equal(post["alpha"], back2)
    one_step = cv2.resize(output[0, 0], (1000, 872), interpolation=cv2.INTER_LINEAR)
    assert np.abs(one_step - back2).max() > 1e-3  # the two-step path is not the one-step one


def test_paddleseg_odd_size_1001x667():
    profile = P.get_profile("paddleseg", PPMATTINGV2)
    steps = profile.preprocess_steps(smooth_image(1001, 667))
    # short side 667 -> 512: 1001 * 512 / 667 = 768.39 -> 768; 768 and 512 are multiples of 32.
    assert steps["after_LimitShort"].shape[:2] == (768, 512)
    assert steps["resized"].shape[:2] == (768, 512)
    alpha = profile.postprocess(np.zeros((1, 1, 768, 512), np.float32), steps["state"])
    assert alpha.shape == (1001, 667) and alpha.dtype == np.float32


def test_paddleseg_small_image_is_not_upscaled_but_cut_to_multiples():
    steps = P.get_profile("paddleseg", PPMATTINGV2).preprocess_steps(smooth_image(300, 199))
    assert steps["after_LimitShort"].shape[:2] == (300, 199)  # short side below 512: untouched
    assert steps["resized"].shape[:2] == (288, 192)  # 300 - 300 % 32, 199 - 199 % 32
    assert steps["state"].resize_log[0] == ("LimitShort", (300, 199))  # recorded even without resizing


def test_paddleseg_size_helpers_use_python_round_half_to_even():
    # 5 * (2 / 4) = 2.5 rounds to 2 (Python's round), 3 * 0.5 = 1.5 rounds to 2.
    assert P.resize_short_size((4, 5), 2) == (2, 2)
    assert P.resize_short_size((3, 7), 1) == (1, 2)  # 7 / 3 = 2.33 -> 2
    assert P.limit_short_size((872, 1000), max_short=512) == (512, 587)
    assert P.limit_short_size((400, 1000), max_short=512) == (400, 1000)
    assert P.limit_short_size((100, 150), min_short=200) == (200, 300)
    assert P.int_mult_size((512, 587), 32) == (512, 576)
    assert P.int_mult_size((2048, 2349), 128) == (2048, 2304)


def test_paddleseg_humanmatting_transforms():
    profile = P.get_profile("paddleseg", HUMANMATTING)
    steps = profile.preprocess_steps(smooth_image(436, 500))
    # ResizeByShort 2048 always resizes: 500 * 2048 / 436 = 2348.6 -> 2349; IntMult 128 -> 2048 x 2304.
    assert steps["after_ResizeByShort"].shape[:2] == (2048, 2349)
    assert steps["resized"].shape[:2] == (2048, 2304)


def test_paddleseg_fixed_model_size_must_match():
    profile = P.get_profile("paddleseg", PPMATTINGV2)
    with pytest.raises(EdgematteError, match=r"512x576.*fixed at 512x512"):
        profile.preprocess(smooth_image(872, 1000), (512, 512))
    tensor, state = profile.preprocess(smooth_image(700, 512), (672, 512))  # 700 -> 672 (IntMult)
    assert tensor.shape == (1, 3, 672, 512)
    tensor, _ = profile.preprocess(smooth_image(700, 512), (-1, -1))  # dynamic model
    assert tensor.shape == (1, 3, 672, 512)


def test_paddleseg_rejects_too_small_images_and_bad_transforms():
    with pytest.raises(EdgematteError, match="too small for ResizeToIntMult"):
        P.get_profile("paddleseg", PPMATTINGV2).preprocess(np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(EdgematteError, match="'Padding' is not supported"):
        P.get_profile("paddleseg", [{"type": "Padding"}])
    with pytest.raises(EdgematteError, match="max_short must be a positive integer"):
        P.get_profile("paddleseg", [{"type": "LimitShort", "max_short": "512"}])
    with pytest.raises(EdgematteError, match="to_rgb: false"):
        P.get_profile("paddleseg", [{"type": "LoadImages", "to_rgb": False}])
    profile = P.get_profile("paddleseg", PPMATTINGV2)  # the zoo's list starts with LoadImages
    assert [t["type"] for t in profile.transforms] == ["LimitShort", "ResizeToIntMult", "Normalize"]


def test_paddleseg_alpha_8bit_truncates():
    alpha = np.array([[0.0, 0.999, 1.0, 0.5]], np.float32)
    assert P.get_profile("paddleseg", PPMATTINGV2).alpha_to_uint8(alpha).tolist() == [[0, 254, 255, 127]]
    assert P.get_profile("android").alpha_to_uint8(alpha).tolist() == [[0, 255, 255, 128]]


def test_normalization_rules_against_their_reference_expressions():
    v = np.arange(256, dtype=np.float32)
    paddleseg = P.normalization_table("paddleseg")
    assert np.array_equal(paddleseg[:, 0], paddleseg_normalize(v[None, :, None].repeat(3, 2))[0, :, 0])
    # Java demo: (float)((v / 255f - 0.5) / 0.5) with the subtraction and division in double.
    java_demo = ((v / np.float32(255)).astype(np.float64) - 0.5) / 0.5
    assert np.array_equal(paddleseg[:, 0], java_demo.astype(np.float32))
    # FastDeploy: float32(v * a + b) rounded once.
    a, b = np.float32(1 / 255 / 0.5), np.float32(-0.5 / 0.5)
    fastdeploy = (v.astype(np.float64) * float(a) + float(b)).astype(np.float32)
    assert np.array_equal(P.normalization_table("fastdeploy")[:, 1], fastdeploy)
    # "exact": every value is the float32 nearest (2v - 255) / 255.
    exact = P.normalization_table("exact")[:, 2]
    for value in range(256):
        truth = Fraction(2 * value - 255, 255)
        error = abs(Fraction(float(exact[value])) - truth)
        assert error <= Fraction(float(np.spacing(np.float32(abs(exact[value]))))) / 2, value
    # All three agree to within one float32 ulp of ~1.
    assert np.abs(paddleseg - P.normalization_table("fastdeploy")).max() <= 2 ** -23
    imagenet = P.normalization_table("paddleseg", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    assert abs(imagenet[255, 0] - (1 - 0.485) / 0.229) < 1e-6


# ---------------------------------------------------------------------------------------------
# fastdeploy
# ---------------------------------------------------------------------------------------------


def fastdeploy_expected_tensor(rgb, scale, model_hw):
    resized = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    a, b = np.float32(1 / 255 / 0.5), np.float32(-1.0)
    normalized = (resized.astype(np.float64) * float(a) + float(b)).astype(np.float32)
    padded = np.zeros((*model_hw, 3), np.float32)
    padded[: resized.shape[0], : resized.shape[1]] = normalized
    return resized, padded.transpose(2, 0, 1)[None]


@pytest.mark.parametrize("shape, scale, resized_hw", [
    ((872, 1000), 512 / 1000, (446, 512)),   # 872 * 0.512 = 446.46
    ((1001, 667), 512 / 1001, (512, 341)),   # 667 * 0.5115 = 341.16
    ((200, 300), 512 / 300, (341, 512)),     # upscale: target 512/200 = 2.56 is bounded by 512/300
])
def test_fastdeploy_fit_normalize_then_pad_with_zero(shape, scale, resized_hw):
    profile = P.get_profile("fastdeploy", PPMATTINGV2)
    rgb = smooth_image(*shape)
    steps = profile.preprocess_steps(rgb, (512, 512))
    resized, tensor = fastdeploy_expected_tensor(rgb, scale, (512, 512))
    assert resized.shape[:2] == resized_hw
    assert np.array_equal(steps["resized"], resized)
    assert np.array_equal(steps["tensor"], tensor)
    h, w = resized_hw
    assert (steps["tensor"][:, :, h:, :] == 0).all() and (steps["tensor"][:, :, :, w:] == 0).all()
    assert steps["state"].crop_hw == resized_hw


def test_fastdeploy_postprocess_crops_top_left_then_resizes_linearly():
    profile = P.get_profile("fastdeploy", PPMATTINGV2)
    _, state = profile.preprocess(smooth_image(1001, 667), (512, 512))
    output = np.random.default_rng(2).random((1, 1, 512, 512)).astype(np.float32)
    crop_w = math.floor(512 / 1001 * 667 + 0.5)  # C round of 341.16
    expected = cv2.resize(output[0, 0, :512, :crop_w], (667, 1001), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(profile.postprocess(output, state), expected)
    # NHWC in and out gives the same alpha.
    tensor_nhwc, state_nhwc = profile.preprocess(smooth_image(1001, 667), (512, 512), layout="nhwc")
    assert tensor_nhwc.shape == (1, 512, 512, 3)
    assert np.array_equal(profile.postprocess(output.transpose(0, 2, 3, 1), state_nhwc), expected)


def test_fastdeploy_second_resize_is_a_no_op_and_non_square_inputs():
    profile = P.get_profile("fastdeploy", PPMATTINGV2)
    steps = profile.preprocess_steps(smooth_image(872, 1000), (512, 512))
    assert np.array_equal(steps["after_LimitShort"], steps["after_ResizeToIntMult"])
    steps = profile.preprocess_steps(smooth_image(1000, 1000), (320, 512))
    assert steps["resized"].shape[:2] == (320, 320) and steps["tensor"].shape == (1, 3, 320, 512)


def test_fastdeploy_needs_a_fixed_size():
    with pytest.raises(EdgematteError, match="fixed input size"):
        P.get_profile("fastdeploy", PPMATTINGV2).preprocess(smooth_image(10, 10), None)
    with pytest.raises(EdgematteError, match="ResizeToIntMult needs"):
        P.get_profile("fastdeploy", [{"type": "ResizeToIntMult"}])


def test_c_round_is_half_away_from_zero():
    assert [P.c_round(x) for x in (0.5, 1.5, 2.5, 2.4999, 341.16)] == [1, 2, 3, 2, 341]


# ---------------------------------------------------------------------------------------------
# android
# ---------------------------------------------------------------------------------------------


def test_letterbox_sizes():
    assert P.letterbox_size((4000, 3000), (512, 512)) == (512, 384)
    assert P.letterbox_size((872, 1000), (512, 512)) == (446, 512)  # 872 * 0.512 = 446.46
    assert P.letterbox_size((1001, 667), (512, 512)) == (512, 341)
    assert P.letterbox_size((2, 5), (1, 3)) == (1, 3)  # 5 * 0.5 = 2.5 rounds half UP to 3
    assert P.letterbox_size((1, 10000), (512, 512)) == (1, 512)  # 0.0512 -> at least 1
    assert P.letterbox_size((1, 1), (512, 288)) == (288, 288)


@pytest.mark.parametrize("src_hw, dst_hw, box", [
    ((97, 131), (64, 87), 1),     # ~1.5x down
    ((300, 200), (512, 341), 1),  # 1.7x up
    ((1000, 700), (512, 358), 1), # 1.95x down, no box
    ((1999, 1501), (512, 384), 3),  # 3.9x down: box 3 then bilinear
    ((4000, 3000), (512, 384), 7),  # a phone photo
])
def test_fixed_point_bilinear_within_one_gray_level_of_float64(src_hw, dst_hw, box):
    image = noise_image(*src_hw)
    assert P.box_factor(src_hw, dst_hw) == box
    fixed = P.resize_uint8_fixed(image, dst_hw).astype(np.int64)
    reference = reference_bilinear(image, dst_hw, box)
    difference = np.abs(fixed - round_half_up(reference))
    assert difference.max() <= 1
    assert (difference == 0).mean() > 0.99
    assert np.abs(fixed - reference).max() <= 0.5 + 0.15  # fixed-point weights: 1/2048 steps


@pytest.mark.parametrize("src_hw, dst_hw", [
    ((64, 48), (64, 48)),      # identity
    ((128, 96), (64, 48)),     # 2x down
    ((256, 192), (64, 48)),    # 4x down (box 4)
    ((192, 144), (64, 48)),    # 3x down (box 3)
    ((32, 24), (64, 48)),      # 2x up (weights 1/4, 3/4)
    ((16, 12), (64, 48)),      # 4x up
])
def test_fixed_point_bilinear_exact_on_integer_factors(src_hw, dst_hw):
    image = noise_image(*src_hw, seed=3)
    box = max(1, src_hw[0] // dst_hw[0]) if src_hw[0] >= 2 * dst_hw[0] else 1
    expected = round_half_up(reference_bilinear(image, dst_hw, box))
    assert np.array_equal(P.resize_uint8_fixed(image, dst_hw), expected.astype(np.uint8))
    if src_hw == dst_hw:
        assert np.array_equal(P.resize_uint8_fixed(image, dst_hw), image)


def reference_fixed_taps(src_len, dst_len, box):
    """Per output index, from the geometry with exact fractions: (i0, i1, frac in 1/2048 steps).

    Output j samples the box-reduced grid (n = src_len // box cells) at half-pixel-centre position
    x = (j + 1/2) * src_len / (box * dst_len) - 1/2, clamped to [0, n - 1], rounded half up to 1/2048.
    """
    n = src_len // box
    taps = []
    for j in range(dst_len):
        x = min(max(Fraction(2 * j + 1, 2) * Fraction(src_len, box * dst_len) - Fraction(1, 2), 0), n - 1)
        pos = math.floor(x * 2048 + Fraction(1, 2))
        taps.append((pos // 2048, min(pos // 2048 + 1, n - 1), pos % 2048))
    return taps


def reference_fixed_resize(image, dst_hw, box):
    """Pixel by pixel in Python integers: k x k block sums, fixed-point bilinear, one rounding half up."""
    src = image.astype(np.int64).reshape(image.shape[0], image.shape[1], -1)
    rows, cols = src.shape[0] // box, src.shape[1] // box
    sums = src[: rows * box, : cols * box].reshape(rows, box, cols, box, -1).sum(axis=(1, 3))
    denominator = box * box * 2048 * 2048
    out = np.zeros((dst_hw[0], dst_hw[1], src.shape[2]), np.int64)
    for y, (y0, y1, fy) in enumerate(reference_fixed_taps(image.shape[0], dst_hw[0], box)):
        for x, (x0, x1, fx) in enumerate(reference_fixed_taps(image.shape[1], dst_hw[1], box)):
            for c in range(src.shape[2]):
                acc = ((2048 - fy) * ((2048 - fx) * int(sums[y0, x0, c]) + fx * int(sums[y0, x1, c]))
                       + fy * ((2048 - fx) * int(sums[y1, x0, c]) + fx * int(sums[y1, x1, c])))
                out[y, x, c] = (acc + denominator // 2) // denominator
    return out.reshape(out.shape[:2] if image.ndim == 2 else out.shape).astype(np.uint8)


def reference_float_resize(plane, dst_hw):
    """Pixel by pixel with float32 scalars: horizontal a0*w0 + a1*w1, then vertical, each op rounded."""
    plane = plane.astype(np.float32)
    ytaps = reference_fixed_taps(plane.shape[0], dst_hw[0], 1)
    xtaps = reference_fixed_taps(plane.shape[1], dst_hw[1], 1)
    weights = [(np.float32(1) - np.float32(f / 2048), np.float32(f / 2048)) for f in range(2048)]
    across = np.zeros((plane.shape[0], dst_hw[1]), np.float32)
    for r in range(plane.shape[0]):
        for x, (x0, x1, fx) in enumerate(xtaps):
            across[r, x] = plane[r, x0] * weights[fx][0] + plane[r, x1] * weights[fx][1]
    out = np.zeros(dst_hw, np.float32)
    for y, (y0, y1, fy) in enumerate(ytaps):
        for x in range(dst_hw[1]):
            out[y, x] = across[y0, x] * weights[fy][0] + across[y1, x] * weights[fy][1]
    return out


@pytest.mark.parametrize("src_hw, dst_hw, prefilter, box", [
    ((67, 101, 3), (29, 37), True, 2),
    ((95, 203, 3), (19, 29), True, 5),      # k*k*one*one not a power of two: float64 quotient
    ((101, 67, 3), (9, 7), False, 1),       # strong downscale without box: rows skipped
    ((7, 5), (13, 11), True, 1),            # gray upscale
    ((45, 77, 3), (45, 77), True, 1),       # identity
    ((1, 9, 3), (3, 2), True, 1),
    ((360, 370, 3), (20, 21), True, 17),    # block sums beyond uint16
    ((700, 680), (10, 10), True, 68),       # horizontal pass beyond int32
    ((2050, 2050), (1, 1), True, 2050),     # k*k*one*one >= 2**44: int64 quotient
])
def test_resize_uint8_fixed_equals_pixel_by_pixel_integer_reference(src_hw, dst_hw, prefilter, box):
    image = noise_image(*src_hw[:2], seed=sum(src_hw))
    image = image if len(src_hw) == 3 else image[:, :, 1]
    assert (P.box_factor(src_hw[:2], dst_hw) if prefilter else 1) == box
    assert np.array_equal(P.resize_uint8_fixed(image, dst_hw, prefilter), reference_fixed_resize(image, dst_hw, box))


@pytest.mark.parametrize("src_hw, dst_hw", [((29, 37), (67, 101)), ((31, 17), (12, 40)), ((1, 5), (4, 1))])
def test_resize_float32_equals_pixel_by_pixel_float32_reference(src_hw, dst_hw):
    plane = np.random.default_rng(14).uniform(-0.3, 1.3, src_hw).astype(np.float32)
    ours = P.resize_float32_bilinear(plane, dst_hw)
    assert np.array_equal(ours.view(np.uint32), reference_float_resize(plane, dst_hw).view(np.uint32))


@pytest.mark.parametrize("shape", [(9, 11), (1, 6), (5, 1), (1, 1)])
def test_same_size_float32_resize_keeps_the_general_paths_bits_on_special_values(shape):
    # The same-size shortcut must give a0 * 1 + a1 * 0 as the general path does: -0.0 next to a positive
    # becomes 0.0, and a finite value next to an infinity or NaN becomes NaN.
    alpha = np.random.default_rng(16).uniform(0, 1, shape).astype(np.float32)  # the copied case
    assert np.array_equal(P.resize_float32_bilinear(alpha, shape).view(np.uint32),
                          reference_float_resize(alpha, shape).view(np.uint32))
    plane = np.random.default_rng(15).uniform(-0.3, 1.3, shape).astype(np.float32)
    specials = [np.float32(v) for v in (-0.0, np.inf, -np.inf, np.nan, -0.0)]
    flat = plane.reshape(-1)
    for index, value in zip(range(0, flat.size, 2), specials):
        flat[index] = value
    with np.errstate(invalid="ignore"):
        ours = P.resize_float32_bilinear(plane, shape)
        expected = reference_float_resize(plane, shape)
    assert np.array_equal(ours.view(np.uint32), expected.view(np.uint32))
    if flat.size > 4:
        assert np.isnan(ours).sum() > np.isnan(plane).sum()  # the specials reach their neighbours


def test_integer_box_matches_opencv_area_on_integer_factor():
    image = smooth_image(512, 384, seed=4)
    ours = P.resize_uint8_fixed(image, (128, 96)).astype(int)
    area = cv2.resize(image, (96, 128), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(ours - area).max() <= 1


def test_box_prefilter_stops_aliasing_of_phone_photos():
    noise = noise_image(4000, 3000, seed=5)  # std 73.9: all of it above the output Nyquist frequency
    filtered = P.resize_uint8_fixed(noise, (512, 384))
    plain = P.resize_uint8_fixed(noise, (512, 384), prefilter=False)
    assert filtered.std() < 10  # measured 7.0: the 7x7 box averages the noise away
    assert plain.std() > 30     # bilinear alone samples 2x2 of every 7x7 pixels and aliases


def test_android_preprocess_letterbox_normalize_pad():
    profile = P.get_profile("android")
    rgb = noise_image(872, 1000, seed=6)
    steps = profile.preprocess_steps(rgb, (512, 512))
    assert steps["resized"].shape == (446, 512, 3)
    expected = (steps["resized"].astype(np.float32) - np.float32(127.5)) / np.float32(127.5)
    assert np.array_equal(steps["normalized"], expected)
    tensor = steps["tensor"]
    assert tensor.shape == (1, 3, 512, 512) and tensor.flags["C_CONTIGUOUS"]
    assert (tensor[:, :, 446:, :] == 0).all()
    assert np.array_equal(tensor[0, :, :446, :].transpose(1, 2, 0), expected)
    nhwc, _ = profile.preprocess(rgb, (512, 512), layout="nhwc")
    assert np.array_equal(nhwc, tensor.transpose(0, 2, 3, 1))


def test_android_postprocess_float_bilinear_crop_and_clamp():
    profile = P.get_profile("android")
    _, state = profile.preprocess(noise_image(872, 1000, seed=7), (512, 512))
    output = np.random.default_rng(8).uniform(-0.2, 1.2, (1, 1, 512, 512)).astype(np.float32)
    post = profile.postprocess_steps(output, state)
    assert post["cropped"].shape == (446, 512)
    reference = reference_bilinear(output[0, 0, :446, :512], (872, 1000))[:, :, 0]
    # Positions are rounded to 1/2048 px (error <= 1/4096 per axis), so the error is bounded by the
    # steepest step between neighbouring samples (1.4 here) times 2/4096, plus float32 rounding.
    steepest = max(np.abs(np.diff(post["cropped"], axis=a)).max() for a in (0, 1))
    assert np.abs(post["resized"] - reference).max() <= steepest * 2 / 4096 + 1e-6
    # Where positions are exact (2x up: quarter pixels) only float32 rounding remains.
    doubled = P.resize_float32_bilinear(post["cropped"], (892, 1024))
    assert np.abs(doubled - reference_bilinear(post["cropped"], (892, 1024))[:, :, 0]).max() < 1e-6
    assert np.array_equal(post["alpha"], np.clip(post["resized"], 0, 1))
    assert post["alpha"].min() == 0 and post["alpha"].max() == 1
    # Same size: the float path is the identity.
    plane = output[0, 0]
    assert np.array_equal(P.resize_float32_bilinear(plane, (512, 512)), plane)


def test_android_clamp_gives_java_zeros_and_nans():
    """Java's Math.min(Math.max(v, 0f), 1f): -0.0 becomes +0.0, NaN stays NaN, in-range values are kept."""
    profile = P.get_profile("android")
    _, state = profile.preprocess(noise_image(40, 30, seed=15), (16, 16))
    output = np.random.default_rng(16).random((1, 1, 16, 16)).astype(np.float32)
    output[0, 0, :4, :4] = -0.0
    alpha = profile.postprocess(output, state)
    assert not np.signbit(alpha).any() and alpha.min() == 0 and alpha.max() <= 1
    output[0, 0, 5, 5] = np.nan
    alpha = profile.postprocess(output, state)
    assert np.isnan(alpha).any() and np.nanmax(alpha) <= 1 and not np.signbit(alpha[~np.isnan(alpha)]).any()


def test_android_alpha_8bit_rounds_half_up():
    alpha = np.random.default_rng(9).random((64, 64)).astype(np.float32)
    alpha8 = P.get_profile("android").alpha_to_uint8(alpha)
    assert np.abs(alpha8 - alpha.astype(np.float64) * 255).max() <= 0.5 + 1e-4
    assert P.get_profile("android").alpha_to_uint8(np.float32([0.5, 0.25, 0.0, 1.0])).tolist() == [128, 64, 0, 255]


def test_android_constants_are_one_json_dict():
    constants = P.ANDROID_CONSTANTS.as_dict()
    assert constants["fraction_bits"] == 11 and constants["normalize_offset"] == 127.5
    assert json.loads(json.dumps(P.get_profile("android").describe()))["constants"] == json.loads(json.dumps(constants))


# ---------------------------------------------------------------------------------------------
# the Android profiles' normalization from a model's transforms
# ---------------------------------------------------------------------------------------------


def test_android_default_normalization_is_unchanged():
    """No transforms, an empty list or PP-MattingV2's 0.5/0.5: the shared instance and the same bits as before."""
    for name in ("android", "paddleseg-android"):
        shared = P.get_profile(name)
        assert P.get_profile(name, None) is shared and P.get_profile(name, []) is shared
        assert P.profile_for_model(name, []) is shared and P.profile_for_model(name, PPMATTINGV2) is shared
        assert P.get_profile(name, HUMANMATTING) is shared
    v = np.arange(256, dtype=np.float32)[:, None]
    assert np.array_equal(P.get_profile("android").table, np.repeat((v - np.float32(127.5)) / np.float32(127.5), 3, 1))
    normalize = P.get_profile("android").describe()["normalize"]
    assert (normalize["rule"], normalize["mean"], normalize["std"]) == ("exact", [0.5] * 3, [0.5] * 3)
    assert normalize["expression"] == "(v - 127.5f) / 127.5f in float32"
    legacy = P.get_profile("paddleseg-android").describe()["normalize"]
    assert (legacy["rule"], legacy["mean"], legacy["std"]) == ("paddleseg", [0.5] * 3, [0.5] * 3)


@pytest.mark.parametrize("name", ["android", "paddleseg-android"])
def test_rvm_normalization_is_rgb_over_255(name):
    """RVM's mean 0 / std 1: the tensor is float32(rgb) / 255 exactly, the letterbox/stretch unchanged."""
    profile = P.get_profile(name, RVM)
    assert profile is not P.get_profile(name) and P.get_profile(name, RVM) is not profile  # built per call
    rgb = noise_image(90, 70, seed=30)
    steps = profile.preprocess_steps(rgb, (64, 64))
    default = P.get_profile(name).preprocess_steps(rgb, (64, 64))
    assert np.array_equal(steps["resized"], default["resized"])
    assert np.array_equal(steps["normalized"], steps["resized"].astype(np.float32) / np.float32(255))
    assert steps["normalized"].min() >= 0 and steps["normalized"].max() <= 1
    description = json.loads(json.dumps(profile.describe()))
    assert description["normalize"]["mean"] == [0.0] * 3 and description["normalize"]["std"] == [1.0] * 3
    assert description["normalize"]["rule"] == ("exact" if name == "android" else "paddleseg")
    if name == "android":
        assert description["normalize"]["expression"] == "(v - 0.0f) / 255.0f in float32"
        rh, rw = steps["state"].resized_hw
        tensor = steps["tensor"]
        assert (tensor[0, :, rh:, :] == 0).all() and (tensor[0, :, :, rw:] == 0).all()  # padding stays 0.0
        assert description["padding"]["value"] == 0.0


@pytest.mark.parametrize("name", ["android", "paddleseg-android"])
def test_imagenet_normalization_at_a_few_pixels(name):
    """ImageNet's 255 * mean is no float32: both profiles use the "paddleseg" rule, checked here by hand."""
    profile = P.get_profile(name, IMAGENET)
    assert profile.normalization_rule == "paddleseg" and not P.exact_in_float32(IMAGENET_MEAN, IMAGENET_STD)
    rgb = noise_image(50, 40, seed=31)
    steps = profile.preprocess_steps(rgb, (32, 32))
    resized, normalized = steps["resized"], steps["normalized"]
    for y, x in ((0, 0), (7, 3), (resized.shape[0] - 1, resized.shape[1] - 1)):
        for c in range(3):
            v = int(resized[y, x, c])
            # float32(v) / 255f, then x - mean and / std in float64, each stored as float32.
            step = np.float32(float(np.float32(v) / np.float32(255)) - IMAGENET_MEAN[c])
            assert normalized[y, x, c] == np.float32(float(step) / IMAGENET_STD[c]), (y, x, c)
            assert abs(float(normalized[y, x, c]) - (v / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]) < 4e-7
    # Pixel 255 in red: (1 - 0.485) / 0.229 = 2.2489083; pixel 0 in blue: -0.406 / 0.225 = -1.8044444.
    assert abs(profile.table[255, 0] - 2.2489083) < 1e-6 and abs(profile.table[0, 2] + 1.8044444) < 1e-6
    description = json.loads(json.dumps(profile.describe()))["normalize"]
    assert description["mean"] == list(IMAGENET_MEAN) and description["std"] == list(IMAGENET_STD)
    assert description["rule"] == "paddleseg"


@pytest.mark.parametrize("name", ["android", "paddleseg-android"])
def test_transforms_without_normalize_feed_raw_values(name):
    profile = P.get_profile(name, NO_NORMALIZE)
    rgb = noise_image(40, 60, seed=32)
    steps = profile.preprocess_steps(rgb, (24, 32))
    assert np.array_equal(steps["normalized"], steps["resized"].astype(np.float32))
    assert steps["normalized"].max() > 200  # 0..255, not [-1, 1]
    assert np.array_equal(steps["resized"], P.get_profile(name).preprocess_steps(rgb, (24, 32))["resized"])
    normalize = profile.describe()["normalize"]
    assert (normalize["rule"], normalize["mean"], normalize["std"]) == ("none", None, None)


def test_android_normalization_rules_and_errors():
    assert P.exact_in_float32((0.5,) * 3, (0.5,) * 3) and P.exact_in_float32((0,) * 3, (1,) * 3)
    # The products are taken in float64 (as Java's double): 255 * (1/3) rounds to 85.0, a float32 number;
    # 255 * 0.001 = 0.255 is none.
    assert P.exact_in_float32((1 / 3,) * 3, (1,) * 3) and 255 * (1 / 3) == 85.0
    assert not P.exact_in_float32((0.001,) * 3, (1,) * 3) and not P.exact_in_float32((0,) * 3, (0.229,) * 3)
    assert P.model_normalization(RVM) == P.ModelNormalization((0.0,) * 3, (1.0,) * 3)
    assert P.model_normalization(NO_NORMALIZE) == P.RAW_NORMALIZATION
    assert P.model_normalization([{"type": "Normalize"}]) == P.DEFAULT_NORMALIZATION
    # Steps the transform profiles refuse (Padding) do not matter to the Android profiles; bad Normalize does.
    assert P.get_profile("android", [{"type": "Padding"}, *RVM]).normalization_rule == "exact"
    with pytest.raises(EdgematteError, match="not supported"):
        P.get_profile("paddleseg", [{"type": "Padding"}, *RVM])
    bad = ([{"type": "Normalize", "std": [1, 0, 1]}], [{"type": "Normalize", "mean": 0.5}],
           [{"type": "Normalize", "mean": ["a", 0, 0]}], ["Normalize"], [{"mean": [0, 0, 0]}])
    for transforms in bad:
        with pytest.raises(EdgematteError):
            P.get_profile("paddleseg-android", transforms)


# ---------------------------------------------------------------------------------------------
# paddleseg-android
# ---------------------------------------------------------------------------------------------


def test_paddleseg_android_ignores_aspect_and_stretches_min_max():
    profile = P.get_profile("paddleseg-android")
    rgb = noise_image(300, 200, seed=10)
    steps = profile.preprocess_steps(rgb, (256, 256))
    assert steps["resized"].shape == (256, 256, 3)
    reference = round_half_up(reference_bilinear(rgb, (256, 256)))  # plain bilinear, no box
    assert np.abs(steps["resized"].astype(int) - reference).max() <= 1
    assert np.array_equal(steps["normalized"], paddleseg_normalize(steps["resized"]))

    plane = np.full((256, 256), 0.2, np.float32)
    plane[0, :4] = [0.2, 0.3, 0.4, 0.6]
    post = profile.postprocess_steps(plane[None, None], steps["state"])
    # (v - 0.2) / 0.4 * 255 = 0, 63.75, 127.5, 255 -> truncated 0, 63, 127, and 255 (or 254 by float error)
    assert post["stretched"][0, :3].tolist() == [0, 63, 127] and post["stretched"][0, 3] in (254, 255)
    assert post["alpha"].shape == (300, 200)
    assert np.array_equal(post["alpha"], post["scaled"].astype(np.float32) / np.float32(255))
    flat = profile.postprocess(np.full((1, 1, 256, 256), 0.7, np.float32), steps["state"])
    assert (flat == 0).all()  # max == min: the demo's stretch gives 0, not the value


# ---------------------------------------------------------------------------------------------
# every profile
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(P.PROFILES))
def test_round_trip_recovers_a_channel_as_alpha(name):
    """A stand-in 'model' that returns the red channel as alpha must come back as red / 255."""
    profile = P.profile_for_model(name, PPMATTINGV2)
    rgb = smooth_image(437, 611, seed=11)
    model_hw = None if name == "paddleseg" else (256, 320)
    tensor, state = profile.preprocess(rgb, model_hw)
    red = (tensor[:, :1] + 1) / 2  # undo (v/255 - 0.5) / 0.5
    alpha = profile.postprocess(red, state)
    assert alpha.shape == (437, 611) and alpha.dtype == np.float32
    valid = slice(4, -4)  # image borders see padding / clamping
    error = np.abs(alpha[valid, valid] - rgb[valid, valid, 0] / 255.0)
    assert error.mean() < 0.01, (name, error.mean())
    description = json.loads(json.dumps(profile.describe()))
    assert description["profile"] == name
    for key in ("resize", "normalize", "padding", "postprocess", "alpha_8bit", "channel_order", "layout"):
        assert key in description


def test_preprocess_is_preprocess_steps():
    for name in P.PROFILES:
        profile = P.profile_for_model(name, PPMATTINGV2)
        rgb = smooth_image(100, 90)
        model_hw = None if name == "paddleseg" else (64, 64)
        steps = profile.preprocess_steps(rgb, model_hw)
        tensor, state = profile.preprocess(rgb, model_hw)
        assert np.array_equal(tensor, steps["tensor"]) and state == steps["state"]


def test_bad_arguments():
    profile = P.get_profile("android")
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        profile.preprocess(np.zeros((10, 10), np.uint8), (8, 8))
    with pytest.raises(ValueError, match="layout"):
        profile.preprocess(np.zeros((10, 10, 3), np.uint8), (8, 8), layout="chw")
    _, state = profile.preprocess(np.zeros((10, 10, 3), np.uint8), (8, 8))
    with pytest.raises(ValueError, match="does not hold one 8x8 alpha"):
        profile.postprocess(np.zeros((1, 1, 4, 4), np.float32), state)
    with pytest.raises(EdgematteError, match="unknown profile 'tflite'"):
        P.get_profile("tflite")
    with pytest.raises(EdgematteError, match="one is supported"):
        P.get_profile("android", [{"type": "Normalize"}, {"type": "Normalize"}])


def test_transform_profiles_need_the_models_transforms():
    """paddleseg/fastdeploy have no default transforms (per-model facts live in the zoo, not the runtime)."""
    assert all(isinstance(cls, type) and issubclass(cls, P.Profile) for cls in P.PROFILES.values())
    assert [name for name in P.PROFILES if P.reads_transforms(name)] == ["paddleseg", "fastdeploy"]
    for name in ("paddleseg", "fastdeploy"):
        with pytest.raises(EdgematteError, match=f"profile '{name}' needs the model's deploy.yaml transforms"):
            P.get_profile(name)
        for transforms in (None, []):
            with pytest.raises(EdgematteError, match="needs the model's deploy.yaml transforms"):
                P.profile_for_model(name, transforms)
        assert isinstance(P.profile_for_model(name, HUMANMATTING), P.profile_class(name))
    # The fixed-step profiles' default is one shared instance; PP-MattingV2's Normalize is that default.
    assert P.profile_for_model("android", PPMATTINGV2) is P.get_profile("android")
    with pytest.raises(EdgematteError, match="unknown profile 'tflite'"):
        P.profile_class("tflite")


def test_zoo_transforms_parse_to_the_numbers_the_profiles_used_to_default_to():
    """PP-MattingV2's transforms were a runtime default; the zoo's list must parse to the same steps."""
    normalize = {"type": "Normalize", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    assert parse_transforms(PPMATTINGV2) == (
        {"type": "LimitShort", "max_short": 512, "min_short": None}, {"type": "ResizeToIntMult", "mult_int": 32},
        normalize)
    assert parse_transforms(HUMANMATTING) == (
        {"type": "ResizeByShort", "short_size": 2048}, {"type": "ResizeToIntMult", "mult_int": 128}, normalize)


def test_the_profiles_package_does_not_import_the_zoo():
    """Layer rule: runtime and zoo are peers."""
    code = ("import sys, edgematte.runtime.profiles, edgematte.runtime.vectors; "
            "print([m for m in sys.modules if m.startswith('edgematte.zoo')])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


def test_matter_composite_needs_no_transforms_for_the_opencv_profiles():
    from edgematte.runtime.matter import composite_with_profile as matter_composite

    rgb, background = smooth_image(40, 30, seed=20), noise_image(17, 23, seed=21)
    alpha = np.random.default_rng(22).random((40, 30)).astype(np.float32)
    for name in ("paddleseg", "fastdeploy"):
        expected = P.get_profile(name, PPMATTINGV2).composite(rgb, alpha, background)
        assert np.array_equal(matter_composite(rgb, alpha, background, profile=name), expected)
    android = P.get_profile("android").composite(rgb, alpha, background)
    assert np.array_equal(matter_composite(rgb, alpha, background), android)


# ---------------------------------------------------------------------------------------------
# composite
# ---------------------------------------------------------------------------------------------


def test_composite_hand_computed_pixels():
    rgb = np.array([[[200, 255, 1], [200, 10, 255], [7, 8, 9]]], np.uint8)
    alpha = np.array([[0.5, 0.25, 1.0]], np.float32)
    out = P.composite(rgb, alpha, (100, 0, 0))
    # 200*.5 + 100*.5 = 150; 255*.5 = 127.5 -> 128 (half up); 1*.5 = 0.5 -> 1;
    # 200*.25 + 100*.75 = 125; 10*.25 = 2.5 -> 3; 255*.25 = 63.75 -> 64; alpha 1 keeps the pixel.
    assert out.tolist() == [[[150, 128, 1], [125, 3, 64], [7, 8, 9]]]


def test_composite_backgrounds():
    rgb = smooth_image(60, 80, seed=12)
    ones, zeros = np.ones((60, 80), np.float32), np.zeros((60, 80), np.float32)
    assert np.array_equal(P.composite(rgb, ones, (0, 255, 0)), rgb)
    assert (P.composite(rgb, zeros, (0, 255, 0)) == [0, 255, 0]).all()
    background = noise_image(30, 40, seed=13)
    expected = cv2.resize(background, (80, 60), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(P.composite(rgb, zeros, background), expected)
    android = P.get_profile("android")
    assert np.array_equal(android.composite(rgb, zeros, background), P.resize_uint8_fixed(background, (60, 80)))
    with pytest.raises(ValueError):
        P.composite(rgb, zeros, "sepia")
    with pytest.raises(ValueError):
        P.composite(rgb, zeros[:10], (0, 0, 0))


def test_composite_equals_the_float32_formula_on_odd_sizes():
    rgb = noise_image(37, 53, seed=17)
    alpha = np.random.default_rng(18).uniform(-0.2, 1.2, (37, 53))  # float64, beyond [0, 1]
    a = np.clip(alpha.astype(np.float32), 0, 1)[:, :, None]
    for background in ((3, 250, 77), noise_image(37, 53, seed=19)):
        b = np.broadcast_to(np.asarray(background, np.uint8), rgb.shape).astype(np.float32)
        expected = np.floor(rgb.astype(np.float32) * a + b * (np.float32(1) - a) + np.float32(0.5))
        assert np.array_equal(P.composite(rgb, alpha, background), expected.astype(np.uint8))


def test_blur_background_is_strong_smooth_and_exact_on_flat_images():
    flat = np.full((123, 77, 3), 91, np.uint8)
    assert np.array_equal(P.blurred_background(flat), flat)
    checker = ((np.indices((400, 300)).sum(0) // 8) % 2 * 255).astype(np.uint8)[:, :, None].repeat(3, 2)
    blurred = P.blurred_background(checker)
    assert blurred.shape == checker.shape
    assert checker.std() > 120 and blurred[20:-20, 20:-20].std() < 3  # the 8-px checker is gone
    assert abs(blurred.mean() - checker.mean()) < 2
    tiny = np.array([[[10, 20, 30]]], np.uint8)
    assert np.array_equal(P.composite(tiny, np.zeros((1, 1), np.float32), "blur"), tiny)
