"""DCI (Eastwood & Williams 2018): disentanglement, completeness and informativeness from
gradient-boosted-tree importances, 10000 train / 5000 test points."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.stats
from sklearn.ensemble import GradientBoostingClassifier

from ssljax.evaluation.disentanglement.common import as_train_and_test
from ssljax.evaluation.disentanglement.estimators import (
    fit_classifier,
    gradient_boosting,
    seed_from,
)
from ssljax.evaluation.disentanglement.sampling import train_test_codes


def dci_from_importance(importance: Any) -> dict[str, float]:
    """Disentanglement and completeness of an importance matrix ``[num_codes, num_factors]``.

    Per code: ``1 - H_F(p)`` with ``p`` the code's importances over factors
    normalised to sum to 1 and entropy in base F = num_factors; averaged with
    weights = the code's share of the total importance. Completeness swaps
    the roles: per factor ``1 - H_C(p)`` over codes (base C = num_codes),
    weighted by the factor's share. As disentanglement_lib, 1e-11 is added to
    every entry before the entropies, and an all-zero matrix gets uniform
    weights. With one factor (or one code) the base-1 entropy is undefined.
    """
    importance = np.asarray(importance, np.float64)
    if importance.ndim != 2 or min(importance.shape) < 2:
        raise ValueError(
            f"importance must be [num_codes >= 2, num_factors >= 2], got {importance.shape}"
        )
    if np.any(importance < 0):
        raise ValueError("importance must be non-negative")
    num_codes, num_factors = importance.shape
    per_code = 1.0 - scipy.stats.entropy(importance.T + 1e-11, base=num_factors)
    per_factor = 1.0 - scipy.stats.entropy(importance + 1e-11, base=num_codes)
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    code_weight = weights.sum(axis=1) / weights.sum()
    factor_weight = weights.sum(axis=0) / weights.sum()
    return {
        "disentanglement": float(np.sum(per_code * code_weight)),
        "completeness": float(np.sum(per_factor * factor_weight)),
    }


def gbt_importance_matrix(
    codes_train: Any, factors_train: Any, codes_test: Any, factors_test: Any, *, random_state=0
) -> tuple[np.ndarray, float, float]:
    """One ``GradientBoostingClassifier`` per factor on all codes.

    Returns:
      ``(importance [num_codes, num_factors]`` of ``|feature_importances_|``,
      mean train accuracy, mean test accuracy)``.
    """
    c_tr, f_tr, c_te, f_te = as_train_and_test(codes_train, factors_train, codes_test, factors_test)
    seed = seed_from(random_state)
    importance = np.zeros((c_tr.shape[1], f_tr.shape[1]))
    train_acc, test_acc = [], []
    for j in range(f_tr.shape[1]):
        model = fit_classifier(lambda: gradient_boosting(seed), c_tr, f_tr[:, j])
        if isinstance(model, GradientBoostingClassifier):
            importance[:, j] = np.abs(model.feature_importances_)
        train_acc.append(np.mean(model.predict(c_tr) == f_tr[:, j]))
        test_acc.append(np.mean(model.predict(c_te) == f_te[:, j]))
    return importance, float(np.mean(train_acc)), float(np.mean(test_acc))


def dci(
    codes_train: Any, factors_train: Any, codes_test: Any, factors_test: Any, *, random_state=0
) -> dict[str, float]:
    """DCI (Eastwood & Williams 2018) with gradient-boosted-tree importances.

    Informativeness is the mean over factors of the trees' accuracy (train and
    test), as disentanglement_lib reports it (an accuracy, not an error).

    Returns:
      ``{'disentanglement', 'completeness', 'informativeness_train',
      'informativeness_test'}``.
    """
    importance, train_acc, test_acc = gbt_importance_matrix(
        codes_train, factors_train, codes_test, factors_test, random_state=random_state
    )
    scores = dci_from_importance(importance)
    scores.update(informativeness_train=train_acc, informativeness_test=test_acc)
    return scores


def compute_dci(
    data,
    representation_fn,
    random_state,
    *,
    num_train: int = 10000,
    num_test: int = 5000,
    batch_size: int = 16,
    representation_batch_size: int = 1024,
) -> dict[str, float]:
    """DCI (:func:`dci`) on ``num_train`` / ``num_test`` sampled points."""
    rs, (c_tr, f_tr), (c_te, f_te) = train_test_codes(
        data,
        representation_fn,
        random_state,
        num_train,
        num_test,
        batch_size,
        representation_batch_size,
    )
    return dci(c_tr, f_tr, c_te, f_te, random_state=rs)
