"""Identifiability metrics: how well a learned representation recovers the true latents.

A latent-variable model is *identifiable* when the observed distribution determines the
latents up to a small set of indeterminacies, and the metric must be blind to exactly those
indeterminacies and nothing else:

* **Mean correlation coefficient (MCC).** Linear and nonlinear ICA (Comon 1994; Hyvarinen &
  Morioka 2016; Khemakhem et al. 2020) recover each source only up to a permutation and an
  invertible elementwise map (a scaling and a sign for linear ICA). The MCC takes absolute
  correlations between every representation component and every true source, matches
  components to sources by the Hungarian algorithm (Kuhn 1955) and averages the matched
  correlations. Pearson correlation is invariant to scaling and sign, Spearman's rank
  correlation also to any strictly monotone elementwise map.
* **Amari distance.** For a linear mixing ``x = A s`` and an estimated unmixing ``W``, the
  product ``P = W A`` is a scaled permutation exactly when ``W`` separates the sources. The
  Amari index (Amari, Cichocki & Yang 1996), normalised to ``[0, 1]`` as in Bach & Jordan
  2002, measures how far ``P`` is from that set.
* **Block R^2.** Content/style and multi-view results (von Kugelgen et al. 2021; Daunhawer et
  al. 2023) identify a *block* of latents only up to an invertible map of the whole block, so
  no per-component match exists; instead one asks how much of the block a regression from the
  representation explains on held-out samples (linear: ridge; nonlinear: RBF kernel ridge).

All functions take NumPy or JAX arrays of shape ``[num_samples, dim]`` (sources ``s``,
representation ``z``), compute in float64 and return Python floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.preprocessing import StandardScaler

CORRELATION_METHODS = ("pearson", "spearman")
R2_KINDS = ("linear", "nonlinear")

# Regularisation grid of the linear probe (inputs standardised): RidgeCV picks by efficient
# leave-one-out error.
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-6, 2, 9))
# Kernel ridge grid (inputs and targets standardised): alpha, and gamma in units of
# 1 / input_dim so the kernel width follows the typical squared distance 2 * input_dim.
KERNEL_ALPHAS = (1e-3, 1e-2, 1e-1)
KERNEL_GAMMAS = (0.1, 0.5, 2.0)
KERNEL_CV_FOLDS = 3
# Training points the kernel ridge sees at most (its cost grows as the cube of this number).
KERNEL_MAX_TRAIN = 2000


# ---------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------


def as_samples(x: Any, name: str) -> np.ndarray:
    """``x`` as float64 ``[num_samples, dim]``; a vector is one column."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must be [num_samples, dim] with both >= 1, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains non-finite values")
    return x


def check_same_samples(z: np.ndarray, s: np.ndarray, names: tuple[str, str] = ("z", "s")) -> None:
    """One-line ValueError when the two arrays hold different numbers of samples."""
    if z.shape[0] != s.shape[0]:
        raise ValueError(
            f"{names[0]} has {z.shape[0]} samples but {names[1]} has {s.shape[0]}; "
            "they must be the same samples"
        )


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is unknown; valid: {', '.join(choices)}")


# ---------------------------------------------------------------------------------------
# Mean correlation coefficient
# ---------------------------------------------------------------------------------------


def abs_correlation_matrix(z: Any, s: Any, *, method: str = "pearson") -> np.ndarray:
    """``|corr(z_i, s_j)|`` for every representation component ``i`` and source ``j``.

    Args:
      z: representation, ``[num_samples, dim_z]``.
      s: true sources, ``[num_samples, dim_s]``.
      method: ``"pearson"`` or ``"spearman"`` (Pearson correlation of the ranks, ties
        given their average rank).

    Returns:
      float64 ``[dim_z, dim_s]`` in ``[0, 1]``. A constant column (a dead unit) has
      correlation 0 with everything.
    """
    _check_choice("method", method, CORRELATION_METHODS)
    z, s = as_samples(z, "z"), as_samples(s, "s")
    check_same_samples(z, s)
    if method == "spearman":
        z, s = rankdata(z, axis=0), rankdata(s, axis=0)

    def standardise(a):
        a = a - a.mean(axis=0)
        norm = np.linalg.norm(a, axis=0)
        return np.divide(a, norm, out=np.zeros_like(a), where=norm > 0)

    corr = standardise(z).T @ standardise(s)
    return np.clip(np.abs(corr), 0.0, 1.0)


class MccResult(NamedTuple):
    """The MCC and its matching: source ``s_index[k]`` is matched to component ``z_index[k]``."""

    mcc: float
    z_index: np.ndarray  # int [dim_s]: the matched representation component of each source
    s_index: np.ndarray  # int [dim_s]: 0..dim_s-1
    abs_corr: np.ndarray  # float64 [dim_z, dim_s]


def mcc_matching(z: Any, s: Any, *, method: str = "pearson") -> MccResult:
    """Mean correlation coefficient with the matching that attains it.

    Each source is matched to a distinct representation component so that the sum of
    absolute correlations is largest (Hungarian algorithm, ``linear_sum_assignment`` with
    ``maximize=True``); the MCC is the mean over the ``dim_s`` matched pairs. ``z`` may have
    more components than there are sources (the extra ones stay unmatched), not fewer.

    Args:
      z: representation, ``[num_samples, dim_z]`` with ``dim_z >= dim_s``.
      s: true sources, ``[num_samples, dim_s]``.
      method: ``"pearson"`` (invariant to scaling and sign flips) or ``"spearman"`` (also to
        strictly monotone elementwise maps).

    Returns:
      ``MccResult(mcc, z_index, s_index, abs_corr)``, pairs ordered by source.
    """
    corr = abs_correlation_matrix(z, s, method=method)
    dim_z, dim_s = corr.shape
    if dim_z < dim_s:
        raise ValueError(
            f"z has {dim_z} components but s has {dim_s} sources; the MCC matches every "
            "source to a distinct component, so z needs at least as many"
        )
    z_index, s_index = linear_sum_assignment(corr, maximize=True)
    order = np.argsort(s_index)
    z_index, s_index = z_index[order], s_index[order]
    return MccResult(float(corr[z_index, s_index].mean()), z_index, s_index, corr)


def mean_correlation_coefficient(z: Any, s: Any, *, method: str = "pearson") -> float:
    """The MCC of ``mcc_matching`` (mean absolute correlation of the best matching)."""
    return mcc_matching(z, s, method=method).mcc


# ---------------------------------------------------------------------------------------
# Amari distance
# ---------------------------------------------------------------------------------------


def amari_distance(W: Any, A: Any) -> float:
    """Normalised Amari index of ``P = W @ A``: 0 exactly for a scaled permutation.

    With ``n`` sources and ``P = W A`` (unmixing times mixing, both ``[n, n]``),

        d(P) = 1 / (2 n (n - 1)) * [ sum_i (sum_j |p_ij| / max_j |p_ij| - 1)
                                     + sum_j (sum_i |p_ij| / max_i |p_ij| - 1) ],

    the index of Amari, Cichocki & Yang 1996 in the normalisation of Bach & Jordan 2002.
    Every bracketed row (column) term lies in ``[0, n - 1]`` (0 when the row has one
    nonzero entry, ``n - 1`` when all its entries have equal magnitude), so ``d`` lies in
    ``[0, 1]``: 0 exactly when every row and column of ``P`` has a single nonzero entry, i.e.
    ``W`` recovers the sources up to permutation, scaling and sign, and 1 when all entries of
    ``P`` have equal magnitude. For ``n = 1`` the distance is 0. The index is invariant to
    permutations of the rows and columns of ``P``; away from 0 its column terms do depend on
    the scale of ``W``'s rows, so estimates are compared at the scale their method returns
    (unit-variance outputs for ICA).

    Args:
      W: unmixing matrix ``[n, n]`` (estimated sources ``y = W x``).
      A: mixing matrix ``[n, n]`` (observations ``x = A s``).

    Returns:
      The distance as a float in ``[0, 1]``.
    """
    W = np.asarray(W, dtype=np.float64)
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"mixing matrix A must be square [n, n], got shape {A.shape}")
    if W.shape != A.shape:
        raise ValueError(
            f"unmixing matrix W must have the mixing matrix's shape {A.shape}, got {W.shape}"
        )
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(A))):
        raise ValueError("W and A must be finite")
    n = A.shape[0]
    P = np.abs(W @ A)
    row_max, col_max = P.max(axis=1), P.max(axis=0)
    if np.any(row_max == 0) or np.any(col_max == 0):
        raise ValueError("W @ A has a zero row or column, so W does not invert A on any source")
    if n == 1:
        return 0.0
    rows = np.sum(P.sum(axis=1) / row_max - 1.0)
    cols = np.sum(P.sum(axis=0) / col_max - 1.0)
    return float((rows + cols) / (2.0 * n * (n - 1)))


# ---------------------------------------------------------------------------------------
# Block R^2
# ---------------------------------------------------------------------------------------


def select_block(s: Any, block_indices: int | Sequence[int]) -> np.ndarray:
    """The columns ``block_indices`` of the sources ``s`` (``[num_samples, dim_s]``)."""
    s = as_samples(s, "s")
    indices = np.atleast_1d(np.asarray(block_indices))
    if indices.ndim != 1 or indices.size == 0 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"block_indices must be a non-empty list of ints, got {block_indices!r}")
    dim = s.shape[1]
    for i in indices:
        if not 0 <= i < dim:
            raise ValueError(
                f"block index {int(i)} is out of range; valid: 0..{dim - 1} for {dim} sources"
            )
    return s[:, indices]


def _as_block(s_block: Any) -> np.ndarray:
    if isinstance(s_block, tuple) and len(s_block) == 2 and np.ndim(s_block[0]) == 2:
        return select_block(*s_block)
    return as_samples(s_block, "s_block")


def block_r2_per_dimension(
    z: Any,
    s_block: Any,
    *,
    kind: str = "linear",
    test_fraction: float = 0.2,
    seed: int = 0,
    max_train: int = KERNEL_MAX_TRAIN,
) -> np.ndarray:
    """Held-out R^2 of predicting each latent of a block from the representation.

    The samples are split at random (``seed``) into a training part and a held-out part of
    ``test_fraction``; inputs and targets are standardised with the training part's
    statistics; the regression is fitted on the training part and scored on the held-out part.

    * ``kind="linear"``: ridge regression, each latent's regularisation chosen by its
      leave-one-out error over ``RIDGE_ALPHAS`` (``sklearn.linear_model.RidgeCV``).
    * ``kind="nonlinear"``: kernel ridge regression with an RBF kernel, ``alpha`` and
      ``gamma`` chosen by ``KERNEL_CV_FOLDS``-fold cross-validation over ``KERNEL_ALPHAS`` x
      ``KERNEL_GAMMAS / dim_z`` (``GridSearchCV``), on at most ``max_train`` training points
      drawn at random from the training part.

    Args:
      z: representation ``[num_samples, dim_z]``.
      s_block: the true latent block ``[num_samples, block_dim]``, or a pair
        ``(s, block_indices)`` selecting columns of all sources ``s``.
      kind: ``"linear"`` or ``"nonlinear"``.
      test_fraction: held-out share of the samples, in ``(0, 1)``.
      seed: seed of the split and of the kernel subsample.
      max_train: cap on the kernel ridge's training points.

    Returns:
      float64 ``[block_dim]``: R^2 of each latent on held-out samples (1: perfectly
      predicted; 0: no better than the training mean; negative: worse).
    """
    _check_choice("kind", kind, R2_KINDS)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction} is invalid; valid: 0 < test_fraction < 1")
    if int(max_train) < 2:
        raise ValueError(f"max_train={max_train} is invalid; valid: an int >= 2")
    z = as_samples(z, "z")
    s_block = _as_block(s_block)
    check_same_samples(z, s_block, ("z", "s_block"))
    n = z.shape[0]
    n_test = int(np.ceil(test_fraction * n))
    min_train = KERNEL_CV_FOLDS * 2 if kind == "nonlinear" else 2
    if n_test < 2 or n - n_test < min_train:
        raise ValueError(
            f"{n} samples with test_fraction={test_fraction} leave {n - n_test} training and "
            f"{n_test} held-out samples; need >= {min_train} and >= 2"
        )
    z_tr, z_te, s_tr, s_te = train_test_split(z, s_block, test_size=n_test, random_state=seed)
    z_scaler, s_scaler = StandardScaler().fit(z_tr), StandardScaler().fit(s_tr)
    z_tr, z_te = z_scaler.transform(z_tr), z_scaler.transform(z_te)
    s_tr, s_te = s_scaler.transform(s_tr), s_scaler.transform(s_te)
    if kind == "linear":
        model = RidgeCV(alphas=RIDGE_ALPHAS, alpha_per_target=True).fit(z_tr, s_tr)
    else:
        if z_tr.shape[0] > max_train:
            keep = np.random.default_rng(seed).choice(z_tr.shape[0], int(max_train), replace=False)
            z_tr, s_tr = z_tr[keep], s_tr[keep]
        grid = {
            "alpha": list(KERNEL_ALPHAS),
            "gamma": [g / z.shape[1] for g in KERNEL_GAMMAS],
        }
        model = GridSearchCV(KernelRidge(kernel="rbf"), grid, cv=KERNEL_CV_FOLDS).fit(z_tr, s_tr)
    pred = model.predict(z_te).reshape(s_te.shape)
    # R^2 is invariant to the affine standardisation applied to both target and prediction.
    return np.asarray(r2_score(s_te, pred, multioutput="raw_values"), dtype=np.float64)


def block_r2(
    z: Any,
    s_block: Any,
    *,
    kind: str = "linear",
    test_fraction: float = 0.2,
    seed: int = 0,
    max_train: int = KERNEL_MAX_TRAIN,
) -> float:
    """Held-out R^2 of a latent block from the representation, averaged uniformly.

    The uniform average over the block's latents of ``block_r2_per_dimension`` (every latent
    counts equally whatever its scale; scikit-learn's ``multioutput="uniform_average"``).
    Arguments as in ``block_r2_per_dimension``; ``s_block`` is the block array or a pair
    ``(s, block_indices)``.
    """
    per_dim = block_r2_per_dimension(
        z, s_block, kind=kind, test_fraction=test_fraction, seed=seed, max_train=max_train
    )
    return float(per_dim.mean())
