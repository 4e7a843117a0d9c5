"""The scikit-learn estimators of the metrics, built as disentanglement_lib ran them, and
fitting that tolerates a single class."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Mapping, Optional

import numpy as np
import threadpoolctl
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import KFold
from sklearn.multiclass import OneVsRestClassifier

from ssljax.data.dsprites import as_random_state


@contextlib.contextmanager
def sklearn_context():
    """Around every scikit-learn fit: silence convergence/deprecation chatter, and run
    BLAS single-threaded. These fits are tiny; with BLAS threads on a busy machine a
    single lbfgs fit was measured 50x slower (OpenBLAS threads waiting on each other)."""
    with warnings.catch_warnings(), threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        for category in (ConvergenceWarning, FutureWarning, DeprecationWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        yield


def seed_from(random_state) -> Optional[int]:
    """An int seed for a scikit-learn estimator: None stays None, ints pass, a
    RandomState gives one draw."""
    if random_state is None:
        return None
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state)
    return int(as_random_state(random_state).randint(np.iinfo(np.int32).max))


def logistic_regression(random_state=None) -> OneVsRestClassifier:
    """``LogisticRegression()`` as disentanglement_lib ran it: liblinear, one-vs-rest, C=1."""
    return OneVsRestClassifier(
        LogisticRegression(solver="liblinear", C=1.0, random_state=random_state)
    )


def logistic_regression_cv(random_state=None) -> OneVsRestClassifier:
    """disentanglement_lib's ``logistic_regression_cv``: ``LogisticRegressionCV(Cs=10,
    cv=KFold(n_splits=5))``, one-vs-rest lbfgs, accuracy for picking C."""
    del random_state  # Deterministic.
    return OneVsRestClassifier(
        LogisticRegressionCV(
            Cs=10,
            cv=KFold(n_splits=5),
            solver="lbfgs",
            scoring="accuracy",
            l1_ratios=(0.0,),
            use_legacy_attributes=False,
        )
    )


def gradient_boosting(random_state=None) -> GradientBoostingClassifier:
    """disentanglement_lib's ``gradient_boosting_classifier``: scikit-learn defaults
    (100 trees of depth 3, learning rate 0.1), seeded."""
    return GradientBoostingClassifier(random_state=random_state)


PREDICTORS: Mapping[str, Callable[..., Any]] = {
    "logistic_regression": logistic_regression_cv,
    "gradient_boosting": gradient_boosting,
}


class ConstantClassifier:
    """Predicts the single class seen in training (scikit-learn refuses one class)."""

    def __init__(self, value):
        self.value = value
        self.classes_ = np.array([value])

    def predict(self, x):
        return np.full(len(x), self.value)


def fit_classifier(make_model: Callable[[], Any], x: np.ndarray, y: np.ndarray):
    if np.unique(y).size < 2:
        return ConstantClassifier(y[0])
    with sklearn_context():
        return make_model().fit(x, y)


def get_predictor(predictor: str) -> Callable[..., Any]:
    try:
        return PREDICTORS[predictor]
    except KeyError:
        raise ValueError(
            f"unknown predictor {predictor!r}; valid: {', '.join(sorted(PREDICTORS))}"
        ) from None
