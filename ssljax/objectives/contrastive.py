"""Contrastive objectives: SimCLR's NT-Xent (normalised temperature-scaled cross entropy).

All functions are pure functions of embedding arrays. With ``axis_name=None`` they are plain
notebook functions; inside ``jax.shard_map``/``jax.pmap`` with an axis name they gather the
negatives of every device, so the per-device loss averaged over devices equals the loss of the
concatenated global batch.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

_MASK_VALUE = -1e9


def l2_normalize(x: chex.Array, axis: int = -1, eps: float = 1e-12) -> chex.Array:
    """Divides ``x`` by its L2 norm along ``axis`` (norm floored at ``eps``)."""
    sq = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(sq, eps * eps))


def gather_batch(x: chex.Array, axis_name: str | None) -> tuple[chex.Array, chex.Array]:
    """All-gathers ``x [n, ...]`` over ``axis_name`` into ``[devices * n, ...]``.

    Returns the gathered array and the offset of this device's rows in it (0 without an axis).
    """
    if axis_name is None:
        return x, jnp.zeros((), jnp.int32)
    gathered = jax.lax.all_gather(x, axis_name, tiled=True)
    offset = jax.lax.axis_index(axis_name) * x.shape[0]
    return gathered, offset


def simclr_logits_and_labels(
    z1: chex.Array, z2: chex.Array, *, temperature: float, axis_name: str | None = None
) -> tuple[chex.Array, chex.Array]:
    """Logits and positive indices of NT-Xent for the ``2n`` local anchors.

    Args:
      z1, z2: ``[n, d]`` projections of two views of the same ``n`` local images.
      temperature: softmax temperature ``tau``.
      axis_name: optional mapped axis; negatives then come from every device.

    Returns:
      ``logits [2n, 2N]`` over the candidates ``[z1_all; z2_all]`` (``N`` the global batch),
      with each anchor's own similarity masked out, and ``labels [2n]`` holding the index of
      each anchor's positive (the other view of the same image).
    """
    chex.assert_rank([z1, z2], 2)
    chex.assert_equal_shape([z1, z2])
    n = z1.shape[0]
    z1 = l2_normalize(z1.astype(jnp.float32))
    z2 = l2_normalize(z2.astype(jnp.float32))
    z1_all, offset = gather_batch(z1, axis_name)
    z2_all, _ = gather_batch(z2, axis_name)
    big_n = z1_all.shape[0]
    candidates = jnp.concatenate([z1_all, z2_all], axis=0)  # [2N, d]
    anchors = jnp.concatenate([z1, z2], axis=0)  # [2n, d]
    logits = anchors @ candidates.T / temperature  # [2n, 2N]
    local = jnp.arange(n) + offset
    self_index = jnp.concatenate([local, local + big_n])
    positive_index = jnp.concatenate([local + big_n, local])
    self_mask = jax.nn.one_hot(self_index, 2 * big_n, dtype=bool)
    logits = jnp.where(self_mask, _MASK_VALUE, logits)
    return logits, positive_index


def simclr_loss(
    z1: chex.Array, z2: chex.Array, *, temperature: float, axis_name: str | None = None
) -> chex.Array:
    """NT-Xent loss of SimCLR (Chen et al. 2020), symmetric over both views.

    For anchor ``i`` with positive ``j`` among the ``2N - 1`` other embeddings ``k``:
    ``l_i = -log( exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau) )`` with cosine similarity
    ``s``; the loss is the mean of ``l_i`` over the ``2n`` local anchors. Averaging the
    per-device values over devices gives the loss of the global batch.

    Args:
      z1, z2: ``[n, d]`` projections of two augmented views.
      temperature: softmax temperature (SimCLR: 0.1 to 0.5).
      axis_name: mapped axis to gather negatives over, or None.

    Returns:
      Scalar float32 loss.
    """
    logits, labels = simclr_logits_and_labels(
        z1, z2, temperature=temperature, axis_name=axis_name
    )
    return cross_entropy_at(logits, labels)


def cross_entropy_at(logits: chex.Array, labels: chex.Array) -> chex.Array:
    """Mean softmax cross entropy of ``logits [m, k]`` against integer ``labels [m]``."""
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=-1))


def contrastive_accuracy(logits: chex.Array, labels: chex.Array) -> chex.Array:
    """Fraction of anchors whose positive has the highest logit."""
    return jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))
