"""Variational lower bounds on mutual information, as pure functions of a critic score matrix.

The estimators of Poole et al. 2019 ("On Variational Bounds of Mutual Information"), read as
density-ratio estimators: each is tight when the critic recovers the log density ratio (last
column below). Every bound takes ``scores [K, K]`` with ``scores[i, j] = f(x_i, y_j)``: the
diagonal holds the K samples of the joint ``p(x, y)``, the ``K (K - 1)`` off-diagonal entries
are (dependent) samples of ``p(x) p(y)``. Estimates are in nats. With
``r = p(x, y) / (p(x) p(y))``:

=====================  ==============================================  =====================
bound                  value                                           tight critic
=====================  ==============================================  =====================
``infonce_bound``      ``mean_i [f_ii - log mean_j e^{f_ij}]``          ``log r + c(x)``
                       (capped at ``log K``)
``tuba_bound``         ``1 + mean_i (f_ii - b_i) - mean_{i!=j}         ``log r``, ``b = 0``
                       e^{f_ij - b_i}``, ``b_i = log a(x_i)``
``nwj_bound``          ``tuba_bound(f - 1)`` (NWJ, MINE-f)              ``1 + log r``
``dv_bound``           ``mean_i f_ii - log mean_{i!=j} e^{f_ij}``       ``log r + c``
``mine_bound``         DV value; gradient of the partition term        ``log r + c``
                       divided by a moving average (MINE), stateful
``js_bound``           value: NWJ of ``f + 1``; gradient: JS f-GAN      ``log r``
``interpolated_bound`` Poole et al. eq. 11: baseline                   ``log r``, ``b = 0``
                       ``alpha m(x; y_{1:K}) + (1 - alpha) a(x)``
``smile_bound``        DV with ``clip(f, -tau, tau)`` in the partition  ``log r``
                       term; gradient of JS (Song & Ermon 2020)
=====================  ==============================================  =====================

Conventions (as in Poole et al.'s reference code, ``vbmi_demo``): the partition terms of
TUBA/NWJ/DV average over the off-diagonal entries only, InfoNCE's over the whole row; the
baseline ``a`` is a function of the row variable (the conditioning variable of the
variational distribution). Two choices are ours and documented where they occur: the JS
estimate is NWJ evaluated at ``f + 1`` (the JS-optimal critic is ``log r``, the NWJ-optimal
one ``1 + log r``), and MINE's moving average is debiased (zero start, like Adam's moments).

Multi-device use: with ``axis_name`` set (inside ``jax.shard_map``/``jax.pmap``), ``scores`` is
this device's ``[k, K]`` block of rows of the global ``[K, K]`` matrix (rows
``axis_index * k ...``; the joint pair of local row ``i`` is column ``axis_index * k + i``) and
each bound returns this device's share: the mean over devices equals the bound of the global
matrix (log-partition terms that are not averages are all-gathered and shared).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

Array = Any


# ---------------------------------------------------------------------------------------------
# Shared pieces: where the joint pairs are, and (global) averages over the marginal pairs.


def _layout(scores: chex.Array, axis_name: str | None) -> tuple[int, int, Array]:
    """``(k, K, offset)``: local rows, global columns, global index of local row 0."""
    chex.assert_rank(scores, 2)
    k, big_k = scores.shape
    if axis_name is None:
        if k != big_k:
            raise ValueError(f"scores must be square [K, K] without axis_name, got {scores.shape}")
        offset = jnp.zeros((), jnp.int32)
    else:
        offset = jax.lax.axis_index(axis_name) * k
    if big_k < 2:
        raise ValueError(f"need at least 2 samples (K >= 2) for the marginal pairs, got K={big_k}")
    return k, big_k, offset


def _joint_mask(k: int, big_k: int, offset: Array) -> Array:
    """Boolean ``[k, K]``: True at each row's joint pair."""
    return jnp.arange(big_k)[None, :] == (offset + jnp.arange(k))[:, None]


def joint_scores(scores: chex.Array, axis_name: str | None = None) -> chex.Array:
    """The ``k`` joint-pair scores ``f(x_i, y_i)`` of this device's rows."""
    k, big_k, offset = _layout(scores, axis_name)
    return jnp.sum(jnp.where(_joint_mask(k, big_k, offset), scores, 0.0), axis=1)


def _offdiag_logsumexp(scores: chex.Array, axis_name: str | None) -> tuple[Array, int]:
    """Log-sum-exp of this device's off-diagonal entries and their count."""
    k, big_k, offset = _layout(scores, axis_name)
    masked = jnp.where(_joint_mask(k, big_k, offset), -jnp.inf, scores)
    return logsumexp(masked), k * (big_k - 1)


def offdiag_logmeanexp_local(scores: chex.Array, axis_name: str | None = None) -> chex.Array:
    """``log mean_{i != j} e^{scores_ij}`` over this device's rows only.

    Each device holds the same number of marginal pairs, so ``exp`` of this value averaged
    over devices is the global mean of ``e^f``: use it where the bound is linear in that mean.
    """
    lse, count = _offdiag_logsumexp(scores, axis_name)
    return lse - math.log(count)


def offdiag_logmeanexp(scores: chex.Array, axis_name: str | None = None) -> chex.Array:
    """``log mean_{i != j} e^{scores_ij}`` over the off-diagonal entries of the global matrix."""
    lse, count = _offdiag_logsumexp(scores, axis_name)
    if axis_name is not None:
        lse = logsumexp(jax.lax.all_gather(lse, axis_name))
        count = count * jax.lax.axis_size(axis_name)
    return lse - math.log(count)


def _offdiag_mean(values: chex.Array, axis_name: str | None) -> chex.Array:
    """Mean of ``values [k, K]`` over this device's off-diagonal entries."""
    k, big_k, offset = _layout(values, axis_name)
    off = jnp.logical_not(_joint_mask(k, big_k, offset))
    return jnp.sum(jnp.where(off, values, 0.0)) / (k * (big_k - 1))


def _row_baseline(log_baseline, k: int) -> chex.Array:
    """``log a(x_i)`` as a ``[k, 1]`` column (a scalar is shared by every row)."""
    b = jnp.asarray(log_baseline, jnp.float32)
    if b.ndim == 0:
        return jnp.broadcast_to(b, (k, 1))
    if b.shape != (k,):
        raise ValueError(f"log_baseline must be a scalar or have shape ({k},), got {b.shape}")
    return b[:, None]


def _value_with_gradient_of(value: chex.Array, surrogate: chex.Array) -> chex.Array:
    """Returns ``value`` in the forward pass and the gradient of ``surrogate``."""
    return surrogate + jax.lax.stop_gradient(value - surrogate)


# ---------------------------------------------------------------------------------------------
# The bounds.


def infonce_bound(scores: chex.Array, *, axis_name: str | None = None) -> chex.Array:
    """InfoNCE / CPC (van den Oord et al. 2018): ``log K + mean_i log softmax_j(f_i.)_i``.

    For each ``x_i`` the joint ``y_i`` must be picked out among all ``K`` candidates of its
    row; never exceeds ``log K`` (Poole et al. eq. 12). Tight for ``f = log r + c(x)`` when
    ``I << log K``.
    """
    _, big_k, _ = _layout(scores, axis_name)
    scores = scores.astype(jnp.float32)
    per_row = joint_scores(scores, axis_name) - logsumexp(scores, axis=1)
    return math.log(big_k) + jnp.mean(per_row)


def tuba_bound(scores: chex.Array, log_baseline=0.0, *, axis_name: str | None = None) -> chex.Array:
    """TUBA (Poole et al. eq. 5): ``1 + E_p[f - b] - E_{p(x)p(y)}[e^{f - b}]``, ``b = log a(x)``.

    Args:
      scores: ``[K, K]`` critic scores (``[k, K]`` rows with ``axis_name``).
      log_baseline: ``log a(x_i)``, a scalar or one value per row ``[k]``.
      axis_name: mapped axis holding the rows, or None.
    """
    k, _, _ = _layout(scores, axis_name)
    shifted = scores.astype(jnp.float32) - _row_baseline(log_baseline, k)
    joint = jnp.mean(joint_scores(shifted, axis_name))
    marginal = jnp.exp(offdiag_logmeanexp_local(shifted, axis_name))
    return 1.0 + joint - marginal


def nwj_bound(scores: chex.Array, *, axis_name: str | None = None) -> chex.Array:
    """NWJ / f-GAN KL / MINE-f (Nguyen et al. 2010): ``E_p[f] - e^{-1} E_{p(x)p(y)}[e^f]``.

    TUBA with the constant baseline ``a = e``; tight for ``f = 1 + log r``.
    """
    return tuba_bound(scores.astype(jnp.float32) - 1.0, axis_name=axis_name)


def dv_bound(scores: chex.Array, *, axis_name: str | None = None) -> chex.Array:
    """Donsker-Varadhan (MINE's bound): ``E_p[f] - log E_{p(x)p(y)}[e^f]``.

    The partition term is the log-mean-exp of the off-diagonal entries of the global matrix.
    Its minibatch gradient is biased; ``mine_bound`` corrects it with a moving average.
    """
    scores = scores.astype(jnp.float32)
    return jnp.mean(joint_scores(scores, axis_name)) - offdiag_logmeanexp(scores, axis_name)


class MineState(NamedTuple):
    """MINE's moving average of ``E_{p(x)p(y)}[e^f]``, kept in log space.

    ``log_mean`` is the debiased average ``ema / weight`` and ``weight = 1 - momentum^t`` the
    total weight of the ``t`` batches seen; both start at 0 (``weight = 0``: no average yet).
    """

    log_mean: chex.Array
    weight: chex.Array


def mine_init_state(shape: tuple[int, ...] = ()) -> MineState:
    """An empty moving average (one per entry of ``shape``, e.g. per feature-map location)."""
    return MineState(jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32))


def mine_bound(
    scores: chex.Array,
    state: MineState,
    *,
    momentum: float = 0.9,
    axis_name: str | None = None,
) -> tuple[chex.Array, MineState]:
    """DV bound whose gradient uses MINE's moving-average correction (Belghazi et al. 2018).

    The value is ``dv_bound(scores)``. The gradient of its partition term,
    ``grad mean e^f / mean e^f``, is replaced by ``grad mean e^f / m`` with ``m`` the moving
    average of ``mean e^f`` over batches, which reduces the bias of the minibatch gradient.
    The average includes the current batch (so the first step has the exact DV gradient) and
    is debiased for its zero start (ours; MINE and Poole et al.'s code start the buffer at 1).

    Args:
      scores: ``[K, K]`` critic scores (``[k, K]`` rows with ``axis_name``).
      state: the ``MineState`` returned by the previous call (``mine_init_state()`` at first).
      momentum: moving-average momentum in ``[0, 1)`` (0: the plain DV gradient).
      axis_name: mapped axis holding the rows, or None.

    Returns:
      ``(bound, new_state)``; keep ``new_state`` for the next call (``TrainState.extra`` in a
      registered objective).
    """
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum={momentum} must lie in [0, 1)")
    scores = scores.astype(jnp.float32)
    joint = jnp.mean(joint_scores(scores, axis_name))
    lme = offdiag_logmeanexp(scores, axis_name)
    lme_const = jax.lax.stop_gradient(lme)
    weight = momentum * state.weight + (1.0 - momentum)
    # log((m * w_prev * mean_prev + (1 - m) * x) / w); w_prev = 0 drops the first term.
    previous = jnp.where(
        state.weight > 0,
        jnp.log(jnp.maximum(momentum * state.weight, 1e-30)) + state.log_mean,
        -jnp.inf,
    )
    log_mean = jnp.logaddexp(previous, math.log(1.0 - momentum) + lme_const) - jnp.log(weight)
    # d/ds of exp(lme - sg(lme)) * sg(mean / m) is grad(mean e^f) / m; its value is mean / m.
    partition_surrogate = jnp.exp(lme - lme_const) * jax.lax.stop_gradient(
        jnp.exp(lme_const - log_mean)
    )
    value = joint - lme
    surrogate = joint - partition_surrogate
    return _value_with_gradient_of(value, surrogate), MineState(log_mean, weight)


def js_fgan_objective(scores: chex.Array, *, axis_name: str | None = None) -> chex.Array:
    """Jensen-Shannon f-GAN objective (Nowozin et al. 2016; DIM's JSD estimator):
    ``E_p[-softplus(-f)] - E_{p(x)p(y)}[softplus(f)]``, a bound on ``2 JS - log 4``, maximised
    by ``f = log r``. Not an MI estimate; ``js_bound`` reports one."""
    scores = scores.astype(jnp.float32)
    joint = jnp.mean(-jax.nn.softplus(-joint_scores(scores, axis_name)))
    return joint - _offdiag_mean(jax.nn.softplus(scores), axis_name)


def js_bound(scores: chex.Array, *, axis_name: str | None = None) -> chex.Array:
    """Critic trained with the JS objective, MI reported through the NWJ bound.

    Forward value: ``nwj_bound(scores + 1)`` (= ``tuba_bound(scores)``), since the JS-optimal
    critic is ``log r`` and the NWJ-optimal one ``1 + log r`` (Poole et al. 2019, Sec. 2.3).
    Gradient: that of ``js_fgan_objective`` (a stop-gradient carries the difference, as in
    Poole et al.'s reference code).
    """
    value = tuba_bound(scores, axis_name=axis_name)
    return _value_with_gradient_of(value, js_fgan_objective(scores, axis_name=axis_name))


def _log_leave_one_out_mean(scores: chex.Array) -> chex.Array:
    """``L[i, j] = log mean_{k != j} e^{scores_ik}`` (each row's log-mean-exp without column j).

    With ``m`` the column of the row maximum ``M_i``: for ``j != m`` the sum is
    ``e^{M_i} (1 + sum_{k != m, j} e^{s_ik - M_i})``, at least ``e^{M_i}``, so nothing cancels;
    for ``j = m`` it is the log-sum-exp of the other entries, taken about their own maximum
    so that it stays finite however far the maximum stands above them.
    """
    big_k = scores.shape[1]
    top = jnp.max(scores, axis=1, keepdims=True)
    is_max = jax.nn.one_hot(jnp.argmax(scores, axis=1), big_k, dtype=bool)
    e = jnp.exp(scores - top)
    rest = jnp.sum(jnp.where(is_max, 0.0, e), axis=1, keepdims=True)
    without_other = top + jnp.log1p(jnp.maximum(rest - e, 0.0))
    without_max = logsumexp(jnp.where(is_max, -jnp.inf, scores), axis=1, keepdims=True)
    return jnp.where(is_max, without_max, without_other) - math.log(big_k - 1)


def interpolated_bound(
    scores: chex.Array, log_baseline=0.0, alpha: float = 0.5, *, axis_name: str | None = None
) -> chex.Array:
    """The interpolated bound ``I_alpha`` of Poole et al. 2019 (eq. 11).

    The TUBA bound with the baseline ``alpha * m(x; y_{1:K-1}) + (1 - alpha) * a(x)``, where
    ``m`` is the mean of ``e^f`` over the other samples of the batch (leave-one-out, as in the
    reference code's multi-sample estimate). ``alpha = 0`` is ``tuba_bound(scores,
    log_baseline)``; ``alpha = 1`` is an InfoNCE-like bound capped at ``log(K - 1)``; for
    ``alpha > 0`` the joint term is at most ``log((K - 1) / alpha)``: the weight trades
    InfoNCE's bias for TUBA's variance.

    ``alpha`` weights the multi-sample (InfoNCE) baseline, as in the paper (the reference code
    passes the logit of ``1 - alpha``).

    Args:
      scores: ``[K, K]`` critic scores (``[k, K]`` rows with ``axis_name``), ``K >= 3``.
      log_baseline: ``log a(x_i)``: a scalar or one value per row ``[k]``.
      alpha: interpolation weight in ``[0, 1]``.
      axis_name: mapped axis holding the rows, or None.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha={alpha} must lie in [0, 1]")
    k, big_k, offset = _layout(scores, axis_name)
    if big_k < 3:
        raise ValueError(f"interpolated_bound needs K >= 3 samples, got K={big_k}")
    scores = scores.astype(jnp.float32)
    b = _row_baseline(log_baseline, k)
    loo = _log_leave_one_out_mean(scores)
    log_alpha = math.log(alpha) if alpha > 0 else -math.inf
    log_rest = math.log(1.0 - alpha) if alpha < 1 else -math.inf
    # baseline[i, j]: log(alpha * m_i(without column j) + (1 - alpha) * a_i).
    if alpha == 0:
        baseline = jnp.broadcast_to(b, scores.shape)
    elif alpha == 1:
        baseline = loo
    else:
        baseline = jnp.logaddexp(log_alpha + loo, log_rest + b)
    mask = _joint_mask(k, big_k, offset)
    own = jnp.sum(jnp.where(mask, baseline, 0.0), axis=1, keepdims=True)  # without the joint y
    marginal = _offdiag_mean(jnp.exp(scores - own), axis_name)
    joint = _offdiag_mean(joint_scores(scores, axis_name)[:, None] - baseline, axis_name)
    return 1.0 + joint - marginal


def smile_bound(
    scores: chex.Array, clip: float | None = 5.0, *, axis_name: str | None = None
) -> chex.Array:
    """SMILE (Song & Ermon 2020): DV with clipped scores in the partition term, JS gradient.

    Value: ``E_p[f] - log E_{p(x)p(y)}[e^{clip(f, -tau, tau)}]``; gradient: that of
    ``js_fgan_objective``. Clipping bounds the variance of the partition estimate
    (``clip=None``: the DV value).
    """
    scores = scores.astype(jnp.float32)
    clipped = scores if clip is None else jnp.clip(scores, -clip, clip)
    value = jnp.mean(joint_scores(scores, axis_name)) - offdiag_logmeanexp(clipped, axis_name)
    return _value_with_gradient_of(value, js_fgan_objective(scores, axis_name=axis_name))


# ---------------------------------------------------------------------------------------------
# Correlated Gaussians: the benchmark of Poole et al. 2019 (Sec. 4), with its closed forms.


def gaussian_mi(rho, dim: int) -> chex.Array:
    """``I(x; y) = -(d / 2) log(1 - rho^2)`` for ``y = rho x + sqrt(1 - rho^2) eps`` in d dims."""
    rho = jnp.asarray(rho, jnp.float32)
    return -0.5 * dim * jnp.log1p(-jnp.square(rho))


def rho_for_mi(mi, dim: int) -> chex.Array:
    """The correlation giving mutual information ``mi`` nats in ``dim`` dimensions."""
    mi = jnp.asarray(mi, jnp.float32)
    return jnp.sqrt(-jnp.expm1(-2.0 * mi / dim))


def sample_correlated_gaussian(rng, batch: int, dim: int, rho, *, cubic: bool = False):
    """``(x, y)``: ``x ~ N(0, I_d)``, ``y = rho x + sqrt(1 - rho^2) eps``; ``cubic``: ``y -> y^3``.

    The cubic map is a bijection of each coordinate, so ``I(x; y^3) = I(x; y)``.
    """
    kx, ke = jax.random.split(rng)
    x = jax.random.normal(kx, (batch, dim), jnp.float32)
    eps = jax.random.normal(ke, (batch, dim), jnp.float32)
    rho = jnp.asarray(rho, jnp.float32)
    y = rho * x + jnp.sqrt(1.0 - jnp.square(rho)) * eps
    return x, (y**3 if cubic else y)


def gaussian_log_ratio(x: chex.Array, y: chex.Array, rho, *, cubic: bool = False) -> chex.Array:
    """The true critic ``scores[i, j] = log p(y_j | x_i) - log p(y_j)`` of the Gaussian pair.

    Per coordinate ``log r = -log(1 - rho^2) / 2 - (y - rho x)^2 / (2 (1 - rho^2)) + y^2 / 2``,
    summed over coordinates. With ``cubic`` the ``y`` given are cubes and are mapped back with
    the inverse transform (the Jacobians of ``p(y|x)`` and ``p(y)`` cancel in the ratio).
    """
    chex.assert_rank([x, y], 2)
    if cubic:
        y = jnp.cbrt(y)
    rho = jnp.asarray(rho, jnp.float32)
    var = 1.0 - jnp.square(rho)
    diff = y[None, :, :] - rho * x[:, None, :]
    per_dim = -0.5 * jnp.log(var) - 0.5 * jnp.square(diff) / var + 0.5 * jnp.square(y)[None]
    return jnp.sum(per_dim, axis=-1)
