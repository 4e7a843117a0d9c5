"""Linear evaluation of frozen features: L2-regularised softmax regression.

The classifier is ``logits = x @ w + b`` with ``w: [D, C]`` and ``b: [C]``,
trained by minimising

    J(w, b) = mean_i CE(softmax(x_i @ w + b), y_i) + (l2 / 2) * ||w||_F^2

(the bias is not penalised). This is the objective of scikit-learn's
multinomial ``LogisticRegression(C=1 / (n * l2))`` divided by ``C * n``, so both
have the same minimiser. For two classes scikit-learn instead fits a single
vector ``v`` with a sigmoid; the softmax optimum satisfies ``w[:, 0] = -w[:, 1]``
and ``v = w[:, 1] - w[:, 0]`` corresponds to ``LogisticRegression(C=2 / (n * l2))``.

Two solvers are provided:

* ``'lbfgs'`` (default): full-batch L-BFGS with a zoom (strong Wolfe)
  linesearch, run entirely inside one jitted ``lax.while_loop`` that stops
  after ``steps`` iterations or once the gradient norm of ``J`` is ``<= tol``.
* ``'adam'``: minibatch Adam with a cosine learning-rate decay, for feature
  sets too large to process at once. It samples minibatches with replacement
  and runs exactly ``steps`` updates (no gradient-norm stopping).

:func:`fit_linear_probe` implements the usual protocol: standardise with
train statistics, select ``l2`` on a held-out split of the train set, retrain
on the full train set and report test accuracy.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssljax.evaluation.metrics import accuracy_report, topk_accuracy, true_class_rank
from ssljax.evaluation.validation import (
    check_labels,
    check_matrix,
    check_nonempty,
    check_same_dim,
)

Params = dict[str, jax.Array]

_HIGHEST = jax.lax.Precision.HIGHEST


# --------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------


def standardize(train_x, *others, eps: float = 1e-6):
    """Standardise features with the mean and std of ``train_x``.

    Args:
      train_x: ``[N, D]`` training features; defines the statistics.
      *others: any number of ``[M_j, D]`` arrays transformed with the same
        statistics (e.g. validation and test features).
      eps: added to the variance before the square root, so constant features
        map to 0 instead of dividing by zero.

    Returns:
      ``(arrays, stats)`` where ``arrays`` is a tuple
      ``(train_x_std, *others_std)`` of float32 arrays and ``stats`` is
      ``{'mean': [D], 'std': [D]}`` with ``std = sqrt(var + eps)``.
    """
    train_x = jnp.asarray(train_x, jnp.float32)
    chex.assert_rank(train_x, 2)
    mean = jnp.mean(train_x, axis=0)
    std = jnp.sqrt(jnp.var(train_x, axis=0) + eps)
    out = []
    for arr in (train_x, *others):
        arr = jnp.asarray(arr, jnp.float32)
        chex.assert_rank(arr, 2)
        chex.assert_equal(arr.shape[1], train_x.shape[1])
        out.append(_apply_standardize(arr, mean, std))
    return tuple(out), {"mean": mean, "std": std}


@jax.jit
def _apply_standardize(x: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
    """``(x - mean) / std`` for ``x: [N, D]``, ``mean, std: [D]``."""
    return (x - mean) / std


# --------------------------------------------------------------------------
# Model and objective
# --------------------------------------------------------------------------


def linear_probe_logits(params: Params, x) -> jax.Array:
    """Logits of the linear classifier.

    Args:
      params: ``{'w': [D, C], 'b': [C]}``.
      x: ``[N, D]`` features (already standardised if the classifier was
        trained on standardised features).

    Returns:
      ``[N, C]`` float32 logits.
    """
    x = jnp.asarray(x, jnp.float32)
    chex.assert_rank(x, 2)
    chex.assert_equal(x.shape[1], params["w"].shape[0])
    return jnp.dot(x, params["w"], precision=_HIGHEST) + params["b"]


@jax.custom_vjp
def regularized_cross_entropy(params: Params, x: jax.Array, y: jax.Array, l2) -> jax.Array:
    """Objective ``mean_i CE(x_i @ w + b, y_i) + (l2 / 2) ||w||^2``.

    Differentiable with respect to ``params`` only (the cotangents of ``x``,
    ``y`` and ``l2`` are zero). The gradient is written out by hand,
    ``dJ/dlogits = (softmax(logits) - onehot(y)) / N``, and ``dJ/dw`` is
    formed as the transpose of ``G.T @ x``: on XLA:CPU that contraction is
    several times faster than the ``x.T @ G`` that autodiff would emit.

    Args:
      params: ``{'w': [D, C], 'b': [C]}``.
      x: ``[N, D]`` float32 features.
      y: ``[N]`` int labels in ``[0, C)``.
      l2: scalar regularisation strength (the bias is not penalised).

    Returns:
      Scalar objective value.
    """
    value, _ = _objective_fwd(params, x, y, l2)
    return value


def _objective_fwd(params, x, y, l2):
    chex.assert_rank(x, 2)
    chex.assert_rank(y, 1)
    w, b = params["w"], params["b"]
    logits = jnp.dot(x, w, precision=_HIGHEST) + b  # [N, C]
    lse = jax.nn.logsumexp(logits, axis=1)  # [N]
    true_logit = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]  # [N]
    value = jnp.mean(lse - true_logit) + 0.5 * l2 * jnp.sum(jnp.square(w))
    return value, (x, y, l2, w, logits, lse)


def _objective_bwd(residuals, g):
    x, y, l2, w, logits, lse = residuals
    num_rows, num_classes = logits.shape
    onehot = jax.nn.one_hot(y, num_classes, dtype=logits.dtype)
    dlogits = (jnp.exp(logits - lse[:, None]) - onehot) * (g / num_rows)  # [N, C]
    # Keep the [C, D] product from being fused with the transpose into an
    # x.T @ G contraction (slow on CPU).
    grad_wt = jax.lax.optimization_barrier(jnp.dot(dlogits.T, x, precision=_HIGHEST))
    grads = {"w": grad_wt.T + (g * l2) * w, "b": jnp.sum(dlogits, axis=0)}
    return grads, None, None, None


regularized_cross_entropy.defvjp(_objective_fwd, _objective_bwd)


def init_linear_params(feature_dim: int, num_classes: int) -> Params:
    """Zero-initialised ``{'w': [D, C], 'b': [C]}`` (the objective is convex)."""
    return {
        "w": jnp.zeros((feature_dim, num_classes), jnp.float32),
        "b": jnp.zeros((num_classes,), jnp.float32),
    }


# --------------------------------------------------------------------------
# Solvers
# --------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("memory_size", "max_linesearch_steps"))
def _lbfgs_solve(
    params: Params,
    x: jax.Array,
    y: jax.Array,
    l2: jax.Array,
    max_steps: jax.Array,
    tol: jax.Array,
    *,
    memory_size: int,
    max_linesearch_steps: int,
) -> tuple[Params, dict[str, jax.Array]]:
    """Full-batch L-BFGS on :func:`regularized_cross_entropy`.

    Runs until ``max_steps`` iterations are done, the gradient norm is
    ``<= tol``, or the objective becomes non-finite. ``l2``, ``max_steps`` and
    ``tol`` are traced, so changing them does not recompile.

    Returns:
      ``(params, info)`` with ``info = {'num_steps', 'grad_norm', 'loss'}``
      (loss and grad norm at the returned params).
    """
    solver = optax.lbfgs(
        memory_size=memory_size,
        linesearch=optax.scale_by_zoom_linesearch(
            max_linesearch_steps=max_linesearch_steps, initial_guess_strategy="one"
        ),
    )

    def objective(p):
        return regularized_cross_entropy(p, x, y, l2)

    value_and_grad = optax.value_and_grad_from_state(objective)
    value0, grad0 = jax.value_and_grad(objective)(params)

    def cond(carry):
        _, _, step, value, grad_norm = carry
        return (step < max_steps) & (grad_norm > tol) & jnp.isfinite(value)

    def body(carry):
        p, state, step, _, _ = carry
        value, grad = value_and_grad(p, state=state)
        updates, state = solver.update(grad, state, p, value=value, grad=grad, value_fn=objective)
        p = optax.apply_updates(p, updates)
        new_value = optax.tree.get(state, "value")
        new_grad_norm = optax.tree.norm(optax.tree.get(state, "grad"))
        return p, state, step + 1, new_value, new_grad_norm

    init = (params, solver.init(params), jnp.asarray(0), value0, optax.tree.norm(grad0))
    params, _, steps_done, value, grad_norm = jax.lax.while_loop(cond, body, init)
    return params, {"num_steps": steps_done, "grad_norm": grad_norm, "loss": value}


@functools.partial(jax.jit, static_argnames=("steps", "batch_size"))
def _adam_solve(
    params: Params,
    x: jax.Array,
    y: jax.Array,
    l2: jax.Array,
    key: jax.Array,
    learning_rate: jax.Array,
    *,
    steps: int,
    batch_size: int,
) -> tuple[Params, dict[str, jax.Array]]:
    """Minibatch Adam (cosine-decayed step size) for ``steps`` updates.

    Each step samples ``batch_size`` rows uniformly with replacement; the
    per-batch objective is an unbiased estimate of the full objective.

    Returns:
      ``(params, info)``; ``info`` holds ``num_steps`` and the full-batch
      ``loss`` and ``grad_norm`` at the returned params.
    """
    schedule = optax.cosine_decay_schedule(1.0, decay_steps=steps)
    solver = optax.chain(optax.scale_by_adam(), optax.scale_by_schedule(schedule))
    num_rows = x.shape[0]

    def body(step, carry):
        p, state = carry
        idx = jax.random.randint(jax.random.fold_in(key, step), (batch_size,), 0, num_rows)
        grad = jax.grad(regularized_cross_entropy)(p, x[idx], y[idx], l2)
        updates, state = solver.update(grad, state, p)
        updates = optax.tree.scale(-learning_rate, updates)
        return optax.apply_updates(p, updates), state

    params, _ = jax.lax.fori_loop(0, steps, body, (params, solver.init(params)))
    value, grad = jax.value_and_grad(regularized_cross_entropy)(params, x, y, l2)
    info = {"num_steps": jnp.asarray(steps), "grad_norm": optax.tree.norm(grad), "loss": value}
    return params, info


def train_linear_classifier(
    x,
    y,
    *,
    num_classes: int,
    l2: float,
    steps: int = 300,
    solver: str = "lbfgs",
    tol: float = 1e-5,
    init_params: Params | None = None,
    memory_size: int = 10,
    max_linesearch_steps: int = 20,
    batch_size: int = 4096,
    learning_rate: float = 1e-3,
    seed: int = 0,
    return_info: bool = False,
):
    """Trains ``logits = x @ w + b`` on :func:`regularized_cross_entropy`.

    Args:
      x: ``[N, D]`` features (float32 after conversion). Standardise first
        (see :func:`standardize`); ``l2`` is relative to the feature scale.
      y: ``[N]`` integer labels in ``[0, num_classes)``.
      num_classes: number of classes ``C``.
      l2: L2 penalty on ``w`` (objective ``mean CE + l2 / 2 * ||w||^2``).
      steps: maximum L-BFGS iterations, or the exact number of Adam updates.
      solver: ``'lbfgs'`` (full batch) or ``'adam'`` (minibatch).
      tol: L-BFGS stops once the gradient norm of the objective is ``<= tol``.
        Ignored by Adam.
      init_params: optional ``{'w': [D, C], 'b': [C]}`` warm start; zeros if
        None.
      memory_size: L-BFGS history length.
      max_linesearch_steps: cap on zoom-linesearch evaluations per iteration.
      batch_size: Adam minibatch size (clipped to ``N``).
      learning_rate: Adam peak learning rate.
      seed: Adam minibatch sampling seed.
      return_info: also return ``{'num_steps', 'grad_norm', 'loss'}``
        (Python scalars) describing the returned solution.

    Returns:
      ``{'w': [D, C], 'b': [C]}`` float32 arrays, or ``(params, info)`` when
      ``return_info`` is True.
    """
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.int32)
    chex.assert_rank(x, 2)
    chex.assert_rank(y, 1)
    chex.assert_equal(x.shape[0], y.shape[0])
    if init_params is None:
        params = init_linear_params(x.shape[1], num_classes)
    else:
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), init_params)
        chex.assert_shape(params["w"], (x.shape[1], num_classes))
        chex.assert_shape(params["b"], (num_classes,))
    l2 = jnp.asarray(l2, jnp.float32)
    if solver == "lbfgs":
        params, info = _lbfgs_solve(
            params,
            x,
            y,
            l2,
            jnp.asarray(steps, jnp.int32),
            jnp.asarray(tol, jnp.float32),
            memory_size=memory_size,
            max_linesearch_steps=max_linesearch_steps,
        )
    elif solver == "adam":
        params, info = _adam_solve(
            params,
            x,
            y,
            l2,
            jax.random.key(seed),
            jnp.asarray(learning_rate, jnp.float32),
            steps=int(steps),
            batch_size=int(min(batch_size, x.shape[0])),
        )
    else:
        raise ValueError(f"solver must be 'lbfgs' or 'adam', got {solver!r}")
    if return_info:
        info = {
            "num_steps": int(info["num_steps"]),
            "grad_norm": float(info["grad_norm"]),
            "loss": float(info["loss"]),
        }
        return params, info
    return params


# --------------------------------------------------------------------------
# Linear-evaluation protocol
# --------------------------------------------------------------------------


def _validate_probe_inputs(train_x, train_y, test_x, test_y, num_classes, l2_grid, val_fraction):
    """Raises a one-line ValueError naming the first bad input."""
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    for name, arr in (("train_x", train_x), ("test_x", test_x)):
        check_matrix(name, arr)
        check_nonempty(name, arr)
    check_same_dim(train_x, test_x)
    check_labels("train_y", train_y, train_x.shape[0], num_classes)
    check_labels("test_y", test_y, test_x.shape[0], num_classes)
    if len(l2_grid) == 0:
        raise ValueError("l2_grid is empty")
    for l2 in l2_grid:
        if not (math.isfinite(l2) and l2 >= 0):
            raise ValueError(f"l2_grid value {l2} is not a finite non-negative number")
    if len(l2_grid) > 1 and not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")


def _top1(params: Params, x: jax.Array, y: jax.Array) -> float:
    """Top-1 accuracy of the linear classifier on ``x: [N, D]``, ``y: [N]``."""
    return topk_accuracy(linear_probe_logits(params, x), y, 1)


def fit_linear_probe(
    train_x,
    train_y,
    test_x,
    test_y,
    *,
    num_classes: int,
    l2_grid: Sequence[float] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2),
    val_fraction: float = 0.1,
    seed: int = 0,
    standardize_features: bool = True,
    steps: int = 100,
    final_steps: int = 200,
    solver: str = "lbfgs",
    tol: float = 1e-5,
    **solver_kwargs: Any,
) -> dict[str, Any]:
    """Linear-evaluation protocol on frozen features.

    1. Standardise all features with the full train-set mean/std (if
       ``standardize_features``). Only unlabelled statistics are shared with
       the validation split.
    2. Hold out ``round(val_fraction * N)`` train points (at least 1; random
       permutation from ``seed``) and train one classifier per ``l2`` on the
       rest. Grid values are visited from largest to smallest, each
       warm-started from the previous solution.
    3. Pick the ``l2`` with the best validation top-1 (ties -> larger ``l2``).
       With a single grid value the validation step is skipped and
       ``val_top1`` is ``{}``.
    4. Retrain on the full train set with that ``l2`` (warm-started from its
       validation-stage solution) for up to ``final_steps`` iterations and
       evaluate on the test set.

    Args:
      train_x: ``[N, D]`` train features; train_y: ``[N]`` int labels.
      test_x: ``[M, D]`` test features; test_y: ``[M]`` int labels.
      num_classes: number of classes ``C`` (labels must lie in ``[0, C)``).
      l2_grid: candidate L2 strengths (see :func:`regularized_cross_entropy`).
      val_fraction: fraction of the train set held out for selecting ``l2``.
      seed: seed of the train/validation split (and Adam sampling).
      standardize_features: standardise with train statistics first.
      steps: max L-BFGS iterations (or Adam updates) per grid value. Grid
        values are warm-started along the path, so the smallest ``l2`` has
        effectively had ``len(l2_grid) * steps`` iterations.
      final_steps: max iterations of the final retraining on the full train
        set (warm-started from the selected grid solution).
      solver: ``'lbfgs'`` or ``'adam'``; see :func:`train_linear_classifier`.
      tol: L-BFGS gradient-norm tolerance.
      **solver_kwargs: forwarded to :func:`train_linear_classifier`
        (``memory_size``, ``batch_size``, ``learning_rate``...).

    Returns:
      JSON-serialisable dict: ``top1``, ``top5`` (test accuracies; ``top5``
      equals ``top1`` when ``C < 5``), ``l2`` (chosen), ``val_top1``
      (``{str(l2): acc}``), ``train_top1`` (final classifier on the full
      train set), ``num_train``, ``num_test``, ``feature_dim``.

    Raises:
      ValueError: one line naming the bad input (shapes, lengths, labels out
        of range, empty or negative grid, bad ``val_fraction``).
    """
    train_y_np = np.asarray(train_y)
    test_y_np = np.asarray(test_y)
    train_x = jnp.asarray(train_x)
    test_x = jnp.asarray(test_x)
    l2_grid = [float(v) for v in l2_grid]
    _validate_probe_inputs(
        train_x, train_y_np, test_x, test_y_np, num_classes, l2_grid, val_fraction
    )
    for name, arr in (("train_x", train_x), ("test_x", test_x)):
        if not bool(jnp.all(jnp.isfinite(arr))):
            raise ValueError(f"{name} contains NaN or inf values")

    if standardize_features:
        (train_x, test_x), _ = standardize(train_x, test_x)
    else:
        train_x = train_x.astype(jnp.float32)
        test_x = test_x.astype(jnp.float32)
    train_y = jnp.asarray(train_y_np, jnp.int32)
    test_y = jnp.asarray(test_y_np, jnp.int32)
    num_train, feature_dim = train_x.shape
    train_kwargs = dict(num_classes=num_classes, solver=solver, tol=tol, seed=seed, **solver_kwargs)

    # Candidate l2 values from strongest to weakest regularisation.
    grid_desc = sorted(set(l2_grid), reverse=True)
    val_top1: dict[str, float] = {}
    if len(grid_desc) == 1:
        best_l2, init = grid_desc[0], None
    else:
        if num_train < 2:
            raise ValueError(f"need at least 2 train points for validation, got {num_train}")
        perm = np.random.default_rng(seed).permutation(num_train)
        num_val = min(max(1, int(round(val_fraction * num_train))), num_train - 1)
        val_idx = jnp.asarray(perm[:num_val])
        fit_idx = jnp.asarray(perm[num_val:])
        fit_x, fit_y = train_x[fit_idx], train_y[fit_idx]
        val_x, val_y = train_x[val_idx], train_y[val_idx]
        params = None
        solutions = {}
        for l2 in grid_desc:
            params = train_linear_classifier(
                fit_x, fit_y, l2=l2, steps=steps, init_params=params, **train_kwargs
            )
            solutions[l2] = params
            val_top1[str(l2)] = _top1(params, val_x, val_y)
        del fit_x, fit_y, val_x, val_y
        # max over descending grid keeps the first (largest) l2 on ties.
        best_l2 = max(grid_desc, key=lambda v: val_top1[str(v)])
        init = solutions[best_l2]

    params = train_linear_classifier(
        train_x,
        train_y,
        l2=best_l2,
        steps=final_steps,
        init_params=init,
        **train_kwargs,
    )
    report = accuracy_report(linear_probe_logits(params, test_x), test_y)
    return {
        "top1": float(report["top1"]),
        "top5": float(report["top5"]),
        "l2": float(best_l2),
        "val_top1": {str(v): float(val_top1[str(v)]) for v in l2_grid if str(v) in val_top1},
        "train_top1": float(_top1(params, train_x, train_y)),
        "num_train": int(num_train),
        "num_test": int(test_x.shape[0]),
        "feature_dim": int(feature_dim),
    }


# --------------------------------------------------------------------------
# Streamed protocol: features too large to train on at once
# --------------------------------------------------------------------------


def row_chunks(num_rows: int, chunk_rows: int) -> list[tuple[int, int]]:
    """``[(lo, hi), ...]`` consecutive row ranges of at most ``chunk_rows`` rows."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    return [(lo, min(lo + chunk_rows, num_rows)) for lo in range(0, num_rows, chunk_rows)]


def merge_moments(a: tuple, b: tuple) -> tuple:
    """Combines ``(count, mean [D], m2 [D])`` of two row sets (Chan et al.'s parallel update);
    ``m2`` is the sum of squared deviations from the mean."""
    n_a, mean_a, m2_a = a
    n_b, mean_b, m2_b = b
    n = n_a + n_b
    if n == 0:
        return a
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    m2 = m2_a + m2_b + delta**2 * (n_a * n_b / n)
    return n, mean, m2


def _check_finite(name: str, chunk: np.ndarray, lo: int) -> None:
    """One-line ValueError when a chunk starting at row ``lo`` holds NaN or inf."""
    if not np.all(np.isfinite(chunk)):
        raise ValueError(f"{name} contains NaN or inf values (rows from {lo})")


def check_finite_rows(name: str, store, *, chunk_rows: int) -> None:
    """Raises a one-line ValueError when ``store: [N, D]`` holds NaN or inf (read in chunks)."""
    for lo, hi in row_chunks(store.shape[0], chunk_rows):
        _check_finite(name, np.asarray(store[lo:hi]), lo)


# Rows of one float64 block of :func:`streamed_moments` are sized to about this many bytes.
MOMENT_BLOCK_BYTES = 32 * 2**20


def streamed_moments(
    store, *, chunk_rows: int, name: str = "train_x"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and (biased) variance of ``store: [N, D]``, read chunk by chunk.

    Accumulated in float64, in blocks of at most ``chunk_rows`` rows and about
    ``MOMENT_BLOCK_BYTES`` of float64. Raises a one-line ValueError (naming ``name``) on NaN
    or inf.
    """
    dim = store.shape[1]
    block = max(1, min(int(chunk_rows), MOMENT_BLOCK_BYTES // (8 * max(dim, 1))))
    moments = (0, np.zeros(dim), np.zeros(dim))
    for lo, hi in row_chunks(store.shape[0], block):
        chunk = np.asarray(store[lo:hi], np.float64)
        _check_finite(name, chunk, lo)
        mean = chunk.mean(axis=0)
        moments = merge_moments(moments, (hi - lo, mean, ((chunk - mean) ** 2).sum(axis=0)))
    count, mean, m2 = moments
    return mean, m2 / max(count, 1)


def masked_cross_entropy(params: Params, x, y, mask, l2) -> jax.Array:
    """:func:`regularized_cross_entropy` over the rows where ``mask`` is True
    (``x: [B, D]``, ``y, mask: [B]``); with no such row, the penalty alone."""
    chex.assert_rank([x, y, mask], [2, 1, 1])
    logits = jnp.dot(x, params["w"], precision=_HIGHEST) + params["b"]
    lse = jax.nn.logsumexp(logits, axis=1)
    true_logit = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
    mask = mask.astype(jnp.float32)
    data = jnp.sum(mask * (lse - true_logit)) / jnp.maximum(jnp.sum(mask), 1.0)
    return data + 0.5 * l2 * jnp.sum(jnp.square(params["w"]))


def cosine_factor(step, total_steps) -> jax.Array:
    """``0.5 (1 + cos(pi t / T))`` for ``t = min(step, T)``: 1 at the start, 0 at the end."""
    t = jnp.minimum(step, total_steps) / jnp.maximum(total_steps, 1)
    return 0.5 * (1.0 + jnp.cos(jnp.pi * t))


@jax.jit
def _adam_chunk(
    params, opt_state, step, x, y, idx, mask, mean, std, l2, learning_rate, total_steps
):
    """Minibatch Adam over one chunk of rows held on the device.

    ``x: [R, D]`` (any float dtype) is standardised here with ``mean, std: [D]``; step ``s``
    uses rows ``idx[s]`` (``[S, B]``) where ``mask[s]`` is True. A step without rows changes
    nothing (the step counter of the cosine schedule counts only real steps).
    """
    chex.assert_rank([x, y, idx, mask], [2, 1, 2, 2])
    xs = (x.astype(jnp.float32) - mean) / std
    adam = optax.scale_by_adam()

    def body(carry, plan):
        p, state, t = carry
        rows, m = plan
        grad = jax.grad(masked_cross_entropy)(p, xs[rows], y[rows], m, l2)
        updates, new_state = adam.update(grad, state, p)
        rate = learning_rate * cosine_factor(t, total_steps)
        new_p = optax.apply_updates(p, optax.tree.scale(-rate, updates))
        live = jnp.any(m)
        keep = lambda new, old: jnp.where(live, new, old)  # noqa: E731
        return (
            jax.tree.map(keep, new_p, p),
            jax.tree.map(keep, new_state, state),
            t + live.astype(t.dtype),
        ), None

    (params, opt_state, step), _ = jax.lax.scan(body, (params, opt_state, step), (idx, mask))
    return params, opt_state, step


@jax.jit
def _chunk_ranks(params, x, y, mean, std) -> jax.Array:
    """Pessimistic rank of the true class (``metrics.true_class_rank``) of each row of a chunk
    of raw features ``x: [R, D]``, standardised with ``mean, std``."""
    logits = linear_probe_logits(params, (x.astype(jnp.float32) - mean) / std)
    return true_class_rank(logits, y)


def minibatch_plan(
    rows: np.ndarray, batch_size: int, num_steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` (already in visiting order) cut into ``num_steps`` batches of ``batch_size``.

    Returns:
      ``(idx int32 [num_steps, batch_size], mask bool [num_steps, batch_size])``: padding
      entries point at row 0 with mask False.
    """
    if len(rows) > num_steps * batch_size:
        raise ValueError(f"{len(rows)} rows do not fit {num_steps} steps of {batch_size}")
    idx = np.zeros(num_steps * batch_size, np.int32)
    mask = np.zeros(num_steps * batch_size, bool)
    idx[: len(rows)] = rows
    mask[: len(rows)] = True
    return idx.reshape(num_steps, batch_size), mask.reshape(num_steps, batch_size)


def _streamed_train(
    params,
    store,
    labels,
    select,
    *,
    l2,
    mean,
    std,
    chunk_rows,
    epochs,
    batch_size,
    learning_rate,
    rng,
):
    """``epochs`` passes of minibatch Adam over the rows of ``store`` where ``select``; chunks
    are visited in a new random order each epoch, rows shuffled within each chunk."""
    chunks = row_chunks(store.shape[0], chunk_rows)
    kept = [int(select[lo:hi].sum()) for lo, hi in chunks]
    steps_per_chunk = max(1, -(-max(kept) // batch_size))
    total = epochs * sum(-(-k // batch_size) for k in kept)
    opt_state = optax.scale_by_adam().init(params)
    step = jnp.asarray(0, jnp.int32)
    consts = dict(
        mean=mean,
        std=std,
        l2=jnp.asarray(l2, jnp.float32),
        learning_rate=jnp.asarray(learning_rate, jnp.float32),
        total_steps=jnp.asarray(total, jnp.int32),
    )
    for _ in range(epochs):
        for c in rng.permutation(len(chunks)):
            lo, hi = chunks[c]
            rows = np.flatnonzero(select[lo:hi])
            if not len(rows):
                continue
            idx, mask = minibatch_plan(rng.permutation(rows), batch_size, steps_per_chunk)
            x = jnp.asarray(store[lo:hi])
            # The previous chunk's updates finish (and free their chunk) before this one is
            # queued: at most two chunks are on the device at a time.
            step.block_until_ready()
            params, opt_state, step = _adam_chunk(
                params,
                opt_state,
                step,
                x,
                jnp.asarray(labels[lo:hi], jnp.int32),
                jnp.asarray(idx),
                jnp.asarray(mask),
                **consts,
            )
    return params


def _streamed_accuracy(
    params, store, labels, select, *, mean, std, chunk_rows, ks=(1,)
) -> list[float]:
    """Top-k accuracies (ties count against the true class) over the rows where ``select``."""
    correct = np.zeros(len(ks), np.int64)
    total = 0
    for lo, hi in row_chunks(store.shape[0], chunk_rows):
        ranks = np.asarray(
            _chunk_ranks(
                params, jnp.asarray(store[lo:hi]), jnp.asarray(labels[lo:hi], jnp.int32), mean, std
            )
        )
        ranks = ranks[select[lo:hi]]
        correct += [(ranks < k).sum() for k in ks]
        total += len(ranks)
    return [float(c) / max(total, 1) for c in correct]


def fit_linear_probe_streamed(
    train_x,
    train_y,
    test_x,
    test_y,
    *,
    num_classes: int,
    l2_grid: Sequence[float] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2),
    val_fraction: float = 0.1,
    seed: int = 0,
    standardize_features: bool = True,
    chunk_rows: int = 65536,
    epochs: int = 20,
    final_epochs: int | None = None,
    batch_size: int = 256,
    learning_rate: float = 1e-2,
) -> dict[str, Any]:
    """The protocol of :func:`fit_linear_probe`, reading the features chunk by chunk.

    For feature sets too large to train on at once: ``train_x`` and ``test_x`` may be any
    ``[N, D]`` arrays that support row slicing (numpy arrays, ``np.memmap``, float16 or
    float32); only ``chunk_rows`` rows at a time are converted to float32 and moved to the
    device. The steps are those of :func:`fit_linear_probe`: standardisation with the whole
    train split's mean and std (computed in one pass, float64), the same held-out rows
    (the first ``round(val_fraction * N)`` of a ``seed`` permutation), ``l2`` chosen on them
    from the largest value down with warm starts (ties to the larger), then a warm-started
    refit on every train row. The solver is minibatch Adam (``batch_size`` rows, peak
    ``learning_rate`` decayed by a cosine to 0 over each fit) for ``epochs`` passes per grid
    value and ``final_epochs`` (default ``epochs``) for the refit, visiting the chunks in a
    new random order each epoch and shuffling the rows within each chunk.

    Returns:
      The keys of :func:`fit_linear_probe` (``top1``, ``top5``, ``l2``, ``val_top1``,
      ``train_top1``, ``num_train``, ``num_test``, ``feature_dim``), plus ``solver``
      (``'streamed_adam'``), ``epochs`` and ``chunk_rows``.
    """
    train_y = np.asarray(train_y)
    test_y = np.asarray(test_y)
    l2_grid = [float(v) for v in l2_grid]
    _validate_probe_inputs(train_x, train_y, test_x, test_y, num_classes, l2_grid, val_fraction)
    for name, value in (("chunk_rows", chunk_rows), ("epochs", epochs), ("batch_size", batch_size)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    final_epochs = epochs if final_epochs is None else int(final_epochs)
    num_train, feature_dim = train_x.shape
    if standardize_features:
        mean, var = streamed_moments(train_x, chunk_rows=chunk_rows)
        std = np.sqrt(var + 1e-6)
    else:
        check_finite_rows("train_x", train_x, chunk_rows=chunk_rows)
        mean, std = np.zeros(feature_dim), np.ones(feature_dim)
    check_finite_rows("test_x", test_x, chunk_rows=chunk_rows)
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    common = dict(mean=mean, std=std, chunk_rows=int(chunk_rows))
    fit = dict(common, batch_size=int(batch_size), learning_rate=learning_rate)
    rng = np.random.default_rng(seed)
    everything = np.ones(num_train, bool)

    grid_desc = sorted(set(l2_grid), reverse=True)
    val_top1: dict[str, float] = {}
    params = init_linear_params(feature_dim, num_classes)
    if len(grid_desc) == 1:
        best_l2 = grid_desc[0]
    else:
        if num_train < 2:
            raise ValueError(f"need at least 2 train points for validation, got {num_train}")
        perm = np.random.default_rng(seed).permutation(num_train)
        num_val = min(max(1, int(round(val_fraction * num_train))), num_train - 1)
        is_val = np.zeros(num_train, bool)
        is_val[perm[:num_val]] = True
        solutions = {}
        for l2 in grid_desc:
            params = _streamed_train(
                params, train_x, train_y, ~is_val, l2=l2, epochs=epochs, rng=rng, **fit
            )
            solutions[l2] = params
            val_top1[str(l2)] = _streamed_accuracy(params, train_x, train_y, is_val, **common)[0]
        best_l2 = max(grid_desc, key=lambda v: val_top1[str(v)])
        params = solutions[best_l2]
    params = _streamed_train(
        params, train_x, train_y, everything, l2=best_l2, epochs=final_epochs, rng=rng, **fit
    )
    top1, top5 = _streamed_accuracy(
        params, test_x, test_y, np.ones(len(test_y), bool), ks=(1, 5), **common
    )
    return {
        "top1": top1,
        "top5": top5 if num_classes >= 5 else top1,
        "l2": float(best_l2),
        "val_top1": {str(v): float(val_top1[str(v)]) for v in l2_grid if str(v) in val_top1},
        "train_top1": _streamed_accuracy(params, train_x, train_y, everything, **common)[0],
        "num_train": int(num_train),
        "num_test": int(test_y.shape[0]),
        "feature_dim": int(feature_dim),
        "solver": "streamed_adam",
        "epochs": int(epochs),
        "chunk_rows": int(chunk_rows),
    }
