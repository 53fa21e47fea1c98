"""edgematte.core.metrics on cases whose values follow from the definitions by hand.

Every expected number below is worked out in the comment beside it from the definitions in the
module docstring (SAD and Conn /1000, MSE a plain mean, Grad on min-max normalised alphas with a
unit-L2-norm derivative-of-Gaussian kernel), never read back from the implementation.
"""

import math

import numpy as np
import pytest

from edgematte.core.metrics import (
    alpha_difference_stats,
    alpha_from_uint8,
    as_alpha,
    conn,
    gaussian_derivative_kernels,
    grad,
    matting_numerics,
    mse,
    sad,
)

EXACT = 1e-12


def step_edge(height, width, first_one_column):
    """0 left of ``first_one_column``, 1 from it on."""
    alpha = np.zeros((height, width))
    alpha[:, first_one_column:] = 1.0
    return alpha


def test_identical_alphas_score_zero_everywhere():
    rng = np.random.RandomState(0)
    alpha = rng.uniform(0, 1, (24, 17))
    numbers = matting_numerics([(alpha, alpha.copy())])
    assert numbers == {"mad": 0.0, "max_abs": 0.0, "frac_over_8_255": 0.0, "sad": 0.0, "mse": 0.0,
                       "grad": 0.0, "conn": 0.0, "eval_images": 1}


def test_constant_offset():
    ref = np.full((10, 20), 0.35)
    pred = np.full((10, 20), 0.55)
    # 200 pixels off by 0.2
    assert sad(pred, ref) == pytest.approx(200 * 0.2 / 1000, abs=EXACT)
    assert mse(pred, ref) == pytest.approx(0.04, abs=EXACT)
    assert alpha_difference_stats(pred, ref) == pytest.approx(
        {"mad": 0.2, "max_abs": 0.2, "frac_over_8_255": 1.0}, abs=EXACT)
    # both constant: min-max normalisation makes both all zeros, no gradient anywhere
    assert grad(pred, ref) == 0.0
    # thresholds 0.1..0.3 hold the whole image (one component), 0.4 holds nothing: level 0.3 for all.
    # ref: d = 0.05 < 0.15 -> phi 1; pred: d = 0.25 -> phi 0.75; 200 pixels x 0.25
    assert conn(pred, ref) == pytest.approx(200 * 0.25 / 1000, abs=EXACT)
    # pred 0.4: d = 0.1 is under the 0.15 cutoff, so phi is 1 for both
    assert conn(np.full((10, 20), 0.4), ref) == 0.0


def test_single_pixel_flip():
    ref = np.ones((11, 11))
    pred = ref.copy()
    pred[5, 5] = 0.0
    assert sad(pred, ref) == pytest.approx(1 / 1000, abs=EXACT)
    assert mse(pred, ref) == pytest.approx(1 / 121, abs=EXACT)
    assert alpha_difference_stats(pred, ref) == pytest.approx(
        {"mad": 1 / 121, "max_abs": 1.0, "frac_over_8_255": 1 / 121}, abs=EXACT)
    # ref normalises to zeros (no gradient); pred normalises to itself = 1 - impulse. The constant part
    # has no gradient (the kernels sum to 0) and the 9x9 kernels around (5, 5) stay inside the image,
    # so sum |G|^2 = sum hx^2 + sum hy^2 = 1 + 1 (unit-norm kernels).
    assert grad(pred, ref) == pytest.approx(2 / 1000, rel=1e-9)
    # every threshold: the intersection is the image minus (5, 5), one 4-connected component.
    # (5, 5) gets level 0: ref d = 1 -> phi 0, pred d = 0 -> phi 1; everything else level 1, d = 0.
    assert conn(pred, ref) == pytest.approx(1 / 1000, abs=EXACT)


def test_step_edge_shifted_by_one_column():
    height, width = 20, 20
    ref = step_edge(height, width, 10)
    pred = step_edge(height, width, 11)
    # column 10 (20 pixels) differs by 1
    assert sad(pred, ref) == pytest.approx(20 / 1000, abs=EXACT)
    assert mse(pred, ref) == pytest.approx(20 / 400, abs=EXACT)
    assert alpha_difference_stats(pred, ref) == pytest.approx(
        {"mad": 0.05, "max_abs": 1.0, "frac_over_8_255": 0.05}, abs=EXACT)
    # the intersection is columns 11..19 at every threshold; columns 0..10 get level 0.
    # column 10: ref d = 1 -> phi 0, pred d = 0 -> phi 1: 20 pixels x 1
    assert conn(pred, ref) == pytest.approx(20 / 1000, abs=EXACT)

    # Grad by hand: the image is constant down each column, so the y-kernel gives 0 and the x-kernel
    # g(i) g'(j) / N reduces to sum_i g(i) / N times a 1-D correlation of the row with g'.
    sigma, half = 1.4, 4  # half = ceil(1.4 * sqrt(-2 ln(sqrt(2 pi) * 1.4 * 0.01))) = ceil(3.62)
    t = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-t ** 2 / (2 * sigma ** 2)) / (sigma * math.sqrt(2 * math.pi))
    dg = -t * g / sigma ** 2
    norm = math.sqrt((g ** 2).sum() * (dg ** 2).sum())

    def row_gradient(first_one):
        row = (np.arange(width) >= first_one).astype(np.float64)
        padded = np.concatenate([[row[0]] * half, row, [row[-1]] * half])  # replicated border
        return np.array([g.sum() / norm * (dg * padded[c:c + 2 * half + 1]).sum() for c in range(width)])

    expected = height * ((np.abs(row_gradient(11)) - np.abs(row_gradient(10))) ** 2).sum() / 1000
    assert expected > 1e-3  # a real difference, not two zeros
    assert grad(pred, ref) == pytest.approx(expected, rel=1e-9)


def test_kernel_size_and_norm():
    hx, hy = gaussian_derivative_kernels(1.4)
    assert hx.shape == (9, 9)
    assert (hx ** 2).sum() == pytest.approx(1.0, abs=EXACT)
    assert np.array_equal(hy, hx.T)
    assert abs(hx.sum()) < EXACT  # a derivative kernel: constants have no gradient


def test_grad_ignores_scale_and_offset_of_each_matte():
    """mat2gray normalisation: a matte and its affine copy have the same gradient error."""
    rng = np.random.RandomState(1)
    ref = rng.uniform(0, 1, (16, 16))
    pred = np.clip(ref + rng.normal(0, 0.1, ref.shape), 0, 1)
    assert grad(0.2 + 0.5 * pred, ref) == pytest.approx(grad(pred, ref), rel=1e-9)
    assert grad(pred, ref) > 0


@pytest.mark.parametrize("connectivity, expected_sum", [(4, 20.75), (8, 20.9)])
def test_conn_largest_component_depends_on_connectivity(connectivity, expected_sum):
    """A 3-pixel diagonal (0.75) and a 2-pixel horizontal pair (1.0) on zeros, against an all-ones ref.

    4-connected: the diagonal is three singletons, the pair is the largest component. The diagonal
    gets level 0: ref phi 0, pred phi 1 - 0.75 = 0.25 -> 3 x 0.25; the 20 zeros give 1 each; the pair
    (level 1) gives 0. Sum 20.75.
    8-connected: the diagonal (3) wins for thresholds 0.1..0.7, so its level is 0.7: ref d = 0.3 ->
    phi 0.7, pred d = 0.05 < 0.15 -> phi 1 -> 3 x 0.3; the pair gets level 0 and d = 1 for both
    (phi 0 = 0); the zeros give 20. Sum 20.9.
    """
    ref = np.ones((5, 5))
    pred = np.zeros((5, 5))
    pred[[0, 1, 2], [0, 1, 2]] = 0.75
    pred[4, 3:5] = 1.0
    assert conn(pred, ref, connectivity=connectivity) == pytest.approx(expected_sum / 1000, abs=EXACT)


def test_trimap_restricts_the_region_and_fixes_known_pixels():
    ref = np.zeros((4, 6))
    pred = np.full((4, 6), 0.5)
    trimap = np.full((4, 6), 128, dtype=np.uint8)
    trimap[:, :3] = 0  # known background: pred forced to 0 there, outside the region anyway
    # unknown band: 12 pixels off by 0.5
    assert sad(pred, ref, trimap) == pytest.approx(12 * 0.5 / 1000, abs=EXACT)
    assert mse(pred, ref, trimap) == pytest.approx(0.25, abs=EXACT)
    assert sad(pred, ref) == pytest.approx(24 * 0.5 / 1000, abs=EXACT)
    # known foreground where ref is 1: pred forced to 1, so no error there
    ref_fg = np.ones((4, 6))
    trimap_fg = np.full((4, 6), 255, dtype=np.uint8)
    assert sad(pred, ref_fg, trimap_fg) == 0.0
    assert mse(pred, ref_fg, trimap_fg) == 0.0  # empty region


def test_eight_levels_is_not_over_8_255_but_nine_is():
    ref = alpha_from_uint8(np.full((2, 5), 100, dtype=np.uint8))
    pred8 = alpha_from_uint8(np.full((2, 5), 108, dtype=np.uint8))
    levels = np.full((2, 5), 108, dtype=np.uint8)
    levels[0, :2] = 109  # 2 of 10 pixels are 9 levels off
    pred9 = alpha_from_uint8(levels)
    assert alpha_difference_stats(pred8, ref)["frac_over_8_255"] == 0.0
    assert alpha_difference_stats(pred9, ref)["frac_over_8_255"] == pytest.approx(0.2, abs=EXACT)
    assert alpha_difference_stats(pred9, ref)["max_abs"] == pytest.approx(9 / 255, abs=EXACT)


def test_numerics_pool_pixels_and_average_images():
    # pair A: 2x2, every pixel off by 0.1; pair B: 4x4, one pixel off by 1, the rest equal
    ref_a, pred_a = np.zeros((2, 2)), np.full((2, 2), 0.1)
    ref_b, pred_b = np.ones((4, 4)), np.ones((4, 4))
    pred_b[0, 0] = 0.0
    numbers = matting_numerics([(pred_a, ref_a), (pred_b, ref_b)])
    # pooled: (4 x 0.1 + 1) / 20 pixels; 5 of 20 pixels over 8/255
    assert numbers["mad"] == pytest.approx(1.4 / 20, abs=EXACT)
    assert numbers["frac_over_8_255"] == pytest.approx(5 / 20, abs=EXACT)
    assert numbers["max_abs"] == 1.0
    # per image SAD 0.4/1000 and 1/1000 -> mean 0.7/1000; MSE 0.01 and 1/16 -> mean
    assert numbers["sad"] == pytest.approx(0.7 / 1000, abs=EXACT)
    assert numbers["mse"] == pytest.approx((0.01 + 1 / 16) / 2, abs=EXACT)
    assert numbers["eval_images"] == 2


def test_model_shaped_outputs_are_accepted():
    ref = np.zeros((1, 1, 3, 4), dtype=np.float32)
    pred = np.full((1, 1, 3, 4), 0.25, dtype=np.float32)
    assert sad(pred, ref) == pytest.approx(12 * 0.25 / 1000, abs=1e-9)
    assert as_alpha(pred).shape == (3, 4) and as_alpha(pred).dtype == np.float64


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="alpha_from_uint8"):
        as_alpha(np.full((2, 2), 200, dtype=np.uint8))
    with pytest.raises(ValueError, match="outside"):
        as_alpha(np.full((2, 2), 200.0))  # an 8-bit alpha in float clothing
    with pytest.raises(ValueError, match="NaN"):
        as_alpha(np.array([[0.5, np.nan]]))
    with pytest.raises(ValueError, match="differ in size"):
        sad(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        as_alpha(np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="at least one"):
        matting_numerics([])
    # a dequantized output a hair outside [0, 1] is clipped, not refused
    assert as_alpha(np.array([[-0.004, 1.003]])).tolist() == [[0.0, 1.0]]
