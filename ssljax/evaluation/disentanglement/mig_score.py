"""Mutual information gap (Chen et al. 2018): 10000 points, codes in 20-bin histograms."""

from __future__ import annotations

from typing import Any

import numpy as np

from ssljax.evaluation.disentanglement.common import (
    NUM_BINS,
    as_codes_and_factors,
    discrete_entropy,
    discrete_mutual_info,
    histogram_discretize,
)
from ssljax.evaluation.disentanglement.sampling import generate_factor_code


def mig_from_mutual_info(mutual_info: Any, entropy: Any) -> float:
    """Mean over factors of (largest - second largest MI over codes) / H(factor).

    Args:
      mutual_info: ``[num_codes, num_factors]`` in nats (needs >= 2 codes).
      entropy: ``[num_factors]`` factor entropies in nats, all > 0.
    """
    mutual_info = np.asarray(mutual_info, np.float64)
    entropy = np.asarray(entropy, np.float64)
    if mutual_info.ndim != 2 or mutual_info.shape[0] < 2:
        raise ValueError(
            f"MIG needs mutual_info [num_codes >= 2, num_factors], got {mutual_info.shape}"
        )
    if entropy.shape != mutual_info.shape[1:]:
        raise ValueError(
            f"entropy shape {entropy.shape} does not match {mutual_info.shape[1:]} factors"
        )
    if np.any(entropy <= 0):
        j = int(np.argmin(entropy))
        raise ValueError(
            f"factor {j} takes a single value in the sample; MIG divides by its entropy 0"
        )
    top = np.sort(mutual_info, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / entropy))


def mig(codes: Any, factors: Any, *, num_bins: int = NUM_BINS) -> dict[str, float]:
    """Mutual information gap (Chen et al. 2018) as disentanglement_lib computes it.

    Codes are discretised column by column into ``num_bins`` equal-width
    histogram bins (:func:`histogram_discretize`); the factors are used as they
    are. ``I(code_i; factor_j)`` is the plug-in mutual information of the
    discretised code with the factor, and the gap for factor ``j`` (largest
    minus second largest over codes) is divided by the plug-in entropy
    ``H(factor_j)`` of the sample, not by ``log(num_values)``. Note the
    ceiling this discretisation puts on factors with more than ``num_bins``
    values: even a code equal to a 40-valued factor keeps only 20 bins of it.

    Returns:
      ``{'discrete_mig': float}``.
    """
    codes, factors = as_codes_and_factors(codes, factors)
    mi = discrete_mutual_info(histogram_discretize(codes, num_bins), factors)
    return {"discrete_mig": mig_from_mutual_info(mi, discrete_entropy(factors))}


def compute_mig(
    data,
    representation_fn,
    random_state,
    *,
    num_train: int = 10000,
    batch_size: int = 16,
    num_bins: int = NUM_BINS,
    representation_batch_size: int = 1024,
) -> dict[str, float]:
    """MIG (:func:`mig`) on ``num_train`` sampled points."""
    codes, factors = generate_factor_code(
        data,
        representation_fn,
        num_train,
        random_state,
        batch_size,
        representation_batch_size=representation_batch_size,
    )
    return mig(codes, factors, num_bins=num_bins)
