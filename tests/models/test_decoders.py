"""ConvDecoder, ChannelWiseDense, PatchDiscriminator and ReconstructionNetwork."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.models import ConvNet, extract_features
from ssljax.models.decoders import (
    ChannelWiseDense,
    ConvDecoder,
    PatchDiscriminator,
    ReconstructionNetwork,
)
from ssljax.models.network import encoder_variables
from tests.tolerances import assert_close, f32_sum_tol

KEY = jax.random.PRNGKey(0)


def shape_of(module, x, **kwargs):
    """Output shape of ``module`` on ``x`` (init + apply traced, nothing computed)."""

    def run(x):
        variables = module.init(KEY, x, **kwargs)
        return module.apply(variables, x, **kwargs)

    return jax.eval_shape(run, jax.ShapeDtypeStruct(x.shape, jnp.float32)).shape


@pytest.mark.parametrize(
    "decoder, z_shape, out_shape",
    [
        # 7x7 map, two x2 stages: 28x28 (Fashion-MNIST block4 of the demo ConvNet).
        (ConvDecoder(widths=(8, 4), out_channels=1), (2, 7, 7, 16), (2, 28, 28, 1)),
        # 4x4 map, three stages to 32x32 RGB; the channel-wise fc layer keeps the map's shape.
        (
            ConvDecoder(widths=(8, 8, 4), out_channels=3, channel_fc=True),
            (2, 4, 4, 16),
            (2, 32, 32, 3),
        ),
        # Stages give 16x16, resized to the requested 28x28 (and per-stage factors).
        (
            ConvDecoder(widths=(8, 4), upsample=(4, 1), out_channels=2, output_size=(28, 28)),
            (2, 4, 4, 8),
            (2, 28, 28, 2),
        ),
        # A vector (VAE latent) through start_shape.
        (
            ConvDecoder(widths=(8, 4), out_channels=1, start_shape=(7, 7, 8)),
            (2, 10),
            (2, 28, 28, 1),
        ),
        # Bin logits for colorization.
        (ConvDecoder(widths=(4,), out_channels=261, norm="layer"), (2, 8, 8, 4), (2, 16, 16, 261)),
    ],
)
def test_decoder_output_shapes(decoder, z_shape, out_shape):
    assert shape_of(decoder, jnp.zeros(z_shape), train=False) == out_shape


def test_sigmoid_output_lies_in_unit_interval():
    dec = ConvDecoder(widths=(4,), out_channels=1, output_activation="sigmoid", norm="none")
    z = 10 * jax.random.normal(KEY, (2, 7, 7, 8))
    y, _ = jax.jit(lambda k, z: dec.init_with_output(k, z, train=False))(KEY, z)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_channel_wise_dense_matches_numpy_and_keeps_channels_apart():
    x = jax.random.normal(KEY, (2, 3, 4, 5))
    layer = ChannelWiseDense()
    variables = jax.jit(layer.init)(KEY, x)
    apply = jax.jit(layer.apply)
    k = np.asarray(variables["params"]["kernel"], np.float64)  # [C, n, n]
    bias = np.asarray(variables["params"]["bias"], np.float64)  # [C, n]
    xs = np.asarray(x, np.float64).reshape(2, 12, 5)
    want = np.zeros((2, 12, 5))
    for c in range(5):
        want[:, :, c] = xs[:, :, c] @ k[c] + bias[c]
    np.testing.assert_allclose(
        np.asarray(apply(variables, x)).reshape(2, 12, 5), want, rtol=1e-4, atol=1e-5
    )
    bumped = apply(variables, x.at[:, :, :, 0].add(1.0))
    diff = np.abs(np.asarray(bumped - apply(variables, x))).max(axis=(0, 1, 2))
    assert diff[0] > 0 and np.all(diff[1:] == 0)


def test_patch_discriminator_gives_one_logit_per_patch():
    assert shape_of(PatchDiscriminator(widths=(8, 16)), jnp.zeros((3, 28, 28, 1))) == (3, 7, 7)
    assert shape_of(PatchDiscriminator(widths=(8,)), jnp.zeros((3, 32, 32, 3))) == (3, 16, 16)


@pytest.fixture(scope="module")
def network():
    net = ReconstructionNetwork(
        encoder_module=ConvNet(widths=(4, 8), strides=(1, 2)),
        decoder=ConvDecoder(widths=(4,), out_channels=1, output_activation="sigmoid"),
        feature_layer="block2",
    )
    x = jax.random.uniform(KEY, (4, 12, 12, 1))
    return net, jax.jit(lambda k, x: net.init(k, x, train=False))(KEY, x), x


def test_encoder_variables_have_the_plain_encoder_layout(network):
    net, variables, x = network
    plain = ConvNet(widths=(4, 8), strides=(1, 2)).init(KEY, x, train=False)
    enc = encoder_variables(variables)
    assert jax.tree.structure(enc) == jax.tree.structure(plain)
    assert jax.tree.map(jnp.shape, enc) == jax.tree.map(jnp.shape, plain)
    # What checkpoint_eval probes is exactly the network's encoder.
    out = jax.jit(lambda v, x: net.apply(v, x, train=False))(variables, x)
    assert out["reconstruction"].shape == x.shape
    features = jax.jit(lambda v, x: extract_features(net.encoder, v, x, layer="pooled"))(enc, x)
    # Two compiled programs may reorder conv1 (9 terms), conv2 (9 x 4), the pool over 6 x 6.
    assert_close(features, out["features"], rtol=f32_sum_tol(9 + 36 + 36))


def test_train_mode_updates_the_encoder_batch_statistics(network):
    net, variables, x = network
    _, state = jax.jit(lambda v, x: net.apply(v, x, train=True, mutable=["batch_stats"]))(
        variables, x
    )
    np.testing.assert_array_equal(variables["batch_stats"]["encoder"]["bn1"]["mean"], 0.0)
    # Momentum 0.9 from zeros: 0.1 * the batch mean of conv1's output.
    conv1 = nn.Conv(4, (3, 3), padding=((1, 1), (1, 1)), use_bias=False).apply(
        {"params": variables["params"]["encoder"]["conv1"]}, x
    )
    np.testing.assert_allclose(
        state["batch_stats"]["encoder"]["bn1"]["mean"],
        0.1 * np.asarray(conv1).mean(axis=(0, 1, 2)),
        rtol=1e-4,
        atol=1e-7,
    )
    assert set(state["batch_stats"]) == {"encoder", "decoder"}


def test_unknown_feature_layer_fails_with_the_choices(network):
    net, variables, x = network
    bad = net.clone(feature_layer="block9")
    with pytest.raises(
        ValueError,
        match=r"unknown decoder feature_layer 'block9'; the encoder "
        r"sows \['block1', 'block2', 'pooled'\]",
    ):
        bad.apply(variables, x, train=False)
