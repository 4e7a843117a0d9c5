"""Critics against float64 numpy forward passes; the DIM network's local map and outputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.models import ConvNet, MLPHead, _sown_outputs
from ssljax.models.critics import (
    BilinearCritic,
    ConcatCritic,
    DIMNetwork,
    SeparableCritic,
    build_critic,
)


def np_mlp(params, x, layers):
    x = np.asarray(x, np.float64)
    for i in range(layers):
        p = params[f"hidden{i + 1}"]
        x = np.maximum(x @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"]), 0.0)
    p = params["output"]
    return x @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"])


@pytest.fixture(scope="module")
def xy():
    rng = np.random.default_rng(0)
    return (
        jnp.asarray(rng.normal(size=(5, 3)), jnp.float32),
        jnp.asarray(rng.normal(size=(4, 2)), jnp.float32),
    )


def test_separable_critic_is_a_dot_product_of_two_mlps(xy):
    x, y = xy
    critic = SeparableCritic(hidden_dim=8, embed_dim=6, layers=2)
    params = critic.init(jax.random.PRNGKey(0), x, y)["params"]
    want = np_mlp(params["g"], x, 2) @ np_mlp(params["h"], y, 2).T
    got = critic.apply({"params": params}, x, y)
    assert got.shape == (5, 4)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_bilinear_critic(xy):
    x, y = xy
    critic = BilinearCritic()
    params = critic.init(jax.random.PRNGKey(0), x, y)["params"]
    want = np.asarray(x, np.float64) @ np.asarray(params["kernel"]) @ np.asarray(y, np.float64).T
    np.testing.assert_allclose(critic.apply({"params": params}, x, y), want, rtol=1e-5, atol=1e-6)


def test_concat_critic_equals_an_mlp_on_every_concatenated_pair(xy):
    x, y = xy
    critic = ConcatCritic(hidden_dim=8, layers=2)
    params = critic.init(jax.random.PRNGKey(1), x, y)["params"]
    assert params["hidden1_kernel"].shape == (3 + 2, 8)
    mlp = {
        "hidden1": {"kernel": params["hidden1_kernel"], "bias": params["hidden1_bias"]},
        "hidden2": params["hidden2"],
        "output": params["output"],
    }
    want = np.array(
        [
            [np_mlp(mlp, np.concatenate([x[i], y[j]])[None], 2)[0, 0] for j in range(4)]
            for i in range(5)
        ]
    )
    got = critic.apply({"params": params}, x, y)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_build_critic_and_bad_inputs(xy):
    x, y = xy
    assert isinstance(build_critic("concat", hidden_dim=4, embed_dim=9, layers=1), ConcatCritic)
    with pytest.raises(ValueError, match=r"unknown critic 'mlp'; choose one of"):
        build_critic("mlp")
    with pytest.raises(ValueError, match=r"critics take x \[Kx, dx\] and y \[Ky, dy\]"):
        SeparableCritic().init(jax.random.PRNGKey(0), x[None], y)


def test_torch_init_scheme_is_uniform_within_one_over_sqrt_fan_in():
    x = jnp.zeros((2, 20), jnp.float32)
    for critic in (
        SeparableCritic(hidden_dim=256, embed_dim=32, init_scheme="torch"),
        ConcatCritic(hidden_dim=256, init_scheme="torch"),
    ):
        params = critic.init(jax.random.PRNGKey(0), x, x)["params"]
        leaves = jax.tree_util.tree_flatten_with_path(params)[0]
        layer = lambda path, kind: jax.tree_util.keystr(path[:-1]) + path[-1].key[: -len(kind)]  # noqa: E731
        kernels = {layer(k, "kernel"): v for k, v in leaves if k[-1].key.endswith("kernel")}
        biases = {layer(k, "bias"): v for k, v in leaves if k[-1].key.endswith("bias")}
        assert kernels.keys() == biases.keys() and len(kernels) >= 3
        for name, kernel in kernels.items():
            bound = 1.0 / np.sqrt(kernel.shape[0])
            assert np.abs(kernel).max() <= bound and np.abs(biases[name]).max() <= bound, name
            if biases[name].size >= 16:  # not zeros
                assert np.abs(biases[name]).max() > 0.5 * bound, name
            if kernel.size >= 256 * 256:  # std of U(-b, b) is b / sqrt(3)
                np.testing.assert_allclose(np.std(kernel), bound / np.sqrt(3), rtol=0.02)
    # Flax's default: LeCun normal kernels (std 1/sqrt(fan_in)), zero biases.
    params = SeparableCritic(hidden_dim=256).init(jax.random.PRNGKey(0), x, x)["params"]
    assert not np.any(params["g"]["hidden2"]["bias"])
    np.testing.assert_allclose(np.std(params["g"]["hidden2"]["kernel"]), 1 / 16, rtol=0.05)
    with pytest.raises(ValueError, match=r"unknown init_scheme 'glorot'; choose one of"):
        SeparableCritic(init_scheme="glorot").init(jax.random.PRNGKey(0), x, x)


@pytest.fixture(scope="module")
def dim_network():
    encoder = ConvNet(widths=(4, 8), strides=(1, 2))
    net = DIMNetwork(
        encoder=encoder,
        projector=MLPHead(hidden_dims=(6,), output_dim=5),
        local_layer="block1",
        critic_hidden=7,
        critic_embed=3,
        use_global=True,
        use_local=True,
        use_prior=True,
        prior_hidden=(4,),
    )
    images = jnp.asarray(np.random.default_rng(1).uniform(size=(3, 8, 8, 1)), jnp.float32)
    variables = jax.jit(lambda r, x: net.init(r, x, train=False))(jax.random.PRNGKey(0), images)
    return net, variables, images


def test_dim_network_outputs_and_local_map(dim_network):
    net, variables, images = dim_network
    assert set(variables) == {"params", "batch_stats"}
    # The encoder's parameters sit under 'encoder', so evaluation can cut them out.
    enc_vars = {k: v["encoder"] for k, v in variables.items()}
    sown = _sown_outputs(ConvNet(widths=(4, 8), strides=(1, 2)), enc_vars, images)
    out = net.apply(variables, images, train=False)  # evaluation: the map is recomputed
    np.testing.assert_allclose(out["local_map"], sown["block1"], rtol=1e-6)
    np.testing.assert_allclose(out["features"], sown["pooled"], rtol=1e-6)
    assert out["projection"].shape == (3, 5)
    assert out["global_query"].shape == (3, 3) and out["global_key"].shape == (3, 3)
    assert out["local_query"].shape == (3, 3) and out["local_key"].shape == (3, 64, 3)
    # Training mode reads the map the encoder sows in the same (train-mode BatchNorm) call.
    out_t, _ = net.apply(variables, images, train=True, mutable=["batch_stats", "intermediates"])
    _, enc_state = ConvNet(widths=(4, 8), strides=(1, 2)).apply(
        enc_vars, images, train=True, mutable=["batch_stats", "intermediates"]
    )
    np.testing.assert_allclose(
        out_t["local_map"], enc_state["intermediates"]["block1"][0], rtol=1e-6
    )
    logits = net.apply(variables, out["projection"], method="discriminate")
    assert logits.shape == (3,)
    with pytest.raises(ValueError, match=r"needs mutable=\['intermediates'"):
        net.apply(variables, images, train=True, mutable=["batch_stats"])


def test_dim_network_unknown_local_layer(dim_network):
    net, variables, images = dim_network
    bad = net.clone(local_layer="block9")
    with pytest.raises(ValueError, match=r"unknown local_layer 'block9'"):
        bad.apply(variables, images, train=False)
