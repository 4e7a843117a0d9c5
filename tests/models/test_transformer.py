"""Tests for ``ssljax.models.transformer``: the pixel tokens, the causal mask, sown layers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.models import encoder_layer_names, extract_features
from ssljax.models.transformer import (
    PixelNetwork,
    PixelTransformer,
    batch_chunked_attention,
    causal_mask,
    downsample_pixels,
    image_tokens,
    num_tokens,
    quantize_pixels,
)
from tests.tolerances import f32_sum_tol

TINY = dict(width=16, depth=3, num_heads=2, mlp_ratio=2)


def init(model, x):
    return model.init(jax.random.PRNGKey(0), x, train=False)


# ---------------------------------------------------------------------------------------------
# Tokens.


def test_quantize_levels_hand_checked():
    # K = 8: level k holds [k/8, (k+1)/8); 1.0 is the top level.
    x = np.array([0.0, 0.1249, 0.125, 0.2, 0.5, 0.874, 0.875, 0.99, 1.0], np.float32)
    np.testing.assert_array_equal(quantize_pixels(x, 8), [0, 0, 1, 1, 4, 6, 7, 7, 7])
    # K = 2: a threshold at 0.5.
    np.testing.assert_array_equal(quantize_pixels(x, 2), [0, 0, 0, 0, 1, 1, 1, 1, 1])


@pytest.mark.parametrize("levels", [2, 8, 16, 256])
def test_quantize_uint8_matches_integer_arithmetic(levels):
    """Every uint8 value against exact integer arithmetic: floor(v K / 255), top clipped."""
    values = np.arange(256, dtype=np.uint8)
    expected = np.minimum(values.astype(np.int64) * levels // 255, levels - 1)
    np.testing.assert_array_equal(quantize_pixels(values, levels), expected)
    # Each level is used, and a float image gives the same levels as its uint8 image.
    assert set(np.asarray(quantize_pixels(values, levels)).tolist()) == set(range(levels))
    np.testing.assert_array_equal(
        quantize_pixels(values.astype(np.float32) / 255.0, levels), expected
    )


def test_downsample_is_the_mean_of_each_cell():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    # Cells {0,1,4,5}, {2,3,6,7}, {8,9,12,13}, {10,11,14,15}.
    np.testing.assert_allclose(
        downsample_pixels(x, 2)[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]], rtol=0, atol=0
    )
    np.testing.assert_array_equal(downsample_pixels(x, 1), x)
    with pytest.raises(ValueError, match=r"downsample=3 does not divide the 4x4 images; valid"):
        downsample_pixels(x, 3)


def test_tokens_are_raster_order_of_the_pooled_levels():
    """Token i * (W/d) + j is row i, column j of the pooled image."""
    levels = (np.arange(14 * 14) * 5 % 8).reshape(14, 14)
    pooled = (levels + 0.5) / 8.0  # the middle of each level's bin
    image = np.repeat(np.repeat(pooled, 2, axis=0), 2, axis=1)[None, :, :, None]
    tokens = image_tokens(image.astype(np.float32), num_levels=8, downsample=2)
    assert tokens.shape == (1, 196) and tokens.dtype == jnp.int32
    np.testing.assert_array_equal(tokens[0], levels.reshape(-1))
    assert num_tokens((28, 28, 1), 2) == 196 and num_tokens((28, 28, 1), 1) == 784


def test_causal_mask_is_the_lower_triangle():
    mask = np.asarray(causal_mask(4))[0, 0]
    np.testing.assert_array_equal(mask, np.tril(np.ones((4, 4), bool)))


@pytest.mark.parametrize("chunk", [0, 3, 4, 10, 20])
def test_batch_chunked_attention_is_the_whole_batch_attention(chunk):
    """Slices of ``chunk`` examples (2 full slices and a remainder of 2 for chunk 4) give the
    one-call result: each entry is a softmax over 6 keys of 4-term dot products, then a sum
    of 6 weighted values (float32 rounding of reordered sums at most)."""
    keys = jax.random.split(jax.random.PRNGKey(5), 3)
    q, k, v = (jax.random.normal(key, (10, 6, 2, 4)) for key in keys)
    mask = causal_mask(6)
    expected = jax.nn.dot_product_attention(q, k, v, mask=mask)
    got = jax.jit(lambda q, k, v: batch_chunked_attention(q, k, v, mask, chunk=chunk))(q, k, v)
    magnitude = float(np.abs(v).max()) * 4.0
    np.testing.assert_allclose(got, expected, rtol=0, atol=f32_sum_tol(6 + 4, magnitude, ulps=4))
    with pytest.raises(ValueError, match="one shared mask"):
        batch_chunked_attention(q, k, v, jnp.ones((10, 1, 6, 6), bool), chunk=4)


# ---------------------------------------------------------------------------------------------
# The model: one causal and one bidirectional model over 8x8 images pooled to 4x4 (16 tokens),
# initialised once for the module.

LENGTH = 16


BATCH = 4


@pytest.fixture(scope="module")
def models():
    """``{causal: (model, variables, encode)}``; ``encode(variables, x)`` is jitted and
    returns ``(encode(x), {sown name: value})``."""
    out = {}
    for causal in (True, False):
        model = PixelTransformer(**TINY, num_levels=8, downsample=2, causal=causal)
        tokens = jnp.zeros((1, LENGTH), jnp.int32)
        variables = jax.jit(lambda k, x, m=model: m.init(k, x, train=False))(
            jax.random.PRNGKey(0), tokens
        )

        def encode(variables, x, m=model):
            out, state = m.apply(
                variables, x, method=PixelTransformer.encode, mutable=["intermediates"]
            )
            return out, {k: v[-1] for k, v in state["intermediates"].items()}

        out[causal] = (model, variables, jax.jit(encode))
    return out


def test_images_and_their_tokens_give_the_same_features(models):
    _, variables, encode = models[False]
    images = jax.random.uniform(jax.random.PRNGKey(1), (BATCH, 8, 8, 1))
    tokens = image_tokens(images, num_levels=8, downsample=2)
    uint8 = np.asarray(np.round(images * 255), np.uint8)
    np.testing.assert_array_equal(
        image_tokens(uint8, num_levels=8, downsample=2),
        image_tokens(jnp.asarray(uint8, jnp.float32) / 255, num_levels=8, downsample=2),
    )
    (a, _), (b, _) = encode(variables, images), encode(variables, tokens)
    np.testing.assert_array_equal(a["tokens"], b["tokens"])
    assert a["tokens"].shape == (BATCH, LENGTH, TINY["width"])
    assert a["pooled"].shape == (BATCH, TINY["width"])


def _jacobian(model, variables, encode):
    """``d tokens_out[0, t, :] / d embedded[0, s, :]``, absolute values summed over the
    feature axes: ``[T, T]`` (output t, input token s)."""
    del encode
    tokens = jax.random.randint(jax.random.PRNGKey(2), (1, LENGTH), 0, 8)
    embedded = model.apply(variables, tokens, method=PixelTransformer.embed)

    def out(e):
        return model.apply(variables, e, method=PixelTransformer.encode_embedded)["tokens"]

    jac = jax.jit(jax.jacrev(out))(embedded)  # [1, T, D, 1, T, D]
    return np.abs(np.asarray(jac)[0, :, :, 0]).sum(axis=(1, 3))


def test_causal_output_has_zero_gradient_from_its_own_and_later_tokens(models):
    """Output t of the causal model predicts token t: the gradient with respect to input
    tokens t, t+1, ... is exactly zero, and nonzero for every earlier token."""
    jac = _jacobian(*models[True])
    for t in range(LENGTH):
        assert np.all(jac[t, t:] == 0.0), t
        assert np.all(jac[t, :t] > 0.0), t


def test_bidirectional_output_depends_on_every_token(models):
    jac = _jacobian(*models[False])
    assert np.all(jac > 0.0)


def test_causal_first_output_ignores_the_image(models):
    """Position 0 sees only the start token: equal for any two token sequences."""
    _, variables, encode = models[True]
    a = jax.random.randint(jax.random.PRNGKey(3), (BATCH // 2, LENGTH), 0, 8)
    both = jnp.concatenate([a, (a + 3) % 8])
    out, _ = encode(variables, both)
    np.testing.assert_array_equal(out["tokens"][:2, 0], out["tokens"][2:, 0])
    assert not np.allclose(out["tokens"][:2, 1], out["tokens"][2:, 1])


def test_sown_layers_and_their_shapes(models):
    model, variables, encode = models[True]
    images = jax.random.uniform(jax.random.PRNGKey(4), (BATCH, 8, 8, 1))
    sample = jax.ShapeDtypeStruct((1, 8, 8, 1), jnp.float32)
    assert encoder_layer_names(model, variables, sample) == ["layer1", "layer2", "layer3", "pooled"]
    out, sown = encode(variables, images)
    for name in ("layer1", "layer2", "layer3", "pooled"):
        assert sown[name].shape == (BATCH, TINY["width"]), name
    layer2 = jax.jit(lambda v, x: extract_features(model, v, x, layer="layer2"))(variables, images)
    np.testing.assert_array_equal(layer2, sown["layer2"])
    # 'pooled' is the mean over the positions of the final (normalised) token features, whose
    # entries are O(1): a reordered float32 mean of 16 of them.
    np.testing.assert_allclose(
        out["pooled"],
        np.mean(np.asarray(out["tokens"], np.float64), axis=1),
        rtol=0,
        atol=f32_sum_tol(LENGTH, float(np.abs(out["tokens"]).max())),
    )
    np.testing.assert_array_equal(out["pooled"], sown["pooled"])
    # Blocks transform their input: successive layers differ.
    assert not np.allclose(sown["layer1"], sown["layer2"])


def test_pixel_network_logits_and_parameter_names():
    """Shapes only (``jax.eval_shape``: traced, not computed)."""
    net = PixelNetwork(encoder=PixelTransformer(**TINY, num_levels=5, causal=True))
    images = jnp.zeros((2, 8, 8, 1))
    variables = jax.eval_shape(
        lambda k, x: net.init(k, x, train=False), jax.random.PRNGKey(0), images
    )
    assert sorted(variables) == ["params"]
    assert sorted(variables["params"]) == ["encoder", "head"]
    out = jax.eval_shape(
        lambda v, x: net.apply(v, x, train=True), variables, jnp.zeros((2, 16), jnp.int32)
    )
    assert out["features"].shape == (2, 16)
    assert out["logits"].shape == (2, 16, 5) and out["logits"].dtype == jnp.float32
    # The vocabulary has num_levels + 1 symbols (the start / [MASK] token).
    embedding = variables["params"]["encoder"]["token_embedding"]["embedding"]
    assert embedding.shape == (6, 16)


@pytest.mark.parametrize(
    "kwargs,x,match",
    [
        (dict(width=16, num_heads=3), jnp.zeros((1, 8, 8, 1)), r"num_heads=3 .*valid: one of \["),
        (dict(num_levels=1), jnp.zeros((1, 8, 8, 1)), r"num_levels=1 is invalid; valid: an"),
        (dict(downsample=0), jnp.zeros((1, 8, 8, 1)), r"downsample=0 is invalid; valid: an"),
        (dict(depth=0), jnp.zeros((1, 8, 8, 1)), r"depth=0 is invalid; valid: an int >= 1"),
        (
            dict(attention_batch_chunk=-2),
            jnp.zeros((1, 8, 8, 1)),
            r"attention_batch_chunk=-2 is invalid; valid: -1 \(auto\)",
        ),
        ({}, jnp.zeros((1, 8, 8, 3)), r"images have 3 channels; valid: 1"),
        ({}, jnp.zeros((1, 8, 8)), r"shape \(1, 8, 8\) .* is invalid; valid: images"),
        (dict(downsample=3), jnp.zeros((1, 8, 8, 1)), r"downsample=3 does not divide .* valid"),
    ],
)
def test_bad_settings_are_one_line_errors(kwargs, x, match):
    model = PixelTransformer(**{**TINY, **kwargs})
    with pytest.raises(ValueError, match=match) as err:
        init(model, x)
    assert "\n" not in str(err.value)
