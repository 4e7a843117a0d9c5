"""Disentanglement metrics as disentanglement_lib (Locatello et al. 2019) computes them.

Every score follows disentanglement_lib's ``evaluation/metrics/*.py`` and the
sample counts of its ``unsupervised_study_v1`` metric configs (:data:`DEFAULTS`):

===========================  ==============================================  ==================
metric                       protocol                                        keys returned
===========================  ==============================================  ==================
BetaVAE score                10000 train / 5000 eval points, batch 64,        train_accuracy,
(Higgins et al. 2017)        logistic regression                             eval_accuracy
FactorVAE score              10000 points for the variances, 10000 train /   train_accuracy,
(Kim & Mnih 2018)            5000 eval points, batch 64, prune std < 0.05,   eval_accuracy,
                             majority-vote classifier                        num_active_dims
MIG (Chen et al. 2018)       10000 points, 20-bin histograms                 discrete_mig
DCI (Eastwood & Williams)    10000 train / 5000 test points,                 disentanglement,
                             GradientBoostingClassifier importances          completeness,
                                                                             informativeness_*
SAP (Kumar et al. 2018)      10000 train / 5000 test points, discrete        SAP_score
                             factors: LinearSVC(C=0.01, balanced)
Modularity, Explicitness     10000 train / 5000 test points, 20 bins;        modularity_score,
(Ridgeway & Mozer 2018)      logistic regression, one-vs-rest ROC-AUC        explicitness_score_*
IRS (Suter et al. 2019)      10000 points, factors in 20 bins, 99% quantile  IRS, num_active_dims
Downstream (seed 000)        10/100/1000/10000 train, 5000 test points,      ``{n}:mean_test_accuracy``
                             LogisticRegressionCV or GradientBoosting        ... statistical_efficiency
===========================  ==============================================  ==================

Sampling with ``batch_size`` 16 wherever disentanglement_lib's default is 16.

Conventions: array-level functions take ``codes [num_points, num_codes]``
(float) and integer ``factors [num_points, num_factors]`` (points first;
disentanglement_lib stores them transposed). Sampling-based functions take a
ground-truth-data object (``num_factors``, ``sample_factors(num,
random_state)``, ``sample_observations_from_factors(factors, random_state)``,
``sample(num, random_state)``, ``sample_observations(num, random_state)``; see
:class:`ssljax.data.dsprites.DSprites`), a ``representation_fn`` mapping an
observation batch to codes ``[n, num_codes]``, and a ``numpy`` ``RandomState``
(or int seed). Random draws happen in disentanglement_lib's order;
``representation_fn`` is applied to up to ``representation_batch_size``
observations at once (ours: it only changes how many calls are made, so the
function must act on each example independently, as an encoder in inference
mode does).

scikit-learn estimators: disentanglement_lib calls ``LogisticRegression()``;
under the scikit-learn of its study (0.20) that meant liblinear, one-vs-rest,
C=1, which is what we build (:func:`logistic_regression`); newer scikit-learn
defaults to a multinomial lbfgs model. Likewise ``LogisticRegressionCV(Cs=10,
cv=KFold(5))`` is one-vs-rest lbfgs there. ``GradientBoostingClassifier()``
keeps its defaults; we pass a ``random_state`` so runs are repeatable (tie
breaks between equal features are random in scikit-learn).

Ours, where disentanglement_lib fails or reports a bookkeeping value oddly:
``num_active_dims`` is the number of active code dimensions (it reports
``len(mask)`` for FactorVAE and the sum of the kept codes for IRS); a constant
code gets unit scale when explicitness standardises codes (it divides by 0);
a factor with a single value in a training sample is predicted as that value
(scikit-learn classifiers refuse one class); ROC-AUC averages over the classes
present in both labels of a split.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import scipy.stats
import threadpoolctl
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.model_selection import KFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import LinearSVC

from ssljax.data.dsprites import as_random_state

RepresentationFn = Callable[[np.ndarray], Any]

NUM_BINS = 20

# disentanglement_lib config/unsupervised_study_v1/metric_configs (sample
# counts) and the metric functions' own defaults (batch sizes of 16).
DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "beta_vae": dict(batch_size=64, num_train=10000, num_eval=5000),
    "factor_vae": dict(
        batch_size=64, num_train=10000, num_eval=5000, num_variance_estimate=10000, prune_threshold=0.05
    ),
    "mig": dict(num_train=10000, batch_size=16, num_bins=NUM_BINS),
    "dci": dict(num_train=10000, num_test=5000, batch_size=16),
    "sap": dict(num_train=10000, num_test=5000, batch_size=16, continuous_factors=False),
    "modularity_explicitness": dict(num_train=10000, num_test=5000, batch_size=16, num_bins=NUM_BINS),
    "irs": dict(num_train=10000, batch_size=16, diff_quantile=0.99, num_bins=NUM_BINS),
    # Predictors: logistic_regression_cv and gradient_boosting respectively.
    "downstream_logistic_regression": dict(num_train=(10, 100, 1000, 10000), num_test=5000, batch_size=16),
    "downstream_gradient_boosting": dict(num_train=(10, 100, 1000, 10000), num_test=5000, batch_size=16),
}


# --------------------------------------------------------------------------
# Input checks and shared pieces.


def _as_codes(codes: Any, name: str = "codes") -> np.ndarray:
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2:
        raise ValueError(f"{name} must be [num_points, num_codes], got shape {codes.shape}")
    if not np.all(np.isfinite(codes)):
        raise ValueError(f"{name} contain non-finite values")
    return codes


def _as_factors(factors: Any, num_points: int, name: str = "factors") -> np.ndarray:
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[0] != num_points:
        raise ValueError(
            f"{name} must be [num_points={num_points}, num_factors], got shape {factors.shape}"
        )
    if not np.issubdtype(factors.dtype, np.integer):
        raise ValueError(f"{name} must be integer factor indices, got dtype {factors.dtype}")
    return factors.astype(np.int64)


def _pair(codes: Any, factors: Any, suffix: str = "") -> tuple[np.ndarray, np.ndarray]:
    codes = _as_codes(codes, "codes" + suffix)
    return codes, _as_factors(factors, codes.shape[0], "factors" + suffix)


def _train_test(codes_train, factors_train, codes_test, factors_test):
    c_tr, f_tr = _pair(codes_train, factors_train, "_train")
    c_te, f_te = _pair(codes_test, factors_test, "_test")
    if c_tr.shape[1] != c_te.shape[1] or f_tr.shape[1] != f_te.shape[1]:
        raise ValueError(
            f"train and test widths differ: codes {c_tr.shape[1]} vs {c_te.shape[1]}, "
            f"factors {f_tr.shape[1]} vs {f_te.shape[1]}"
        )
    return c_tr, f_tr, c_te, f_te


def _check_bins(num_bins: int) -> int:
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
    num_bins = _check_bins(num_bins)
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
    return np.array([mutual_info_score(factors[:, j], factors[:, j]) for j in range(factors.shape[1])])


@contextlib.contextmanager
def _sklearn_context():
    """Around every scikit-learn fit: silence convergence/deprecation chatter, and run
    BLAS single-threaded. These fits are tiny; with BLAS threads on a busy machine a
    single lbfgs fit was measured 50x slower (OpenBLAS threads waiting on each other)."""
    with warnings.catch_warnings(), threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        for category in (ConvergenceWarning, FutureWarning, DeprecationWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        yield


def _seed_from(random_state) -> Optional[int]:
    """An int seed for a scikit-learn estimator: None stays None, ints pass, a
    RandomState gives one draw."""
    if random_state is None:
        return None
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state)
    return int(as_random_state(random_state).randint(np.iinfo(np.int32).max))


def logistic_regression(random_state=None) -> OneVsRestClassifier:
    """``LogisticRegression()`` as disentanglement_lib ran it: liblinear, one-vs-rest, C=1."""
    return OneVsRestClassifier(LogisticRegression(solver="liblinear", C=1.0, random_state=random_state))


def logistic_regression_cv(random_state=None) -> OneVsRestClassifier:
    """disentanglement_lib's ``logistic_regression_cv``: ``LogisticRegressionCV(Cs=10,
    cv=KFold(n_splits=5))``, one-vs-rest lbfgs, accuracy for picking C."""
    del random_state  # Deterministic.
    return OneVsRestClassifier(
        LogisticRegressionCV(
            Cs=10, cv=KFold(n_splits=5), solver="lbfgs", scoring="accuracy",
            l1_ratios=(0.0,), use_legacy_attributes=False,
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


class _ConstantClassifier:
    """Predicts the single class seen in training (scikit-learn refuses one class)."""

    def __init__(self, value):
        self.value = value
        self.classes_ = np.array([value])

    def predict(self, x):
        return np.full(len(x), self.value)


def _fit(make_model: Callable[[], Any], x: np.ndarray, y: np.ndarray):
    if np.unique(y).size < 2:
        return _ConstantClassifier(y[0])
    with _sklearn_context():
        return make_model().fit(x, y)


def _get_predictor(predictor: str) -> Callable[..., Any]:
    try:
        return PREDICTORS[predictor]
    except KeyError:
        raise ValueError(
            f"unknown predictor {predictor!r}; valid: {', '.join(sorted(PREDICTORS))}"
        ) from None


# --------------------------------------------------------------------------
# MIG.


def mig_from_mutual_info(mutual_info: Any, entropy: Any) -> float:
    """Mean over factors of (largest - second largest MI over codes) / H(factor).

    Args:
      mutual_info: ``[num_codes, num_factors]`` in nats (needs >= 2 codes).
      entropy: ``[num_factors]`` factor entropies in nats, all > 0.
    """
    mutual_info = np.asarray(mutual_info, np.float64)
    entropy = np.asarray(entropy, np.float64)
    if mutual_info.ndim != 2 or mutual_info.shape[0] < 2:
        raise ValueError(f"MIG needs mutual_info [num_codes >= 2, num_factors], got {mutual_info.shape}")
    if entropy.shape != mutual_info.shape[1:]:
        raise ValueError(f"entropy shape {entropy.shape} does not match {mutual_info.shape[1:]} factors")
    if np.any(entropy <= 0):
        j = int(np.argmin(entropy))
        raise ValueError(f"factor {j} takes a single value in the sample; MIG divides by its entropy 0")
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
    codes, factors = _pair(codes, factors)
    mi = discrete_mutual_info(histogram_discretize(codes, num_bins), factors)
    return {"discrete_mig": mig_from_mutual_info(mi, discrete_entropy(factors))}


# --------------------------------------------------------------------------
# DCI.


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
        raise ValueError(f"importance must be [num_codes >= 2, num_factors >= 2], got {importance.shape}")
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
    c_tr, f_tr, c_te, f_te = _train_test(codes_train, factors_train, codes_test, factors_test)
    seed = _seed_from(random_state)
    importance = np.zeros((c_tr.shape[1], f_tr.shape[1]))
    train_acc, test_acc = [], []
    for j in range(f_tr.shape[1]):
        model = _fit(lambda: gradient_boosting(seed), c_tr, f_tr[:, j])
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


# --------------------------------------------------------------------------
# SAP.


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
    c_tr, f_tr, c_te, f_te = _train_test(codes_train, factors_train, codes_test, factors_test)
    matrix = np.zeros((c_tr.shape[1], f_tr.shape[1]))
    for i in range(c_tr.shape[1]):
        for j in range(f_tr.shape[1]):
            if continuous_factors:
                cov = np.cov(c_tr[:, i], f_tr[:, j], ddof=1)
                matrix[i, j] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 else 0.0
            else:
                model = _fit(
                    lambda: LinearSVC(C=0.01, class_weight="balanced"), c_tr[:, i : i + 1], f_tr[:, j]
                )
                matrix[i, j] = np.mean(model.predict(c_te[:, i : i + 1]) == f_te[:, j])
    return matrix


def sap_from_score_matrix(score_matrix: Any) -> float:
    """Mean over factors of the gap between the two best codes' scores."""
    score_matrix = np.asarray(score_matrix, np.float64)
    if score_matrix.ndim != 2 or score_matrix.shape[0] < 2:
        raise ValueError(f"SAP needs a score matrix [num_codes >= 2, num_factors], got {score_matrix.shape}")
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


# --------------------------------------------------------------------------
# Modularity and explicitness.


def modularity_from_mutual_info(mutual_info: Any) -> float:
    """Modularity (Ridgeway & Mozer 2018) of a mutual-information matrix ``[num_codes, num_factors]``.

    Per code with ``m = MI^2`` over factors: ``1 - (sum(m) - max(m)) / (max(m)
    * (num_factors - 1))`` (0 for a code with no information); averaged over
    codes.
    """
    mutual_info = np.asarray(mutual_info, np.float64)
    if mutual_info.ndim != 2 or mutual_info.shape[1] < 2:
        raise ValueError(f"modularity needs mutual_info [num_codes, num_factors >= 2], got {mutual_info.shape}")
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
    codes_train: np.ndarray, y_train: np.ndarray, codes_test: np.ndarray, y_test: np.ndarray, *, random_state=None
) -> tuple[float, float]:
    """ROC-AUC (train, test) of :func:`logistic_regression` predicting one factor from all codes.

    The labels are one-hot encoded (disentanglement_lib's MultiLabelBinarizer)
    and scored against ``predict_proba`` with macro-averaged ROC-AUC.
    """
    classes = np.unique(y_train)
    if classes.size < 2:
        return float("nan"), float("nan")
    model = _fit(lambda: logistic_regression(random_state), codes_train, y_train)
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
    c_tr, f_tr, c_te, f_te = _train_test(codes_train, factors_train, codes_test, factors_test)
    mi = discrete_mutual_info(histogram_discretize(c_tr, num_bins), f_tr)
    mean, std = c_tr.mean(axis=0), c_tr.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    n_tr, n_te = (c_tr - mean) / std, (c_te - mean) / std
    aucs = np.array(
        [explicitness_per_factor(n_tr, f_tr[:, j], n_te, f_te[:, j], random_state=random_state)
         for j in range(f_tr.shape[1])]
    )
    return {
        "modularity_score": modularity_from_mutual_info(mi),
        "explicitness_score_train": float(np.nanmean(aucs[:, 0])),
        "explicitness_score_test": float(np.nanmean(aucs[:, 1])),
    }


# --------------------------------------------------------------------------
# IRS.


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
    codes = _as_codes(codes)
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
            cum_dev[:, j] += np.quantile(np.abs(group - group.mean(axis=0)), q=diff_quantile, axis=0)
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
    codes, factors = _pair(codes, factors)
    active = codes.var(axis=0) > 0.0
    if not active.any():
        return {"IRS": 0.0, "num_active_dims": 0}
    binned = histogram_discretize(factors, num_bins)
    score = irs_scores(binned, codes[:, active], diff_quantile=diff_quantile)["avg_score"]
    return {"IRS": score, "num_active_dims": int(active.sum())}


# --------------------------------------------------------------------------
# Downstream prediction (seed 000 / Locatello et al. 2019 Sec. 5).


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
    make = _get_predictor(predictor)
    c_tr, f_tr, c_te, f_te = _train_test(codes_train, factors_train, codes_test, factors_test)
    seed = _seed_from(random_state)
    train, test = [], []
    for j in range(f_tr.shape[1]):
        model = _fit(lambda: make(seed), c_tr, f_tr[:, j])
        train.append(np.mean(model.predict(c_tr) == f_tr[:, j]))
        test.append(np.mean(model.predict(c_te) == f_te[:, j]))
    return np.array(train), np.array(test)


def statistical_efficiency(scores: Mapping[str, float], *, small: int = 100, large: int = 10000) -> float:
    """Locatello et al. 2019: mean test accuracy with ``small`` training points
    divided by that with ``large`` (keys ``'{n}:mean_test_accuracy'``)."""
    return float(scores[f"{small}:mean_test_accuracy"] / scores[f"{large}:mean_test_accuracy"])


# --------------------------------------------------------------------------
# Sampling.


def _represent(representation_fn: RepresentationFn, observations: np.ndarray, batch: int) -> np.ndarray:
    """``representation_fn`` over ``observations`` in chunks of ``batch``, as float64 ``[n, d]``."""
    out = []
    for start in range(0, len(observations), batch):
        codes = np.asarray(representation_fn(observations[start : start + batch]), np.float64)
        if codes.ndim != 2 or codes.shape[0] != len(observations[start : start + batch]):
            raise ValueError(
                f"representation_fn must return [batch, num_codes]; for a batch of "
                f"{len(observations[start : start + batch])} it returned shape {codes.shape}"
            )
        out.append(codes)
    return np.concatenate(out)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) <= 0:
            raise ValueError(f"{name} must be positive, got {value}")


def generate_factor_code(
    data,
    representation_fn: RepresentationFn,
    num_points: int,
    random_state,
    batch_size: int = 16,
    *,
    representation_batch_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """``num_points`` samples as ``(codes [n, num_codes], factors [n, num_factors])``.

    Draws ``data.sample(batch_size, random_state)`` repeatedly, as
    disentanglement_lib's ``generate_batch_factor_code``.
    """
    _check_positive(num_points=num_points, batch_size=batch_size,
                    representation_batch_size=representation_batch_size)
    random_state = as_random_state(random_state)
    factors, codes, pending, pending_n = [], [], [], 0

    def flush():
        codes.append(_represent(representation_fn, np.concatenate(pending), representation_batch_size))
        pending.clear()

    for start in range(0, num_points, batch_size):
        f, obs = data.sample(min(batch_size, num_points - start), random_state)
        factors.append(np.asarray(f, np.int64))
        pending.append(np.asarray(obs))
        pending_n += len(obs)
        if pending_n >= representation_batch_size:
            flush()
            pending_n = 0
    if pending:
        flush()
    return np.concatenate(codes), np.concatenate(factors)


def _grouped_samples(num_points: int, obs_per_point: int, representation_batch_size: int):
    """Group sizes so that one representation call sees about representation_batch_size observations."""
    group = max(1, representation_batch_size // obs_per_point)
    for start in range(0, num_points, group):
        yield min(group, num_points - start)


def _beta_vae_points(data, representation_fn, batch_size, num_points, random_state, rep_batch):
    """disentanglement_lib's BetaVAE training points: label = the factor held fixed
    between two batches, feature = mean |z1 - z2| over the batch."""
    labels = np.zeros(num_points, np.int64)
    features = []
    done = 0
    for group in _grouped_samples(num_points, 2 * batch_size, rep_batch):
        observations = []
        for p in range(group):
            k = random_state.randint(data.num_factors)
            factors1 = data.sample_factors(batch_size, random_state)
            factors2 = data.sample_factors(batch_size, random_state)
            factors2[:, k] = factors1[:, k]
            observations.append(data.sample_observations_from_factors(factors1, random_state))
            observations.append(data.sample_observations_from_factors(factors2, random_state))
            labels[done + p] = k
        codes = _represent(representation_fn, np.concatenate(observations), rep_batch)
        codes = codes.reshape(group, 2, batch_size, -1)
        features.append(np.mean(np.abs(codes[:, 0] - codes[:, 1]), axis=1))
        done += group
    return np.concatenate(features), labels


def beta_vae_score(
    data,
    representation_fn: RepresentationFn,
    random_state,
    *,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    representation_batch_size: int = 1024,
) -> dict[str, float]:
    """BetaVAE score (Higgins et al. 2017), disentanglement_lib's ``beta_vae_sklearn``.

    Each point: pick a factor k uniformly, sample two batches of
    ``batch_size`` factor tuples that agree on k, feature = mean over the batch
    of ``|z(x1) - z(x2)|``, label = k. A logistic regression
    (:func:`logistic_regression`) is fit on ``num_train`` points and scored on
    ``num_eval`` fresh ones.

    Returns:
      ``{'train_accuracy', 'eval_accuracy'}``.
    """
    _check_positive(batch_size=batch_size, num_train=num_train, num_eval=num_eval)
    random_state = as_random_state(random_state)
    x_train, y_train = _beta_vae_points(
        data, representation_fn, batch_size, num_train, random_state, representation_batch_size
    )
    model = _fit(lambda: logistic_regression(random_state), x_train, y_train)
    train_accuracy = float(np.mean(model.predict(x_train) == y_train))
    x_eval, y_eval = _beta_vae_points(
        data, representation_fn, batch_size, num_eval, random_state, representation_batch_size
    )
    eval_accuracy = float(np.mean(model.predict(x_eval) == y_eval))
    return {"train_accuracy": train_accuracy, "eval_accuracy": eval_accuracy}


def _factor_vae_votes(data, representation_fn, batch_size, num_points, random_state,
                      global_variances, active, rep_batch) -> np.ndarray:
    """Votes ``[num_factors, num_active]``: (factor held fixed, active code of least
    normalised variance) over ``num_points`` batches."""
    votes = np.zeros((data.num_factors, int(active.sum())), np.int64)
    for group in _grouped_samples(num_points, batch_size, rep_batch):
        observations, fixed = [], []
        for _ in range(group):
            k = random_state.randint(data.num_factors)
            factors = data.sample_factors(batch_size, random_state)
            factors[:, k] = factors[0, k]
            observations.append(data.sample_observations_from_factors(factors, random_state))
            fixed.append(k)
        codes = _represent(representation_fn, np.concatenate(observations), rep_batch)
        codes = codes.reshape(group, batch_size, -1)
        local = np.var(codes, axis=1, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 only with prune_threshold 0
            argmin = np.argmin(local[:, active] / global_variances[active], axis=1)
        np.add.at(votes, (np.array(fixed), argmin), 1)
    return votes


def factor_vae_score(
    data,
    representation_fn: RepresentationFn,
    random_state,
    *,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_variance_estimate: int = 10000,
    prune_threshold: float = 0.05,
    representation_batch_size: int = 1024,
) -> dict[str, float]:
    """FactorVAE score (Kim & Mnih 2018), disentanglement_lib's ``factor_vae_score``.

    Global variances of each code (ddof 1) over ``num_variance_estimate``
    samples; codes whose standard deviation is below ``prune_threshold``
    (0.05, the study's ``prune_dims.threshold``) are dropped as collapsed.
    Each point: pick a factor k, sample ``batch_size`` tuples sharing factor
    k's value, and vote (k, argmin over active codes of local variance /
    global variance). The classifier maps each code to its majority factor;
    accuracy = votes it gets right / all votes, on ``num_train`` and on
    ``num_eval`` fresh points. All codes pruned: every score 0.

    Returns:
      ``{'train_accuracy', 'eval_accuracy', 'num_active_dims'}``.
    """
    _check_positive(batch_size=batch_size, num_train=num_train, num_eval=num_eval,
                    num_variance_estimate=num_variance_estimate)
    random_state = as_random_state(random_state)
    observations = data.sample_observations(num_variance_estimate, random_state)
    global_variances = np.var(_represent(representation_fn, observations, representation_batch_size), axis=0, ddof=1)
    active = np.sqrt(global_variances) >= prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    train_votes = _factor_vae_votes(data, representation_fn, batch_size, num_train, random_state,
                                    global_variances, active, representation_batch_size)
    classifier = np.argmax(train_votes, axis=0)
    columns = np.arange(train_votes.shape[1])
    train_accuracy = train_votes[classifier, columns].sum() / train_votes.sum()
    eval_votes = _factor_vae_votes(data, representation_fn, batch_size, num_eval, random_state,
                                   global_variances, active, representation_batch_size)
    eval_accuracy = eval_votes[classifier, columns].sum() / eval_votes.sum()
    return {
        "train_accuracy": float(train_accuracy),
        "eval_accuracy": float(eval_accuracy),
        "num_active_dims": int(active.sum()),
    }


def compute_mig(data, representation_fn, random_state, *, num_train: int = 10000, batch_size: int = 16,
                num_bins: int = NUM_BINS, representation_batch_size: int = 1024) -> dict[str, float]:
    """MIG (:func:`mig`) on ``num_train`` sampled points."""
    codes, factors = generate_factor_code(data, representation_fn, num_train, random_state, batch_size,
                                          representation_batch_size=representation_batch_size)
    return mig(codes, factors, num_bins=num_bins)


def _train_test_codes(data, representation_fn, random_state, num_train, num_test, batch_size, rep_batch):
    random_state = as_random_state(random_state)
    train = generate_factor_code(data, representation_fn, num_train, random_state, batch_size,
                                 representation_batch_size=rep_batch)
    test = generate_factor_code(data, representation_fn, num_test, random_state, batch_size,
                                representation_batch_size=rep_batch)
    return random_state, train, test


def compute_dci(data, representation_fn, random_state, *, num_train: int = 10000, num_test: int = 5000,
                batch_size: int = 16, representation_batch_size: int = 1024) -> dict[str, float]:
    """DCI (:func:`dci`) on ``num_train`` / ``num_test`` sampled points."""
    rs, (c_tr, f_tr), (c_te, f_te) = _train_test_codes(
        data, representation_fn, random_state, num_train, num_test, batch_size, representation_batch_size)
    return dci(c_tr, f_tr, c_te, f_te, random_state=rs)


def compute_sap(data, representation_fn, random_state, *, num_train: int = 10000, num_test: int = 5000,
                batch_size: int = 16, continuous_factors: bool = False,
                representation_batch_size: int = 1024) -> dict[str, float]:
    """SAP (:func:`sap`) on ``num_train`` / ``num_test`` sampled points."""
    _, (c_tr, f_tr), (c_te, f_te) = _train_test_codes(
        data, representation_fn, random_state, num_train, num_test, batch_size, representation_batch_size)
    return sap(c_tr, f_tr, c_te, f_te, continuous_factors=continuous_factors)


def compute_modularity_explicitness(data, representation_fn, random_state, *, num_train: int = 10000,
                                    num_test: int = 5000, batch_size: int = 16, num_bins: int = NUM_BINS,
                                    representation_batch_size: int = 1024) -> dict[str, float]:
    """Modularity and explicitness (:func:`modularity_explicitness`) on sampled points."""
    rs, (c_tr, f_tr), (c_te, f_te) = _train_test_codes(
        data, representation_fn, random_state, num_train, num_test, batch_size, representation_batch_size)
    return modularity_explicitness(c_tr, f_tr, c_te, f_te, num_bins=num_bins, random_state=rs)


def irs(data, representation_fn: RepresentationFn, random_state, *, num_train: int = 10000,
        batch_size: int = 16, diff_quantile: float = 0.99, num_bins: int = NUM_BINS,
        representation_batch_size: int = 1024) -> dict[str, float]:
    """IRS (:func:`irs_from_codes`) on ``num_train`` sampled points.

    Returns:
      ``{'IRS': float, 'num_active_dims': int}``.
    """
    codes, factors = generate_factor_code(data, representation_fn, num_train, random_state, batch_size,
                                          representation_batch_size=representation_batch_size)
    return irs_from_codes(codes, factors, diff_quantile=diff_quantile, num_bins=num_bins)


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
    """Predict every factor from the codes with ``num_train`` labelled points (seed 000's
    data-efficiency study; disentanglement_lib's ``downstream_task``).

    For each training size a fresh training and test sample is drawn; one
    predictor per factor. Keys per size ``n``: ``'{n}:mean_train_accuracy'``,
    ``'{n}:mean_test_accuracy'``, ``'{n}:min_train_accuracy'``,
    ``'{n}:min_test_accuracy'``, ``'{n}:train_accuracy_factor_{j}'``,
    ``'{n}:test_accuracy_factor_{j}'``; plus ``'statistical_efficiency'``
    (:func:`statistical_efficiency`) when sizes 100 and 10000 are both run.
    """
    _get_predictor(predictor)
    random_state = as_random_state(random_state)
    scores: dict[str, float] = {}
    for size in num_train:
        c_tr, f_tr = generate_factor_code(data, representation_fn, size, random_state, batch_size,
                                          representation_batch_size=representation_batch_size)
        c_te, f_te = generate_factor_code(data, representation_fn, num_test, random_state, batch_size,
                                          representation_batch_size=representation_batch_size)
        # Seed 0 for the trees: drawing it from random_state would shift later samples.
        train, test = downstream_accuracy(c_tr, f_tr, c_te, f_te, predictor=predictor, random_state=0)
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


def _downstream(predictor: str):
    def run(data, representation_fn, random_state, **kwargs):
        return downstream_task(data, representation_fn, random_state, predictor=predictor, **kwargs)

    run.__doc__ = f"Downstream task with predictor={predictor!r} (:func:`downstream_task`)."
    return run


# name -> sampling-based metric function(data, representation_fn, random_state, **kwargs).
METRICS: Mapping[str, Callable[..., dict]] = {
    "beta_vae": beta_vae_score,
    "factor_vae": factor_vae_score,
    "mig": compute_mig,
    "dci": compute_dci,
    "sap": compute_sap,
    "modularity_explicitness": compute_modularity_explicitness,
    "irs": irs,
    "downstream_logistic_regression": _downstream("logistic_regression"),
    "downstream_gradient_boosting": _downstream("gradient_boosting"),
}


def metric_settings(name: str, overrides: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """:data:`DEFAULTS` of metric ``name`` updated with ``overrides`` (checked)."""
    if name not in METRICS:
        raise ValueError(f"unknown disentanglement metric {name!r}; valid: {', '.join(METRICS)}")
    settings = dict(DEFAULTS[name])
    for key, value in (overrides or {}).items():
        if key not in settings and key != "representation_batch_size":
            raise ValueError(
                f"unknown setting {key!r} for metric {name}; valid: {', '.join(sorted(settings))}"
            )
        settings[key] = value
    return settings


def evaluate_all(
    data,
    representation_fn: RepresentationFn,
    *,
    random_seed: int = 0,
    metrics: Optional[Sequence[str]] = None,
    overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
) -> dict[str, dict[str, float]]:
    """Runs metrics by name, each with a fresh ``RandomState(random_seed)`` (as
    disentanglement_lib runs each metric config with ``evaluation.random_seed``).

    Args:
      data: ground-truth data (e.g. ``ssljax.data.dsprites.DSprites()``).
      representation_fn: observations ``[n, ...]`` -> codes ``[n, num_codes]``.
      random_seed: seed of every metric's RandomState.
      metrics: names from :data:`METRICS` (default: all).
      overrides: ``{metric: {setting: value}}`` on top of :data:`DEFAULTS`,
        e.g. smaller sample counts.

    Returns:
      ``{metric: {score name: value}}``.
    """
    names = list(METRICS) if metrics is None else list(metrics)
    overrides = dict(overrides or {})
    for name in list(names) + list(overrides):
        if name not in METRICS:
            raise ValueError(f"unknown disentanglement metric {name!r}; valid: {', '.join(METRICS)}")
    results = {}
    for name in names:
        settings = metric_settings(name, overrides.get(name))
        results[name] = METRICS[name](data, representation_fn, np.random.RandomState(random_seed), **settings)
    return results
