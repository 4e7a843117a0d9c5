"""Downstream prediction of the factors from the codes (Locatello et al. 2019, Sec. 5):
10/100/1000/10000 train and 5000 test points, ``LogisticRegressionCV`` or gradient boosting,
and the statistical efficiency."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ssljax.data.dsprites import as_random_state
from ssljax.evaluation.disentanglement.common import as_train_and_test
from ssljax.evaluation.disentanglement.estimators import fit_classifier, get_predictor, seed_from
from ssljax.evaluation.disentanglement.sampling import RepresentationFn, generate_factor_code


def downstream_accuracy(
    codes_train: Any,
    factors_train: Any,
    codes_test: Any,
    factors_test: Any,
    *,
    predictor: str = "logistic_regression",
    random_state=0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-factor (train, test) accuracy of one ``predictor`` per factor on all codes.

    ``predictor``: ``'logistic_regression'`` (:func:`logistic_regression_cv`) or
    ``'gradient_boosting'`` (:func:`gradient_boosting`).
    """
    make = get_predictor(predictor)
    c_tr, f_tr, c_te, f_te = as_train_and_test(codes_train, factors_train, codes_test, factors_test)
    seed = seed_from(random_state)
    train, test = [], []
    for j in range(f_tr.shape[1]):
        model = fit_classifier(lambda: make(seed), c_tr, f_tr[:, j])
        train.append(np.mean(model.predict(c_tr) == f_tr[:, j]))
        test.append(np.mean(model.predict(c_te) == f_te[:, j]))
    return np.array(train), np.array(test)


def statistical_efficiency(
    scores: Mapping[str, float], *, small: int = 100, large: int = 10000
) -> float:
    """Locatello et al. 2019: mean test accuracy with ``small`` training points
    divided by that with ``large`` (keys ``'{n}:mean_test_accuracy'``)."""
    return float(scores[f"{small}:mean_test_accuracy"] / scores[f"{large}:mean_test_accuracy"])


def downstream_task(
    data,
    representation_fn: RepresentationFn,
    random_state,
    *,
    num_train: Sequence[int] = (10, 100, 1000, 10000),
    num_test: int = 5000,
    batch_size: int = 16,
    predictor: str = "logistic_regression",
    representation_batch_size: int = 1024,
) -> dict[str, float]:
    """Predict every factor from the codes with ``num_train`` labelled points (Locatello et al.
    2019's data-efficiency study; disentanglement_lib's ``downstream_task``).

    For each training size a fresh training and test sample is drawn; one
    predictor per factor. Keys per size ``n``: ``'{n}:mean_train_accuracy'``,
    ``'{n}:mean_test_accuracy'``, ``'{n}:min_train_accuracy'``,
    ``'{n}:min_test_accuracy'``, ``'{n}:train_accuracy_factor_{j}'``,
    ``'{n}:test_accuracy_factor_{j}'``; plus ``'statistical_efficiency'``
    (:func:`statistical_efficiency`) when sizes 100 and 10000 are both run.
    """
    get_predictor(predictor)
    random_state = as_random_state(random_state)
    scores: dict[str, float] = {}
    for size in num_train:
        c_tr, f_tr = generate_factor_code(
            data,
            representation_fn,
            size,
            random_state,
            batch_size,
            representation_batch_size=representation_batch_size,
        )
        c_te, f_te = generate_factor_code(
            data,
            representation_fn,
            num_test,
            random_state,
            batch_size,
            representation_batch_size=representation_batch_size,
        )
        # Seed 0 for the trees: drawing it from random_state would shift later samples.
        train, test = downstream_accuracy(
            c_tr, f_tr, c_te, f_te, predictor=predictor, random_state=0
        )
        scores[f"{size}:mean_train_accuracy"] = float(np.mean(train))
        scores[f"{size}:mean_test_accuracy"] = float(np.mean(test))
        scores[f"{size}:min_train_accuracy"] = float(np.min(train))
        scores[f"{size}:min_test_accuracy"] = float(np.min(test))
        for j in range(len(train)):
            scores[f"{size}:train_accuracy_factor_{j}"] = float(train[j])
            scores[f"{size}:test_accuracy_factor_{j}"] = float(test[j])
    if 100 in num_train and 10000 in num_train:
        scores["statistical_efficiency"] = statistical_efficiency(scores)
    return scores
