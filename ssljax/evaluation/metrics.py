"""Classification accuracy metrics on score matrices.

All functions take a score matrix ``scores`` of shape ``[N, C]`` (logits,
probabilities or any other per-class score where larger means "more likely")
and integer ``labels`` of shape ``[N]`` with values in ``[0, C)``, and return
plain Python floats.

Tie handling is pessimistic: a sample counts as top-``k`` correct only if
fewer than ``k`` *other* classes score greater than *or equal to* the true
class. A tie between the true class and another class therefore never helps,
so a constant score matrix has top-1 accuracy 0 (for ``C > 1``), not 1. This
matters for kNN votes, where many classes share a score of exactly zero.
A NaN score for the true class counts as incorrect.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ssljax.evaluation.validation import check_matrix, check_vector


def _check_scores_labels(scores: jax.Array, labels: jax.Array) -> None:
    """Raises ValueError unless scores is ``[N, C]`` and labels is ``[N]``."""
    check_matrix("scores", scores, dims="[N, C]")
    check_vector("labels", labels)
    if labels.shape[0] != scores.shape[0]:
        raise ValueError(
            f"labels has {labels.shape[0]} entries but scores has {scores.shape[0]} rows"
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")


@jax.jit
def true_class_rank(scores: jax.Array, labels: jax.Array) -> jax.Array:
    """Pessimistic 0-based rank of the true class for each sample.

    Args:
      scores: ``[N, C]`` float scores.
      labels: ``[N]`` int labels in ``[0, C)``.

    Returns:
      ``[N]`` int32: number of other classes whose score is ``>=`` the true
      class score, or the int32 maximum when the true score is NaN (so it is
      never within any top-``k``).
    """
    chex.assert_rank(scores, 2)
    chex.assert_rank(labels, 1)
    true_score = jnp.take_along_axis(scores, labels[:, None], axis=1)  # [N, 1]
    is_other = jnp.arange(scores.shape[1])[None, :] != labels[:, None]  # [N, C]
    rank = jnp.sum((scores >= true_score) & is_other, axis=1)
    never = jnp.iinfo(jnp.int32).max
    return jnp.where(jnp.isnan(true_score[:, 0]), never, rank).astype(jnp.int32)


def topk_accuracy(scores, labels, k: int) -> float:
    """Fraction of samples whose true class is among the top ``k`` scores.

    Args:
      scores: ``[N, C]`` array of per-class scores (logits, similarities...).
      labels: ``[N]`` integer labels in ``[0, C)``.
      k: positive number of top classes considered. ``k >= C`` counts every
        sample whose true score is not NaN as correct.

    Returns:
      Accuracy in ``[0, 1]`` as a Python float. Ties with the true class count
      against it (see module docstring), so ties never inflate the result.

    Raises:
      ValueError: on bad shapes, non-integer labels, labels out of range or
        ``k < 1``.
    """
    scores = jnp.asarray(scores)
    labels = jnp.asarray(labels)
    _check_scores_labels(scores, labels)
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if scores.shape[0] == 0:
        raise ValueError("scores is empty (N = 0)")
    labels_np = np.asarray(labels)
    num_classes = scores.shape[1]
    if labels_np.min() < 0 or labels_np.max() >= num_classes:
        bad = labels_np[(labels_np < 0) | (labels_np >= num_classes)][0]
        raise ValueError(f"label {bad} out of range [0, {num_classes})")
    rank = true_class_rank(scores, labels)
    return float(jnp.mean(rank < int(k)))


def accuracy_report(scores, labels) -> dict[str, float]:
    """Top-1 and top-5 accuracy of a score matrix.

    Args:
      scores: ``[N, C]`` per-class scores.
      labels: ``[N]`` integer labels in ``[0, C)``.

    Returns:
      ``{'top1': float, 'top5': float}``. When ``C < 5`` a top-5 accuracy
      would be trivially 1.0, so ``'top5'`` is reported equal to ``'top1'``
      instead.
    """
    scores = jnp.asarray(scores)
    top1 = topk_accuracy(scores, labels, 1)
    top5 = topk_accuracy(scores, labels, 5) if scores.shape[1] >= 5 else top1
    return {"top1": top1, "top5": top5}
