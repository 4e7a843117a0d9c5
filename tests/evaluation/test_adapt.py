"""adapt_images: identity, constants, block means, crops, channel conversions, dtypes, errors."""

import jax
import numpy as np
import pytest

from ssljax.evaluation.adapt import adapt_images, resize_matrix


def random_uint8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_matching_shape_is_identity():
    x = random_uint8((3, 28, 28, 1))
    y = adapt_images(x, (28, 28, 1))
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y, x)
    # Grey [N, h, w] input gains its channel axis and nothing else.
    np.testing.assert_array_equal(adapt_images(x[..., 0], (28, 28, 1)), x)


@pytest.mark.parametrize(
    "size, target", [((56, 56, 3), (28, 28, 3)), ((17, 40, 1), (32, 32, 1)), ((9, 5, 3), (4, 7, 3))]
)
def test_constant_image_stays_constant(size, target):
    x = np.full((2, *size), 173, np.uint8)
    y = adapt_images(x, target)
    assert y.shape == (2, *target)
    np.testing.assert_array_equal(y, 173)


def test_2x_downscale_is_block_means():
    x = random_uint8((4, 56, 56, 3), seed=1)
    means = x.reshape(4, 28, 2, 28, 2, 3).astype(np.float64).mean(axis=(2, 4))
    # Means of four integers are multiples of 0.25, exact in float32; rounding is half to even.
    np.testing.assert_array_equal(adapt_images(x, (28, 28, 3)), np.rint(means))


def test_downscale_is_area_average():
    # Independent form of the area filter: split every pixel into equal sub-pixels so that
    # input and output pixel edges fall on the sub-pixel grid, then average whole blocks.
    x = np.random.default_rng(2).random((1, 50, 20, 1))
    fine = np.repeat(np.repeat(x, 14, axis=1), 2, axis=2)  # 700 x 40 = lcm(50, 28) x lcm(20, 8)
    ref = fine.reshape(1, 28, 25, 8, 5, 1).mean(axis=(2, 4))
    ours = np.einsum("ih,nhwc,jw->nijc", resize_matrix(50, 28), x, resize_matrix(20, 8))
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_upscale_matches_linear_resize_of_jax():
    x = np.random.default_rng(3).random((2, 11, 11, 1)).astype(np.float32)
    rows = resize_matrix(11, 28)
    ours = np.einsum("ih,nhwc,jw->nijc", rows, x, rows)
    ref = np.asarray(jax.image.resize(x, (2, 28, 28, 1), "linear"))
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_aspect_kept_and_centre_crop():
    # 28 x 56 onto 28 x 28: the height already fits, so the result is the middle 28 columns.
    x = random_uint8((2, 28, 56, 1), seed=4)
    np.testing.assert_array_equal(adapt_images(x, (28, 28, 1)), x[:, :, 14:42])
    # 56 x 112 onto 28 x 28: halve both sides (block means), then the middle columns.
    big = random_uint8((1, 56, 112, 1), seed=5)
    means = big.reshape(1, 28, 2, 56, 2, 1).astype(np.float64).mean(axis=(2, 4))
    np.testing.assert_array_equal(adapt_images(big, (28, 28, 1)), np.rint(means[:, :, 14:42]))


def test_channel_conversions_by_hand():
    rgb = np.array([[[[10, 200, 30]]], [[[255, 0, 0]]]], np.uint8)  # [2, 1, 1, 3]
    grey = adapt_images(rgb, (1, 1, 1))
    # BT.601: 0.299 * 10 + 0.587 * 200 + 0.114 * 30 = 123.81; 0.299 * 255 = 76.245.
    np.testing.assert_array_equal(grey[:, 0, 0, 0], [124, 76])
    g = np.array([[[[7]]], [[[250]]]], np.uint8)
    np.testing.assert_array_equal(adapt_images(g, (1, 1, 3))[:, 0, 0], [[7, 7, 7], [250] * 3])
    rgba = np.array([[[[1, 2, 3, 0]]]], np.uint8)
    np.testing.assert_array_equal(adapt_images(rgba, (1, 1, 3))[0, 0, 0], [1, 2, 3])
    # RGBA -> grey drops alpha, then takes the luma: 0.299 + 1.174 + 0.342 = 1.815.
    np.testing.assert_array_equal(adapt_images(rgba, (1, 1, 1))[0, 0, 0], [2])


def test_float_input_equals_uint8_over_255():
    x = random_uint8((3, 40, 30, 3), seed=6)
    for target in [(40, 30, 3), (28, 28, 3), (28, 28, 1), (64, 64, 3)]:
        from_uint8 = adapt_images(x, target).astype(int)
        for dtype in (np.float32, np.float64):
            from_float = adapt_images(x.astype(dtype) / 255, target).astype(int)
            # x / 255 * 255 can land a hair below a half and round the other way.
            assert np.abs(from_float - from_uint8).max() <= 1
            assert np.mean(from_float != from_uint8) < 0.01


@pytest.mark.parametrize(
    "images, shape, match",
    [
        (np.zeros((2, 8, 8, 1), np.int32), (8, 8, 1), "uint8 .* or float .* got dtype int32"),
        (
            np.full((2, 8, 8, 1), 2.0),
            (8, 8, 1),
            r"float images must have finite values in \[0, 1\]",
        ),
        (np.full((2, 8, 8, 1), np.nan), (8, 8, 1), "finite values"),
        (np.zeros((8, 8), np.uint8), (8, 8, 1), r"\[N, h, w, c\] or \[N, h, w\]"),
        (np.zeros((2, 8, 8, 5), np.uint8), (8, 8, 3), "cannot convert images with 5 channels to 3"),
        (np.zeros((2, 8, 8, 3), np.uint8), (8, 8), "image_shape must be"),
    ],
)
def test_errors(images, shape, match):
    with pytest.raises(ValueError, match=match) as info:
        adapt_images(images, shape)
    assert "\n" not in str(info.value)
