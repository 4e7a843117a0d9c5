"""Entropy-regularised alignment: the Kozachenko–Leonenko entropy estimator and AlignMaxEnt.

AlignMaxEnt (von Kügelgen et al. 2021, "Self-supervised learning with data augmentations
provably isolates content from style") minimises the squared distance between the
representations of two views while maximising the differential entropy of the representation,
estimated non-parametrically from nearest-neighbour distances.

With ``axis_name=None`` these are notebook functions of the whole batch; inside
``jax.shard_map``/``jax.pmap`` with an axis name the estimator uses the samples of every device,
so the device mean of the per-device loss equals the loss of the global batch.
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
from jax.scipy.special import digamma, gammaln

from ssljax.objectives.contrastive import gather_batch


def log_unit_ball_volume(d: int) -> chex.Array:
    """``log V_d`` with ``V_d = pi^(d/2) / Gamma(d/2 + 1)`` the volume of the unit d-ball."""
    return 0.5 * d * math.log(math.pi) - gammaln(0.5 * d + 1.0)


def knn_entropy(x: chex.Array, *, eps: float = 1e-12, axis_name: str | None = None) -> chex.Array:
    """Kozachenko–Leonenko (k = 1) estimate of the differential entropy of samples ``x``.

    ``H = psi(N) - psi(1) + log V_d + (d / N) * sum_i log rho_i`` (in nats), with ``rho_i``
    the Euclidean distance from sample ``i`` to its nearest *other* sample, ``V_d`` the volume
    of the d-dimensional unit ball and ``N`` the (global) number of samples (Kozachenko &
    Leonenko 1987; Kraskov et al. 2004, eq. 20 with k = 1).

    The neighbour is chosen from matrix-product distances at full float32 precision
    (``Precision.HIGHEST``, which rules out TF32 on GPUs), then ``rho_i`` is recomputed
    directly as ``sqrt(||x_i - x_nn||^2 + eps)``: exact, and differentiable even for
    duplicated samples (``eps`` keeps ``log rho`` finite).

    With ``axis_name``, each device finds the neighbours of its local rows among the samples
    gathered from all devices and the log-distances are summed over devices; every device
    returns the entropy of the global sample.

    Args:
      x: ``[n, d]`` samples (local batch), ``n * devices >= 2``.
      eps: added to squared distances inside the square root.
      axis_name: mapped axis whose devices together hold the sample, or None.

    Returns:
      Scalar float32 entropy estimate.
    """
    chex.assert_rank(x, 2)
    x = x.astype(jnp.float32)
    n, d = x.shape
    x_all, offset = gather_batch(x, axis_name)
    big_n = x_all.shape[0]
    if big_n < 2:
        raise ValueError("knn_entropy needs at least 2 samples")
    # Distances are translation invariant; centring keeps the norms small, so the matrix-product
    # form ||a||^2 + ||b||^2 - 2 a.b loses little precision when choosing the neighbour.
    centre = jax.lax.stop_gradient(jnp.mean(x_all, axis=0))
    a = jax.lax.stop_gradient(x - centre)
    b = jax.lax.stop_gradient(x_all - centre)
    sq = (
        jnp.sum(jnp.square(a), axis=1, keepdims=True)
        + jnp.sum(jnp.square(b), axis=1)[None, :]
        - 2.0 * jnp.matmul(a, b.T, precision=jax.lax.Precision.HIGHEST)
    )
    own = jax.nn.one_hot(jnp.arange(n) + offset, big_n, dtype=bool)
    sq = jnp.where(own, jnp.inf, sq)
    nearest = jnp.argmin(sq, axis=1)  # [n]
    diff = x - x_all[nearest]
    rho = jnp.sqrt(jnp.sum(jnp.square(diff), axis=1) + eps)
    sum_log_rho = jnp.sum(jnp.log(rho))
    if axis_name is not None:
        sum_log_rho = jax.lax.psum(sum_log_rho, axis_name)
    const = digamma(float(big_n)) - digamma(1.0) + log_unit_ball_volume(d)
    return const + d * sum_log_rho / big_n


def align_maxent_loss(
    g1: chex.Array,
    g2: chex.Array,
    *,
    entropy_weight: float = 1.0,
    axis_name: str | None = None,
) -> tuple[chex.Array, dict[str, chex.Array]]:
    """AlignMaxEnt (von Kügelgen et al. 2021, eq. 7): alignment minus entropy.

    ``loss = E ||g(x) - g(x~)||^2 - entropy_weight * H(g(x))`` where the alignment sums the
    squared differences over dimensions and averages over the (local) batch, and ``H`` is
    ``knn_entropy`` of the global batch, averaged over the two views (both are samples of the
    same marginal). Representations are expected in ``(0, 1)^d`` (the caller applies a
    sigmoid), where the uniform distribution has the maximal entropy 0.

    Args:
      g1, g2: ``[n, d]`` representations of the two views.
      entropy_weight: weight of the entropy term.
      axis_name: mapped axis whose devices together hold the batch, or None.

    Returns:
      ``(loss, {'alignment', 'entropy'})``; averaging them over devices gives the values of
      the global batch.
    """
    chex.assert_rank([g1, g2], 2)
    chex.assert_equal_shape([g1, g2])
    g1 = g1.astype(jnp.float32)
    g2 = g2.astype(jnp.float32)
    alignment = jnp.mean(jnp.sum(jnp.square(g1 - g2), axis=1))
    entropy = 0.5 * (knn_entropy(g1, axis_name=axis_name) + knn_entropy(g2, axis_name=axis_name))
    loss = alignment - entropy_weight * entropy
    return loss, {"alignment": alignment, "entropy": entropy}
