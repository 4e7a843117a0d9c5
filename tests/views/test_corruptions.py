"""Masks, noise, Lab conversion and ab quantisation of ssljax.views.corruptions.

Masks are checked against what they claim to cover, noise against its distribution, Lab
against a float64 numpy implementation of the CIE formulas and published sRGB colours, and
the ab bins by encoding round trips and hand-computed soft weights.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.views import corruptions as C

KEY = jax.random.PRNGKey(0)


def sample_masks(rng, *args, **kwargs):
    """``C.sample_masks`` compiled once per setting (tests run faster than op by op)."""
    return jax.jit(lambda r: C.sample_masks(r, *args, **kwargs))(rng)


# ---------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "h, w, hole, top, left", [(28, 28, 14, 7, 7), (7, 9, (3, 4), 2, 2), (32, 32, 16, 8, 8)]
)
def test_central_mask_covers_exactly_the_centred_hole(h, w, hole, top, left):
    mask = np.asarray(C.central_mask(h, w, hole_size=hole))
    hh, hw = (hole, hole) if isinstance(hole, int) else hole
    want = np.zeros((h, w), np.float32)
    want[top : top + hh, left : left + hw] = 1
    np.testing.assert_array_equal(mask, want)
    assert mask.sum() == hh * hw


def test_central_masks_are_the_same_for_every_image():
    masks = np.asarray(sample_masks(KEY, 3, 28, 28, kind="central"))
    assert masks.shape == (3, 28, 28, 1)
    np.testing.assert_array_equal(
        masks[..., 0],
        np.broadcast_to(np.asarray(C.central_mask(28, 28, hole_size=14)), (3, 28, 28)),
    )


def numpy_block_union(corners, h, w, size):
    out = np.zeros((h, w), np.float32)
    for r, c in corners:
        out[r : r + size, c : c + size] = 1
    return out


def test_random_blocks_are_the_union_of_num_blocks_squares_inside_the_image():
    h, w, size, count = 28, 24, 7, 5
    keys = jax.random.split(KEY, 6)
    masks = np.asarray(
        sample_masks(KEY, 6, h, w, kind="random_block", num_blocks=count, block_size=size)
    )
    all_corners = jax.jit(
        jax.vmap(lambda k: C.random_block_corners(k, h, w, num_blocks=count, block_size=size))
    )(keys)
    for i, corners in enumerate(np.asarray(all_corners)):
        assert corners.shape == (count, 2)
        assert (corners >= 0).all() and (corners[:, 0] <= h - size).all()
        assert (corners[:, 1] <= w - size).all()
        np.testing.assert_array_equal(masks[i, ..., 0], numpy_block_union(corners, h, w, size))
        assert size * size <= masks[i].sum() <= count * size * size
    assert not np.array_equal(masks[0], masks[1])
    one = C.random_block_mask(KEY, h, w, num_blocks=1, block_size=size)
    assert float(one.sum()) == size * size


def boundary_pairs(mask):
    return int((mask[1:] != mask[:-1]).sum() + (mask[:, 1:] != mask[:, :-1]).sum())


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_random_region_hides_the_requested_fraction_in_smooth_blobs(fraction):
    h = w = 28
    masks = np.asarray(
        sample_masks(KEY, 8, h, w, kind="random_region", fraction=fraction, scale=4.0)
    )[..., 0]
    want = round(fraction * h * w)
    np.testing.assert_array_equal(masks.sum(axis=(1, 2)), want)
    assert len({m.tobytes() for m in masks}) == 8  # independent per image
    # Blobs, not salt and pepper: far fewer 0/1 neighbour pairs than an iid mask would have.
    iid_pairs = 2 * fraction * (1 - fraction) * (2 * h * (w - 1))
    assert max(boundary_pairs(m) for m in masks) < 0.5 * iid_pairs


def test_masks_are_deterministic_in_the_key():
    a = sample_masks(KEY, 2, 28, 28, kind="random_region")
    b = sample_masks(KEY, 2, 28, 28, kind="random_region")
    c = sample_masks(jax.random.PRNGKey(1), 2, 28, 28, kind="random_region")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_apply_mask_fills_only_hidden_pixels():
    x = jax.random.uniform(KEY, (2, 6, 6, 3))
    mask = sample_masks(KEY, 2, 6, 6, kind="central", hole_size=2)
    out = np.asarray(C.apply_mask(x, mask, (0.1, 0.2, 0.3)))
    m = np.asarray(mask[..., 0]).astype(bool)
    np.testing.assert_array_equal(out[~m], np.asarray(x)[~m])
    np.testing.assert_allclose(out[m], np.broadcast_to([0.1, 0.2, 0.3], out[m].shape), atol=1e-7)


def test_bad_mask_settings_fail_with_one_line():
    with pytest.raises(ValueError, match=r"unknown mask kind 'square'; choose one of"):
        C.sample_masks(KEY, 1, 8, 8, kind="square")
    with pytest.raises(ValueError, match=r"hole_size=9 is invalid for 8x8 images"):
        C.central_mask(8, 8, hole_size=9)
    with pytest.raises(ValueError, match=r"fraction=1.5 is invalid"):
        C.random_region_mask(KEY, 8, 8, fraction=1.5)


# ---------------------------------------------------------------------------
# Denoising corruptions
# ---------------------------------------------------------------------------


def test_gaussian_noise_has_the_requested_spread():
    x = jnp.full((8, 32, 32, 3), 0.5)
    noisy = np.asarray(C.gaussian_noise(KEY, x, stddev=0.2, clip=False)) - 0.5
    assert abs(noisy.mean()) < 0.01
    assert abs(noisy.std() - 0.2) < 0.005
    clipped = np.asarray(C.gaussian_noise(KEY, x, stddev=2.0))
    assert clipped.min() == 0.0 and clipped.max() == 1.0


def test_masking_noise_zeroes_whole_pixels_at_the_requested_rate():
    x = jax.random.uniform(KEY, (16, 32, 32, 3), minval=0.1, maxval=1.0)
    out, mask = jax.jit(lambda k, x: C.masking_noise(k, x, drop_prob=0.3))(jax.random.PRNGKey(3), x)
    out, mask, x = np.asarray(out), np.asarray(mask[..., 0]).astype(bool), np.asarray(x)
    np.testing.assert_array_equal(out[mask], 0.0)
    np.testing.assert_array_equal(out[~mask], x[~mask])
    n = mask.size
    assert abs(mask.mean() - 0.3) < 4 * math.sqrt(0.3 * 0.7 / n)


# ---------------------------------------------------------------------------
# Lab
# ---------------------------------------------------------------------------

M = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)


def numpy_lab(rgb):
    """CIE 1976 L*a*b* from sRGB in float64, written from the standard's formulas."""
    rgb = np.asarray(rgb, np.float64)
    lin = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = lin @ M.T
    white = M @ np.ones(3)  # XYZ of sRGB white
    t = xyz / white
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(t > eps, t ** (1 / 3), (kappa * t + 16) / 116)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )


def test_lab_matches_the_float64_reference():
    rgb = np.random.default_rng(0).uniform(size=(4000, 3))
    rgb[:100] *= 0.03  # the linear segments near black
    np.testing.assert_allclose(
        np.asarray(C.rgb_to_lab(jnp.asarray(rgb, jnp.float32))),
        numpy_lab(rgb.astype(np.float32)),
        atol=3e-3,
    )


@pytest.mark.parametrize(
    "rgb, lab",
    [
        ((1, 1, 1), (100.0, 0.0, 0.0)),
        ((0, 0, 0), (0.0, 0.0, 0.0)),
        ((0.5, 0.5, 0.5), (53.39, 0.0, 0.0)),
        ((1, 0, 0), (53.24, 80.09, 67.20)),
        ((0, 1, 0), (87.73, -86.18, 83.18)),
        ((0, 0, 1), (32.30, 79.19, -107.86)),
    ],
)
def test_known_colours(rgb, lab):
    got = np.asarray(C.rgb_to_lab(jnp.asarray([rgb], jnp.float32)))[0]
    np.testing.assert_allclose(got, lab, atol=0.01)


def test_lab_round_trip():
    rgb = jax.random.uniform(KEY, (1000, 3))
    back = jax.jit(lambda x: C.lab_to_rgb(C.rgb_to_lab(x)))(rgb)
    np.testing.assert_allclose(np.asarray(back), np.asarray(rgb), atol=2e-4)


# ---------------------------------------------------------------------------
# ab bins
# ---------------------------------------------------------------------------


def test_in_gamut_bins():
    centers = C.ab_bin_centers()
    assert centers.shape == (261, 2)
    np.testing.assert_array_equal(centers % 10, 0)
    assert any((centers == 0).all(axis=1))
    # Every 8-bit colour of an independent sample falls into one of the bins.
    rgb = np.random.default_rng(1).integers(0, 256, (20000, 3)) / 255.0
    cells = {tuple(c) for c in (np.round(numpy_lab(rgb)[:, 1:] / 10) * 10).astype(int)}
    assert cells <= {tuple(c) for c in centers.astype(int)}


def test_hard_encoding_round_trip():
    centers = C.ab_bin_centers()
    q = len(centers)
    np.testing.assert_array_equal(C.encode_ab_hard(jnp.asarray(centers), centers), np.arange(q))
    one_hot = jax.nn.one_hot(jnp.arange(q), q)
    np.testing.assert_allclose(C.decode_ab(one_hot, centers, temperature=0.01), centers, atol=1e-3)
    ab = jax.jit(C.rgb_to_lab)(jax.random.uniform(KEY, (5000, 3)))[:, 1:]
    decoded = centers[np.asarray(jax.jit(lambda ab: C.encode_ab_hard(ab, centers))(ab))]
    err = np.linalg.norm(decoded - np.asarray(ab), axis=1)
    assert err.max() <= 5 * math.sqrt(2) + 1e-3


def test_soft_encoding_weights_by_hand():
    centers = C.ab_bin_centers()
    z = np.asarray(C.encode_ab_soft(jnp.asarray([[3.0, 2.0]]), centers))[0]
    assert (z > 0).sum() == 5
    np.testing.assert_allclose(z.sum(), 1.0, rtol=1e-6)
    # Five nearest bins of (3, 2): (0,0) d^2=13, (10,0) 53, (0,10) 73, (10,10) 113,
    # (0,-10) 153; the next, (-10,0), is at 173.
    d2 = {(0, 0): 13, (10, 0): 53, (0, 10): 73, (10, 10): 113, (0, -10): 153}
    norm = sum(math.exp(-v / 50) for v in d2.values())
    for (a, b), v in d2.items():
        i = int(np.flatnonzero((centers == (a, b)).all(axis=1))[0])
        np.testing.assert_allclose(z[i], math.exp(-v / 50) / norm, rtol=1e-5)
    # A bin centre with all four neighbours decodes (plain mean) to itself.
    z0 = C.encode_ab_soft(jnp.zeros((1, 2)), centers)
    np.testing.assert_allclose(C.decode_ab(z0, centers), [[0.0, 0.0]], atol=1e-4)
    hard = C.encode_ab_soft(jnp.asarray([[3.0, 0.0]]), centers, num_neighbors=1)
    assert float(hard.max()) == 1.0


def test_downsample_mean():
    x = np.random.default_rng(2).normal(size=(2, 4, 6, 2)).astype(np.float32)
    want = x.reshape(2, 2, 2, 3, 2, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(C.downsample_mean(jnp.asarray(x), 2), want, rtol=1e-6)
