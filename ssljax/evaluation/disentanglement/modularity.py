"""Modularity and explicitness (Ridgeway & Mozer 2018): 10000 train / 5000 test points, 20
bins; logistic regression scored by one-vs-rest ROC-AUC."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from ssljax.evaluation.disentanglement.common import (
    NUM_BINS,
    as_train_and_test,
    discrete_mutual_info,
    histogram_discretize,
)
from ssljax.evaluation.disentanglement.estimators import fit_classifier, logistic_regression
from ssljax.evaluation.disentanglement.sampling import train_test_codes


def modularity_from_mutual_info(mutual_info: Any) -> float:
    """Modularity (Ridgeway & Mozer 2018) of a mutual-information matrix ``[num_codes, num_factors]``.

    Per code with ``m = MI^2`` over factors: ``1 - (sum(m) - max(m)) / (max(m)
    * (num_factors - 1))`` (0 for a code with no information); averaged over
    codes.
    """
    mutual_info = np.asarray(mutual_info, np.float64)
    if mutual_info.ndim != 2 or mutual_info.shape[1] < 2:
        raise ValueError(
            f"modularity needs mutual_info [num_codes, num_factors >= 2], got {mutual_info.shape}"
        )
    squared = np.square(mutual_info)
    top = squared.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (squared.sum(axis=1) - top) / (top * (squared.shape[1] - 1.0))
    score = np.where(top == 0.0, 0.0, 1.0 - delta)
    return float(np.mean(score))


def _roc_auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Macro ROC-AUC of one-vs-rest indicator labels against class probabilities."""
    indicator = (y[:, None] == classes[None, :]).astype(np.int64)
    present = (indicator.min(axis=0) == 0) & (indicator.max(axis=0) == 1)
    if not present.any():
        return float("nan")
    return float(roc_auc_score(indicator[:, present], proba[:, present], average="macro"))


def explicitness_per_factor(
    codes_train: np.ndarray,
    y_train: np.ndarray,
    codes_test: np.ndarray,
    y_test: np.ndarray,
    *,
    random_state=None,
) -> tuple[float, float]:
    """ROC-AUC (train, test) of :func:`logistic_regression` predicting one factor from all codes.

    The labels are one-hot encoded (disentanglement_lib's MultiLabelBinarizer)
    and scored against ``predict_proba`` with macro-averaged ROC-AUC.
    """
    classes = np.unique(y_train)
    if classes.size < 2:
        return float("nan"), float("nan")
    model = fit_classifier(lambda: logistic_regression(random_state), codes_train, y_train)
    return (
        _roc_auc(y_train, model.predict_proba(codes_train), model.classes_),
        _roc_auc(y_test, model.predict_proba(codes_test), model.classes_),
    )


def modularity_explicitness(
    codes_train: Any,
    factors_train: Any,
    codes_test: Any,
    factors_test: Any,
    *,
    num_bins: int = NUM_BINS,
    random_state=None,
) -> dict[str, float]:
    """Modularity (from 20-bin discretised training codes) and explicitness.

    Explicitness standardises codes with the training mean and standard
    deviation (``np.std``, ddof 0), fits one logistic regression per factor on
    all codes and averages the per-factor ROC-AUC.

    Returns:
      ``{'modularity_score', 'explicitness_score_train', 'explicitness_score_test'}``.
    """
    c_tr, f_tr, c_te, f_te = as_train_and_test(codes_train, factors_train, codes_test, factors_test)
    mi = discrete_mutual_info(histogram_discretize(c_tr, num_bins), f_tr)
    mean, std = c_tr.mean(axis=0), c_tr.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    n_tr, n_te = (c_tr - mean) / std, (c_te - mean) / std
    aucs = np.array(
        [
            explicitness_per_factor(n_tr, f_tr[:, j], n_te, f_te[:, j], random_state=random_state)
            for j in range(f_tr.shape[1])
        ]
    )
    return {
        "modularity_score": modularity_from_mutual_info(mi),
        "explicitness_score_train": float(np.nanmean(aucs[:, 0])),
        "explicitness_score_test": float(np.nanmean(aucs[:, 1])),
    }


def compute_modularity_explicitness(
    data,
    representation_fn,
    random_state,
    *,
    num_train: int = 10000,
    num_test: int = 5000,
    batch_size: int = 16,
    num_bins: int = NUM_BINS,
    representation_batch_size: int = 1024,
) -> dict[str, float]:
    """Modularity and explicitness (:func:`modularity_explicitness`) on sampled points."""
    rs, (c_tr, f_tr), (c_te, f_te) = train_test_codes(
        data,
        representation_fn,
        random_state,
        num_train,
        num_test,
        batch_size,
        representation_batch_size,
    )
    return modularity_explicitness(c_tr, f_tr, c_te, f_te, num_bins=num_bins, random_state=rs)
