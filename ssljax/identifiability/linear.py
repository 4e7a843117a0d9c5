"""Linear latent-variable models and what their likelihood identifies.

Three linear-Gaussian-or-not models of observations ``x = A s (+ noise)``:

* **Linear ICA** (independent sources, square invertible mixing). Comon 1994, from the
  Darmois-Skitovich theorem, showed that ``A`` is identified up to permutation and scaling of
  its columns as long as at most one source is Gaussian. With Gaussian sources it is not: once
  the data are whitened, every rotation ``R`` of white Gaussian sources is again white Gaussian,
  so the likelihood is the same for ``W`` and ``R W`` and nothing singles out the true
  unmixing. ``linear_ica`` maximises the likelihood of a fixed source density by the natural
  gradient ``W <- W + lr (I - E[phi(y) y^T]) W`` (Amari, Cichocki & Yang 1996; Bell &
  Sejnowski 1995 for the infomax form; Cardoso 1997 for the equivalence), with
  ``phi = -d log p / dy`` the score of the source density. A super-Gaussian density model
  separates super-Gaussian sources and a sub-Gaussian one sub-Gaussian sources (the sign of
  the kurtosis must match; Lee, Girolami & Sejnowski 1999, extended infomax).
* **Probabilistic PCA** (``x = W z + mu + eps``, ``z ~ N(0, I_q)``, ``eps ~ N(0, sigma2 I)``;
  Tipping & Bishop 1999). The likelihood depends on ``W`` only through ``C = W W^T + sigma2 I``,
  which ``W R`` leaves unchanged for any orthogonal ``R``: the maximum-likelihood ``W`` is a
  whole orbit of rotations, and only the subspace and the column norms of the principal
  solution are identified. ``ppca`` returns the closed-form maximum with ``R = I``.
* **Factor analysis** (``eps ~ N(0, diag(psi))``), fitted by EM (Rubin & Thayer 1982;
  Ghahramani & Hinton 1996). It shares the rotation indeterminacy of PPCA (hence the "factor
  rotation" problem of classical psychometrics).

Conventions: data ``x`` are ``[num_samples, dim]`` rows; a mixing matrix ``A`` maps sources to
observations as ``x = s @ A.T`` (each row ``x_n = A s_n``); an unmixing matrix ``W`` maps
centred observations to sources as ``y = (x - mean) @ W.T``, so a perfect ``W`` makes
``W @ A`` a scaled permutation (``metrics.amari_distance(W, A) == 0``).
"""

from __future__ import annotations

import math
import time
import warnings
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from scipy.stats import multivariate_normal
from sklearn.decomposition import FastICA
from sklearn.exceptions import ConvergenceWarning

from ssljax.identifiability.metrics import amari_distance

Array = jax.Array

DENSITIES = ("laplace", "super", "sub", "gaussian")

_LOG_2PI = math.log(2.0 * math.pi)
_SQRT2 = math.sqrt(2.0)


# ---------------------------------------------------------------------------------------
# Source densities (all of unit variance)
# ---------------------------------------------------------------------------------------


def _log_cosh(y: Array) -> Array:
    """``log cosh(y)``, exact for large ``|y|`` (no overflow of ``cosh``)."""
    a = jnp.abs(y)
    return a + jnp.log1p(jnp.exp(-2.0 * a)) - math.log(2.0)


def check_density(density: str) -> None:
    """One-line ValueError for a source density that is not one of ``DENSITIES``."""
    if density not in DENSITIES:
        raise ValueError(f"density={density!r} is unknown; valid: {', '.join(DENSITIES)}")


def log_density(y: Array, density: str) -> Array:
    """Elementwise ``log p(y)`` of a unit-variance source density.

    * ``"laplace"``: ``p(y) = exp(-sqrt(2) |y|) / sqrt(2)`` (super-Gaussian, excess kurtosis 3).
    * ``"super"``: hyperbolic secant ``p(y) = sech(pi y / 2) / 2`` (super-Gaussian, excess
      kurtosis 2; score ``(pi/2) tanh(pi y / 2)``, the smooth ``tanh`` nonlinearity of
      infomax).
    * ``"sub"``: the sub-Gaussian density of extended infomax (Lee, Girolami & Sejnowski 1999),
      ``(N(y; m, v) + N(y; -m, v)) / 2``, here with ``m^2 = v = 1/2`` for unit variance
      (excess kurtosis -1/2); equal to ``N(y; 0, v) exp(-1/2) cosh(sqrt(2) y)``.
    * ``"gaussian"``: ``N(y; 0, 1)``.
    """
    check_density(density)
    if density == "laplace":
        return -_SQRT2 * jnp.abs(y) - 0.5 * math.log(2.0)
    if density == "super":
        return -math.log(2.0) - _log_cosh(0.5 * math.pi * y)
    if density == "sub":
        # N(y; 0, 1/2) = exp(-y^2) / sqrt(pi)
        return -(y**2) - 0.5 * math.log(math.pi) - 0.5 + _log_cosh(_SQRT2 * y)
    return -0.5 * y**2 - 0.5 * _LOG_2PI


def score(y: Array, density: str) -> Array:
    """The score ``phi(y) = -d log p(y) / dy`` of ``log_density`` (elementwise)."""
    check_density(density)
    if density == "laplace":
        return _SQRT2 * jnp.sign(y)
    if density == "super":
        return 0.5 * math.pi * jnp.tanh(0.5 * math.pi * y)
    if density == "sub":
        return 2.0 * y - _SQRT2 * jnp.tanh(_SQRT2 * y)
    return y


# ---------------------------------------------------------------------------------------
# Data helpers
# ---------------------------------------------------------------------------------------


def _check_n_dim(n: int, dim: int) -> None:
    if int(n) != n or n < 1:
        raise ValueError(f"n={n!r} is invalid; valid: an integer >= 1")
    if int(dim) != dim or dim < 1:
        raise ValueError(f"dim={dim!r} is invalid; valid: an integer >= 1")


def laplace_sources(key: Array, n: int, dim: int) -> Array:
    """``[n, dim]`` i.i.d. Laplace sources of zero mean and unit variance (scale ``1/sqrt 2``)."""
    _check_n_dim(n, dim)
    return jax.random.laplace(key, (int(n), int(dim))) / _SQRT2


def gaussian_sources(key: Array, n: int, dim: int) -> Array:
    """``[n, dim]`` i.i.d. standard normal sources."""
    _check_n_dim(n, dim)
    return jax.random.normal(key, (int(n), int(dim)))


def random_orthogonal(key: Array, dim: int) -> Array:
    """A Haar-distributed random orthogonal ``[dim, dim]`` matrix (QR of a Gaussian matrix with
    the signs of ``R``'s diagonal moved into ``Q``; Mezzadri 2007)."""
    q, r = jnp.linalg.qr(jax.random.normal(key, (int(dim), int(dim))))
    return q * jnp.where(jnp.diag(r) < 0, -1.0, 1.0)[None, :]


class LinearMixture(NamedTuple):
    """A square mixing matrix ``A`` and the observations ``x = s @ A.T``."""

    A: Array
    x: Array


def mix_linear(
    key: Array, sources: Any, *, condition_max: float | None = None, max_tries: int = 1000
) -> LinearMixture:
    """Mixes ``sources`` ``[n, dim]`` with a random well-conditioned square matrix.

    ``A`` has i.i.d. ``N(0, 1/dim)`` entries and is redrawn until its condition number is at
    most ``condition_max`` (default ``4 * dim``, as ``mixing.random_mixing``), so the inverse
    is accurate in float32.

    Returns:
      ``LinearMixture(A, x)`` with ``x = sources @ A.T`` (each row ``x_n = A s_n``).
    """
    s = jnp.asarray(sources, jnp.float32)
    if s.ndim != 2:
        raise ValueError(f"sources must be [num_samples, dim], got shape {s.shape}")
    dim = s.shape[1]
    limit = 4.0 * dim if condition_max is None else float(condition_max)
    if limit < 1.0:
        raise ValueError(f"condition_max={condition_max!r} is invalid; valid: a number >= 1")
    for _ in range(int(max_tries)):
        key, sub = jax.random.split(key)
        A = jax.random.normal(sub, (dim, dim)) / math.sqrt(dim)
        if float(np.linalg.cond(np.asarray(A, np.float64))) <= limit:
            return LinearMixture(A, s @ A.T)
    raise ValueError(
        f"no {dim}x{dim} Gaussian matrix with condition number <= {limit} in {max_tries} draws; "
        "raise condition_max"
    )


def _as_data(x: Any, name: str = "x", *, dtype=np.float64) -> np.ndarray:
    x = np.asarray(x, dtype=dtype)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"{name} must be [num_samples >= 2, dim >= 1], got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains non-finite values")
    return x


# ---------------------------------------------------------------------------------------
# Linear ICA
# ---------------------------------------------------------------------------------------


class IcaResult(NamedTuple):
    """A fitted linear ICA model.

    ``unmixing`` ``[dim, dim]``: sources ``y = (x - mean) @ unmixing.T`` in the original
    coordinates. ``log_likelihood`` ``[n_steps]``: average log-likelihood per sample of the
    model before each update (of the start that was kept); ``final_log_likelihood``: after the
    last update. ``sources``: the recovered ``y``.
    """

    unmixing: Array
    mean: Array
    log_likelihood: Array
    final_log_likelihood: Array
    sources: Array


def ica_log_likelihood(x: Any, W: Any, *, density: str = "laplace", mean: Any = None) -> float:
    """Average log-likelihood per sample of ``x`` under ``x = W^{-1} y + mean``, ``y_i ~ p``.

    ``log|det W| + (1/n) sum_n sum_i log p(y_ni)`` with ``y = (x - mean) @ W.T`` (change of
    variables); ``mean`` defaults to the sample mean, its maximum-likelihood value for the
    symmetric densities here. Computed in float64.
    """
    check_density(density)
    x = _as_data(x)
    W = np.asarray(W, np.float64)
    if W.shape != (x.shape[1], x.shape[1]):
        raise ValueError(f"W must be [{x.shape[1]}, {x.shape[1]}] for x {x.shape}, got {W.shape}")
    mu = x.mean(axis=0) if mean is None else np.asarray(mean, np.float64)
    y = (x - mu) @ W.T
    with jax.enable_x64():
        logp = np.asarray(log_density(jnp.asarray(y, jnp.float64), density))
    return float(np.linalg.slogdet(W)[1] + logp.sum(axis=1).mean())


@partial(jax.jit, static_argnames=("n_steps", "density"))
def _natural_gradient_ica(xw, W0s, log_det_v, learning_rate, *, n_steps, density):
    n, dim = xw.shape
    eye = jnp.eye(dim, dtype=xw.dtype)

    def log_likelihood(W):
        y = xw @ W.T
        return jnp.linalg.slogdet(W)[1] + log_det_v + jnp.sum(log_density(y, density)) / n

    def step(W, _):
        y = xw @ W.T
        grad = eye - score(y, density).T @ y / n
        return W + learning_rate * grad @ W, log_likelihood(W)

    def run(W0):
        W, trace = jax.lax.scan(step, W0, None, length=n_steps)
        return W, trace, log_likelihood(W)

    return jax.vmap(run)(W0s)


def linear_ica(
    x: Any,
    *,
    key: Array,
    n_steps: int = 300,
    learning_rate: float = 0.2,
    density: str = "laplace",
    whiten: bool = True,
    n_restarts: int = 4,
) -> IcaResult:
    """Maximum-likelihood linear ICA by full-batch natural-gradient ascent.

    The data are centred and (by default) whitened with the symmetric whitening ``V =
    Cov(x)^{-1/2}``; from each of ``n_restarts`` random orthogonal starts (drawn from ``key``),
    ``n_steps`` natural-gradient updates (Amari, Cichocki & Yang 1996)

        W <- W + learning_rate * (I - E[phi(y) y^T]) W,    y = W x_white,

    ascend the average log-likelihood ``log|det W V| + E[sum_i log p(y_i)]`` of the chosen
    unit-variance source density (``log_density``; ``phi`` its ``score``). Whitening does not
    change the maximum (``W V`` ranges over all invertible matrices either way), it only
    makes the problem well conditioned so one step size suits every mixing. With
    ``whiten=False`` the updates run on the centred data. The start that ends with the highest
    likelihood is returned: on a finite sample the likelihood can have spurious local maxima
    where two sources stay mixed, most often under the non-smooth ``"laplace"`` score (1 of
    24 single-start runs on 3 or 5 Laplace sources, 4000 or 10,000 samples), and the
    maximum-likelihood estimate is the best of them.

    A stationary point has ``E[phi(y_i) y_j] = delta_ij``: for ``"laplace"``, ``"super"`` and
    ``"sub"`` a separating solution is a stable maximum when the sources' kurtosis has the
    model's sign (Cardoso & Laheld 1996; Amari, Chen & Cichocki 1997). With Gaussian sources, or ``density="gaussian"``, the update only
    whitens and the final rotation is whatever the start was (see the module docstring).

    Args:
      x: observations ``[num_samples, dim]``.
      key: PRNG key of the initial orthogonal matrix.
      n_steps: number of updates (the full batch each time).
      learning_rate: natural-gradient step size (0.1-0.3 suits whitened data).
      density: one of ``DENSITIES``.
      whiten: whiten before the updates.
      n_restarts: random starts, run together (``vmap``); the most likely one is kept.

    Returns:
      ``IcaResult`` with the unmixing matrix in the original coordinates.
    """
    check_density(density)
    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps={n_steps!r} is invalid; valid: an integer >= 1")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate={learning_rate!r} is invalid; valid: a number > 0")
    if int(n_restarts) != n_restarts or n_restarts < 1:
        raise ValueError(f"n_restarts={n_restarts!r} is invalid; valid: an integer >= 1")
    x = jnp.asarray(_as_data(x, dtype=np.float32))
    n, dim = x.shape
    mean = x.mean(axis=0)
    xc = x - mean
    if whiten:
        evals, evecs = jnp.linalg.eigh(xc.T @ xc / n)
        if float(evals[0]) <= dim * np.finfo(np.float32).eps * float(evals[-1]):
            raise ValueError(
                f"the covariance of x is singular (eigenvalues {float(evals[0]):.3g} .. "
                f"{float(evals[-1]):.3g}); ICA needs full-rank data"
            )
        V = (evecs / jnp.sqrt(evals)) @ evecs.T
    else:
        V = jnp.eye(dim, dtype=x.dtype)
    log_det_v = jnp.linalg.slogdet(V)[1]
    W0 = jax.vmap(random_orthogonal, in_axes=(0, None))(
        jax.random.split(key, int(n_restarts)), dim
    ).astype(x.dtype)
    W, trace, final = _natural_gradient_ica(
        xc @ V.T, W0, log_det_v, jnp.float32(learning_rate), n_steps=int(n_steps), density=density
    )
    finite = jnp.isfinite(final) & jnp.all(jnp.isfinite(W), axis=(1, 2))
    if not bool(jnp.any(finite)):
        raise FloatingPointError(
            f"linear ICA diverged from every start; lower learning_rate={learning_rate}"
        )
    best = int(jnp.argmax(jnp.where(finite, final, -jnp.inf)))
    W, trace, final = W[best], trace[best], final[best]
    unmixing = W @ V
    return IcaResult(unmixing, mean, trace, final, xc @ unmixing.T)


def fastica_unmixing(
    x: Any, seed: int = 0, *, max_iter: int = 1000, tol: float = 1e-5
) -> np.ndarray:
    """scikit-learn's ``FastICA`` (Hyvarinen & Oja 2000; ``logcosh`` contrast, parallel
    fixed-point iterations) as a reference.

    Returns:
      float64 ``[dim, dim]`` unmixing matrix in this module's convention, ``y = (x - mean) @
      W.T`` (scikit-learn's ``components_``, whitening included).
    """
    x = _as_data(x)
    ica = FastICA(whiten="unit-variance", random_state=int(seed), max_iter=max_iter, tol=tol)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ica.fit(x)
    return np.asarray(ica.components_, np.float64)


# ---------------------------------------------------------------------------------------
# Gaussian linear models: PPCA and factor analysis
# ---------------------------------------------------------------------------------------


def gaussian_log_likelihood(x: Any, mean: Any, cov: Any) -> float:
    """Average log-density per sample of ``x`` under ``N(mean, cov)`` (``scipy.stats``)."""
    x = _as_data(x)
    return float(np.mean(multivariate_normal(np.asarray(mean, np.float64), cov).logpdf(x)))


def _check_components(n_components: int, dim: int, model: str) -> None:
    if int(n_components) != n_components or not 1 <= n_components < dim:
        raise ValueError(
            f"n_components={n_components!r} is invalid for {model} of {dim}-dimensional data; "
            f"valid: 1..{dim - 1}"
        )


def _sample_covariance(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    xc = x - mean
    return mean, xc.T @ xc / x.shape[0]


def ppca(x: Any, n_components: int) -> tuple[np.ndarray, float, np.ndarray]:
    """Closed-form maximum-likelihood probabilistic PCA (Tipping & Bishop 1999).

    With ``S`` the sample covariance (divided by ``n``, the maximum-likelihood estimate), its
    eigenvalues ``l_1 >= ... >= l_d`` and eigenvectors ``U``:

        sigma2 = mean(l_{q+1}, ..., l_d),    W = U_q (diag(l_1..l_q) - sigma2 I)^{1/2} R,

    with ``R = I`` here; any orthogonal ``R`` gives the same likelihood (module docstring).

    Args:
      x: data ``[num_samples, dim]``.
      n_components: latent dimension ``q``, ``1 <= q < dim``.

    Returns:
      ``(W [dim, q], sigma2, mean [dim])`` as float64.
    """
    x = _as_data(x)
    _check_components(n_components, x.shape[1], "PPCA")
    q = int(n_components)
    mean, S = _sample_covariance(x)
    evals, evecs = np.linalg.eigh(S)
    evals, evecs = evals[::-1], evecs[:, ::-1]
    sigma2 = float(evals[q:].mean())
    W = evecs[:, :q] * np.sqrt(np.maximum(evals[:q] - sigma2, 0.0))
    return W, sigma2, mean


def ppca_log_likelihood(x: Any, W: Any, sigma2: float, mean: Any) -> float:
    """Average log-likelihood per sample under PPCA: ``N(mean, W W^T + sigma2 I)``."""
    W = np.asarray(W, np.float64)
    if not sigma2 > 0:
        raise ValueError(f"sigma2={sigma2!r} is invalid; valid: a number > 0")
    return gaussian_log_likelihood(x, mean, W @ W.T + sigma2 * np.eye(W.shape[0]))


def ppca_rotation_check(x: Any, n_components: int, key: Array) -> dict:
    """PPCA's likelihood is blind to rotations of ``W`` (Tipping & Bishop 1999).

    Fits ``ppca``, draws a random orthogonal ``R`` ``[q, q]`` from ``key`` and compares the
    log-likelihood of ``W`` and ``W R`` (with ``q = 1`` the only rotations are ``+-1``: use
    ``q >= 2`` to see ``W`` change).

    Returns:
      ``{"log_likelihood", "log_likelihood_rotated", "log_likelihood_difference" (absolute),
      "W_relative_change" (||W R - W||_F / ||W||_F)}`` as floats.
    """
    W, sigma2, mean = ppca(x, n_components)
    R = np.asarray(random_orthogonal(key, W.shape[1]), np.float64)
    # Re-orthogonalise in float64 so the check measures the likelihood, not float32 R.
    u, _, vt = np.linalg.svd(R)
    R = u @ vt
    ll, ll_rot = (
        ppca_log_likelihood(x, W, sigma2, mean),
        ppca_log_likelihood(x, W @ R, sigma2, mean),
    )
    return {
        "log_likelihood": ll,
        "log_likelihood_rotated": ll_rot,
        "log_likelihood_difference": abs(ll - ll_rot),
        "W_relative_change": float(np.linalg.norm(W @ R - W) / np.linalg.norm(W)),
    }


class FactorAnalysisResult(NamedTuple):
    """Loadings ``W`` ``[dim, q]``, noise variances ``psi`` ``[dim]``, ``mean`` ``[dim]`` and the
    average log-likelihood per sample at the start and after every EM iteration
    ``[n_iter + 1]``."""

    W: np.ndarray
    psi: np.ndarray
    mean: np.ndarray
    log_likelihood: np.ndarray


def _gaussian_ll_from_covariance(S: np.ndarray, C: np.ndarray) -> float:
    """``-(1/2)(d log 2 pi + log|C| + tr(C^{-1} S))``: the average log-likelihood of data with
    sample covariance ``S`` (mean at the sample mean) under ``N(mean, C)``."""
    c = scipy.linalg.cho_factor(C)
    log_det = 2.0 * np.sum(np.log(np.diag(c[0])))
    return float(-0.5 * (S.shape[0] * _LOG_2PI + log_det + np.trace(scipy.linalg.cho_solve(c, S))))


def factor_analysis_log_likelihood(x: Any, W: Any, psi: Any, mean: Any) -> float:
    """Average log-likelihood per sample under factor analysis: ``N(mean, W W^T + diag(psi))``."""
    W, psi = np.asarray(W, np.float64), np.asarray(psi, np.float64)
    return gaussian_log_likelihood(x, mean, W @ W.T + np.diag(psi))


def factor_analysis(x: Any, n_components: int, *, n_iter: int = 200) -> FactorAnalysisResult:
    """Maximum-likelihood factor analysis by EM (Rubin & Thayer 1982; Ghahramani & Hinton 1996).

    Model ``x = W z + mean + eps``, ``z ~ N(0, I_q)``, ``eps ~ N(0, diag(psi))``. With ``S``
    the sample covariance and ``C = W W^T + diag(psi)``, one iteration is

        E-step:  B = W^T C^{-1},   E[z z^T] = I - B W + B S B^T   (averaged over the data)
        M-step:  W <- S B^T E[z z^T]^{-1},   psi <- diag(S - W_new B S),

    which never decreases the likelihood (Dempster, Laird & Rubin 1977). The start is the PPCA
    solution's ``W`` with ``psi = diag(S - W W^T)`` (positive for full-rank ``S``); ``psi`` is
    kept above ``1e-9 * diag(S)`` against Heywood cases.

    Args:
      x: data ``[num_samples, dim]``.
      n_components: number of factors ``q``, ``1 <= q < dim``.
      n_iter: EM iterations.

    Returns:
      ``FactorAnalysisResult(W, psi, mean, log_likelihood)``.
    """
    x = _as_data(x)
    _check_components(n_components, x.shape[1], "factor analysis")
    if int(n_iter) != n_iter or n_iter < 0:
        raise ValueError(f"n_iter={n_iter!r} is invalid; valid: an integer >= 0")
    mean, S = _sample_covariance(x)
    q = int(n_components)
    floor = 1e-9 * np.diag(S)
    W, _, _ = ppca(x, q)
    psi = np.maximum(np.diag(S) - np.sum(W**2, axis=1), floor)
    trace = [_gaussian_ll_from_covariance(S, W @ W.T + np.diag(psi))]
    for _ in range(int(n_iter)):
        C = W @ W.T + np.diag(psi)
        B = scipy.linalg.solve(C, W, assume_a="pos").T
        Ezz = np.eye(q) - B @ W + B @ S @ B.T
        W = scipy.linalg.solve(Ezz, B @ S, assume_a="pos").T
        psi = np.maximum(np.diag(S - W @ B @ S), floor)
        trace.append(_gaussian_ll_from_covariance(S, W @ W.T + np.diag(psi)))
    return FactorAnalysisResult(W, psi, mean, np.asarray(trace))


# ---------------------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------------------


def linear_ica_study(
    key: Array,
    *,
    n: int = 10_000,
    dim: int = 5,
    n_steps: int = 300,
    learning_rate: float = 0.2,
    density: str = "laplace",
    ppca_components: int | None = None,
) -> dict:
    """Linear ICA on Laplace versus Gaussian sources, ours beside FastICA, and PPCA's rotation.

    For each source distribution (``"laplace"``, ``"gaussian"``): ``n`` samples of ``dim``
    unit-variance sources, mixed by ``mix_linear``; ``linear_ica`` with ``density`` and
    ``fastica_unmixing``; their Amari distances to the true mixing; the final average
    log-likelihood of our model at the estimate ``W`` and at ``R W`` for a random rotation
    ``R`` (applied to the whitened sources: ``R W`` whitens as well as ``W``). For Gaussian
    sources the two likelihoods agree up to finite-sample fluctuation (and exactly, up to
    rounding, under the Gaussian density model), so ICA cannot prefer the true rotation; for
    Laplace sources the rotation costs likelihood. Then ``ppca_rotation_check`` on the
    Gaussian data with ``ppca_components`` (default ``dim - 1``) factors.

    Returns:
      A JSON-ready dict of floats: per source kind ``amari``, ``amari_fastica``,
      ``log_likelihood``, ``log_likelihood_rotated``, ``gaussian_model_log_likelihood``,
      ``gaussian_model_log_likelihood_rotated``, ``seconds``, ``seconds_fastica``; and
      ``"ppca"``: the rotation check; plus the settings.
    """
    check_density(density)
    _check_n_dim(n, dim)
    out: dict[str, Any] = {
        "n": int(n),
        "dim": int(dim),
        "n_steps": int(n_steps),
        "learning_rate": float(learning_rate),
        "density": density,
    }
    k_laplace, k_gauss, k_ppca = jax.random.split(key, 3)
    data = {}
    for kind, k, draw in (
        ("laplace", k_laplace, laplace_sources),
        ("gaussian", k_gauss, gaussian_sources),
    ):
        k_src, k_mix, k_ica, k_rot = jax.random.split(k, 4)
        A, x = mix_linear(k_mix, draw(k_src, n, dim))
        data[kind] = x
        start = time.perf_counter()
        result = linear_ica(
            x, key=k_ica, n_steps=n_steps, learning_rate=learning_rate, density=density
        )
        jax.block_until_ready(result.unmixing)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        W_fast = fastica_unmixing(x, seed=0)
        seconds_fast = time.perf_counter() - start
        W = np.asarray(result.unmixing, np.float64)
        R = np.asarray(random_orthogonal(k_rot, dim), np.float64)
        u, _, vt = np.linalg.svd(R)
        RW = (u @ vt) @ W
        out[kind] = {
            "amari": amari_distance(W, A),
            "amari_fastica": amari_distance(W_fast, A),
            "log_likelihood": ica_log_likelihood(x, W, density=density),
            "log_likelihood_rotated": ica_log_likelihood(x, RW, density=density),
            "gaussian_model_log_likelihood": ica_log_likelihood(x, W, density="gaussian"),
            "gaussian_model_log_likelihood_rotated": ica_log_likelihood(x, RW, density="gaussian"),
            "seconds": seconds,
            "seconds_fastica": seconds_fast,
        }
    q = max(1, dim - 1) if ppca_components is None else int(ppca_components)
    out["ppca"] = ppca_rotation_check(data["gaussian"], q, k_ppca)
    out["ppca"]["n_components"] = q
    return out


__all__ = [
    "DENSITIES",
    "FactorAnalysisResult",
    "IcaResult",
    "LinearMixture",
    "factor_analysis",
    "factor_analysis_log_likelihood",
    "fastica_unmixing",
    "gaussian_log_likelihood",
    "gaussian_sources",
    "ica_log_likelihood",
    "laplace_sources",
    "linear_ica",
    "linear_ica_study",
    "log_density",
    "mix_linear",
    "ppca",
    "ppca_log_likelihood",
    "ppca_rotation_check",
    "random_orthogonal",
    "score",
]
