"""Linear ICA, PPCA and factor analysis: recovery where the model is identifiable, invariance
of the likelihood where it is not, and agreement with independent implementations."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.decomposition import PCA, FactorAnalysis
from threadpoolctl import threadpool_limits

from ssljax.identifiability import linear, metrics
from tests.tolerances import f32_sum_tol

EPS64 = np.finfo(np.float64).eps
# Every ICA run in this file uses one data shape and the default n_steps, so the jitted update
# loop compiles once.
N, DIM = 4000, 3


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # Small dense linear algebra (FastICA, FactorAnalysis): a multi-threaded BLAS on a machine
    # whose cores are busy spins for many times the single-thread time.
    with threadpool_limits(1):
        yield


def _f64_loglik_tol(cov: np.ndarray, ll: float) -> float:
    """Rounding bound of a float64 Gaussian log-likelihood: the Cholesky solve and log-det
    of a d x d covariance are backward stable with error O(d cond(C) eps) relative to the
    terms (Higham 2002, 10.1), whose size is about |ll| + d."""
    d = cov.shape[0]
    return 16 * d * np.linalg.cond(cov) * EPS64 * (abs(ll) + d)


def _mixed(kind: str, seed: int, n: int = N, dim: int = DIM):
    k_src, k_mix, k_ica = jax.random.split(jax.random.PRNGKey(seed), 3)
    draw = linear.laplace_sources if kind == "laplace" else linear.gaussian_sources
    s = draw(k_src, n, dim)
    A, x = linear.mix_linear(k_mix, s)
    return s, A, x, k_ica


# ---------------------------------------------------------------------------------------
# Densities and data
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("density", linear.DENSITIES)
def test_densities_are_normalised_unit_variance_with_matching_score(density):
    with jax.enable_x64():
        # Trapezoid rule on [-40, 40] with a node at 0 (Laplace's kink): error O(h^2) = 1e-8
        # times the second derivative; the tails beyond 40 are below exp(-40).
        y = jnp.linspace(-40.0, 40.0, 400_001, dtype=jnp.float64)
        p = jnp.exp(linear.log_density(y, density))
        assert float(jnp.trapezoid(p, y)) == pytest.approx(1.0, abs=1e-6)
        assert float(jnp.trapezoid(y**2 * p, y)) == pytest.approx(1.0, abs=1e-6)
        y = jnp.linspace(-4.0, 4.0, 81, dtype=jnp.float64) + 0.013  # off Laplace's kink at 0
        autodiff = -jax.vmap(jax.grad(lambda v: linear.log_density(v, density)))(y)
        np.testing.assert_allclose(linear.score(y, density), autodiff, rtol=1e-12, atol=1e-12)


def test_sources_have_unit_variance_and_mixing_is_well_conditioned():
    key_l, key_g, key_m = jax.random.split(jax.random.PRNGKey(0), 3)
    lap = np.asarray(linear.laplace_sources(key_l, N, DIM), np.float64)
    gau = np.asarray(linear.gaussian_sources(key_g, N, DIM), np.float64)
    m = lap.size
    # Pooled over the i.i.d. columns: the sample variance has standard error
    # sqrt((kurtosis - 1) / m) (Laplace kurtosis 6, Gaussian 3); E|s| is 1/sqrt(2) for the
    # unit Laplace and sqrt(2/pi) for the standard normal, with standard error sqrt(Var|s| / m).
    # Five standard errors each; the two E|s| intervals do not overlap.
    assert lap.var() == pytest.approx(1.0, abs=5 * math.sqrt(5 / m))
    assert gau.var() == pytest.approx(1.0, abs=5 * math.sqrt(2 / m))
    assert np.abs(lap).mean() == pytest.approx(1 / math.sqrt(2), abs=5 * math.sqrt(0.5 / m))
    assert np.abs(gau).mean() == pytest.approx(
        math.sqrt(2 / math.pi), abs=5 * math.sqrt((1 - 2 / math.pi) / m)
    )
    A, x = linear.mix_linear(key_m, lap, condition_max=5.0)
    assert A.shape == (DIM, DIM) and np.linalg.cond(np.asarray(A)) <= 5.0
    np.testing.assert_allclose(x, lap @ np.asarray(A).T, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------
# Linear ICA
# ---------------------------------------------------------------------------------------


def test_ica_recovers_laplace_sources_and_agrees_with_fastica():
    s, A, x, key = _mixed("laplace", seed=0)
    result = linear.linear_ica(x, key=key)
    W = np.asarray(result.unmixing, np.float64)
    assert metrics.amari_distance(W, A) < 0.05
    W_fast = linear.fastica_unmixing(x, seed=0)
    assert metrics.amari_distance(W_fast, A) < 0.05
    # Both unmix the same way: our W undoes FastICA's unmixing up to permutation and scale.
    assert metrics.amari_distance(W, np.linalg.inv(W_fast)) < 0.05
    # The recovered sources match the true ones one to one.
    assert metrics.mean_correlation_coefficient(result.sources, s) > 0.99
    # Maximum likelihood: the estimate is at least as likely as the true unmixing on this
    # sample (scaled so its outputs are on the Laplace model's stationary scale, E|y| = 1/sqrt 2).
    W_true = np.linalg.inv(np.asarray(A, np.float64))
    y_true = (np.asarray(x, np.float64) - np.asarray(x).mean(0)) @ W_true.T
    W_true = W_true / (math.sqrt(2) * np.abs(y_true).mean(0))[:, None]
    ll = linear.ica_log_likelihood(x, W)
    assert ll >= linear.ica_log_likelihood(x, W_true) - 1e-4
    # The float32 trace's last value agrees with the float64 formula: a mean of n * dim log
    # densities of size ~|ll| / dim, plus the log-determinant.
    tol = f32_sum_tol(x.shape[0] * x.shape[1], abs(ll) / x.shape[1], ulps=4) + 1e-5
    assert abs(float(result.final_log_likelihood) - ll) <= tol
    trace = np.asarray(result.log_likelihood)
    assert trace.shape == (300,) and trace[-1] > trace[0]


def test_ica_without_whitening_is_equivariant():
    # The natural gradient's path of W A does not depend on A (Cardoso & Laheld 1996), so the
    # unwhitened updates separate as well.
    _, A, x, key = _mixed("laplace", seed=1)
    result = linear.linear_ica(x, key=key, whiten=False)
    assert metrics.amari_distance(result.unmixing, A) < 0.05


def test_ica_fails_on_gaussian_sources():
    # Every rotation of white Gaussian sources is equally likely, so the estimate ends at an
    # arbitrary rotation. For a Haar-random 3x3 rotation the Amari distance has median 0.43
    # and 5% quantile 0.17; the median of three runs falls below 0.17 with probability 0.007.
    distances = []
    for seed in range(3):
        _, A, x, key = _mixed("gaussian", seed=seed)
        result = linear.linear_ica(x, key=key)
        distances.append(metrics.amari_distance(result.unmixing, A))
    assert np.median(distances) > 0.17
    # While Laplace sources of the same size give < 0.05 (previous test): clearly apart.


def test_ica_likelihood_is_rotation_invariant_only_for_gaussian_sources():
    key_r = jax.random.PRNGKey(9)
    R = np.linalg.qr(np.asarray(linear.random_orthogonal(key_r, 3), np.float64))[0]
    for kind in ("gaussian", "laplace"):
        _, _, x, key = _mixed(kind, seed=2)
        W = np.asarray(linear.linear_ica(x, key=key).unmixing, np.float64)
        # Under the Gaussian model the likelihood of W and R W is the same function of the
        # data (|det R| = 1, |R y| = |y|): equal up to rounding.
        ll = linear.ica_log_likelihood(x, W, density="gaussian")
        ll_rot = linear.ica_log_likelihood(x, R @ W, density="gaussian")
        cov = np.cov(np.asarray(x, np.float64).T)
        assert abs(ll - ll_rot) <= _f64_loglik_tol(W @ cov @ W.T, ll)
        # Under the Laplace model a rotation of separated Laplace sources mixes them, which
        # lowers the likelihood by much more than for Gaussian data (finite-sample noise).
        drop = linear.ica_log_likelihood(x, W) - linear.ica_log_likelihood(x, R @ W)
        if kind == "laplace":
            assert drop > 0.1
        else:
            assert abs(drop) < 0.05


def test_ica_bad_inputs():
    _, _, x, key = _mixed("laplace", seed=0)
    with pytest.raises(
        ValueError, match=r"density='cauchy' is unknown; valid: laplace, super, sub, gaussian"
    ) as err:
        linear.linear_ica(x, key=key, density="cauchy")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="singular"):
        linear.linear_ica(np.concatenate([x, x[:, :1]], 1), key=key)
    with pytest.raises(ValueError, match=r"n_steps=0"):
        linear.linear_ica(x, key=key, n_steps=0)


def test_linear_ica_study_small():
    out = linear.linear_ica_study(jax.random.PRNGKey(0), n=N, dim=DIM)
    assert out["laplace"]["amari"] < 0.05 and out["laplace"]["amari_fastica"] < 0.05
    assert out["gaussian"]["amari"] > out["laplace"]["amari"] + 0.1
    g = out["gaussian"]
    assert g["gaussian_model_log_likelihood"] == pytest.approx(
        g["gaussian_model_log_likelihood_rotated"], abs=1e-10
    )
    assert out["ppca"]["log_likelihood_difference"] < 1e-10
    assert out["ppca"]["W_relative_change"] > 0.1


# ---------------------------------------------------------------------------------------
# PPCA
# ---------------------------------------------------------------------------------------


def _ppca_data(n=3000, d=6, q=2, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((d, q)) * 2.0
    return rng.standard_normal((n, q)) @ W.T + 0.5 * rng.standard_normal((n, d)) + 3.0


def test_ppca_closed_form_matches_sample_covariance_and_sklearn():
    x = _ppca_data()
    n, d = x.shape
    q = 2
    W, sigma2, mean = linear.ppca(x, q)
    S = np.cov(x.T, bias=True)
    lam = np.sort(np.linalg.eigvalsh(S))[::-1]
    C = W @ W.T + sigma2 * np.eye(d)
    # C keeps the q leading eigenvalues of S and replaces the rest by their mean.
    np.testing.assert_allclose(
        np.sort(np.linalg.eigvalsh(C))[::-1],
        np.concatenate([lam[:q], np.full(d - q, lam[q:].mean())]),
        rtol=64 * d * EPS64 * np.linalg.cond(S),
    )
    # The maximised log-likelihood in closed form (Tipping & Bishop 1999, eq. 4 with C above):
    # -(1/2) (d log 2 pi + sum log l_j + (d - q) log sigma2 + d).
    ll = linear.ppca_log_likelihood(x, W, sigma2, mean)
    closed = -0.5 * (
        d * math.log(2 * math.pi) + np.log(lam[:q]).sum() + (d - q) * np.log(sigma2) + d
    )
    assert abs(ll - closed) <= _f64_loglik_tol(C, ll)
    # scikit-learn's PCA model uses the n - 1 covariance: rescaled, the same C.
    pca = PCA(n_components=q).fit(x)
    np.testing.assert_allclose(
        pca.get_covariance() * (n - 1) / n, C, rtol=0, atol=64 * d * EPS64 * np.abs(C).max()
    )
    assert ll >= pca.score(x)
    # A maximum: moving W or sigma2 lowers the likelihood.
    assert linear.ppca_log_likelihood(x, 1.05 * W, sigma2, mean) < ll
    assert linear.ppca_log_likelihood(x, W, 1.1 * sigma2, mean) < ll


def test_ppca_likelihood_is_rotation_invariant():
    x = _ppca_data(d=5, q=3)
    check = linear.ppca_rotation_check(x, 3, jax.random.PRNGKey(4))
    W, sigma2, _ = linear.ppca(x, 3)
    C = W @ W.T + sigma2 * np.eye(5)
    assert check["log_likelihood_difference"] <= _f64_loglik_tol(C, check["log_likelihood"])
    assert check["W_relative_change"] > 0.1


# ---------------------------------------------------------------------------------------
# Factor analysis
# ---------------------------------------------------------------------------------------


def test_factor_analysis_em_is_monotone_and_matches_sklearn():
    rng = np.random.default_rng(1)
    n, d, q = 3000, 6, 2
    W_true = rng.standard_normal((d, q))
    psi_true = rng.uniform(0.1, 1.0, d)  # heteroscedastic noise: not PPCA
    x = rng.standard_normal((n, q)) @ W_true.T + rng.standard_normal((n, d)) * np.sqrt(psi_true)
    fa = linear.factor_analysis(x, q, n_iter=300)
    trace = fa.log_likelihood
    assert trace.shape == (301,)
    # EM never decreases the likelihood; allow float64 rounding of each evaluation.
    C = fa.W @ fa.W.T + np.diag(fa.psi)
    tol = _f64_loglik_tol(C, trace[-1])
    assert np.all(np.diff(trace) >= -tol)
    # The trace's formula (through the sample covariance) equals the density's average.
    ll = linear.factor_analysis_log_likelihood(x, fa.W, fa.psi, fa.mean)
    assert abs(ll - trace[-1]) <= tol
    # scikit-learn's FactorAnalysis (SVD-based iterations) reaches the same maximum; sklearn
    # stops when its total log-likelihood gains < tol, i.e. < 1e-8 per sample here.
    sk = FactorAnalysis(n_components=q, tol=1e-8 * n, max_iter=5000, svd_method="lapack").fit(x)
    assert abs(ll - sk.score(x)) < 1e-6
    np.testing.assert_allclose(fa.psi, sk.noise_variance_, rtol=1e-2)
    # Rotation of the loadings leaves the likelihood unchanged (factor rotation).
    R = np.linalg.qr(rng.standard_normal((q, q)))[0]
    ll_rot = linear.factor_analysis_log_likelihood(x, fa.W @ R, fa.psi, fa.mean)
    assert abs(ll_rot - ll) <= tol


def test_gaussian_models_bad_inputs():
    x = _ppca_data(n=50, d=4)
    with pytest.raises(ValueError, match=r"n_components=4 is invalid .* valid: 1\.\.3") as err:
        linear.ppca(x, 4)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"n_components=0"):
        linear.factor_analysis(x, 0)
    with pytest.raises(ValueError, match=r"sigma2=0\.0"):
        linear.ppca_log_likelihood(x, np.ones((4, 1)), 0.0, np.zeros(4))
