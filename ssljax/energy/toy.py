"""Toy densities with exact energies, scores and samplers, and two distances between samples.

Densities (``toy_density(name, **kwargs)``, names in ``TOY_DENSITIES``), each a frozen
``ToyDensity`` of pure functions:

* ``gaussian_mixture``: ``num_modes`` equal-weight isotropic Gaussians of standard deviation
  ``std`` centred on a circle of radius ``radius`` (the 8-mode ring of Gaussians used to
  test generative models since Metz et al. 2017);
* ``ring``: ``p(x) = exp(-(|x| - radius)^2 / (2 width^2)) / Z`` in the plane, normalised by
  ``Z = 2 pi (width^2 exp(-radius^2 / (2 width^2)) + radius width sqrt(2 pi) Phi(radius / width))``;
* ``gaussian``: ``N(mean, cov)`` in any dimension.

``energy(x [N, d]) -> [N]`` is the exact ``-log p(x)`` (normalised), ``score(x) -> [N, d]`` is
``grad log p = -grad E`` in closed form, ``sample(key, n) -> [n, d]`` draws exact samples
(the ring's radius by rejection from a proposal that dominates it, so ``sample`` runs a short
Python loop and is not jit-able; the others are).

Distances between two samples ``x [m, d]`` and ``y [n, d]``, float32, computed in row blocks
(``block`` rows against all of the other sample: memory of ``block * n * d`` floats):

* ``mmd``: the squared maximum mean discrepancy with the Gaussian kernel
  ``k(a, b) = exp(-|a - b|^2 / (2 h^2))`` (Gretton et al. 2012). Unbiased (U-statistic, their
  eq. 3: diagonal terms left out; may be negative) by default, or the biased V-statistic
  (``unbiased=False``: every pair, >= 0). ``h`` by the median heuristic when not given: the
  median distance between points of the pooled sample (``median_bandwidth``).
* ``energy_distance``: Szekely & Rizzo 2013's
  ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` with empirical means over all pairs (the V-statistic;
  in 1-D it equals ``2 * integral (F_x - F_y)^2``, the square of
  ``scipy.stats.energy_distance``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

TOY_DENSITIES = ("gaussian_mixture", "ring", "gaussian")
# Pooled points the median heuristic reads at most (every point when fewer).
MEDIAN_POINTS = 1000
# Rows of one sample compared with all of the other at once in ``mmd`` / ``energy_distance``.
_BLOCK = 256


@dataclasses.dataclass(frozen=True)
class ToyDensity:
    """A density with its exact energy, score and sampler.

    Attributes:
      name: one of ``TOY_DENSITIES``.
      dim: dimension ``d`` of a point.
      energy: ``x [N, d] -> [N]``, ``-log p(x)``.
      score: ``x [N, d] -> [N, d]``, ``grad log p(x)``.
      sample: ``(key, n) -> [n, d]`` exact samples.
      params: the density's parameters (for records).
    """

    name: str
    dim: int
    energy: Callable[[jax.Array], jax.Array]
    score: Callable[[jax.Array], jax.Array]
    sample: Callable[[jax.Array, int], jax.Array]
    params: dict


def _positive(name: str, value) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={value!r} is invalid; valid: {name} > 0")
    return value


def _count(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < low:
        raise ValueError(f"{name}={value!r} is invalid; valid: an integer >= {low}")
    return int(value)


# ---------------------------------------------------------------------------------------------
# Gaussian mixture on a circle.


def mixture_means(num_modes: int, radius: float) -> np.ndarray:
    """``[K, 2]`` centres ``radius (cos 2 pi k / K, sin 2 pi k / K)``."""
    angles = 2.0 * np.pi * np.arange(num_modes) / num_modes
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def gaussian_mixture(num_modes: int = 8, radius: float = 2.0, std: float = 0.2) -> ToyDensity:
    """``(1/K) sum_k N(mu_k, std^2 I)`` with ``mu_k`` on a circle (``mixture_means``)."""
    k = _count("num_modes", num_modes)
    radius = _positive("radius", radius)
    std = _positive("std", std)
    means = jnp.asarray(mixture_means(k, radius), jnp.float32)
    var = std**2
    log_norm = math.log(2.0 * math.pi * var) + math.log(k)

    def log_components(x):
        d2 = jnp.sum((x[:, None, :] - means[None]) ** 2, axis=-1)  # [N, K]
        return -0.5 * d2 / var

    def energy(x):
        chex.assert_shape(x, (None, 2))
        return log_norm - logsumexp(log_components(x), axis=1)

    def score(x):
        chex.assert_shape(x, (None, 2))
        resp = jax.nn.softmax(log_components(x), axis=1)  # [N, K] responsibilities
        return (resp @ means - x) / var

    def sample(key, n):
        k_mode, k_noise = jax.random.split(key)
        modes = jax.random.randint(k_mode, (n,), 0, k)
        return means[modes] + std * jax.random.normal(k_noise, (n, 2), jnp.float32)

    params = dict(num_modes=k, radius=radius, std=std)
    return ToyDensity("gaussian_mixture", 2, energy, score, sample, params)


# ---------------------------------------------------------------------------------------------
# Ring.


def ring_log_normalizer(radius: float, width: float) -> float:
    """``log Z`` of ``exp(-(|x| - r)^2 / (2 s^2))`` over the plane:
    ``Z = 2 pi int_0^inf t exp(-(t - r)^2 / (2 s^2)) dt
        = 2 pi (s^2 exp(-r^2 / (2 s^2)) + r s sqrt(2 pi) Phi(r / s))``."""
    from scipy.special import ndtr

    r, s = float(radius), float(width)
    inner = s**2 * math.exp(-(r**2) / (2 * s**2)) + r * s * math.sqrt(2 * math.pi) * ndtr(r / s)
    return math.log(2.0 * math.pi * inner)


@functools.partial(jax.jit, static_argnums=(1,))
def _ring_proposals(key, m: int, radius, width):
    """``m`` proposals ``t = r + u`` of ``ring_radii`` and their acceptance flags."""
    r, s = radius, width
    p_gauss = r / (r + s * math.sqrt(2.0 / math.pi))
    kb, kg, kr, ks, ka = jax.random.split(key, 5)
    gauss = s * jax.random.normal(kg, (m,))
    rayleigh = s * jnp.sqrt(-2.0 * jnp.log1p(-jax.random.uniform(kr, (m,))))
    sign = jnp.where(jax.random.bernoulli(ks, 0.5, (m,)), 1.0, -1.0)
    u = jnp.where(jax.random.bernoulli(kb, p_gauss, (m,)), gauss, sign * rayleigh)
    t = r + u
    accept = jax.random.uniform(ka, (m,)) * (r + jnp.abs(u)) < jnp.maximum(t, 0.0)
    return t, accept


def ring_radii(key: jax.Array, n: int, radius: float, width: float) -> jax.Array:
    """``n`` exact draws of ``|x|`` for the ring: density ``t exp(-(t - r)^2 / (2 s^2))``, t > 0.

    Rejection sampling (not jit-able: a Python loop until ``n`` are accepted). The proposal
    ``t = r + u`` with ``u`` from ``(r + |u|) exp(-u^2 / (2 s^2))`` (a mixture: ``N(0, s^2)``
    with probability ``r / (r + s sqrt(2 / pi))``, else a Rayleigh(s) magnitude with a random
    sign) dominates the target, since ``t <= r + |u|``; a proposal is accepted with
    probability ``max(t, 0) / (r + |u|)`` (overall 0.93 for ``r = 10 s``).
    """
    m = 2 * n + 64
    out, have, round_ = [], 0, 0
    while have < n:
        t, accept = _ring_proposals(jax.random.fold_in(key, round_), m, radius, width)
        kept = np.asarray(t)[np.asarray(accept)]
        out.append(kept[: n - have])
        have += len(out[-1])
        round_ += 1
    return jnp.asarray(np.concatenate(out), jnp.float32)


def ring(radius: float = 2.0, width: float = 0.2) -> ToyDensity:
    """``p(x) = exp(-(|x| - radius)^2 / (2 width^2)) / Z`` in the plane (``ring_log_normalizer``)."""
    radius = _positive("radius", radius)
    width = _positive("width", width)
    log_z = ring_log_normalizer(radius, width)

    def energy(x):
        chex.assert_shape(x, (None, 2))
        norm = jnp.sqrt(jnp.sum(x**2, axis=1))
        return 0.5 * (norm - radius) ** 2 / width**2 + log_z

    def score(x):
        # -(|x| - r) / s^2 * x / |x|; at x = 0 (measure zero) the limit along any ray is
        # unbounded, and 0 is returned.
        chex.assert_shape(x, (None, 2))
        norm = jnp.sqrt(jnp.sum(x**2, axis=1, keepdims=True))
        safe = jnp.where(norm > 0, norm, 1.0)
        return jnp.where(norm > 0, -(norm - radius) / width**2 * x / safe, 0.0)

    def sample(key, n):
        k_radius, k_angle = jax.random.split(key)
        t = ring_radii(k_radius, _count("n", n), radius, width)
        angle = jax.random.uniform(k_angle, (n,), jnp.float32, 0.0, 2.0 * math.pi)
        return t[:, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=1)

    return ToyDensity("ring", 2, energy, score, sample, dict(radius=radius, width=width))


# ---------------------------------------------------------------------------------------------
# Gaussian.


def gaussian(mean=(1.0, -0.5), cov=((1.0, 0.6), (0.6, 0.8))) -> ToyDensity:
    """``N(mean, cov)``: ``E(x) = (x - mu)^T cov^-1 (x - mu) / 2 + log det(2 pi cov) / 2``."""
    mu = np.asarray(mean, np.float64).reshape(-1)
    sigma = np.asarray(cov, np.float64)
    d = mu.shape[0]
    if sigma.shape != (d, d) or not np.allclose(sigma, sigma.T):
        raise ValueError(
            f"cov of shape {sigma.shape} is invalid; valid: a symmetric ({d}, {d}) matrix"
        )
    eigenvalues = np.linalg.eigvalsh(sigma)
    if eigenvalues.min() <= 0:
        raise ValueError(
            f"cov has eigenvalue {eigenvalues.min():.3g}; valid: a positive definite matrix"
        )
    precision = jnp.asarray(np.linalg.inv(sigma), jnp.float32)
    chol = jnp.asarray(np.linalg.cholesky(sigma), jnp.float32)
    mu_j = jnp.asarray(mu, jnp.float32)
    log_norm = 0.5 * (d * math.log(2 * math.pi) + float(np.sum(np.log(eigenvalues))))

    def energy(x):
        chex.assert_shape(x, (None, d))
        c = x - mu_j
        return 0.5 * jnp.sum((c @ precision) * c, axis=1) + log_norm

    def score(x):
        chex.assert_shape(x, (None, d))
        return -(x - mu_j) @ precision

    def sample(key, n):
        return mu_j + jax.random.normal(key, (n, d), jnp.float32) @ chol.T

    params = dict(mean=mu.tolist(), cov=sigma.tolist())
    return ToyDensity("gaussian", d, energy, score, sample, params)


_BUILDERS = {"gaussian_mixture": gaussian_mixture, "ring": ring, "gaussian": gaussian}


def toy_density(name: str, **kwargs) -> ToyDensity:
    """The density ``name`` (one of ``TOY_DENSITIES``) with its keyword parameters."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown toy density {name!r}; choose one of {list(TOY_DENSITIES)}")
    return _BUILDERS[name](**kwargs)


# ---------------------------------------------------------------------------------------------
# Sample distances.


def _check_samples(x, y) -> tuple[jax.Array, jax.Array]:
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    if x.ndim == 1:
        x = x[:, None]
    if y.ndim == 1:
        y = y[:, None]
    chex.assert_rank([x, y], 2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"samples of dimension {x.shape[1]} and {y.shape[1]}; valid: the same")
    return x, y


def _block_sum(f, a: jax.Array, b: jax.Array, block: int) -> jax.Array:
    """``sum_{i, j} f(a_i - b_j)`` in blocks of ``block`` rows of ``a`` (float32)."""
    m = a.shape[0]
    pad = (-m) % block
    rows = jnp.concatenate([a, jnp.zeros((pad, a.shape[1]), a.dtype)]).reshape(
        -1, block, a.shape[1]
    )
    valid = (jnp.arange(m + pad) < m).reshape(-1, block).astype(jnp.float32)

    def one(args):
        r, v = args
        values = f(r[:, None, :] - b[None, :, :])  # [block, n]
        return jnp.sum(jnp.sum(values, axis=1) * v)

    return jnp.sum(jax.lax.map(one, (rows, valid)))


def median_bandwidth(x, y, *, max_points: int = MEDIAN_POINTS) -> jax.Array:
    """The median heuristic: the median Euclidean distance between distinct points of the
    pooled sample ``[x; y]`` (at most ``max_points`` of it, taken at an even stride)."""
    x, y = _check_samples(x, y)
    z = jnp.concatenate([x, y])
    stride = max(1, -(-z.shape[0] // max_points))
    z = z[::stride]
    d2 = jnp.sum((z[:, None, :] - z[None, :, :]) ** 2, axis=-1)
    upper = np.triu_indices(z.shape[0], k=1)
    return jnp.sqrt(jnp.median(d2[upper]))


@jax.jit
def _kernel_sums(x, y, bandwidth):
    gamma = 0.5 / bandwidth**2
    f = lambda d: jnp.exp(-gamma * jnp.sum(d**2, axis=-1))
    return (
        _block_sum(f, x, x, _BLOCK),
        _block_sum(f, y, y, _BLOCK),
        _block_sum(f, x, y, _BLOCK),
    )


def mmd(x, y, *, bandwidth=None, unbiased: bool = True) -> jax.Array:
    """Squared MMD between samples ``x [m, d]`` and ``y [n, d]``, Gaussian RBF kernel.

    Unbiased (Gretton et al. 2012, eq. 3)::

        1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(n(n-1)) sum_{i != j} k(y_i, y_j)
          - 2/(mn) sum_{i, j} k(x_i, y_j)

    (mean 0 when ``x`` and ``y`` come from one distribution; may be negative). With
    ``unbiased=False`` the V-statistic (every pair, diagonal included; >= 0; the squared MMD
    between the two empirical distributions). ``k(a, b) = exp(-|a - b|^2 / (2 h^2))`` with
    ``h = bandwidth``, or the median heuristic (``median_bandwidth``) when None.
    """
    x, y = _check_samples(x, y)
    m, n = x.shape[0], y.shape[0]
    if unbiased and min(m, n) < 2:
        raise ValueError(f"unbiased MMD needs at least 2 points per sample; got {m} and {n}")
    h = median_bandwidth(x, y) if bandwidth is None else jnp.asarray(bandwidth, jnp.float32)
    kxx, kyy, kxy = _kernel_sums(x, y, h)
    if unbiased:  # k(a, a) = 1 exactly: the diagonal sums to m (n)
        return (kxx - m) / (m * (m - 1)) + (kyy - n) / (n * (n - 1)) - 2.0 * kxy / (m * n)
    return kxx / m**2 + kyy / n**2 - 2.0 * kxy / (m * n)


@jax.jit
def _distance_sums(x, y):
    f = lambda d: jnp.sqrt(jnp.sum(d**2, axis=-1))
    return (
        _block_sum(f, x, x, _BLOCK),
        _block_sum(f, y, y, _BLOCK),
        _block_sum(f, x, y, _BLOCK),
    )


def energy_distance(x, y) -> jax.Array:
    """Szekely & Rizzo 2013's energy distance between samples ``x [m, d]`` and ``y [n, d]``:
    ``2/(mn) sum |x_i - y_j| - 1/m^2 sum |x_i - x_j| - 1/n^2 sum |y_i - y_j|`` (Euclidean
    norms; >= 0, 0 only for equal empirical distributions). 1-D inputs are ``[m]``, ``[n]``."""
    x, y = _check_samples(x, y)
    m, n = x.shape[0], y.shape[0]
    dxx, dyy, dxy = _distance_sums(x, y)
    return 2.0 * dxy / (m * n) - dxx / m**2 - dyy / n**2
