"""What several disentanglement metrics share: input checks, histogram discretisation and
plug-in information measures of discrete columns."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import mutual_info_score

NUM_BINS = 20


def as_codes(codes: Any, name: str = "codes") -> np.ndarray:
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2:
        raise ValueError(f"{name} must be [num_points, num_codes], got shape {codes.shape}")
    if not np.all(np.isfinite(codes)):
        raise ValueError(f"{name} contain non-finite values")
    return codes


def as_factors(factors: Any, num_points: int, name: str = "factors") -> np.ndarray:
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[0] != num_points:
        raise ValueError(
            f"{name} must be [num_points={num_points}, num_factors], got shape {factors.shape}"
        )
    if not np.issubdtype(factors.dtype, np.integer):
        raise ValueError(f"{name} must be integer factor indices, got dtype {factors.dtype}")
    return factors.astype(np.int64)


def as_codes_and_factors(
    codes: Any, factors: Any, suffix: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    codes = as_codes(codes, "codes" + suffix)
    return codes, as_factors(factors, codes.shape[0], "factors" + suffix)


def as_train_and_test(codes_train, factors_train, codes_test, factors_test):
    c_tr, f_tr = as_codes_and_factors(codes_train, factors_train, "_train")
    c_te, f_te = as_codes_and_factors(codes_test, factors_test, "_test")
    if c_tr.shape[1] != c_te.shape[1] or f_tr.shape[1] != f_te.shape[1]:
        raise ValueError(
            f"train and test widths differ: codes {c_tr.shape[1]} vs {c_te.shape[1]}, "
            f"factors {f_tr.shape[1]} vs {f_te.shape[1]}"
        )
    return c_tr, f_tr, c_te, f_te


def check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) <= 0:
            raise ValueError(f"{name} must be positive, got {value}")


def check_bins(num_bins: int) -> int:
    if int(num_bins) < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    return int(num_bins)


def histogram_discretize(values: Any, num_bins: int = NUM_BINS) -> np.ndarray:
    """disentanglement_lib's ``_histogram_discretize``, column by column.

    Each column is cut into ``num_bins`` equal-width bins between its minimum
    and maximum (``np.histogram`` edges) and mapped with ``np.digitize`` on all
    edges but the last, so values are bin numbers 1..num_bins (the maximum
    lands in the last bin; a constant column gets one bin).

    Args:
      values: ``[num_points, num_columns]``.

    Returns:
      int64 ``[num_points, num_columns]``.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be [num_points, num_columns], got shape {values.shape}")
    num_bins = check_bins(num_bins)
    out = np.zeros(values.shape, np.int64)
    for j in range(values.shape[1]):
        edges = np.histogram_bin_edges(values[:, j], num_bins)
        out[:, j] = np.digitize(values[:, j], edges[:-1])
    return out


def discrete_mutual_info(discrete_codes: Any, factors: Any) -> np.ndarray:
    """Plug-in mutual information (nats) ``[num_codes, num_factors]`` of discrete columns.

    ``sklearn.metrics.mutual_info_score`` of every (code, factor) pair, as
    disentanglement_lib's ``discrete_mutual_info``.
    """
    discrete_codes = np.asarray(discrete_codes)
    factors = np.asarray(factors)
    mi = np.zeros((discrete_codes.shape[1], factors.shape[1]))
    for i in range(discrete_codes.shape[1]):
        for j in range(factors.shape[1]):
            mi[i, j] = mutual_info_score(factors[:, j], discrete_codes[:, i])
    return mi


def discrete_entropy(factors: Any) -> np.ndarray:
    """Plug-in entropy (nats) of every column: ``mutual_info_score(y, y)``."""
    factors = np.asarray(factors)
    return np.array(
        [mutual_info_score(factors[:, j], factors[:, j]) for j in range(factors.shape[1])]
    )
