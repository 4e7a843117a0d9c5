"""Weighted k-nearest-neighbour evaluation on cosine similarity.

Protocol (instance discrimination / DINO style): features are L2-normalised;
each test point takes its ``k`` most cosine-similar train points and every
neighbour ``j`` adds ``exp(sim_j / temperature)`` to the score of its label.
The predicted class is the one with the largest summed weight.

Conventions:

* ``k`` larger than the train set is clamped to the train-set size (every
  train point votes); :func:`knn_evaluate` reports the ``k`` actually used.
* All-zero feature rows normalise to zero and have similarity 0 with
  everything.
* Weights are computed exactly as ``exp(sim / temperature)`` in float32, so
  ``temperature`` must be large enough for ``exp(1 / temperature)`` to be
  finite (``temperature > 1/88``); smaller values raise ValueError.
* Similarity ties among the ``k``-th neighbours are broken by lower train
  index (``jax.lax.top_k``).
"""

from __future__ import annotations

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ssljax.evaluation.metrics import accuracy_report
from ssljax.evaluation.validation import (
    check_label_values,
    check_matrix,
    check_nonempty,
    check_same_dim,
)

_HIGHEST = jax.lax.Precision.HIGHEST
# exp(x) overflows float32 above ~88.72.
_MAX_INV_TEMPERATURE = 88.0


@jax.jit
def _l2_normalize(x: jax.Array) -> jax.Array:
    """Row-wise L2 normalisation of ``[N, D]`` features (zero rows stay zero)."""
    x = x.astype(jnp.float32)
    norm = jnp.linalg.norm(x, axis=1, keepdims=True)
    return x / jnp.maximum(norm, 1e-12)


@functools.partial(jax.jit, static_argnames=("k", "num_classes"))
def _knn_chunk_scores(
    train_xn: jax.Array,
    train_y: jax.Array,
    test_chunk: jax.Array,
    temperature: jax.Array,
    *,
    k: int,
    num_classes: int,
) -> jax.Array:
    """Class scores of one test chunk.

    Args:
      train_xn: ``[N, D]`` L2-normalised train features.
      train_y: ``[N]`` int train labels.
      test_chunk: ``[B, D]`` raw test features (normalised here).
      temperature: scalar softmax temperature.
      k: neighbours per test point (``1 <= k <= N``).
      num_classes: ``C``.

    Returns:
      ``[B, C]`` float32 scores: per class, the sum of ``exp(sim / T)`` over
      the ``k`` nearest neighbours with that label.
    """
    chex.assert_rank([train_xn, train_y, test_chunk], [2, 1, 2])
    test_xn = _l2_normalize(test_chunk)
    sims = jnp.dot(test_xn, train_xn.T, precision=_HIGHEST)  # [B, N]
    top_sims, top_idx = jax.lax.top_k(sims, k)  # [B, k]
    weights = jnp.exp(top_sims / temperature)  # [B, k]
    neighbour_labels = train_y[top_idx]  # [B, k]
    rows = jnp.arange(test_chunk.shape[0])[:, None]
    scores = jnp.zeros((test_chunk.shape[0], num_classes), jnp.float32)
    return scores.at[rows, neighbour_labels].add(weights)


def _check_label_shape(name: str, labels, num_rows: int) -> None:
    """Requires ``labels`` to have shape ``(num_rows,)``."""
    if labels.ndim != 1 or labels.shape[0] != num_rows:
        raise ValueError(f"{name} must have shape ({num_rows},), got {tuple(labels.shape)}")


def _validate_knn_inputs(train_x, train_y, test_x, num_classes, k, temperature, batch_size):
    """Raises a one-line ValueError naming the first bad input."""
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    check_matrix("train_x", train_x)
    check_matrix("test_x", test_x)
    check_nonempty("train_x", train_x)
    check_same_dim(train_x, test_x)
    _check_label_shape("train_y", train_y, train_x.shape[0])
    check_label_values("train_y", train_y, num_classes)
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature}")
    if 1.0 / temperature > _MAX_INV_TEMPERATURE:
        raise ValueError(
            f"temperature {temperature} too small: exp(1/temperature) overflows float32"
        )
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def knn_scores(
    train_x,
    train_y,
    test_x,
    *,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.07,
    batch_size: int = 1024,
    train_chunk_rows: int | None = None,
) -> jax.Array:
    """Weighted-kNN class scores for every test point.

    The test set is processed in chunks of ``min(batch_size, N_test)`` rows by
    one jitted function; the last chunk is zero-padded to that size so every
    call has the same shape (one compilation per train-set shape). Peak extra
    memory is about ``batch_size * N_train`` floats for the similarities.

    Args:
      train_x: ``[N_train, D]`` train features (any positive row scale).
      train_y: ``[N_train]`` int labels in ``[0, num_classes)``.
      test_x: ``[N_test, D]`` test features.
      num_classes: ``C``.
      k: neighbours per test point; clamped to ``N_train`` if larger.
      temperature: weight of a neighbour is ``exp(cosine_sim / temperature)``.
      batch_size: test rows per chunk.
      train_chunk_rows: None to hold the whole train set on the device; else the
        train set is read ``train_chunk_rows`` rows at a time (see
        :func:`knn_scores_streamed`), for train sets too large for that.

    Returns:
      ``[N_test, C]`` float32 scores (sum of neighbour weights per class;
      classes without a neighbour score 0).

    Raises:
      ValueError: on bad shapes, labels out of range, ``k < 1``, a
        non-positive or too-small temperature, or ``batch_size < 1``.
    """
    train_y_np = np.asarray(train_y)
    if train_chunk_rows is not None:
        return knn_scores_streamed(
            train_x,
            train_y_np,
            test_x,
            num_classes=num_classes,
            k=k,
            temperature=temperature,
            batch_size=batch_size,
            train_chunk_rows=train_chunk_rows,
        )
    train_x = jnp.asarray(train_x)
    test_x = jnp.asarray(test_x)
    _validate_knn_inputs(train_x, train_y_np, test_x, num_classes, k, temperature, batch_size)
    num_test = test_x.shape[0]
    if num_test == 0:
        return jnp.zeros((0, num_classes), jnp.float32)
    k_eff = min(int(k), train_x.shape[0])
    chunk = min(int(batch_size), num_test)
    num_chunks = -(-num_test // chunk)
    pad = num_chunks * chunk - num_test
    test_x = jnp.pad(test_x.astype(jnp.float32), ((0, pad), (0, 0)))
    train_xn = _l2_normalize(train_x)
    train_y = jnp.asarray(train_y_np, jnp.int32)
    temperature = jnp.asarray(temperature, jnp.float32)
    parts = [
        _knn_chunk_scores(
            train_xn,
            train_y,
            jax.lax.dynamic_slice_in_dim(test_x, i * chunk, chunk),
            temperature,
            k=k_eff,
            num_classes=int(num_classes),
        )
        for i in range(num_chunks)
    ]
    return jnp.concatenate(parts, axis=0)[:num_test]


@functools.partial(jax.jit, static_argnames=("k",))
def merge_top_k(
    top_sims: jax.Array,
    top_labels: jax.Array,
    train_chunk: jax.Array,
    train_y_chunk: jax.Array,
    test_xn: jax.Array,
    *,
    k: int,
) -> tuple[jax.Array, jax.Array]:
    """Folds one train chunk into the running ``k`` nearest neighbours of a test chunk.

    Args:
      top_sims: ``[B, k]`` similarities of the neighbours so far, descending (``-inf``
        where there are none yet); top_labels: ``[B, k]`` their labels.
      train_chunk: ``[R, D]`` raw train features (normalised here), whose rows all come
        after the train rows already folded in; train_y_chunk: ``[R]`` their labels.
      test_xn: ``[B, D]`` L2-normalised test features.
      k: neighbours kept.

    Returns:
      The updated ``(top_sims, top_labels)``. The running neighbours come first in the
      merge, so ties go to the lower train index, as in :func:`knn_scores`.
    """
    chex.assert_rank([top_sims, top_labels, train_chunk, train_y_chunk, test_xn], [2, 2, 2, 1, 2])
    sims = jnp.dot(test_xn, _l2_normalize(train_chunk).T, precision=_HIGHEST)  # [B, R]
    if sims.shape[1] < k:  # a short last chunk: pad with never-chosen entries
        sims = jnp.pad(sims, ((0, 0), (0, k - sims.shape[1])), constant_values=-jnp.inf)
        train_y_chunk = jnp.pad(train_y_chunk, (0, k - train_y_chunk.shape[0]))
    chunk_sims, chunk_idx = jax.lax.top_k(sims, k)
    chunk_labels = train_y_chunk[chunk_idx]  # [B, k]
    all_sims = jnp.concatenate([top_sims, chunk_sims], axis=1)
    all_labels = jnp.concatenate([top_labels, chunk_labels], axis=1)
    new_sims, pick = jax.lax.top_k(all_sims, k)
    return new_sims, jnp.take_along_axis(all_labels, pick, axis=1)


@functools.partial(jax.jit, static_argnames=("num_classes",))
def neighbour_votes(
    top_sims: jax.Array, top_labels: jax.Array, temperature: jax.Array, *, num_classes: int
) -> jax.Array:
    """``[B, C]`` class scores: each neighbour adds ``exp(sim / temperature)`` to its label."""
    weights = jnp.exp(top_sims / temperature)
    rows = jnp.arange(top_sims.shape[0])[:, None]
    scores = jnp.zeros((top_sims.shape[0], num_classes), jnp.float32)
    return scores.at[rows, top_labels].add(weights)


def knn_scores_streamed(
    train_x,
    train_y,
    test_x,
    *,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.07,
    batch_size: int = 1024,
    train_chunk_rows: int = 65536,
) -> jax.Array:
    """:func:`knn_scores` reading the train set ``train_chunk_rows`` rows at a time.

    ``train_x`` and ``test_x`` may be any ``[N, D]`` arrays that support row slicing (numpy
    arrays, ``np.memmap``, float16). Each train chunk is read once; for every test chunk of
    ``batch_size`` rows its ``k`` best matches are merged into the running neighbours
    (:func:`merge_top_k`), so device memory holds one train chunk, one test chunk, their
    ``[batch_size, train_chunk_rows]`` similarities and the ``[N_test, k]`` running
    neighbours. The neighbours, and so the scores, are those of :func:`knn_scores`.
    """
    train_y_np = np.asarray(train_y)
    _validate_knn_inputs(train_x, train_y_np, test_x, num_classes, k, temperature, batch_size)
    if int(train_chunk_rows) < 1:
        raise ValueError(f"train_chunk_rows must be >= 1, got {train_chunk_rows}")
    num_train, num_test = train_x.shape[0], test_x.shape[0]
    if num_test == 0:
        return jnp.zeros((0, num_classes), jnp.float32)
    k_eff = min(int(k), num_train)
    test_chunks = [(lo, min(lo + batch_size, num_test)) for lo in range(0, num_test, batch_size)]
    running = [
        (jnp.full((hi - lo, k_eff), -jnp.inf, jnp.float32), jnp.zeros((hi - lo, k_eff), jnp.int32))
        for lo, hi in test_chunks
    ]
    for t_lo in range(0, num_train, int(train_chunk_rows)):
        t_hi = min(t_lo + int(train_chunk_rows), num_train)
        chunk = jnp.asarray(train_x[t_lo:t_hi], jnp.float32)
        chunk_y = jnp.asarray(train_y_np[t_lo:t_hi], jnp.int32)
        # The previous train chunk is done with (and freed) before this one is used.
        jax.block_until_ready(running[-1])
        for i, (lo, hi) in enumerate(test_chunks):
            test_xn = _l2_normalize(jnp.asarray(test_x[lo:hi], jnp.float32))
            running[i] = merge_top_k(*running[i], chunk, chunk_y, test_xn, k=k_eff)
    temperature = jnp.asarray(temperature, jnp.float32)
    return jnp.concatenate(
        [
            neighbour_votes(sims, labels, temperature, num_classes=int(num_classes))
            for sims, labels in running
        ]
    )


def knn_evaluate(
    train_x,
    train_y,
    test_x,
    test_y,
    *,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.07,
    batch_size: int = 1024,
    train_chunk_rows: int | None = None,
) -> dict:
    """Weighted-kNN top-1/top-5 test accuracy.

    Args:
      train_x, train_y, test_x: as in :func:`knn_scores`.
      test_y: ``[N_test]`` int labels in ``[0, num_classes)``.
      num_classes, k, temperature, batch_size, train_chunk_rows: as in
        :func:`knn_scores`.

    Returns:
      JSON-serialisable ``{'top1', 'top5', 'k', 'temperature'}``; ``k`` is the
      number of neighbours actually used (after clamping to ``N_train``) and
      ``top5`` equals ``top1`` when ``num_classes < 5``. Ties in class scores
      count against the true class (see :mod:`ssljax.evaluation.metrics`), so
      a true class without any neighbour vote is never counted correct.
    """
    test_y_np = np.asarray(test_y)
    num_test = np.shape(test_x)[0] if np.ndim(test_x) >= 1 else -1
    _check_label_shape("test_y", test_y_np, num_test)
    if num_test == 0:
        raise ValueError("test_x is empty")
    scores = knn_scores(
        train_x,
        train_y,
        test_x,
        num_classes=num_classes,
        k=k,
        temperature=temperature,
        batch_size=batch_size,
        train_chunk_rows=train_chunk_rows,
    )
    report = accuracy_report(scores, test_y_np)
    return {
        "top1": float(report["top1"]),
        "top5": float(report["top5"]),
        "k": int(min(int(k), np.shape(train_x)[0])),
        "temperature": float(temperature),
    }
