"""Invertible mixing and the synthetic-data fit harness."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.identifiability import fit as fit_lib
from ssljax.identifiability import mixing
from ssljax.objectives.base import LossAux, Objective, Outputs


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_mixing_is_invertible_and_its_jacobian_matches_autodiff(depth):
    m = mixing.random_mixing(jax.random.PRNGKey(depth), 5, depth)
    s = jax.random.laplace(jax.random.PRNGKey(7), (200, 5))
    x = mixing.apply_mixing(m, s)
    back = mixing.invert_mixing(m, x)
    # Each layer has condition <= 4 * dim; the round trip loses at most a few float32 ulps
    # per layer times the condition number.
    scale = float(np.max(np.abs(s)))
    tol = 50 * depth * 20 * np.finfo(np.float32).eps * scale
    np.testing.assert_allclose(back, s, atol=tol)
    jac = jax.vmap(jax.jacfwd(lambda v: mixing.apply_mixing(m, v)))(s[:20])
    expected = np.linalg.slogdet(np.asarray(jac, np.float64))[1]
    np.testing.assert_allclose(mixing.log_abs_det_jacobian(m, s[:20]), expected, atol=1e-4)


def test_deeper_mixing_is_nonlinear():
    m = mixing.random_mixing(jax.random.PRNGKey(0), 3, 3)
    # Opposite points: every first-layer unit with |w.s| > |b| changes side of its kink.
    v = 3.0 * jax.random.normal(jax.random.PRNGKey(1), (3,))
    s = jnp.stack([v, -v])
    mid = mixing.apply_mixing(m, 0.5 * (s[0] + s[1]))
    avg = 0.5 * (mixing.apply_mixing(m, s[0]) + mixing.apply_mixing(m, s[1]))
    linear = mixing.random_mixing(jax.random.PRNGKey(0), 3, 1)
    lin_mid = mixing.apply_mixing(linear, 0.5 * (s[0] + s[1]))
    lin_avg = 0.5 * (mixing.apply_mixing(linear, s[0]) + mixing.apply_mixing(linear, s[1]))
    np.testing.assert_allclose(lin_mid, lin_avg, atol=1e-5)
    assert float(jnp.max(jnp.abs(mid - avg))) > 100 * 1e-5  # linear maps stay within 1e-5


def test_mixing_bad_input_is_one_line():
    with pytest.raises(ValueError, match="depth=0"):
        mixing.random_mixing(jax.random.PRNGKey(0), 3, 0)
    m = mixing.random_mixing(jax.random.PRNGKey(0), 3, 2)
    with pytest.raises(ValueError, match=r"shape \(4, 2\)"):
        mixing.apply_mixing(m, jnp.zeros((4, 2)))


class _Linear(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        return nn.Dense(1, use_bias=False)(x)


@dataclasses.dataclass(frozen=True)
class _Regression(Objective):
    """Least squares of ``batch['target']`` on the observations (tests the harness)."""

    name = "test_regression"

    def build_model(self, run, axis_name):
        return _Linear()

    def make_views(self, rng, images, run):
        return (images,)

    def loss(self, params, model_state, views, rng, ctx):
        pred = ctx.model.apply({"params": params}, views[0])[:, 0]
        loss = jnp.mean((pred - ctx.batch["target"]) ** 2)
        return loss, LossAux({"loss": loss}, model_state, Outputs())


def test_fit_trains_an_objective_on_arrays_over_devices():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 4)).astype(np.float32)
    w = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    data = {"image": x, "target": x @ w}
    result = fit_lib.fit(_Regression(), data, steps=300, batch_size=64, learning_rate=0.05)
    assert result.num_devices == 8
    learned = np.asarray(result.params["Dense_0"]["kernel"])[:, 0]
    np.testing.assert_allclose(learned, w, atol=0.05)
    assert result.losses[-1] < 1e-2 * result.losses[0]


def test_fit_bad_input_is_one_line():
    data = {"image": np.zeros((10, 2), np.float32), "target": np.zeros(9, np.float32)}
    with pytest.raises(ValueError, match="different sample counts"):
        fit_lib.fit(_Regression(), data, steps=1, batch_size=2)
    data["target"] = np.zeros(10, np.float32)
    with pytest.raises(ValueError, match="batch_size=11"):
        fit_lib.fit(_Regression(), data, steps=1, batch_size=11)


def test_fit_on_one_of_several_devices_returns_unreplicated_parameters():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    data = {"image": x, "target": x @ np.array([1.0, 2.0, 3.0], np.float32)}
    result = fit_lib.fit(_Regression(), data, steps=2, batch_size=16, max_devices=1)
    assert result.num_devices == 1
    assert np.shape(result.params["Dense_0"]["kernel"]) == (3, 1)


def test_xtanh_mixing_is_invertible_and_its_jacobian_matches_autodiff():
    m = mixing.random_mixing(
        jax.random.PRNGKey(2),
        5,
        3,
        activation="xtanh",
        negative_slope=0.1,
        matrices="uniform",
        shared=True,
        bias_scale=0.0,
    )
    # shared: one matrix in every layer; uniform: unit-norm input-side columns, below the
    # 25th percentile of such matrices' condition numbers; no biases.
    for w in m.weights[1:]:
        np.testing.assert_array_equal(w, m.weights[0])
    w = np.asarray(m.weights[0], np.float64)
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), 1.0, rtol=1e-6)
    threshold = mixing.uniform_condition_threshold(jax.random.PRNGKey(9), 5)
    assert np.linalg.cond(w) <= 1.5 * threshold  # thresholds from other keys agree closely
    for b in m.biases:
        np.testing.assert_array_equal(b, 0.0)
    s = 2.0 * jax.random.normal(jax.random.PRNGKey(7), (300, 5))
    x = mixing.apply_mixing(m, s)
    h = np.asarray(s, np.float64)
    for layer in range(3):  # an independent float64 forward pass
        h = h @ w.T
        if layer < 2:
            h = np.tanh(h) + 0.1 * h
    np.testing.assert_allclose(x, h, rtol=1e-4, atol=1e-5)
    # The inverse of xtanh has slope up to 1 / 0.1, so float32 rounding of x grows by at most
    # cond(W) / 0.1 per layer.
    scale = float(np.max(np.abs(x)))
    cond = float(np.linalg.cond(w))
    tol = 8 * np.finfo(np.float32).eps * scale * cond**3 / 0.1**2
    np.testing.assert_allclose(mixing.invert_mixing(m, x), s, atol=tol)
    jac = jax.vmap(jax.jacfwd(lambda v: mixing.apply_mixing(m, v)))(s[:20])
    expected = np.linalg.slogdet(np.asarray(jac, np.float64))[1]
    np.testing.assert_allclose(mixing.log_abs_det_jacobian(m, s[:20]), expected, atol=1e-4)


def test_mixing_options_bad_input_is_one_line():
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match=r"activation='relu' is invalid; valid: \("):
        mixing.random_mixing(key, 3, 2, activation="relu")
    with pytest.raises(ValueError, match=r"matrices='normal' is invalid; valid: \("):
        mixing.random_mixing(key, 3, 2, matrices="normal")
    with pytest.raises(ValueError, match=r"bias_scale=-1.0 is invalid"):
        mixing.random_mixing(key, 3, 2, bias_scale=-1.0)


def test_fit_reads_losses_in_batches_and_names_the_first_non_finite_step():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    data = {"image": x, "target": x @ np.array([1.0, 2.0, 3.0], np.float32)}
    a = fit_lib.fit(_Regression(), data, steps=7, batch_size=16, max_devices=1, sync_every=3)
    b = fit_lib.fit(_Regression(), data, steps=7, batch_size=16, max_devices=1, sync_every=1)
    np.testing.assert_array_equal(a.losses, b.losses)  # same steps, read at other times
    assert np.all(np.isfinite(a.losses)) and np.all(a.losses > 0)
    # A target that is infinite from example 40 on: the first batch holding one fails.
    data["target"] = np.where(np.arange(64) >= 40, np.inf, data["target"]).astype(np.float32)
    first = min(
        i
        for i in range(4)
        if np.any(np.random.default_rng([0, 0]).permutation(64)[16 * i : 16 * (i + 1)] >= 40)
    )
    with pytest.raises(FloatingPointError, match=f"not finite at step {first}$"):
        fit_lib.fit(_Regression(), data, steps=4, batch_size=16, max_devices=1, sync_every=4)
    with pytest.raises(ValueError, match="sync_every=0 is invalid"):
        fit_lib.fit(_Regression(), data, steps=1, batch_size=16, sync_every=0)
