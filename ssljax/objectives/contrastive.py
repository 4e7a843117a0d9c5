"""Contrastive objectives: SimCLR's NT-Xent, MoCo's queue, "same image or not", instance
discrimination with a memory bank.

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
    logits, labels = simclr_logits_and_labels(z1, z2, temperature=temperature, axis_name=axis_name)
    return cross_entropy_at(logits, labels)


def cross_entropy_at(logits: chex.Array, labels: chex.Array) -> chex.Array:
    """Mean softmax cross entropy of ``logits [m, k]`` against integer ``labels [m]``."""
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=-1))


def contrastive_accuracy(logits: chex.Array, labels: chex.Array) -> chex.Array:
    """Fraction of anchors whose positive has the highest logit."""
    return jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))


# --------------------------------------------------------------------------------------------
# MoCo: a queue of keys from a momentum encoder as negatives.
# --------------------------------------------------------------------------------------------


def moco_loss(
    q: chex.Array, k: chex.Array, queue: chex.Array, *, temperature: float
) -> tuple[chex.Array, chex.Array]:
    """InfoNCE of MoCo (He et al. 2020, Algorithm 1) against a queue of negative keys.

    Args:
      q: ``[n, d]`` queries from the online encoder (l2-normalised here).
      k: ``[n, d]`` keys of the other view from the momentum encoder (l2-normalised here and
        wrapped in ``stop_gradient``).
      queue: ``[K, d]`` earlier keys, already l2-normalised (stored as ``enqueue`` writes
        them); used as is, without gradient.
      temperature: softmax temperature (MoCo v1: 0.07, v2: 0.2).

    Returns:
      ``(loss, logits)``: the mean cross entropy with label 0, and ``logits [n, 1 + K]``
      laid out as in Algorithm 1: column 0 is the positive ``q_i . k_i``, columns ``1..K``
      are ``q_i . queue_j``, all divided by ``temperature``.
    """
    chex.assert_rank([q, k, queue], 2)
    chex.assert_equal_shape([q, k])
    chex.assert_equal_shape_suffix([q, queue], 1)
    q = l2_normalize(q.astype(jnp.float32))
    k = l2_normalize(jax.lax.stop_gradient(k).astype(jnp.float32))
    queue = jax.lax.stop_gradient(queue).astype(jnp.float32)
    l_pos = jnp.sum(q * k, axis=-1, keepdims=True)  # [n, 1]
    l_neg = q @ queue.T  # [n, K]
    logits = jnp.concatenate([l_pos, l_neg], axis=1) / temperature
    labels = jnp.zeros((q.shape[0],), jnp.int32)
    return cross_entropy_at(logits, labels), logits


def enqueue(
    queue: chex.Array, ptr: chex.Numeric, keys: chex.Array
) -> tuple[chex.Array, chex.Array]:
    """Writes ``keys [m, d]`` over rows ``ptr .. ptr + m - 1`` of ``queue [K, d]`` (FIFO ring).

    As MoCo's ``_dequeue_and_enqueue``: ``K`` must be a multiple of ``m`` (checked, shapes are
    static) and ``ptr`` a multiple of ``m`` (true when it starts at 0 and only this function
    moves it), so a write never straddles the end; the pointer then wraps,
    ``new_ptr = (ptr + m) % K``. Pure and jit-able with a traced ``ptr``. Keys are stored
    without gradient in the queue's dtype; in a multi-device step, pass the keys gathered from
    all devices so every replica's queue stays identical.

    Returns:
      ``(new_queue, new_ptr)`` with ``new_ptr`` an int32 scalar.
    """
    chex.assert_rank([queue, keys], 2)
    chex.assert_equal_shape_suffix([queue, keys], 1)
    size, m = queue.shape[0], keys.shape[0]
    if m == 0 or size % m:
        raise ValueError(f"queue size {size} must be a multiple of the number of keys {m}")
    ptr = jnp.asarray(ptr, jnp.int32)
    keys = jax.lax.stop_gradient(keys).astype(queue.dtype)
    new_queue = jax.lax.dynamic_update_slice(queue, keys, (ptr, jnp.zeros((), jnp.int32)))
    return new_queue, (ptr + m) % size


# --------------------------------------------------------------------------------------------
# "Same image or not": a balanced binary classification of pairs.
# --------------------------------------------------------------------------------------------


def binary_contrastive_loss(
    z1: chex.Array,
    z2: chex.Array,
    *,
    temperature: float,
    bias: float = 0.0,
    axis_name: str | None = None,
) -> tuple[chex.Array, chex.Array]:
    """Balanced binary cross entropy of "are these two views of the same image?".

    Every pair ``(z1_i, z2_j)`` gets the score ``s_ij = (cos(z1_i, z2_j) - bias) / temperature``
    (the logit of "same image"). Positives are ``i == j``, negatives every ``i != j``. With the
    label equally likely to be 0 or 1, both classes weigh the same:
    ``loss = mean_pos softplus(-s) / 2 + mean_neg softplus(s) / 2``. The accuracy is the
    balanced accuracy of the rule "same iff ``s > 0``" (``s == 0`` counts as "different"):
    ``(TPR + TNR) / 2``, so 0.5 is chance.

    With ``axis_name``, the local anchors ``z1`` are scored against ``z2`` gathered from every
    device (positives offset by ``axis_index * n``, as in ``simclr_logits_and_labels``); each
    device has ``n`` positives and ``n (N - 1)`` negatives, so the device mean of loss and
    accuracy equals their value on the global batch.

    Args:
      z1, z2: ``[n, d]`` embeddings of the two views of the same ``n`` local images.
      temperature: scale of the logits.
      bias: cosine threshold above which a pair is called "same".
      axis_name: mapped axis to gather ``z2`` over, or None.

    Returns:
      ``(loss, accuracy)``, scalar float32.
    """
    chex.assert_rank([z1, z2], 2)
    chex.assert_equal_shape([z1, z2])
    n = z1.shape[0]
    z1 = l2_normalize(z1.astype(jnp.float32))
    z2 = l2_normalize(z2.astype(jnp.float32))
    z2_all, offset = gather_batch(z2, axis_name)
    big_n = z2_all.shape[0]
    if big_n < 2:
        raise ValueError("binary_contrastive_loss needs a global batch of at least 2 images")
    scores = (z1 @ z2_all.T - bias) / temperature  # [n, N]
    positive = jax.nn.one_hot(jnp.arange(n) + offset, big_n, dtype=bool)
    num_neg = n * (big_n - 1)
    pos_scores = jnp.sum(jnp.where(positive, scores, 0.0), axis=1)  # [n]
    pos_loss = jnp.mean(jax.nn.softplus(-pos_scores))
    neg_loss = jnp.sum(jnp.where(positive, 0.0, jax.nn.softplus(scores))) / num_neg
    loss = 0.5 * pos_loss + 0.5 * neg_loss
    tpr = jnp.mean((pos_scores > 0).astype(jnp.float32))
    tnr = jnp.sum(jnp.where(positive, False, scores <= 0).astype(jnp.float32)) / num_neg
    return loss, 0.5 * (tpr + tnr)


# --------------------------------------------------------------------------------------------
# Instance discrimination with a memory bank (Wu et al. 2018).
# --------------------------------------------------------------------------------------------


def instance_discrimination_loss(
    features: chex.Array,
    memory: chex.Array,
    indices: chex.Array,
    *,
    temperature: float,
    written: chex.Array | None = None,
) -> tuple[chex.Array, chex.Array]:
    """Non-parametric instance classification (Wu et al. 2018, eq. 2) with the full softmax.

    Each image is its own class; class ``j``'s weight is memory-bank row ``v_j``:
    ``P(i | f) = exp(v_i . f / tau) / sum_j exp(v_j . f / tau)`` over all ``N`` instances
    (the paper approximates the denominator with NCE for large ``N``; this computes it
    exactly). The memory is a buffer, so no gradient flows into it.

    Args:
      features: ``[n, d]`` embeddings (l2-normalised here).
      memory: ``[N, d]`` memory bank with unit-norm rows.
      indices: ``[n]`` int dataset indices of the images, i.e. their classes.
      temperature: softmax temperature (paper: 0.07).
      written: optional ``[N]`` bool, which rows hold a feature (``first_visit_rows``).
        Unwritten rows drop out of the softmax, and an image whose own row is unwritten
        scores against its own (constant) feature instead.

    Returns:
      ``(loss, accuracy)``: mean cross entropy at ``indices`` and the fraction of images
      whose own memory row scores highest.
    """
    chex.assert_rank([features, memory, indices], [2, 2, 1])
    chex.assert_equal_shape_suffix([features, memory], 1)
    chex.assert_equal_shape_prefix([features, indices], 1)
    f = l2_normalize(features.astype(jnp.float32))
    memory = jax.lax.stop_gradient(memory).astype(jnp.float32)
    indices = indices.astype(jnp.int32)
    logits = f @ memory.T / temperature  # [n, N]
    if written is not None:
        chex.assert_shape(written, memory.shape[:1])
        logits = jnp.where(written[None, :], logits, -jnp.inf)
        own = jnp.sum(f * first_visit_rows(memory, indices, f, written), axis=-1) / temperature
        logits = logits.at[jnp.arange(f.shape[0]), indices].set(own)
    return cross_entropy_at(logits, indices), contrastive_accuracy(logits, indices)


def first_visit_rows(
    memory: chex.Array, indices: chex.Array, features: chex.Array, written: chex.Array
) -> chex.Array:
    """Memory rows at ``indices``, with a row never written replaced by the image's own
    (l2-normalised, gradient-free) feature: what the bank would hold had it been filled by
    the network before training (``[n, d]``, float32)."""
    f = l2_normalize(jax.lax.stop_gradient(features).astype(jnp.float32))
    rows = memory[indices].astype(jnp.float32)
    return jnp.where(written[indices][:, None], rows, f)


def masked_moco_loss(
    q: chex.Array,
    k: chex.Array,
    queue: chex.Array,
    queue_mask: chex.Array,
    *,
    temperature: float,
) -> tuple[chex.Array, chex.Array]:
    """``moco_loss`` with the queue rows where ``queue_mask [K]`` is False left out of the
    softmax (their logits are ``-inf``)."""
    chex.assert_shape(queue_mask, queue.shape[:1])
    _, logits = moco_loss(q, k, queue, temperature=temperature)
    keep = jnp.concatenate([jnp.ones((1,), bool), queue_mask.astype(bool)])
    logits = jnp.where(keep[None, :], logits, -jnp.inf)
    labels = jnp.zeros((q.shape[0],), jnp.int32)
    return cross_entropy_at(logits, labels), logits


def proximal_term(features: chex.Array, rows: chex.Array) -> chex.Array:
    """Wu et al. 2018's proximal regulariser: mean ``||normalize(f_i) - v_i||^2`` over the batch.

    Pulls each image's current embedding towards its memory-bank row ``v_i`` (from its last
    visit), which slows the drift of the features between visits, so the stale rows stay
    usable as targets (Sec. 3.4 of the paper, weighted by lambda in the loss). The rows are
    constants (no gradient). Lies in ``[0, 4]`` for unit rows.

    Args:
      features: ``[n, d]`` embeddings (l2-normalised here).
      rows: ``[n, d]`` their memory rows.
    """
    chex.assert_rank([features, rows], 2)
    chex.assert_equal_shape([features, rows])
    f = l2_normalize(features.astype(jnp.float32))
    v = jax.lax.stop_gradient(rows).astype(jnp.float32)
    return jnp.mean(jnp.sum(jnp.square(f - v), axis=-1))


def update_memory_bank(
    memory: chex.Array,
    indices: chex.Array,
    features: chex.Array,
    *,
    momentum: float = 0.5,
    written: chex.Array | None = None,
) -> chex.Array:
    """Proximal memory update of Wu et al. 2018: ``v_i <- normalize(m v_i + (1 - m) f_i)``.

    Rows at ``indices`` become ``normalize(momentum * memory[i] + (1 - momentum) *
    normalize(features))``; every other row is unchanged, so rows stay unit norm. The paper's
    momentum is 0.5. Indices within one batch are distinct (each image appears once per
    epoch-sampled batch); with duplicate indices the scatter keeps only one of the writes, so
    do not pass them. Features are stored without gradient.

    Args:
      memory: ``[N, d]`` memory bank.
      indices: ``[n]`` distinct int row indices.
      features: ``[n, d]`` new embeddings of those images.
      momentum: weight of the old row.
      written: optional ``[N]`` bool; a row not yet written takes ``normalize(f_i)`` itself
        (no mixing with its initial value). The caller marks the rows written afterwards.

    Returns:
      The new ``[N, d]`` memory bank (same dtype as ``memory``).
    """
    chex.assert_rank([memory, indices, features], [2, 1, 2])
    chex.assert_equal_shape_suffix([features, memory], 1)
    chex.assert_equal_shape_prefix([features, indices], 1)
    memory = jnp.asarray(memory)
    f = l2_normalize(jax.lax.stop_gradient(features).astype(jnp.float32))
    old = memory[indices].astype(jnp.float32)
    if written is not None:
        old = first_visit_rows(memory, indices, f, written)
    new_rows = l2_normalize(momentum * old + (1.0 - momentum) * f)
    return memory.at[indices].set(new_rows.astype(memory.dtype))
