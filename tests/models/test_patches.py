"""Patch grids (CPC): shapes, crops, the grid encoder, and the LayerNorm ConvNet."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ssljax.models import ConvNet, encoder_layer_names, extract_features
from ssljax.models.network import build_encoder_from_config
from ssljax.models.patches import PatchGridEncoder, extract_patches, patch_grid_shape
from tests.tolerances import assert_close, f32_sum_tol


@pytest.mark.parametrize(
    "height, size, stride, rows",
    [(28, 8, 4, 6), (32, 8, 4, 7), (256, 64, 32, 7), (224, 64, 32, 6), (29, 8, 4, 6), (8, 8, 4, 1)],
)
def test_patch_grid_shape(height, size, stride, rows):
    assert patch_grid_shape(height, height, size, stride) == (rows, rows)


def test_patch_larger_than_image_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"patch size 40 is larger than the 28x28 images") as err:
        patch_grid_shape(28, 28, 40, 4)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="patch stride=0"):
        patch_grid_shape(28, 28, 8, 0)


def test_extract_patches_are_the_image_crops():
    images = jnp.asarray(np.random.default_rng(0).normal(size=(2, 13, 11, 3)), jnp.float32)
    size, stride = 5, 3
    patches = extract_patches(images, size, stride)
    assert patches.shape == (2, 3, 3, 5, 5, 3)  # (13-5)//3+1 = 3 rows, (11-5)//3+1 = 3 cols
    for r in range(3):
        for c in range(3):
            crop = images[:, r * stride : r * stride + size, c * stride : c * stride + size]
            np.testing.assert_array_equal(np.asarray(patches[:, r, c]), np.asarray(crop))


def _grid_encoder():
    inner = ConvNet(widths=(4, 6), strides=(1, 2), norm="layer")
    return PatchGridEncoder(encoder=inner, patch_size=8, patch_stride=4), inner


def test_patch_grid_encoder_pools_per_patch_features_and_sows_grid():
    module, inner = _grid_encoder()
    images = jnp.asarray(np.random.default_rng(1).uniform(size=(3, 16, 12, 1)), jnp.float32)
    variables = module.init(jax.random.PRNGKey(0), images, train=False)
    assert set(variables) == {"params"}  # LayerNorm: no batch statistics
    pooled = module.apply(variables, images, train=True)
    grid = module.apply(variables, images, train=True, return_grid=True)
    assert pooled.shape == (3, 6) and grid.shape == (3, 3, 2, 6)
    # Each grid cell is the wrapped encoder applied to that patch alone.
    inner_vars = {"params": variables["params"]["encoder"]}
    # Other batch shapes may reorder the chain conv1 (9 terms), LayerNorm (4), conv2 (9 x 4),
    # LayerNorm (6), average pool (4 x 4), mean over the 3 x 2 grid.
    rtol = f32_sum_tol(9 + 2 * 4 + 9 * 4 + 2 * 6 + 4 * 4 + 6)
    for r, c in [(0, 0), (2, 1), (1, 0)]:
        patch = images[:, 4 * r : 4 * r + 8, 4 * c : 4 * c + 8]
        assert_close(grid[:, r, c], inner.apply(inner_vars, patch, train=False), rtol=rtol)
    assert_close(pooled, grid.mean(axis=(1, 2)), rtol=rtol)
    # Pre-cut patches (CPC's training views) give the same result as images.
    assert_close(
        module.apply(variables, extract_patches(images, 8, 4), train=True), pooled, rtol=rtol
    )
    # Linear evaluation sees exactly 'grid' and 'pooled' (not the per-patch intermediates).
    assert encoder_layer_names(module, variables, images) == ["grid", "pooled"]
    assert_close(extract_features(module, variables, images), pooled, rtol=rtol)
    assert extract_features(module, variables, images, layer="grid", grid=2).shape == (3, 24)


def test_patch_grid_encoder_keeps_batch_statistics_of_a_batchnorm_encoder():
    module = PatchGridEncoder(
        encoder=ConvNet(widths=(4,), strides=(1,)), patch_size=4, patch_stride=4
    )
    images = jnp.asarray(np.random.default_rng(2).normal(size=(2, 8, 8, 1)) + 3.0, jnp.float32)
    variables = module.init(jax.random.PRNGKey(0), images, train=False)
    _, state = module.apply(variables, images, train=True, mutable=["batch_stats"])
    mean = state["batch_stats"]["encoder"]["bn1"]["mean"]
    assert mean.shape == (4,) and not np.allclose(mean, 0.0)


def test_build_encoder_from_config_wraps_only_with_patches():
    config = ml_collections.ConfigDict(
        dict(
            model=dict(
                encoder="convnet",
                encoder_kwargs=dict(widths=(4,), strides=(1,), norm="layer"),
                conv_batch_chunk=0,
            )
        )
    )
    plain = build_encoder_from_config(config, None)
    assert isinstance(plain, ConvNet) and plain.norm == "layer"
    config.model.patches = ml_collections.ConfigDict(dict(size=8, stride=4))
    wrapped = build_encoder_from_config(config, None)
    assert isinstance(wrapped, PatchGridEncoder)
    assert (wrapped.patch_size, wrapped.patch_stride) == (8, 4)
    assert wrapped.encoder.norm == "layer"


def test_convnet_norm_choice():
    x = jnp.ones((2, 8, 8, 1))
    layer = ConvNet(widths=(4, 8), strides=(1, 2), norm="layer").init(
        jax.random.PRNGKey(0), x, train=False
    )
    assert set(layer) == {"params"}
    assert set(layer["params"]) == {"conv1", "conv2", "ln1", "ln2"}
    # Train mode needs no mutable collection and does not mix examples.
    net = ConvNet(widths=(4, 8), strides=(1, 2), norm="layer")
    both = net.apply(layer, jnp.concatenate([x, 3 * x + 1]), train=True)
    # Batch 4 against batch 2 may reorder conv1 (9), LayerNorm (4), conv2 (9 x 4), LayerNorm
    # (8) and the pool over 4 x 4.
    assert_close(
        both[:2],
        net.apply(layer, x, train=True),
        rtol=f32_sum_tol(9 + 2 * 4 + 9 * 4 + 2 * 8 + 4 * 4),
    )
    batch = ConvNet(widths=(4, 8), strides=(1, 2)).init(jax.random.PRNGKey(0), x, train=False)
    assert set(batch) == {"params", "batch_stats"}
    assert set(batch["params"]) == {"conv1", "conv2", "bn1", "bn2"}
    with pytest.raises(ValueError, match=r"unknown ConvNet norm 'group'.*'batch', 'layer'"):
        ConvNet(widths=(4,), strides=(1,), norm="group").init(jax.random.PRNGKey(0), x, train=False)
