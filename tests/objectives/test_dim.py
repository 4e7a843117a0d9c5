"""Deep InfoMax through the generic step: 8 devices == 1 device, the loss against an independent
numpy computation from the network's outputs, prior-matching gradients, bad settings."""

import copy
import importlib
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import methods as method_configs
from ssljax import objectives, parallel
from ssljax.objectives import dim as dim_lib
from ssljax.training.loop import build_setup, initial_state, validate_config
from ssljax.training.step import make_train_step, shard_map_driver
from tests.tolerances import assert_close, assert_updates_close, f32_steps_rtol

# Longest reduction of a DIM step: BatchNorm statistics of block1 over the two views of the
# 16-image batch at 28 x 28 (tolerances: tests/tolerances.py).
N_TERMS = 2 * 16 * 28 * 28


def tiny_dim_config(make_identity_config, **overrides):
    c = make_identity_config()  # ConvNet (8, 16) at strides (1, 2): block2 is 14x14x16
    settings = dict(estimator="jsd", global_weight=0.0, local_weight=1.0, prior_weight=0.0,
                    local_layer="block2", critic_hidden=8, critic_embed=4, critic_layers=1,
                    y_hidden=8, y_dim=4, prior_hidden=(6,), learning_rate=1e-3,
                    warmup_steps=0)
    settings.update(overrides)
    method_configs.dim(c, **settings)
    return c


def global_batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
            "label": rng.integers(0, 10, (n,)).astype(np.int32),
            "index": np.arange(n, dtype=np.int32)}


def run(config, devices, batch, steps=2):
    setup = build_setup(config)
    mesh = parallel.make_mesh(devices)
    state = parallel.replicate_on_mesh(initial_state(config, setup), mesh)
    step = shard_map_driver(
        make_train_step(objective=setup.objective, model=setup.train_model, tx=setup.tx,
                        config=config), mesh)
    local = {k: v.reshape((len(devices), -1) + v.shape[1:]) for k, v in batch.items()}
    history = []
    for _ in range(steps):
        state, metrics = step(state, parallel.batch_to_global(local, mesh))
        history.append(jax.device_get(metrics))
    return jax.device_get(state), history


def assert_trees_close(a, b, rtol, atol):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def test_eight_devices_equal_one_device(make_identity_config):
    """Global and local terms across two views, MINE's moving averages in
    ``TrainState.extra``; two steps."""
    config = tiny_dim_config(make_identity_config, estimator="mine", global_weight=0.5,
                             cross_view=True)
    validate_config(config)
    batch = global_batch()
    s8, m8 = run(config, jax.devices(), batch)
    s1, m1 = run(config, jax.devices()[:1], batch)
    s0 = jax.device_get(initial_state(config, build_setup(config)))
    for updates_before, (a, b) in enumerate(zip(m8, m1)):
        assert bool(a["finite"]) and bool(b["finite"])
        rtol = f32_steps_rtol(N_TERMS, steps=updates_before)
        for key in ("loss", "mi_global", "mi_local", "collapse_std"):
            # The bounds are differences of O(1) terms (mean score - log-mean-exp score), so
            # their rounding scales with 1, not with their value (-0.08 for mi_global).
            assert_close(a[key], b[key], rtol=rtol, atol=rtol)
    assert m8[1]["loss"] != m8[0]["loss"]  # the first step moved the parameters
    assert_updates_close(s8.params, s1.params, s0.params, rtol=f32_steps_rtol(N_TERMS, steps=2))
    assert_updates_close(s8.extra, s1.extra, s0.extra, rtol=f32_steps_rtol(N_TERMS, steps=2))
    # One moving average per direction for the global matrix, and per direction and
    # location of the 14x14 map.
    assert s8.extra["local"].log_mean.shape == (2 * 196,)
    np.testing.assert_allclose(s8.extra["global"].weight, [1 - 0.9**2] * 2, rtol=1e-6)


@pytest.fixture(scope="module")
def dim_setup(make_identity_config):
    """A tiny DIM(G + L) network with prior matching, its initial state and a batch."""
    config = tiny_dim_config(make_identity_config, global_weight=0.3, prior_weight=0.1)
    setup = build_setup(config)
    state = initial_state(config, setup)
    x = jnp.asarray(np.random.default_rng(1).uniform(size=(6, 28, 28, 1)), jnp.float32)
    return config, setup, state, x


def np_js_fgan(s):
    k = s.shape[0]
    off = ~np.eye(k, dtype=bool)
    return np.mean(-np.logaddexp(0, -np.diag(s))) - np.mean(np.logaddexp(0, s[off]))


def np_infonce(s):
    k = s.shape[0]
    lse = np.log(np.exp(s - s.max(1, keepdims=True)).sum(1)) + s.max(1)
    return math.log(k) + np.mean(np.diag(s) - lse)


@pytest.mark.parametrize("estimator, reference, cross_view",
                         [("jsd", np_js_fgan, False), ("infonce", np_infonce, True)])
def test_loss_equals_numpy_on_the_network_outputs(dim_setup, estimator, reference, cross_view):
    """Global + local terms recomputed in float64 from the queries and keys the model outputs:
    pins the pairing (image b's Y with image b's map, of the other view with ``cross_view``)
    and the averaging over locations and directions."""
    config, setup, state, x = dim_setup
    config = copy.deepcopy(config)
    config.objective.estimator = estimator
    views = (x, x[:, ::-1]) if cross_view else (x,)
    loss, (metrics, _, outputs) = dim_lib.dim_objective_loss(
        state.params, state.model_state, views, jax.random.PRNGKey(0), model=setup.eval_model,
        config=config, axis_name=None, extra=state.extra)
    out, _ = setup.eval_model.apply({"params": state.params, **state.model_state},
                                    jnp.concatenate(views), train=True,
                                    mutable=["batch_stats", "intermediates"])
    n = x.shape[0]
    f64 = lambda a, d: np.asarray(a[d * n:(d + 1) * n], np.float64)  # noqa: E731
    pairs = [(0, 1), (1, 0)] if cross_view else [(0, 0)]
    global_term = np.mean([reference(f64(out["global_query"], q) @ f64(out["global_key"], k).T)
                           for q, k in pairs])
    local_term = np.mean([reference(f64(out["local_query"], q) @ f64(out["local_key"], k)[:, l].T)
                          for q, k in pairs for l in range(out["local_key"].shape[1])])
    prior = metrics["prior_discriminator_loss"] + metrics["prior_encoder_loss"]
    want = -(0.3 * global_term + 1.0 * local_term) + 0.1 * float(prior)
    assert float(loss) == pytest.approx(want, rel=1e-4, abs=1e-5)
    np.testing.assert_allclose(outputs["embedding"], out["projection"][:n], rtol=1e-6)
    if estimator == "infonce":
        assert float(metrics["mi_local"]) <= math.log(n) + 1e-5


def test_prior_matching_gradients_split_between_discriminator_and_encoder(dim_setup):
    _, setup, state, _ = dim_setup
    params, model = state.params, setup.eval_model
    y = jnp.asarray(np.random.default_rng(2).normal(size=(5, 4)), jnp.float32)
    rng = jax.random.PRNGKey(3)
    grads_p, grads_y = jax.grad(
        lambda p, v: dim_lib.prior_matching_loss(p, v, rng, model=model)[0], argnums=(0, 1)
    )(params, y)
    # Discriminator parameters follow only its own logistic loss ...
    d_grads = jax.grad(lambda p: dim_lib.prior_matching_loss(p, y, rng, model=model)[1])(params)
    for name in ("prior_hidden1", "prior_output"):
        assert_trees_close(grads_p[name], d_grads[name], rtol=1e-5, atol=1e-7)

    # ... and Y only the encoder's -log D(sigmoid(Y)) with D held fixed.
    def encoder_loss(v):
        logits = model.apply({"params": params}, jax.nn.sigmoid(v), method="discriminate")
        return jnp.mean(jax.nn.softplus(-logits))

    np.testing.assert_allclose(grads_y, jax.grad(encoder_loss)(y), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(estimator="mi"), r"unknown objective.estimator 'mi'; choose one of \['jsd'"),
        (dict(local_weight=0.0), r"global_weight and objective.local_weight are both 0"),
        (dict(prior_weight=-1.0), r"DIM weights must be >= 0"),
        (dict(local_layer="block7"), r"model.dim.local_layer='block7' is not a feature map"),
        (dict(local_layer="pooled"), r"model.dim.local_layer='pooled' is not a feature map"),
    ],
)
def test_bad_settings_fail_with_one_line(make_identity_config, overrides, message):
    config = tiny_dim_config(make_identity_config, **overrides)
    with pytest.raises(ValueError, match=message):
        validate_config(config)


def test_registered_and_in_the_comparison():
    assert objectives.get("dim").name == "dim"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, os.path.join(root, "experiments"))
    compare = importlib.import_module("compare_methods")
    assert "dim" in compare.available_methods("fashion_mnist")
    assert "dim" in compare.available_methods("cifar10")
