"""Training losses of energy-based models and score models: pure functions, batch-averaged.

A score model ``s(x) ~ grad_x log p(x)`` is trained without the normalising constant of
``p``; an energy model ``E`` gives ``s = -grad_x E``. Shapes: ``x [B, ...]`` (any trailing
shape, flattened for inner products), scalar losses averaged over the batch (a mean of
per-example terms, so the mean over devices of per-device losses is the global batch's).

* ``score_matching_loss`` (Hyvarinen 2005): ``mean_i [tr(ds/dx)(x_i) + |s(x_i)|^2 / 2]``,
  the Fisher divergence ``E |s - grad log p|^2 / 2`` up to a constant; the trace is exact
  (one ``jax.jvp`` per input dimension), for small inputs and tests.
* ``denoising_score_matching_loss`` (Vincent 2011): with ``x~ = x + sigma z``,
  ``0.5 mean_i |s(x~_i) + (x~_i - x_i) / sigma^2|^2``, minimised by the score of the
  ``sigma``-smoothed data density. ``weighting='sigma2'`` multiplies each term by
  ``lambda(sigma) = sigma^2`` (Song & Ermon 2019), i.e. ``0.5 |sigma s(x~) + z|^2``: order 1
  per dimension for any ``sigma``. The default is ``'none'`` (Vincent's form).
* ``sliced_score_matching_loss`` (Song et al. 2019): with random projections ``v``,
  ``mean_{i, v} [v^T (ds/dx) v + (v^T s)^2 / 2]``, or with ``variance_reduction=True``
  (SSM-VR, for Gaussian ``v``) ``mean_{i, v} [v^T (ds/dx) v] + mean_i |s|^2 / 2``. For
  ``E[v v^T] = I`` both equal ``score_matching_loss`` in expectation over ``v``.
  ``v^T (ds/dx) v`` is one forward-mode product (``jax.jvp``) per projection.
* ``contrastive_divergence_loss`` (Hinton 2002; Du & Mordatch 2019):
  ``mean E(x+) - mean E(x-) + reg (mean E(x+)^2 + mean E(x-)^2)``; its parameter gradient is
  the maximum-likelihood gradient when the negatives ``x-`` are samples of ``exp(-E)``
  (drawn by a sampler, under ``stop_gradient``: their dependence on the parameters is not
  differentiated). ``reg`` is Du & Mordatch's energy-magnitude regulariser (``alpha = 1``
  in their experiments).
"""

from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp

DSM_WEIGHTINGS = ("none", "sigma2")

ScoreFn = Callable[[jax.Array], jax.Array]


def _flat(x: jax.Array) -> jax.Array:
    return x.reshape(x.shape[0], -1).astype(jnp.float32)


def _per_example(sigma, batch: int) -> jax.Array:
    """``sigma`` as ``[B]`` (a scalar broadcast, or one value per example)."""
    sigma = jnp.asarray(sigma, jnp.float32)
    if sigma.ndim == 0:
        return jnp.full((batch,), sigma)
    chex.assert_shape(sigma, (batch,))
    return sigma


def denoising_score_matching_loss(
    score_at_noisy: jax.Array,
    noisy: jax.Array,
    clean: jax.Array,
    sigma,
    *,
    weighting: str = "none",
) -> jax.Array:
    """Vincent 2011's denoising score matching, averaged over the batch.

    ``0.5 * mean_i w_i |s(x~_i) + (x~_i - x_i) / sigma_i^2|^2`` with ``w_i = 1``
    (``weighting='none'``, the default) or ``w_i = sigma_i^2`` (``'sigma2'``, Song & Ermon
    2019's ``lambda(sigma)``).

    Args:
      score_at_noisy: ``[B, ...]`` the model's score at the noisy inputs, ``s(x~)``.
      noisy: ``[B, ...]`` ``x~ = x + sigma z``.
      clean: ``[B, ...]`` ``x``.
      sigma: the noise's standard deviation, a scalar or ``[B]``.
      weighting: one of ``DSM_WEIGHTINGS``.
    """
    if weighting not in DSM_WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; choose one of {list(DSM_WEIGHTINGS)}")
    chex.assert_equal_shape([score_at_noisy, noisy, clean])
    sigma = _per_example(sigma, noisy.shape[0])
    var = sigma[:, None] ** 2
    target = -(_flat(noisy) - _flat(clean)) / var
    per_example = 0.5 * jnp.sum((_flat(score_at_noisy) - target) ** 2, axis=1)
    if weighting == "sigma2":
        per_example = per_example * sigma**2
    return jnp.mean(per_example)


def _projections(projections: jax.Array, x: jax.Array) -> jax.Array:
    """``[M, B, ...]`` projections (a ``[B, ...]`` array is one projection per example)."""
    if projections.shape == x.shape:
        projections = projections[None]
    chex.assert_shape(projections, (None,) + tuple(x.shape))
    return projections.astype(x.dtype)


def sliced_score_matching_loss(
    score_fn: ScoreFn,
    x: jax.Array,
    projections: jax.Array,
    *,
    variance_reduction: bool = False,
) -> jax.Array:
    """Song et al. 2019's sliced score matching, averaged over projections and the batch.

    ``mean_{m, i} [v_mi^T J_i v_mi + (v_mi^T s(x_i))^2 / 2]`` with ``J_i = ds/dx (x_i)``; with
    ``variance_reduction`` (SSM-VR) the second term is ``|s(x_i)|^2 / 2``.

    Args:
      score_fn: ``x [B, ...] -> [B, ...]``, each example's score depending on that example
        alone (so one ``jax.jvp`` gives every ``J_i v_i``).
      x: ``[B, ...]`` data.
      projections: ``[M, B, ...]`` random directions ``v`` (``M`` per example; a
        ``[B, ...]`` array is ``M = 1``), e.g. standard Gaussian or Rademacher.
    """
    v = _projections(projections, x)
    score, jv = jax.vmap(lambda t: jax.jvp(score_fn, (x,), (t,)))(v)  # [M, B, ...] each
    m, b = v.shape[0], v.shape[1]
    v2, s2, jv2 = (a.reshape(m, b, -1).astype(jnp.float32) for a in (v, score, jv))
    trace_term = jnp.sum(v2 * jv2, axis=-1)  # [M, B]
    if variance_reduction:
        norm_term = 0.5 * jnp.sum(s2[0] ** 2, axis=-1)[None]
    else:
        norm_term = 0.5 * jnp.sum(v2 * s2, axis=-1) ** 2
    return jnp.mean(trace_term + norm_term)


def score_matching_loss(score_fn: ScoreFn, x: jax.Array) -> jax.Array:
    """Hyvarinen 2005's explicit score matching ``mean_i [tr J_i + |s(x_i)|^2 / 2]``, with the
    trace exact from one ``jax.jvp`` per input dimension (``D`` of them: small inputs)."""
    d = int(jnp.size(x[0]))
    basis = jnp.eye(d, dtype=x.dtype).reshape((d, 1) + x.shape[1:])
    basis = jnp.broadcast_to(basis, (d,) + x.shape)
    score, jv = jax.vmap(lambda t: jax.jvp(score_fn, (x,), (t,)))(basis)
    jv = jv.reshape(d, x.shape[0], d).astype(jnp.float32)
    trace = jnp.trace(jv, axis1=0, axis2=2)  # sum_k (J_i e_k)_k: [B]
    return jnp.mean(trace + 0.5 * jnp.sum(_flat(score[0]) ** 2, axis=1))


def contrastive_divergence_loss(
    energy_pos: jax.Array, energy_neg: jax.Array, *, reg: float = 1.0
) -> jax.Array:
    """Du & Mordatch 2019's contrastive divergence loss with energy regularisation.

    ``mean E(x+) - mean E(x-) + reg * (mean E(x+)^2 + mean E(x-)^2)``.

    Args:
      energy_pos: ``[B]`` energies of data.
      energy_neg: ``[B']`` energies of sampler outputs (computed from samples under
        ``stop_gradient``).
      reg: weight of the squared energies (>= 0).
    """
    chex.assert_rank([energy_pos, energy_neg], 1)
    pos = energy_pos.astype(jnp.float32)
    neg = energy_neg.astype(jnp.float32)
    return jnp.mean(pos) - jnp.mean(neg) + reg * (jnp.mean(pos**2) + jnp.mean(neg**2))
