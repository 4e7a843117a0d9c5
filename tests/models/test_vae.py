"""The latent-variable models: Locatello et al.'s encoder/decoder shapes, the sown layers the
feature extraction reads, the phase-wise transposed convolution, and the encoder cut out of a
network as checkpoint evaluation does."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.models import ENCODERS, build_encoder, encoder_layer_names, extract_features
from ssljax.models.vae import (
    SubpixelConvTranspose,
    TCDiscriminator,
    VAEDecoder,
    VAEEncoder,
    VAENetwork,
    phase_taps,
)
from tests.tolerances import assert_close, f32_reorder_rtol


@pytest.fixture(scope="module")
def network():
    """The default (paper-sized) network and its variables on 64x64x1 inputs."""
    net = VAENetwork(encoder=VAEEncoder(), decoder=VAEDecoder())
    x = jnp.zeros((2, 64, 64, 1))
    variables = jax.jit(lambda r: net.init(r, x, train=False))(jax.random.PRNGKey(0))
    return net, variables


def test_locatello_architecture_shapes_and_parameter_count(network):
    net, variables = network
    p = variables["params"]
    enc, dec = p["encoder"], p["decoder"]
    assert [enc[f"conv{i}"]["kernel"].shape for i in range(1, 5)] == [
        (4, 4, 1, 32),
        (4, 4, 32, 32),
        (4, 4, 32, 64),
        (4, 4, 64, 64),
    ]
    assert enc["dense"]["kernel"].shape == (4 * 4 * 64, 256)
    assert enc["mean_head"]["kernel"].shape == enc["log_var_head"]["kernel"].shape == (256, 10)
    assert dec["fc1"]["kernel"].shape == (10, 256)
    assert dec["fc2"]["kernel"].shape == (256, 4 * 4 * 64)
    assert [dec[n]["kernel"].shape for n in ("upconv1", "upconv2", "upconv3", "output")] == [
        (4, 4, 64, 64),
        (4, 4, 64, 32),
        (4, 4, 32, 32),
        (4, 4, 32, 1),
    ]
    assert set(variables) == {"params"}  # no normalisation layers, no batch statistics
    x = jax.random.uniform(jax.random.PRNGKey(1), (2, 64, 64, 1))
    out = jax.jit(lambda v, x: net.apply(v, x, train=False))(variables, x)
    assert out["mean"].shape == out["log_var"].shape == out["features"].shape == (2, 10)
    assert out["logits"].shape == (2, 64, 64, 1)
    assert VAEDecoder().output_size() == (64, 64)


def test_encoder_sows_layers_for_feature_extraction(network):
    net, variables = network
    encoder = VAEEncoder()
    enc_vars = {"params": variables["params"]["encoder"]}
    sample = jax.ShapeDtypeStruct((1, 64, 64, 1), jnp.float32)
    assert encoder_layer_names(encoder, enc_vars, sample) == [
        "block1",
        "block2",
        "block3",
        "block4",
        "fc",
        "mean",
    ]
    x = jax.random.uniform(jax.random.PRNGKey(2), (3, 64, 64, 1))
    block2 = extract_features(encoder, enc_vars, x, layer="block2", grid=2)
    assert block2.shape == (3, 2 * 2 * 32)
    mean = extract_features(encoder, enc_vars, x, layer="mean")
    # The encoder's output is the posterior mean, the network's 'features'.
    np.testing.assert_allclose(mean, encoder.apply(enc_vars, x, train=False), rtol=1e-6)
    np.testing.assert_allclose(
        mean, net.apply(variables, x, train=False)["features"], rtol=1e-5, atol=1e-6
    )


def test_registered_as_an_encoder_and_cut_out_like_checkpoint_eval(network):
    from ssljax.evaluation.checkpoint_eval import encoder_of

    assert ENCODERS["vae_conv"] is VAEEncoder
    enc = build_encoder("vae_conv", latent_dim=4, conv_batch_chunk=1)
    assert isinstance(enc, VAEEncoder) and enc.latent_dim == 4
    net, variables = network

    class Setup:
        eval_model = net

    encoder, enc_vars = encoder_of(Setup, variables["params"], {})
    x = jax.random.uniform(jax.random.PRNGKey(3), (2, 64, 64, 1))
    mean, log_var = net.apply(variables, x, train=False, method="encode")
    np.testing.assert_allclose(encoder.apply(enc_vars, x, train=False), mean, rtol=1e-5, atol=1e-6)
    assert log_var.shape == (2, 10)


def test_batch_chunked_convolutions_give_the_same_posterior(network):
    _, variables = network
    x = jax.random.uniform(jax.random.PRNGKey(4), (5, 64, 64, 1))
    enc_vars = {"params": variables["params"]["encoder"]}
    whole = VAEEncoder(conv_batch_chunk=0).apply(enc_vars, x, train=False)
    chunked = VAEEncoder(conv_batch_chunk=2).apply(enc_vars, x, train=False)
    # Longest reduction: the dense layer's and conv4's 1024 inputs.
    assert_close(chunked, whole, rtol=f32_reorder_rtol(1024))


def test_phase_taps_of_the_default_upconvolution():
    # 4x4 stride 2 'SAME': even outputs read inputs (m-1, m) with taps (0, 2), odd outputs
    # read (m, m+1) with taps (1, 3).
    assert phase_taps(4, 2) == [(0, 2, -1), (1, 2, 0)]
    assert phase_taps(1, 2) == [(0, 1, 0), (0, 0, 0)]


CASES = [(4, 2), (3, 2), (1, 2), (3, 3)]


def test_phase_transposed_convolution_equals_flax_conv_transpose():
    """Same parameters, same initial values from the same key, same outputs as
    ``nn.ConvTranspose(padding='SAME')`` for even/odd kernels, strides 2-4, 1-tap phases."""
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 6, 3))

    def compare(key):
        out = []
        for kernel, stride in CASES:
            ref = nn.ConvTranspose(7, (kernel, kernel), (stride, stride), padding="SAME")
            ours = SubpixelConvTranspose(7, kernel, stride, method="phases")
            params = ref.init(key, x)
            mine = ours.init(key, x)
            init_diff = jnp.max(jnp.abs(mine["params"]["kernel"] - params["params"]["kernel"]))
            params = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(key, a.shape), params)
            want = ref.apply(params, x)
            out.append((init_diff, want.shape[1:3], jnp.max(jnp.abs(ours.apply(params, x) - want))))
        return out

    results = jax.jit(compare)(jax.random.PRNGKey(1))
    for (kernel, stride), (init_diff, size, diff) in zip(CASES, results):
        assert tuple(size) == (5 * stride, 6 * stride)
        assert float(init_diff) == 0.0
        assert float(diff) < 1e-5, (kernel, stride, float(diff))


def test_tc_discriminator_and_bad_inputs():
    disc = TCDiscriminator(hidden=(8, 8))
    z = jnp.ones((4, 10))
    params = disc.init(jax.random.PRNGKey(0), z)
    assert disc.apply(params, z).shape == (4, 2)
    assert len(params["params"]) == 3
    shapes = jax.eval_shape(TCDiscriminator().init, jax.random.PRNGKey(0), z)["params"]
    assert [shapes[f"fc{i}"]["kernel"].shape[1] for i in range(1, 7)] == [1000] * 6
    assert shapes["logits"]["kernel"].shape == (1000, 2)
    with pytest.raises(ValueError, match="expects \\[B, H, W, C\\]"):
        VAEEncoder().init(jax.random.PRNGKey(0), jnp.zeros((64, 64, 1)), train=False)
    with pytest.raises(ValueError, match="expects \\[B, D\\]"):
        VAEDecoder().init(jax.random.PRNGKey(0), jnp.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="method='fft' is invalid"):
        SubpixelConvTranspose(2, method="fft").init(jax.random.PRNGKey(0), jnp.zeros((1, 2, 2, 1)))
