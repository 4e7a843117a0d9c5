"""Identifiability metrics: MCC, Amari distance and block R^2 against hand-computed values,
invariances and finite-sample bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import gamma
from threadpoolctl import threadpool_limits

from ssljax.identifiability import metrics

EPS64 = np.finfo(np.float64).eps


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # Kernel ridge is small dense linear algebra; a multi-threaded BLAS on a machine whose
    # cores are busy spins for 20x the single-thread time.
    with threadpool_limits(1):
        yield


def _sources(n=2000, dim=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, dim))


# ---------------------------------------------------------------------------------------
# MCC
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_mcc_of_permuted_rescaled_copy_is_one(method):
    s = _sources()
    perm = np.array([2, 0, 3, 1])
    scales = np.array([3.0, -0.5, -7.0, 0.01])  # sign flips and rescaling
    z = s[:, perm] * scales + np.array([1.0, -2.0, 0.0, 5.0])
    result = metrics.mcc_matching(z, s, method=method)
    # Correlation of an exact affine copy: a normalised dot product, 1 up to O(n eps).
    assert abs(result.mcc - 1.0) <= 16 * s.shape[0] * EPS64
    np.testing.assert_array_equal(result.s_index, np.arange(4))
    # Source j sits in column z_index[j] of z: perm[z_index[j]] == j.
    np.testing.assert_array_equal(perm[result.z_index], np.arange(4))
    assert metrics.mean_correlation_coefficient(z, s, method=method) == result.mcc


def test_spearman_invariant_to_monotone_maps_pearson_is_not():
    s = _sources()
    z = np.stack([np.exp(s[:, 1]), -(s[:, 0] ** 3), np.tanh(3 * s[:, 3]), s[:, 2]], axis=1)
    assert metrics.mean_correlation_coefficient(z, s, method="spearman") == pytest.approx(
        1.0, abs=16 * s.shape[0] * EPS64
    )
    # corr(s, exp(s)) = 1/sqrt(e - 1) = 0.76 for a standard normal s: Pearson sees the map.
    assert metrics.mean_correlation_coefficient(z, s, method="pearson") < 0.95


def test_mcc_with_extra_components_matches_distinct_ones():
    s = _sources(dim=3)
    noise = np.random.default_rng(1).standard_normal((s.shape[0], 2))
    z = np.concatenate([noise[:, :1], -2 * s[:, 2:3], s[:, 0:1], noise[:, 1:], s[:, 1:2]], 1)
    result = metrics.mcc_matching(z, s)
    assert result.mcc == pytest.approx(1.0, abs=16 * s.shape[0] * EPS64)
    np.testing.assert_array_equal(result.z_index, [2, 4, 1])
    assert result.abs_corr.shape == (5, 3)


def test_mcc_uses_the_optimal_matching_not_the_greedy_one():
    # Exact correlations from orthonormal centred columns: |corr(z_i, s_j)| = c[i, j].
    # Greedy takes 0.6 then 0.1 (mean 0.35); the optimal matching is 0.5 + 0.5 (mean 0.5).
    rng = np.random.default_rng(0)
    e = rng.standard_normal((500, 4))
    e -= e.mean(0)
    e, _ = np.linalg.qr(e)
    c = np.array([[0.6, 0.5], [0.5, 0.1]])
    s = e[:, :2]
    z = np.stack(
        [
            c[0, 0] * e[:, 0] + c[0, 1] * e[:, 1] + math.sqrt(1 - 0.61) * e[:, 2],
            c[1, 0] * e[:, 0] + c[1, 1] * e[:, 1] + math.sqrt(1 - 0.26) * e[:, 3],
        ],
        axis=1,
    )
    result = metrics.mcc_matching(z, s)
    np.testing.assert_allclose(result.abs_corr, c, atol=64 * EPS64)
    assert result.mcc == pytest.approx(0.5, abs=64 * EPS64)
    np.testing.assert_array_equal(result.z_index, [1, 0])


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_mcc_of_independent_noise_is_small(method):
    # Each sample correlation of independent variables is ~N(0, 1/n); the MCC is at most the
    # largest of the 25 |correlations|, which exceeds 5/sqrt(n) with probability
    # <= 25 * P(|N(0,1)| > 5) = 1.4e-5.
    n = 2000
    rng = np.random.default_rng(3)
    z, s = rng.standard_normal((n, 5)), rng.laplace(size=(n, 5))
    assert metrics.mean_correlation_coefficient(z, s, method=method) < 5 / math.sqrt(n)


def test_mcc_constant_component_counts_as_zero():
    s = _sources(dim=2)
    z = np.stack([np.ones(s.shape[0]), s[:, 0]], axis=1)
    corr = metrics.abs_correlation_matrix(z, s)
    np.testing.assert_array_equal(corr[0], [0.0, 0.0])


def test_mcc_bad_inputs():
    s = _sources(n=100, dim=3)
    with pytest.raises(ValueError, match=r"z has 99 samples but s has 100") as err:
        metrics.mean_correlation_coefficient(s[:99], s)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"method='kendall' is unknown; valid: pearson, spearman"):
        metrics.mean_correlation_coefficient(s, s, method="kendall")
    with pytest.raises(ValueError, match=r"z has 2 components but s has 3 sources"):
        metrics.mean_correlation_coefficient(s[:, :2], s)
    with pytest.raises(ValueError, match="non-finite"):
        metrics.mean_correlation_coefficient(np.full((100, 3), np.nan), s)


# ---------------------------------------------------------------------------------------
# Amari distance
# ---------------------------------------------------------------------------------------


def test_amari_of_true_inverse_times_scaled_permutation_is_zero():
    rng = np.random.default_rng(0)
    n = 5
    A = rng.standard_normal((n, n))
    D = np.diag([2.0, -0.3, 1.0, 5.0, -1.0])
    Pm = np.eye(n)[[3, 0, 4, 1, 2]]
    W = D @ Pm @ np.linalg.inv(A)
    # Off-diagonal entries of W A are rounding errors of an inverse: O(n cond(A) eps) relative
    # to the diagonal; each adds at most that to its row and column term.
    tol = 4 * n * n * np.linalg.cond(A) * EPS64
    assert metrics.amari_distance(np.linalg.inv(A), A) <= tol
    assert metrics.amari_distance(W, A) <= tol


def test_amari_hand_computed_2x2():
    # P = W A = [[2, 1], [0, 3]]: rows 3/2 - 1 = 1/2 and 3/3 - 1 = 0; columns 2/2 - 1 = 0 and
    # 4/3 - 1 = 1/3; total 5/6 over 2 n (n - 1) = 4 gives 5/24.
    A = np.array([[1.0, 1.0], [0.0, 1.0]])
    P = np.array([[2.0, 1.0], [0.0, 3.0]])
    W = P @ np.linalg.inv(A)
    assert metrics.amari_distance(W, A) == pytest.approx(5 / 24, abs=16 * EPS64)
    # [[1, .5], [.25, 1]]: rows .5 + .25, columns .25 + .5, over 4.
    assert metrics.amari_distance([[1.0, 0.5], [0.25, 1.0]], np.eye(2)) == pytest.approx(0.375)


def test_amari_extremes_and_invariance():
    # A Hadamard matrix has all entries of equal magnitude: the largest distance, 1.
    H = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], float)
    assert metrics.amari_distance(H, np.eye(4)) == pytest.approx(1.0, abs=16 * EPS64)
    rng = np.random.default_rng(1)
    W, A = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    d = metrics.amari_distance(W, A)
    assert 0.1 < d < 1.0
    # Permuting (and flipping the signs of) the outputs or the sources leaves it unchanged.
    Pm = np.diag([1.0, -1.0, -1.0, 1.0]) @ np.eye(4)[[1, 3, 0, 2]]
    assert metrics.amari_distance(Pm @ W, A) == pytest.approx(d, rel=64 * EPS64)
    assert metrics.amari_distance(W, A @ Pm) == pytest.approx(d, rel=64 * EPS64)
    assert metrics.amari_distance([[2.0]], [[-5.0]]) == 0.0


def test_amari_bad_inputs():
    with pytest.raises(
        ValueError, match=r"mixing matrix A must be square \[n, n\], got shape \(3, 2\)"
    ) as err:
        metrics.amari_distance(np.eye(3), np.ones((3, 2)))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"shape \(3, 3\), got \(2, 2\)"):
        metrics.amari_distance(np.eye(2), np.eye(3))
    with pytest.raises(ValueError, match="zero row or column"):
        metrics.amari_distance(np.diag([1.0, 0.0]), np.eye(2))


# ---------------------------------------------------------------------------------------
# Block R^2
# ---------------------------------------------------------------------------------------


def test_r2_of_identity_and_linear_map_is_one():
    s = _sources(n=1000, dim=3)
    A = np.random.default_rng(5).standard_normal((3, 3)) + 3 * np.eye(3)
    # Ridge's shrinkage at the smallest alpha (1e-6 on standardised inputs) costs O(alpha / n).
    assert metrics.block_r2(s, s) == pytest.approx(1.0, abs=1e-6)
    assert metrics.block_r2(s @ A.T, s) == pytest.approx(1.0, abs=1e-6)
    # Extra, useless components do not hurt.
    z = np.concatenate([s @ A.T, np.random.default_rng(6).standard_normal((1000, 2))], 1)
    assert metrics.block_r2(z, s) == pytest.approx(1.0, abs=1e-6)


def test_r2_of_elementwise_nonlinear_map():
    # z = cbrt(s) with s ~ N(0, I): s = z^3 is smooth in z, so kernel ridge recovers it; the
    # best linear predictor explains corr(s, cbrt s)^2 = (E|s|^(4/3))^2 / E|s|^(2/3) of it,
    # with E|s|^p = 2^(p/2) Gamma((p+1)/2) / sqrt(pi). Over ten seeds the held-out linear R^2
    # (200 test points) had standard deviation 0.007; the bound allows 5 of them.
    n = 1000
    s = _sources(n=n, dim=2)
    z = np.cbrt(s)

    def abs_moment(p):
        return 2 ** (p / 2) * gamma((p + 1) / 2) / math.sqrt(math.pi)

    linear_population = abs_moment(4 / 3) ** 2 / abs_moment(2 / 3)
    assert linear_population == pytest.approx(0.860, abs=1e-3)
    linear = metrics.block_r2(z, s, kind="linear")
    nonlinear = metrics.block_r2(z, s, kind="nonlinear")
    assert abs(linear - linear_population) < 0.035
    assert nonlinear > 0.99


@pytest.mark.parametrize("kind", ["linear", "nonlinear"])
def test_r2_of_independent_noise_is_about_zero(kind):
    # A useless predictor scores 1 - (its variance + the train/test mean shift) / Var: a few
    # 1/n_test below 0 (measured -0.01 +- 0.01 linear, -0.03 +- 0.01 kernel at 200 test
    # points); 0.1 is far from both that and from any real signal.
    rng = np.random.default_rng(7)
    z, s = rng.standard_normal((1000, 3)), rng.standard_normal((1000, 2))
    assert abs(metrics.block_r2(z, s, kind=kind)) < 0.1


def test_r2_block_selection_and_per_dimension():
    s = _sources(n=800, dim=4)
    z = s[:, :2] @ np.array([[1.0, 2.0], [-1.0, 1.0]])
    per_dim = metrics.block_r2_per_dimension(z, (s, [0, 3]))
    assert per_dim.shape == (2,)
    assert per_dim[0] == pytest.approx(1.0, abs=1e-6)
    assert abs(per_dim[1]) < 0.1
    assert metrics.block_r2(z, (s, [0, 3])) == pytest.approx(per_dim.mean())
    assert metrics.block_r2(z, s[:, [0, 3]]) == pytest.approx(per_dim.mean())
    assert metrics.block_r2(z, (s, 1)) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(metrics.select_block(s, [2]), s[:, 2:3])


def test_r2_bad_inputs():
    s = _sources(n=100, dim=4)
    with pytest.raises(ValueError, match=r"block index 4 is out of range; valid: 0\.\.3") as err:
        metrics.block_r2(s, (s, [1, 4]))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"block index -1 is out of range"):
        metrics.select_block(s, -1)
    with pytest.raises(ValueError, match=r"z has 100 samples but s_block has 90"):
        metrics.block_r2(s, s[:90])
    with pytest.raises(ValueError, match=r"kind='kernel' is unknown; valid: linear, nonlinear"):
        metrics.block_r2(s, s, kind="kernel")
    with pytest.raises(ValueError, match=r"test_fraction=1\.5"):
        metrics.block_r2(s, s, test_fraction=1.5)
