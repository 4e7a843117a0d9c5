"""The samplers of ``ssljax.energy.samplers`` on densities whose answers are known.

Moments are compared within 5 standard errors of the Monte-Carlo estimate: the chains are
independent and run far past their relaxation time, so their final states are ``N``
independent draws (effective sample size ``N``) of the sampler's stationary law.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import solve_discrete_lyapunov

from ssljax.energy import samplers

MU = np.array([1.0, -0.5])
SIGMA = np.array([[1.0, 0.6], [0.6, 0.8]])
PRECISION = np.linalg.inv(SIGMA)
CHAINS = 4000
SE = 5.0  # standard errors allowed


def gaussian_energy(x):
    c = x - jnp.asarray(MU, jnp.float32)
    return 0.5 * jnp.sum((c @ jnp.asarray(PRECISION, jnp.float32)) * c, axis=1)


def starts(seed=0, n=CHAINS, scale=3.0):
    return scale * jax.random.normal(jax.random.PRNGKey(seed), (n, 2))


def assert_moments(x, mean, cov):
    """Sample mean and covariance of ``x [N, 2]`` within ``SE`` standard errors of
    ``mean``/``cov``: ``Var(mean_i) = C_ii / N``, ``Var(cov_ij) = (C_ii C_jj + C_ij^2) / N``."""
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), SE * np.sqrt(np.diag(cov) / n))
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    np.testing.assert_array_less(np.abs(np.cov(x.T) - cov), SE * se_cov)


def test_mala_samples_a_gaussian():
    run = jax.jit(
        lambda k, x: samplers.mala(k, x, energy_fn=gaussian_energy, step_size=0.3, num_steps=200)
    )
    x, rate = run(jax.random.PRNGKey(1), starts())
    assert 0.5 < float(rate) < 1.0
    assert_moments(x, MU, SIGMA)


def test_hmc_samples_a_gaussian():
    run = jax.jit(
        lambda k, x: samplers.hmc(
            k, x, energy_fn=gaussian_energy, step_size=0.2, num_leapfrog=5, num_steps=60
        )
    )
    x, rate = run(jax.random.PRNGKey(2), starts())
    assert 0.8 < float(rate) <= 1.0
    assert_moments(x, MU, SIGMA)


def test_langevin_reaches_its_exact_stationary_law_and_the_target_as_the_step_shrinks():
    # Unadjusted Langevin on a Gaussian is the linear recursion x' - mu = A (x - mu) + sqrt(h) z,
    # A = I - (h/2) P: its stationary covariance C solves C = A C A^T + h I exactly.
    h = 0.05
    a = np.eye(2) - 0.5 * h * PRECISION
    c_exact = solve_discrete_lyapunov(a, h * np.eye(2))
    x = samplers.langevin(
        jax.random.PRNGKey(3), starts(), energy_fn=gaussian_energy, step_size=h, num_steps=600
    )
    assert_moments(x, MU, c_exact)
    # The bias of the stationary law is O(h): C = Sigma + (h/4) I + O(h^2) here.
    assert np.abs(c_exact - SIGMA).max() < h


def test_langevin_with_a_score_equals_langevin_with_its_energy():
    score = lambda x: -(x - jnp.asarray(MU, jnp.float32)) @ jnp.asarray(PRECISION, jnp.float32)
    kwargs = dict(step_size=0.1, num_steps=5)
    key, x0 = jax.random.PRNGKey(4), starts(n=16)
    a = samplers.langevin(key, x0, energy_fn=gaussian_energy, **kwargs)
    b, chain = samplers.langevin(key, x0, score_fn=score, return_chain=True, **kwargs)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert chain.shape == (5, 16, 2)
    np.testing.assert_array_equal(chain[-1], b)


def test_noise_scale_zero_is_gradient_descent():
    x0 = starts(n=8)
    x = samplers.langevin(
        jax.random.PRNGKey(5),
        x0,
        energy_fn=gaussian_energy,
        step_size=0.1,
        num_steps=1,
        noise_scale=0.0,
    )
    expected = np.asarray(x0) - 0.05 * (np.asarray(x0) - MU) @ PRECISION
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", samplers.SAMPLERS)
def test_per_chain_keys_make_a_chain_independent_of_the_others(name):
    # One key per chain: the first 8 chains run alone or among 32 give the same states (as
    # chains split over devices must).
    x0 = starts(n=32)
    keys = jax.random.split(jax.random.PRNGKey(6), 32)
    kwargs = dict(energy_fn=gaussian_energy, step_size=0.1, num_steps=4, num_leapfrog=3)
    all_x, _ = samplers.sample(name, keys, x0, **kwargs)
    first_x, _ = samplers.sample(name, keys[:8], x0[:8], **kwargs)
    np.testing.assert_allclose(all_x[:8], first_x, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"^8 per-chain keys for 32 chains"):
        samplers.sample(name, keys[:8], x0, **kwargs)


# ---------------------------------------------------------------------------------------------
# MALA's acceptance ratio and detailed balance.


def numpy_log_target(x):
    c = x - MU
    return -0.5 * np.einsum("ni,ij,nj->n", c, PRECISION, c)


def numpy_log_proposal(to, frm, h):
    """``log N(to; frm + (h/2) grad log pi(frm), h I)`` with its constant."""
    mean = frm - 0.5 * h * (frm - MU) @ PRECISION
    d = to.shape[1]
    return -np.sum((to - mean) ** 2, axis=1) / (2 * h) - 0.5 * d * math.log(2 * math.pi * h)


def test_mala_acceptance_ratio_matches_numpy_and_satisfies_detailed_balance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)) * 2
    x_new = x + rng.normal(size=(64, 2))
    h = 0.4
    grad = lambda z: (z - MU) @ PRECISION
    e = lambda z: -numpy_log_target(z)
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    forward = samplers.mala_log_acceptance(
        f32(x), f32(x_new), f32(e(x)), f32(e(x_new)), f32(grad(x)), f32(grad(x_new)), h
    )
    backward = samplers.mala_log_acceptance(
        f32(x_new), f32(x), f32(e(x_new)), f32(e(x)), f32(grad(x_new)), f32(grad(x)), h
    )
    expected = (
        numpy_log_target(x_new)
        + numpy_log_proposal(x, x_new, h)
        - numpy_log_target(x)
        - numpy_log_proposal(x_new, x, h)
    )
    # A sum of four float32 terms, each from a few roundings (relative 2^-24 each): 16 ulps
    # of the sum of their magnitudes bounds the difference.
    magnitude = (
        np.abs(e(x))
        + np.abs(e(x_new))
        - numpy_log_proposal(x, x_new, h)
        - numpy_log_proposal(x_new, x, h)
    )
    tol = 16 * 2**-23 * magnitude
    np.testing.assert_array_less(np.abs(np.asarray(forward, np.float64) - expected), tol)
    np.testing.assert_array_less(np.abs(np.asarray(backward, np.float64) + expected), tol)
    # Detailed balance: pi(x) q(x'|x) a(x -> x') = pi(x') q(x|x') a(x' -> x).
    flow_forward = numpy_log_target(x) + numpy_log_proposal(x_new, x, h) + np.minimum(0.0, forward)
    flow_backward = (
        numpy_log_target(x_new) + numpy_log_proposal(x, x_new, h) + np.minimum(0.0, backward)
    )
    np.testing.assert_array_less(np.abs(flow_forward - flow_backward), 2 * tol)


# ---------------------------------------------------------------------------------------------
# HMC: leapfrog's energy error and reversibility, acceptance near 1 for small steps.


def quartic_energy(x):
    """A non-quadratic energy: sum x^4 / 4 + x^2 / 2 (leapfrog is not exact on it)."""
    return jnp.sum(0.25 * x**4 + 0.5 * x**2, axis=1)


def hamiltonian_error(step, total_time=1.0):
    x = jax.random.normal(jax.random.PRNGKey(7), (256, 2))
    p = jax.random.normal(jax.random.PRNGKey(8), (256, 2))
    steps = int(round(total_time / step))
    x1, p1 = samplers.leapfrog(x, p, samplers.grad_energy(quartic_energy), step, steps)
    h0 = quartic_energy(x) + 0.5 * jnp.sum(p**2, axis=1)
    h1 = quartic_energy(x1) + 0.5 * jnp.sum(p1**2, axis=1)
    return float(jnp.mean(jnp.abs(h1 - h0)))


def test_leapfrog_energy_error_is_second_order_in_the_step():
    # Over a fixed time, the Hamiltonian error of a second-order integrator is c eps^2 +
    # O(eps^4): halving the step divides it by 4 (within the eps^2 relative correction, about
    # 4% here), far from a first-order method's 2. float32 rounding (1e-7 of |H| ~ 1 per
    # step) stays below 1e-4 of the errors compared.
    e1, e2, e3 = (hamiltonian_error(s) for s in (0.1, 0.05, 0.025))
    assert 3.6 < e1 / e2 < 4.4, (e1, e2)
    assert 3.6 < e2 / e3 < 4.4, (e2, e3)


def test_leapfrog_is_reversible():
    x = jax.random.normal(jax.random.PRNGKey(9), (64, 2))
    p = jax.random.normal(jax.random.PRNGKey(10), (64, 2))
    grad = samplers.grad_energy(quartic_energy)
    x1, p1 = samplers.leapfrog(x, p, grad, 0.1, 10)
    x2, p2 = samplers.leapfrog(x1, -p1, grad, 0.1, 10)
    np.testing.assert_allclose(x2, x, atol=1e-5)
    np.testing.assert_allclose(-p2, p, atol=1e-5)


def test_hmc_acceptance_tends_to_one_as_the_step_shrinks():
    rates = []
    for step in (0.5, 0.2, 0.05, 0.01):
        _, rate = samplers.hmc(
            jax.random.PRNGKey(11),
            starts(n=512, scale=1.0),
            energy_fn=quartic_energy,
            step_size=step,
            num_leapfrog=max(1, int(round(1.0 / step))),
            num_steps=10,
        )
        rates.append(float(rate))
    assert rates == sorted(rates), rates
    # Mean |dH| is about 4e-5 at 0.01 (a quarter of 0.025's above): rejections are that rare.
    assert rates[-1] > 0.995 and rates[0] < rates[-1]


# ---------------------------------------------------------------------------------------------
# Bad input.


@pytest.mark.parametrize(
    "call,message",
    [
        (
            lambda x: samplers.sample(
                "gibbs",
                jax.random.PRNGKey(0),
                x,
                energy_fn=gaussian_energy,
                step_size=0.1,
                num_steps=1,
            ),
            "unknown sampler 'gibbs'; choose one of ['langevin', 'mala', 'hmc']",
        ),
        (
            lambda x: samplers.mala(
                jax.random.PRNGKey(0), x, energy_fn=gaussian_energy, step_size=-0.1, num_steps=1
            ),
            "step_size=-0.1 is invalid; valid: step_size > 0",
        ),
        (
            lambda x: samplers.langevin(
                jax.random.PRNGKey(0), x, energy_fn=gaussian_energy, step_size=0.0, num_steps=1
            ),
            "step_size=0.0 is invalid; valid: step_size > 0",
        ),
        (
            lambda x: samplers.hmc(
                jax.random.PRNGKey(0),
                x,
                energy_fn=gaussian_energy,
                step_size=0.1,
                num_leapfrog=0,
                num_steps=1,
            ),
            "num_leapfrog=0 is invalid; valid: an integer >= 1",
        ),
        (
            lambda x: samplers.hmc(
                jax.random.PRNGKey(0),
                x,
                energy_fn=gaussian_energy,
                step_size=0.1,
                num_leapfrog=2,
                num_steps=-3,
            ),
            "num_steps=-3 is invalid; valid: an integer >= 1",
        ),
        (
            lambda x: samplers.langevin(
                jax.random.PRNGKey(0), x, energy_fn=gaussian_energy, step_size=0.1, num_steps=2.5
            ),
            "num_steps=2.5 is invalid; valid: an integer >= 1",
        ),
        (
            lambda x: samplers.langevin(
                jax.random.PRNGKey(0),
                x,
                energy_fn=gaussian_energy,
                step_size=0.1,
                num_steps=1,
                noise_scale=-1.0,
            ),
            "noise_scale=-1.0 is invalid; valid: noise_scale >= 0",
        ),
        (
            lambda x: samplers.langevin(jax.random.PRNGKey(0), x, step_size=0.1, num_steps=1),
            "langevin needs exactly one of energy_fn and score_fn; got both or none",
        ),
    ],
)
def test_bad_input_is_one_line(call, message):
    with pytest.raises(ValueError) as err:
        call(starts(n=4))
    assert str(err.value) == message
