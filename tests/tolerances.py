"""Test tolerances derived from floating-point error, not tuned to one CPU.

Two float32 computations of the same mathematical value agree exactly only when they run the
same operations in the same order. Splitting a batch over devices, slicing it differently or
running another driver (``shard_map``/``pmap``), another CPU or another instruction set
reorders the reductions (sums inside matmuls, convolutions, means, BatchNorm statistics,
``pmean`` trees), and each reordering moves the result by rounding errors. The helpers below
turn that into numbers:

* ``f32_sum_tol``: a guaranteed bound for one reordered sum (worst case, every rounding
  error in the same direction): small reductions with a hand-checkable length.
* ``f32_reorder_rtol`` / ``f32_steps_rtol``: a statistical estimate for whole training steps,
  whose reductions are too many and too long for the worst case to be useful.
* ``bf16_rtol``: low-precision compute compared against float32.

Comparisons are normwise per array (``assert_close``; ``assert_updates_close`` for trained
parameters, relative to what the optimizer changed): the error of a reordered sum scales
with the magnitude of its terms, which sets the scale of the array, not with the size of one
element of the result, which cancellation can bring near zero. An elementwise relative
tolerance on such an element asks for more than float32 can give.

Every tolerance stays far below the differences a real bug makes (a missing ``pmean``, negatives
from one device only, BatchNorm statistics of the local batch: O(1) relative differences).
"""

from __future__ import annotations

import math

import jax
import numpy as np

F32_EPS = 2.0**-23  # float32 machine epsilon: spacing of floats at 1.0 (unit roundoff is half)
BF16_EPS = 2.0**-8  # bfloat16 unit roundoff: 8 significant bits (7 stored + the implicit one)

SAFETY = 4.0  # standard deviations of the random-walk estimate (f32_reorder_rtol)
CANCELLATION = 16.0  # sum of |terms| / |gradient| for the tests' losses at initialisation
GROWTH = 2.0  # amplification of an existing parameter difference through one update


def f32_sum_tol(n_terms: int, magnitude: float = 1.0, *, ulps: float = 1.0) -> float:
    """Absolute tolerance between two float32 evaluations of one sum in different orders.

    Any summation order of ``n`` terms has ``|fl(sum) - sum| <= (n - 1) u sum|x_i|`` to first
    order (Higham, Accuracy and Stability of Numerical Algorithms, 4.2), with ``u = eps / 2``;
    two orders therefore differ by at most ``(n - 1) eps sum|x_i|``. Pass as ``magnitude``
    ``sum|x_i|`` for a sum and ``mean|x_i|`` for a mean (the size the result would have if no
    term cancelled). A chain of reductions (dot product, then softmax, then mean) adds its
    lengths: pass their total as ``n_terms`` and the largest magnitude.

    Args:
      n_terms: number of terms summed (at least 1).
      magnitude: ``sum|x_i|`` for a sum, ``mean|x_i|`` for a mean.
      ulps: extra factor for operations that round more than once per term (a few for
        ``exp``/``log``/``sqrt`` implementations that differ between instruction sets).

    Returns:
      ``ulps * n * eps * magnitude``.
    """
    if n_terms < 1 or magnitude < 0 or ulps <= 0:
        raise ValueError(
            f"n_terms={n_terms}, magnitude={magnitude}, ulps={ulps}: need "
            "n_terms >= 1, magnitude >= 0, ulps > 0"
        )
    return ulps * n_terms * F32_EPS * magnitude


def f32_reorder_rtol(n_terms: int, *, safety: float = SAFETY) -> float:
    """Relative tolerance for a whole forward/backward pass whose reductions are reordered.

    The rounding errors of a long sum are nearly independent and of both signs, so the
    difference between two orders grows like a random walk: its standard deviation is about
    ``sqrt(n) * u`` relative to ``sum|x_i|`` for the longest reduction ``n`` of the pass (e.g.
    BatchNorm statistics over ``batch * H * W`` positions); shorter reductions add less. The
    worst case ``n * eps`` (``f32_sum_tol``) is reached only when every error has the same sign
    and would be 100x looser for ``n = 10^4``. ``safety`` standard deviations of margin keep a
    different CPU or instruction set inside the bound.

    Returns:
      ``safety * sqrt(n) * eps`` (relative to the magnitude of the compared values).
    """
    if n_terms < 1 or safety <= 0:
        raise ValueError(f"n_terms={n_terms}, safety={safety}: need n_terms >= 1, safety > 0")
    return safety * math.sqrt(n_terms) * F32_EPS


def f32_steps_rtol(
    n_terms: int,
    steps: int,
    *,
    growth: float = GROWTH,
    cancellation: float = CANCELLATION,
    safety: float = SAFETY,
) -> float:
    """Relative tolerance for values after ``steps`` optimizer updates with reordered reductions.

    ``steps=0`` (a first forward pass: losses, metrics) is ``d = f32_reorder_rtol(n_terms)``.
    An update is computed from a gradient, a sum of per-example and per-position terms of both
    signs whose rounding error is relative to the sum of their magnitudes: ``cancellation``
    times the gradient itself (16 covers the normalised losses of the tests at initialisation;
    SimSiam's, the largest measured, is 4.4 d after one step). Optimizers that normalise the
    update (LARS, LAMB, Adam) pass that relative difference on unchanged. An earlier step's
    difference passes through each later gradient and update multiplied by at most ``growth``
    (1 + learning rate x curvature), so after ``steps`` updates the relative difference of the
    update is at most ``cancellation * d * (1 + growth + ... + growth**(steps - 1))``. Compare
    trained parameters through their updates (``assert_updates_close``): relative to the
    parameters themselves the same difference is ``|update| / |params|`` times smaller (1e-3
    under LARS) and would hide a real bug.

    Args:
      n_terms: longest reduction of one pass (e.g. BatchNorm statistics over batch x H x W).
      steps: optimizer updates that went into the value (0: the first forward pass).
      growth: amplification per step of an existing difference.
      cancellation: ratio of the gradient's term magnitudes to the gradient.
      safety: passed to ``f32_reorder_rtol``.
    """
    if steps < 0 or growth < 1 or cancellation < 1:
        raise ValueError(
            f"steps={steps}, growth={growth}, cancellation={cancellation}: need "
            "steps >= 0, growth >= 1, cancellation >= 1"
        )
    d = f32_reorder_rtol(n_terms, safety=safety)
    if steps == 0:
        return d
    return d * cancellation * sum(growth**i for i in range(steps))


def bf16_rtol(depth: int, *, amplification: float = 1.0) -> float:
    """Relative tolerance of a bfloat16-compute pass against the same pass in float32.

    Every bfloat16 rounding on the path from the input to the compared value has relative
    error <= ``BF16_EPS`` (XLA accumulates the products of a bfloat16 matmul or convolution in
    float32, so a reduction's length adds no bfloat16 error; a layer may round more than once,
    e.g. a normalisation subtracts, scales and offsets). To first order the relative errors of
    ``depth`` roundings in a chain add, so the value is within ``depth * BF16_EPS`` of float32
    relative to its magnitude. ``amplification`` is the condition of what is computed from it
    (e.g. ``4 / temperature`` for a contrastive loss of unit-norm embeddings, 2 for a backward
    pass that rounds again through every layer).
    """
    if depth < 1 or amplification <= 0:
        raise ValueError(
            f"depth={depth}, amplification={amplification}: need depth >= 1, amplification > 0"
        )
    return depth * BF16_EPS * amplification


def magnitude(x) -> float:
    """The scale of an array: ``max|x|`` (0 for an empty array)."""
    x = np.asarray(x, np.float64)
    return float(np.max(np.abs(x))) if x.size else 0.0


def assert_close(actual, desired, *, rtol: float, atol: float = 0.0, err_msg: str = "") -> None:
    """Normwise comparison: ``|actual - desired| <= atol + rtol * max|desired|`` everywhere."""
    desired = np.asarray(desired)
    np.testing.assert_allclose(
        np.asarray(actual), desired, rtol=0, atol=atol + rtol * magnitude(desired), err_msg=err_msg
    )


def assert_trees_close(a, b, *, rtol: float, atol: float = 0.0) -> None:
    """``assert_close`` on every leaf of two pytrees of the same structure."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
        assert_close(x, y, rtol=rtol, atol=atol, err_msg=jax.tree_util.keystr(path))


def assert_within(diff: float, allowed: float, what: str) -> None:
    """Fails with both numbers when ``diff > allowed``."""
    assert diff <= allowed, f"{what}: difference {diff:.3e} > tolerance {allowed:.3e}"


def assert_updates_close(a, b, start, *, rtol: float) -> None:
    """Compares two runs' parameters (or other trained state) through their updates.

    Per leaf, in the L2 norm, ``|a - b| <= rtol * (|b - start| + r * sqrt(size)) + eps * (|a| +
    |b|)``. An update is compared as a vector: Adam divides every element by its own gradient
    magnitude, so the few elements whose gradient is near zero (rounding noise) take relative
    differences of order one without moving the vector, while a missing ``pmean`` moves all of
    them. ``r`` is the root-mean-square update element of the whole tree: the rounding noise of
    a gradient is a fraction of the signals flowing through it, so a leaf whose exact update
    is zero (a bias right before BatchNorm, which cancels it) still differs by ``rtol`` times
    a typical update. The last term is one float32 rounding of each run's ``start + update``.
    """
    assert jax.tree.structure(a) == jax.tree.structure(b) == jax.tree.structure(start)
    leaves = [
        (jax.tree_util.keystr(path), *(np.asarray(v, np.float64) for v in (x, y, s)))
        for (path, x), y, s in zip(
            jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b), jax.tree.leaves(start)
        )
    ]
    size = sum(y.size for _, _, y, _ in leaves)
    rms = math.sqrt(sum(np.sum((y - s) ** 2) for _, _, y, s in leaves) / max(size, 1))
    for name, x, y, s in leaves:
        allowed = rtol * (np.linalg.norm(y - s) + rms * math.sqrt(y.size)) + F32_EPS * (
            np.linalg.norm(x) + np.linalg.norm(y)
        )
        assert_within(float(np.linalg.norm(x - y)), float(allowed), f"update of {name}")


def update_difference(a, b, start) -> float:
    """Relative L2 difference of two runs' updates over a whole tree:
    ``|a - b| / |b - start|`` (both norms over every leaf together)."""
    pairs = [
        (np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(s, np.float64))
        for x, y, s in zip(jax.tree.leaves(a), jax.tree.leaves(b), jax.tree.leaves(start))
    ]
    diff = math.sqrt(sum(np.sum((x - y) ** 2) for x, y, _ in pairs))
    update = math.sqrt(sum(np.sum((y - s) ** 2) for _, y, s in pairs))
    return diff / update
