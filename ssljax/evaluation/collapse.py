"""Collapse monitors: is an embedding spreading out, or shrinking to a point or a subspace?

Both take a batch of embeddings ``[n, d]`` and, with ``axis_name``, gather the batch from every
device first, so the value is the one of the global batch (and identical on all devices).

* ``normalized_std``: the standard deviation over the batch of each dimension of the
  l2-normalised embeddings, averaged over dimensions. Complete collapse gives 0; embeddings
  spread uniformly on the unit sphere give about ``1 / sqrt(d)`` (SimSiam, Chen & He 2021,
  Fig. 2 monitors the same quantity).
* ``effective_rank``: ``exp`` of the Shannon entropy of the normalised eigenvalue spectrum of
  the embedding covariance (Roy & Vetterli 2007). Between 1 (one direction) and ``d``
  (isotropic); dimensional collapse shows as a rank far below ``d``.
"""

from __future__ import annotations

from typing import Any

import chex
import jax.numpy as jnp

from ssljax.objectives.contrastive import gather_batch

Array = Any


def normalized_std(z: Array, axis_name: str | None = None, eps: float = 1e-12) -> Array:
    """Mean over dimensions of the batch std of ``z / ||z||`` (0 = collapsed)."""
    chex.assert_rank(z, 2)
    z, _ = gather_batch(z.astype(jnp.float32), axis_name)
    z = z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), eps)
    return jnp.mean(jnp.std(z, axis=0))


def effective_rank(z: Array, axis_name: str | None = None, eps: float = 1e-12) -> Array:
    """``exp(H(p))`` with ``p`` the covariance eigenvalues of ``z`` divided by their sum."""
    chex.assert_rank(z, 2)
    z, _ = gather_batch(z.astype(jnp.float32), axis_name)
    z = z - jnp.mean(z, axis=0, keepdims=True)
    cov = z.T @ z / z.shape[0]
    eigenvalues = jnp.clip(jnp.linalg.eigvalsh(cov), 0.0, None)
    p = eigenvalues / jnp.maximum(jnp.sum(eigenvalues), eps)
    entropy = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))
    return jnp.exp(entropy)


def collapse_monitors(z: Array, axis_name: str | None = None) -> dict[str, Array]:
    """``{'collapse_std', 'collapse_std_ref', 'effective_rank'}`` of an embedding batch.

    ``collapse_std_ref`` is ``1 / sqrt(d)``, the value for embeddings spread uniformly on the
    sphere, logged beside ``collapse_std`` so a table can show both.
    """
    chex.assert_rank(z, 2)
    return {
        "collapse_std": normalized_std(z, axis_name),
        "collapse_std_ref": jnp.asarray(1.0 / jnp.sqrt(z.shape[-1]), jnp.float32),
        "effective_rank": effective_rank(z, axis_name),
    }
