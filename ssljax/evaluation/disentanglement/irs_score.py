"""Interventional robustness score (Suter et al. 2019): 10000 points, factors in 20 bins,
99% quantile of the deviations."""

from __future__ import annotations

from typing import Any

import numpy as np

from ssljax.evaluation.disentanglement.common import (
    NUM_BINS,
    as_codes,
    as_codes_and_factors,
    histogram_discretize,
)
from ssljax.evaluation.disentanglement.sampling import RepresentationFn, generate_factor_code


def irs_scores(discrete_factors: Any, codes: Any, *, diff_quantile: float = 0.99) -> dict[str, Any]:
    """Interventional robustness (Suter et al. 2019), disentanglement_lib's
    ``scalable_disentanglement_score``.

    For code ``i`` and factor ``j``: for every value ``v`` of factor ``j`` in
    the sample, take the ``diff_quantile`` quantile over the points with
    ``factor_j = v`` of ``|z_i - E[z_i | factor_j = v]|``; average over the
    values. This is divided by the code's maximum deviation
    ``max |z_i - mean(z_i)|`` over all points, and ``IRS_ij = 1 - that``. A
    code's score is its best factor's ``IRS_ij``; the result averages codes
    weighted by their maximum deviation (plain mean if all are 0). With
    ``diff_quantile = 1`` it is the paper's max.

    Args:
      discrete_factors: ``[num_points, num_factors]`` (binned factors).
      codes: ``[num_points, num_codes]`` without constant codes.

    Returns:
      ``{'avg_score', 'disentanglement_scores', 'parents', 'IRS_matrix', 'max_deviations'}``.
    """
    codes = as_codes(codes)
    factors = np.asarray(discrete_factors)
    if not 0.0 <= diff_quantile <= 1.0:
        raise ValueError(f"diff_quantile must be in [0, 1], got {diff_quantile}")
    max_dev = np.max(np.abs(codes - codes.mean(axis=0)), axis=0)
    if np.any(max_dev == 0):
        raise ValueError("irs_scores needs codes without constant columns (drop them first)")
    cum_dev = np.zeros((codes.shape[1], factors.shape[1]))
    for j in range(factors.shape[1]):
        values = np.unique(factors[:, j])
        for v in values:
            group = codes[factors[:, j] == v]
            cum_dev[:, j] += np.quantile(
                np.abs(group - group.mean(axis=0)), q=diff_quantile, axis=0
            )
        cum_dev[:, j] /= values.size
    irs_matrix = 1.0 - cum_dev / max_dev[:, None]
    per_code = irs_matrix.max(axis=1)
    avg = np.average(per_code, weights=max_dev) if max_dev.sum() > 0 else np.mean(per_code)
    return {
        "avg_score": float(avg),
        "disentanglement_scores": per_code,
        "parents": irs_matrix.argmax(axis=1),
        "IRS_matrix": irs_matrix,
        "max_deviations": max_dev,
    }


def irs_from_codes(
    codes: Any, factors: Any, *, diff_quantile: float = 0.99, num_bins: int = NUM_BINS
) -> dict[str, float]:
    """IRS of sampled codes: factors in ``num_bins`` histogram bins, constant codes dropped
    (score 0 when every code is constant).

    Returns:
      ``{'IRS': float, 'num_active_dims': int}``.
    """
    codes, factors = as_codes_and_factors(codes, factors)
    active = codes.var(axis=0) > 0.0
    if not active.any():
        return {"IRS": 0.0, "num_active_dims": 0}
    binned = histogram_discretize(factors, num_bins)
    score = irs_scores(binned, codes[:, active], diff_quantile=diff_quantile)["avg_score"]
    return {"IRS": score, "num_active_dims": int(active.sum())}


def irs(
    data,
    representation_fn: RepresentationFn,
    random_state,
    *,
    num_train: int = 10000,
    batch_size: int = 16,
    diff_quantile: float = 0.99,
    num_bins: int = NUM_BINS,
    representation_batch_size: int = 1024,
) -> dict[str, float]:
    """IRS (:func:`irs_from_codes`) on ``num_train`` sampled points.

    Returns:
      ``{'IRS': float, 'num_active_dims': int}``.
    """
    codes, factors = generate_factor_code(
        data,
        representation_fn,
        num_train,
        random_state,
        batch_size,
        representation_batch_size=representation_batch_size,
    )
    return irs_from_codes(codes, factors, diff_quantile=diff_quantile, num_bins=num_bins)
