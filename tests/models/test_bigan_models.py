"""BiGAN networks: shapes and variable layout, the encoder cut out for evaluation, cross-replica
BatchNorm under a mapped axis, and the joint discriminator's independence properties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.models import ConvDecoder, ConvNet
from ssljax.models.bigan import BiGANNetwork, JointDiscriminator, pack_pair
from ssljax.models.network import encoder_variables
from tests.tolerances import assert_close, f32_reorder_rtol

RNG = np.random.default_rng(0)
LATENT = 6


def network(axis_name=None, norm="batch"):
    return BiGANNetwork(
        encoder=ConvNet(widths=(4, 8), strides=(2, 2), axis_name=axis_name),
        generator=ConvDecoder(
            widths=(8, 4),
            upsample=(2, 2),
            out_channels=1,
            output_size=(28, 28),
            start_shape=(7, 7, 8),
            norm=norm,
            output_activation="sigmoid",
            axis_name=axis_name,
        ),
        latent_dim=LATENT,
    )


def images(n):
    return jnp.asarray(RNG.uniform(size=(n, 28, 28, 1)), jnp.float32)


def test_network_outputs_methods_and_variable_layout():
    model = network()
    x = images(3)
    variables = model.init(jax.random.PRNGKey(0), x[:1], train=False)
    assert set(variables["params"]) == {"encoder", "latent_head", "generator"}
    assert set(variables["batch_stats"]) == {"encoder", "generator"}
    out = model.apply(variables, x, train=False)
    assert set(out) == {"features", "z"}
    assert out["features"].shape == (3, 8) and out["z"].shape == (3, LATENT)
    # encode / generate are the halves of the network.
    z = model.apply(variables, x, train=False, method="encode")
    np.testing.assert_array_equal(z, out["z"])
    prior_z = jnp.asarray(RNG.normal(size=(5, LATENT)), jnp.float32)
    generated = model.apply(variables, prior_z, train=False, method="generate")
    assert generated.shape == (5, 28, 28, 1) and generated.dtype == jnp.float32
    assert float(generated.min()) >= 0.0 and float(generated.max()) <= 1.0
    both = model.apply(variables, x, train=False, prior_z=prior_z)
    np.testing.assert_array_equal(both["generated"], generated)
    # The latent head is a Dense layer on the pooled features.
    head = variables["params"]["latent_head"]
    np.testing.assert_allclose(
        out["z"], out["features"] @ head["kernel"] + head["bias"], rtol=1e-5, atol=1e-6
    )
    # Evaluation cuts the plain encoder out (checkpoint_eval.encoder_of).
    features = model.encoder.apply(encoder_variables(variables), x, train=False)
    np.testing.assert_array_equal(features, out["features"])
    with pytest.raises(ValueError, match=f"latents \\[B, {LATENT}\\]"):
        model.apply(variables, prior_z[:, :3], train=False, method="generate")


def test_train_mode_batch_norm_is_cross_replica_under_the_axis():
    """8 devices of 2 images each, BatchNorm over the named axis, give the outputs and running
    statistics of one device holding all 16."""
    x = images(16)
    prior_z = jnp.asarray(RNG.normal(size=(16, LATENT)), jnp.float32)
    variables = network().init(jax.random.PRNGKey(0), x[:1], train=False)

    def apply(model, v, x, z):
        return model.apply(v, x, train=True, prior_z=z, mutable=["batch_stats"])

    one, one_stats = jax.jit(lambda v, x, z: apply(network(), v, x, z))(variables, x, prior_z)
    mapped, mapped_stats = jax.pmap(
        lambda v, x, z: apply(network("batch"), v, x, z),
        axis_name="batch",
        in_axes=(None, 0, 0),
    )(variables, x.reshape(8, 2, 28, 28, 1), prior_z.reshape(8, 2, LATENT))
    rtol = f32_reorder_rtol(16 * 14 * 14)
    for key in ("features", "z", "generated"):
        assert_close(np.asarray(mapped[key]).reshape(one[key].shape), one[key], rtol=rtol)
    for a, b in zip(jax.tree.leaves(mapped_stats), jax.tree.leaves(one_stats)):
        for device in range(8):
            assert_close(a[device], b, rtol=rtol, atol=rtol)
    # Without the axis every device would normalise its own two images: not the same.
    local, _ = jax.pmap(lambda v, x, z: apply(network(), v, x, z), in_axes=(None, 0, 0))(
        variables, x.reshape(8, 2, 28, 28, 1), prior_z.reshape(8, 2, LATENT)
    )
    assert not np.allclose(np.asarray(local["z"]).reshape(16, LATENT), one["z"], atol=1e-3)


def discriminator(unary=False, norm="none"):
    return JointDiscriminator(
        image_shape=(28, 28, 1),
        latent_dim=LATENT,
        x_widths=(4, 8),
        z_hidden=(8,),
        joint_hidden=(8,),
        unary=unary,
        norm=norm,
    )


@pytest.mark.parametrize("norm", ["none", "layer"])
def test_discriminator_scores_pairs_one_by_one(norm):
    disc = discriminator(unary=True, norm=norm)
    x = images(4)
    z = jnp.asarray(RNG.normal(size=(4, LATENT)), jnp.float32)
    variables = disc.init(jax.random.PRNGKey(0), jnp.zeros((1, 28 * 28 + LATENT)))
    assert set(variables) == {"params"}  # no batch statistics
    params = variables["params"]
    assert {"joint_logit", "x_logit", "z_logit"} <= set(params)
    out = disc.apply(variables, x, z)
    assert {k: v.shape for k, v in out.items()} == {"joint": (4,), "x": (4,), "z": (4,)}
    # The packed input is the same pairs.
    packed = disc.apply(variables, pack_pair(x, z))
    for key in out:
        np.testing.assert_array_equal(packed[key], out[key])
    # Each pair is scored alone: scoring a single pair gives its row of the batch.
    single = disc.apply(variables, x[2:3], z[2:3])
    for key in out:
        np.testing.assert_allclose(single[key], out[key][2:3], rtol=1e-5, atol=1e-6)
    # The unary scores see one side of the pair only; the joint score sees both.
    other_z = disc.apply(variables, x, z[::-1])
    other_x = disc.apply(variables, x[::-1], z)
    np.testing.assert_array_equal(other_z["x"], out["x"])
    np.testing.assert_array_equal(other_x["z"], out["z"])
    assert not np.allclose(other_z["joint"], out["joint"])
    assert not np.allclose(other_x["x"], out["x"])


def test_discriminator_without_unary_and_bad_inputs():
    disc = discriminator()
    variables = disc.init(jax.random.PRNGKey(0), jnp.zeros((1, 28 * 28 + LATENT)))
    assert not {"x_logit", "z_logit"} & set(variables["params"])
    out = disc.apply(variables, images(2), jnp.zeros((2, LATENT)))
    assert set(out) == {"joint"} and out["joint"].shape == (2,)
    for args in [(jnp.zeros((2, 28 * 28)),), (images(2), jnp.zeros((2, LATENT + 1)))]:
        with pytest.raises(ValueError, match="JointDiscriminator expects") as err:
            disc.apply(variables, *args)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="'batch'"):
        discriminator(norm="batch").init(jax.random.PRNGKey(0), jnp.zeros((1, 790)))
