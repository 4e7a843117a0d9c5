"""SAP score (Kumar et al. 2018): 10000 train / 5000 test points; discrete factors are
predicted from one code at a time by ``LinearSVC(C=0.01, class_weight='balanced')``."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.svm import LinearSVC

from ssljax.evaluation.disentanglement.common import as_train_and_test
from ssljax.evaluation.disentanglement.estimators import fit_classifier
from ssljax.evaluation.disentanglement.sampling import train_test_codes


def sap_score_matrix(
    codes_train: Any,
    factors_train: Any,
    codes_test: Any,
    factors_test: Any,
    *,
    continuous_factors: bool = False,
) -> np.ndarray:
    """SAP's score matrix ``[num_codes, num_factors]``.

    Discrete factors (the default): entry (i, j) is the test accuracy of
    ``LinearSVC(C=0.01, class_weight='balanced')`` trained to predict factor j
    from code i alone (one feature). Continuous factors: the squared Pearson
    correlation of code i and factor j on the training points (0 when the
    code's variance is <= 1e-12); the test points are then unused.
    """
    c_tr, f_tr, c_te, f_te = as_train_and_test(codes_train, factors_train, codes_test, factors_test)
    matrix = np.zeros((c_tr.shape[1], f_tr.shape[1]))
    for i in range(c_tr.shape[1]):
        for j in range(f_tr.shape[1]):
            if continuous_factors:
                cov = np.cov(c_tr[:, i], f_tr[:, j], ddof=1)
                matrix[i, j] = (
                    cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 else 0.0
                )
            else:
                model = fit_classifier(
                    lambda: LinearSVC(C=0.01, class_weight="balanced"),
                    c_tr[:, i : i + 1],
                    f_tr[:, j],
                )
                matrix[i, j] = np.mean(model.predict(c_te[:, i : i + 1]) == f_te[:, j])
    return matrix


def sap_from_score_matrix(score_matrix: Any) -> float:
    """Mean over factors of the gap between the two best codes' scores."""
    score_matrix = np.asarray(score_matrix, np.float64)
    if score_matrix.ndim != 2 or score_matrix.shape[0] < 2:
        raise ValueError(
            f"SAP needs a score matrix [num_codes >= 2, num_factors], got {score_matrix.shape}"
        )
    ordered = np.sort(score_matrix, axis=0)
    return float(np.mean(ordered[-1] - ordered[-2]))


def sap(
    codes_train: Any,
    factors_train: Any,
    codes_test: Any,
    factors_test: Any,
    *,
    continuous_factors: bool = False,
) -> dict[str, float]:
    """SAP score (Kumar et al. 2018): :func:`sap_score_matrix` then the top-two gap.

    With discrete factors a perfect code scores well below 1: the second best
    code's accuracy is chance level (about 1/K for a K-valued factor, 1/2 for
    a binary one), and a single linear feature with one-vs-rest SVMs cannot
    pick out middle values of a many-valued factor.

    Returns:
      ``{'SAP_score': float}``.
    """
    matrix = sap_score_matrix(
        codes_train, factors_train, codes_test, factors_test, continuous_factors=continuous_factors
    )
    return {"SAP_score": sap_from_score_matrix(matrix)}


def compute_sap(
    data,
    representation_fn,
    random_state,
    *,
    num_train: int = 10000,
    num_test: int = 5000,
    batch_size: int = 16,
    continuous_factors: bool = False,
    representation_batch_size: int = 1024,
) -> dict[str, float]:
    """SAP (:func:`sap`) on ``num_train`` / ``num_test`` sampled points."""
    _, (c_tr, f_tr), (c_te, f_te) = train_test_codes(
        data,
        representation_fn,
        random_state,
        num_train,
        num_test,
        batch_size,
        representation_batch_size,
    )
    return sap(c_tr, f_tr, c_te, f_te, continuous_factors=continuous_factors)
