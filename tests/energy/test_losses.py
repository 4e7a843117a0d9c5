"""The losses of ``ssljax.energy.losses`` against closed forms and NumPy.

Score model ``s(x) = -A (x - b)`` on Gaussian data ``x ~ N(mu, Sigma)``: its Jacobian is
``-A`` everywhere, so every loss has an exact finite-sample value in NumPy and a closed-form
expectation.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.energy import losses

MU = np.array([1.0, -0.5])
SIGMA = np.array([[1.0, 0.6], [0.6, 0.8]])
A = np.array([[1.3, 0.2], [-0.4, 0.9]])  # not symmetric: the trace and the norms differ
B = np.array([0.5, 0.1])
SE = 5.0
F32 = 2.0**-23


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(MU, SIGMA, size=n)


def linear_score(x):
    return -(x - jnp.asarray(B, x.dtype)) @ jnp.asarray(A.T, x.dtype)


def numpy_score(x):
    return -(x - B) @ A.T


def f32(x):
    return jnp.asarray(x, jnp.float32)


def rel_tol(n_terms, magnitude):
    """A float32 mean of ``n_terms`` terms of size ``magnitude`` (a few roundings each):
    pairwise-summed, far below this worst-case bound."""
    return 8 * n_terms * F32 * magnitude


# ---------------------------------------------------------------------------------------------
# Denoising score matching (Vincent 2011).


def test_dsm_equals_its_finite_sample_value_and_its_expectation():
    n, sigma = 20000, 0.3
    x = data(n)
    z = np.random.default_rng(1).normal(size=x.shape)
    noisy = x + sigma * z
    per_example = 0.5 * np.sum((numpy_score(noisy) + (noisy - x) / sigma**2) ** 2, axis=1)
    ours = float(
        losses.denoising_score_matching_loss(linear_score(f32(noisy)), f32(noisy), f32(x), sigma)
    )
    assert abs(ours - per_example.mean()) < 1e-5 * per_example.mean() * math.sqrt(n) + 1e-4
    # Expectation: 0.5 E|-A(x - b) + (I/sigma - sigma A) z|^2 with x, z independent
    #   = 0.5 (tr(A Sigma A^T) + |A (mu - b)|^2 + |I/sigma - sigma A|_F^2).
    expected = 0.5 * (
        np.trace(A @ SIGMA @ A.T)
        + np.sum((A @ (MU - B)) ** 2)
        + np.sum((np.eye(2) / sigma - sigma * A) ** 2)
    )
    assert abs(per_example.mean() - expected) < SE * per_example.std() / math.sqrt(n)
    assert abs(ours - expected) < SE * per_example.std() / math.sqrt(n)


def test_dsm_sigma2_weighting_and_per_example_sigma():
    x = f32(data(64))
    sigma = jnp.linspace(0.1, 1.0, 64)
    noisy = x + sigma[:, None] * f32(np.random.default_rng(2).normal(size=(64, 2)))
    s = linear_score(noisy)
    per = 0.5 * np.sum(
        (np.asarray(s) + (np.asarray(noisy) - np.asarray(x)) / np.asarray(sigma)[:, None] ** 2)
        ** 2,
        axis=1,
    )
    plain = losses.denoising_score_matching_loss(s, noisy, x, sigma)
    weighted = losses.denoising_score_matching_loss(s, noisy, x, sigma, weighting="sigma2")
    np.testing.assert_allclose(plain, per.mean(), rtol=1e-5)
    np.testing.assert_allclose(weighted, np.mean(per * np.asarray(sigma) ** 2), rtol=1e-5)
    # Images: trailing axes are flattened.
    img = jnp.ones((3, 4, 4, 1))
    value = losses.denoising_score_matching_loss(img * 0, img * 1.1, img, 0.1)
    np.testing.assert_allclose(value, 0.5 * 16 * (0.1 / 0.01) ** 2, rtol=1e-5)


def test_dsm_is_minimised_by_the_smoothed_score():
    # For Gaussian data, the smoothed density is N(mu, Sigma + sigma^2 I): the expected DSM
    # loss of s = -A (x - b) is smallest at A = (Sigma + sigma^2 I)^-1, b = mu: the gradient
    # of the expectation the test above checks the loss against vanishes there (float32:
    # terms of size 1/sigma^2 ~ 11, a few ulps each) and is far from 0 at the unsmoothed score.
    sigma = 0.3

    def expected(params):
        a, b = params[:4].reshape(2, 2), params[4:]
        return 0.5 * (
            jnp.trace(a @ SIGMA @ a.T)
            + jnp.sum((a @ (MU - b)) ** 2)
            + jnp.sum((jnp.eye(2) / sigma - sigma * a) ** 2)
        )

    point = lambda cov: jnp.asarray(
        np.concatenate([np.linalg.inv(cov).reshape(-1), MU]), jnp.float32
    )
    assert float(jnp.max(jnp.abs(jax.grad(expected)(point(SIGMA + sigma**2 * np.eye(2)))))) < 1e-5
    assert float(jnp.max(jnp.abs(jax.grad(expected)(point(SIGMA))))) > 0.05


# ---------------------------------------------------------------------------------------------
# Sliced score matching (Song et al. 2019) and explicit score matching (Hyvarinen 2005).


def test_ssm_equals_its_finite_sample_value():
    n, m = 256, 3
    x = data(n)
    v = np.random.default_rng(3).normal(size=(m, n, 2))
    s = numpy_score(x)
    trace_term = np.einsum("mni,ij,mnj->mn", v, -A, v)
    plain = np.mean(trace_term + 0.5 * np.einsum("mni,ni->mn", v, s) ** 2)
    vr = np.mean(trace_term) + np.mean(0.5 * np.sum(s**2, axis=1))
    magnitude = np.mean(np.abs(trace_term)) + np.mean(np.sum(s**2, axis=1)) * np.mean(v**2) * 2
    ours = losses.sliced_score_matching_loss(linear_score, f32(x), f32(v))
    ours_vr = losses.sliced_score_matching_loss(
        linear_score, f32(x), f32(v), variance_reduction=True
    )
    assert abs(float(ours) - plain) < rel_tol(m * n, magnitude)
    assert abs(float(ours_vr) - vr) < rel_tol(m * n, magnitude)
    # One projection per example may be given as [B, ...].
    one = losses.sliced_score_matching_loss(linear_score, f32(x), f32(v[0]))
    two = losses.sliced_score_matching_loss(linear_score, f32(x), f32(v[:1]))
    np.testing.assert_allclose(one, two, rtol=1e-6)


def test_explicit_score_matching_equals_trace_plus_half_norm():
    x = data(128)
    expected = np.trace(-A) + np.mean(0.5 * np.sum(numpy_score(x) ** 2, axis=1))
    ours = float(losses.score_matching_loss(linear_score, f32(x)))
    assert abs(ours - expected) < rel_tol(128, abs(np.trace(A)) + 10)


def nonlinear_score(x):
    """A score whose Jacobian changes with x (and couples the coordinates)."""
    w = jnp.asarray([[0.8, -0.5], [0.3, 1.1]], x.dtype)
    return -jnp.tanh(x @ w) * jnp.asarray([1.0, 2.0], x.dtype) - 0.1 * x**3


def test_ssm_over_scaled_basis_projections_is_exactly_explicit_score_matching():
    # v uniform over {sqrt(D) e_k}: E[v^T J v] = tr J and E[(v^T s)^2] = |s|^2, so averaging SSM
    # over the D projections gives Hyvarinen's loss exactly (both SSM forms). The trace here
    # comes from reverse-mode Jacobians, independent of the losses' forward-mode products.
    x = f32(data(200, seed=4))
    d = 2
    v = math.sqrt(d) * jnp.broadcast_to(jnp.eye(d)[:, None, :], (d,) + x.shape)
    jac = jax.vmap(jax.jacrev(lambda z: nonlinear_score(z[None])[0]))(x)  # [B, D, D]
    s = nonlinear_score(x)
    explicit = float(jnp.mean(jnp.trace(jac, axis1=1, axis2=2) + 0.5 * jnp.sum(s**2, axis=1)))
    for vr in (False, True):
        ssm = float(losses.sliced_score_matching_loss(nonlinear_score, x, v, variance_reduction=vr))
        assert abs(ssm - explicit) < rel_tol(2 * 200, 5.0)
    assert abs(float(losses.score_matching_loss(nonlinear_score, x)) - explicit) < rel_tol(400, 5.0)


def test_ssm_with_gaussian_projections_is_explicit_score_matching_in_expectation():
    # Many Gaussian projections: the mean over projections of SSM's per-projection value
    # approaches the explicit loss within its Monte-Carlo error.
    x = f32(data(64, seed=5))
    m = 4000
    v = jax.random.normal(jax.random.PRNGKey(0), (m,) + x.shape)
    per_projection = jax.vmap(
        lambda t: losses.sliced_score_matching_loss(nonlinear_score, x, t[None])
    )(v)
    explicit = float(losses.score_matching_loss(nonlinear_score, x))
    se = float(jnp.std(per_projection)) / math.sqrt(m)
    assert abs(float(jnp.mean(per_projection)) - explicit) < SE * se


def test_score_matching_plus_constant_is_the_fisher_divergence_in_expectation():
    # Hyvarinen 2005: 0.5 E|s - grad log p|^2 = E[tr J + |s|^2 / 2] + 0.5 E|grad log p|^2.
    # For p = N(mu, Sigma): E|grad log p|^2 = tr(Sigma^-1). Per-example terms on one sample;
    # the difference of the two sides has mean 0.
    n = 20000
    x = data(n, seed=6)
    true_score = -(x - MU) @ np.linalg.inv(SIGMA)
    fisher = 0.5 * np.sum((numpy_score(x) - true_score) ** 2, axis=1)
    sm_per = np.trace(-A) + 0.5 * np.sum(numpy_score(x) ** 2, axis=1)
    constant = 0.5 * np.trace(np.linalg.inv(SIGMA))
    sm = float(losses.score_matching_loss(linear_score, f32(x)))
    assert abs(sm - sm_per.mean()) < 1e-5 * abs(sm_per).mean() * math.sqrt(n)
    diff = fisher - (sm_per + constant)
    assert abs(fisher.mean() - (sm + constant)) < SE * diff.std() / math.sqrt(n) + 1e-3


# ---------------------------------------------------------------------------------------------
# Contrastive divergence (Du & Mordatch 2019).


def test_contrastive_divergence_by_hand_and_its_gradient():
    pos, neg = jnp.array([1.0, 2.0]), jnp.array([0.5])
    # mean E+ - mean E- + reg (mean E+^2 + mean E-^2) = 1.5 - 0.5 + 0.1 (2.5 + 0.25)
    value = losses.contrastive_divergence_loss(pos, neg, reg=0.1)
    np.testing.assert_allclose(value, 1.275, rtol=1e-6)
    g_pos, g_neg = jax.grad(
        lambda p, q: losses.contrastive_divergence_loss(p, q, reg=0.1), argnums=(0, 1)
    )(pos, neg)
    np.testing.assert_allclose(g_pos, [0.5 + 0.1 * 1.0, 0.5 + 0.1 * 2.0], rtol=1e-6)
    np.testing.assert_allclose(g_neg, [-1.0 + 0.1 * 1.0], rtol=1e-6)
    np.testing.assert_allclose(losses.contrastive_divergence_loss(pos, neg, reg=0.0), 1.0)


def test_bad_input_is_one_line():
    x = jnp.zeros((4, 2))
    with pytest.raises(ValueError) as err:
        losses.denoising_score_matching_loss(x, x, x, 0.1, weighting="sigma")
    assert str(err.value) == "unknown weighting 'sigma'; choose one of ['none', 'sigma2']"
