"""The augment ops taken from dm_pix (HSV, hue, flip) and the ones kept by hand beside it.

Each op is checked against an independent reference: Python's ``colorsys`` for HSV, values
computed by hand for hue rotations, brightness and contrast, the documented per-image draw for
the flip.  Tolerances are float32 rounding: a colour conversion is a chain of about ten
roundings of values in [0, 1] (``_CHAIN_TOL``), a mean over ``n`` pixels one reordered sum
(``f32_sum_tol``).
"""

import colorsys

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.views import augment as aug
from tests.tolerances import F32_EPS, f32_sum_tol

# About ten float32 roundings of values <= 1 (max, subtraction, division, scaling, wrap),
# compared with float64 colorsys: first-order error <= 10 * eps / 2 each way.
_CHAIN_TOL = 10 * F32_EPS

# Pixels chosen to hit every branch of RGB -> HSV: primaries and secondaries, greys (no
# chroma), black and white, ties for the maximum, and a red-maximum pixel with b > g (hue just
# below a full turn, where a wrong wrap gives a negative hue).
_PIXELS = np.array(
    [
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
        [1.0, 1.0, 0.0],
        [0.0, 1.0, 1.0],
        [1.0, 0.0, 1.0],
        [0.5, 0.5, 0.5],
        [0.0, 0.0, 0.0],
        [1.0, 1.0, 1.0],
        [0.8, 0.8, 0.3],
        [0.9, 0.2, 0.25],
        [0.3, 0.7, 0.2],
        [0.1, 0.4, 0.6],
        [0.25, 0.05, 0.15],
        [0.6, 0.3, 0.6],
    ],
    np.float32,
)


def _circular(a, b):
    """Distance between hues on the unit circle (h = 0 and h = 1 are the same hue)."""
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)) % 1.0
    return np.minimum(d, 1.0 - d)


def test_rgb_to_hsv_matches_colorsys():
    out = np.asarray(jax.jit(aug.rgb_to_hsv)(jnp.asarray(_PIXELS)))
    expected = np.array([colorsys.rgb_to_hsv(*map(float, px)) for px in _PIXELS])
    assert out.shape == _PIXELS.shape and np.all((out >= 0.0) & (out <= 1.0))
    assert np.max(_circular(out[:, 0], expected[:, 0])) <= _CHAIN_TOL
    np.testing.assert_allclose(out[:, 1:], expected[:, 1:], atol=_CHAIN_TOL, rtol=0)
    # Grey pixels have hue 0 (colorsys's convention too); the b > g red pixel lies near 1.
    assert out[6, 0] == 0.0 and out[7, 0] == 0.0 and 0.9 < out[10, 0] <= 1.0


def test_hsv_to_rgb_matches_colorsys_and_wraps_hue():
    rs = np.random.RandomState(3)
    hsv = np.concatenate(
        [
            rs.rand(20, 3),
            # Sector boundaries h = k / 6, zero saturation and value.
            [[k / 6.0, 0.7, 0.9] for k in range(6)],
            [[0.3, 0.0, 0.4], [0.8, 1.0, 0.0]],
        ]
    ).astype(np.float32)
    out = np.asarray(jax.jit(aug.hsv_to_rgb)(jnp.asarray(hsv)))
    expected = np.array([colorsys.hsv_to_rgb(*map(float, p)) for p in hsv])
    np.testing.assert_allclose(out, expected, atol=_CHAIN_TOL, rtol=0)
    # h = 1 is a full turn: the same colour as h = 0 (pure red at s = v = 1).
    wrapped = aug.hsv_to_rgb(jnp.asarray([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0]]))
    np.testing.assert_allclose(wrapped, [[1.0, 0.0, 0.0]] * 2, atol=_CHAIN_TOL, rtol=0)


def test_hsv_round_trip():
    rgb = jnp.asarray(np.random.RandomState(4).rand(2, 5, 7, 3).astype(np.float32))
    back = jax.jit(lambda x: aug.hsv_to_rgb(aug.rgb_to_hsv(x)))(rgb)
    np.testing.assert_allclose(back, rgb, atol=2 * _CHAIN_TOL, rtol=0)


def test_adjust_hue_hand_computed_rotations_per_image():
    # Image b holds red, yellow, grey and a mixed colour; each image gets its own delta.
    image = np.array([[[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]], [[0.4, 0.4, 0.4], [0.9, 0.2, 0.25]]])
    images = jnp.asarray(np.stack([image] * 4).astype(np.float32))
    deltas = jnp.asarray([1 / 3, -1 / 3, 1 / 6, 1.0])
    out = np.asarray(jax.jit(aug.adjust_hue)(images, deltas))
    red, yellow, grey = out[:, 0, 0], out[:, 0, 1], out[:, 1, 0]
    # A third of a turn: red -> green, yellow -> cyan; minus a third: red -> blue, yellow ->
    # magenta; a sixth: red -> yellow, yellow -> green; a full turn changes nothing.
    np.testing.assert_allclose(
        red, [[0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 0]], atol=_CHAIN_TOL, rtol=0
    )
    np.testing.assert_allclose(
        yellow, [[0, 1, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0]], atol=_CHAIN_TOL, rtol=0
    )
    np.testing.assert_allclose(grey, np.full((4, 3), 0.4), atol=_CHAIN_TOL, rtol=0)
    # The mixed colour keeps its value (max) and saturation: only its hue moves, by delta.
    mixed = out[:, 1, 1]
    h0, s0, v0 = colorsys.rgb_to_hsv(0.9, 0.2, 0.25)
    for b, delta in enumerate(np.asarray(deltas, np.float64)):
        h, s, v = colorsys.rgb_to_hsv(*map(float, mixed[b]))
        assert _circular(h, h0 + delta) <= 2 * _CHAIN_TOL
        assert abs(s - s0) <= 2 * _CHAIN_TOL and abs(v - v0) <= 2 * _CHAIN_TOL
    # A scalar delta on one unbatched image; a single-channel image is left alone.
    one = aug.adjust_hue(jnp.asarray(image, jnp.float32), 1 / 3)
    np.testing.assert_allclose(one, out[0], atol=_CHAIN_TOL, rtol=0)
    mono = jnp.full((1, 2, 2, 1), 0.3, jnp.float32)
    np.testing.assert_array_equal(aug.adjust_hue(mono, jnp.asarray([0.2])), mono)


def test_flip_decision_is_the_documented_per_image_draw():
    batch = 64
    x = jnp.asarray(np.random.RandomState(5).rand(batch, 3, 4, 3).astype(np.float32))
    rng = jax.random.key(7)
    out = np.asarray(jax.jit(lambda r, x: aug.random_flip_left_right(r, x, prob=0.3))(rng, x))
    # Independent formula: image i flips iff U(split(rng, B)[i]) < prob.
    keys = jax.random.split(rng, batch)
    expected = np.array([float(jax.random.uniform(k, (), jnp.float32)) < 0.3 for k in keys])
    xn = np.asarray(x)
    flipped = np.array([np.array_equal(o, r[:, ::-1]) for o, r in zip(out, xn)])
    same = np.array([np.array_equal(o, r) for o, r in zip(out, xn)])
    assert np.all(flipped ^ same)
    np.testing.assert_array_equal(flipped, expected)
    assert 0 < flipped.sum() < batch


def test_rgb_to_grayscale_agrees_with_dm_pix():
    x = jnp.asarray(np.random.RandomState(6).rand(3, 4, 5, 3).astype(np.float32))
    ours = aug.rgb_to_grayscale(x)
    # Three products summed in another order: <= 3 eps apart.
    np.testing.assert_allclose(ours, pix.rgb_to_grayscale(x), atol=3 * F32_EPS, rtol=0)
    np.testing.assert_allclose(ours[0, 0, 0, 0], x[0, 0, 0] @ np.array(aug.LUMA_WEIGHTS), atol=1e-7)


def test_brightness_hand_computed():
    image = jnp.asarray([[[[0.2], [0.5], [0.9]]]], jnp.float32)  # [1, 1, 3, 1]
    out = aug.adjust_brightness(image, jnp.asarray([1.5]))
    np.testing.assert_allclose(out[0, 0, :, 0], [0.3, 0.75, 1.0], atol=F32_EPS, rtol=0)


def test_contrast_hand_computed_luma_mean():
    # Two RGB pixels; lumas 0.2989 * 0.8 + 0.587 * 0.2 + 0.114 * 0.1 = 0.36792 and
    # 0.2989 * 0.2 + 0.587 * 0.6 + 0.114 * 0.4 = 0.45758, mean luma m = 0.41275.
    image = np.array([[[[0.8, 0.2, 0.1], [0.2, 0.6, 0.4]]]], np.float32)  # [1, 1, 2, 3]
    m = 0.41275
    out = np.asarray(aug.adjust_contrast(jnp.asarray(image), jnp.asarray([0.5])))
    np.testing.assert_allclose(out, m + 0.5 * (image - m), atol=f32_sum_tol(6), rtol=0)
    # Not dm_pix's convention (tf.image.adjust_contrast: each channel around its own mean).
    theirs = np.asarray(pix.adjust_contrast(jnp.asarray(image), 0.5))
    assert np.max(np.abs(out - theirs)) > 0.05
    # On one channel the luma is the image and both conventions agree.
    mono = jnp.asarray(np.random.RandomState(8).rand(2, 6, 6, 1).astype(np.float32))
    factors = jnp.asarray([0.4, 1.6])
    ours = aug.adjust_contrast(mono, factors)
    theirs = jnp.clip(pix.adjust_contrast(mono, factors[:, None, None, None]), 0.0, 1.0)
    np.testing.assert_allclose(ours, theirs, atol=2 * f32_sum_tol(36), rtol=0)


def test_gaussian_blur_kernel_is_dm_pix_kernel_with_reflect_padding():
    x = jnp.asarray(np.random.RandomState(9).rand(2, 9, 11, 3).astype(np.float32))
    sigmas = jnp.asarray([0.6, 1.7])
    ours = np.asarray(aug.gaussian_blur_fixed(x, sigmas, 5))
    padded = jnp.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    for b in range(2):
        theirs = pix.gaussian_blur(padded[b], float(sigmas[b]), 5, padding="VALID")
        # Two 5-tap passes (10 products summed) in another order.
        np.testing.assert_allclose(ours[b], theirs, atol=f32_sum_tol(10), rtol=0)
        # dm_pix's default zero 'SAME' padding agrees only away from the border.
        same = np.asarray(pix.gaussian_blur(x[b], float(sigmas[b]), 5))
        np.testing.assert_allclose(ours[b, 2:-2, 2:-2], same[2:-2, 2:-2], atol=f32_sum_tol(10))
        assert np.max(np.abs(ours[b, 0] - same[0])) > 0.05


@pytest.mark.parametrize("name", ["rgb_to_hsv", "hsv_to_rgb"])
def test_color_conversions_reject_wrong_channel_count(name):
    with pytest.raises(ValueError, match="3 channels"):
        getattr(aug, name)(jnp.zeros((2, 2, 1)))
