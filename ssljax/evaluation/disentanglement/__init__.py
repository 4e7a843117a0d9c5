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
Downstream                   10/100/1000/10000 train, 5000 test points,      ``{n}:mean_test_accuracy``
(Locatello et al. 2019)      LogisticRegressionCV or GradientBoosting        ... statistical_efficiency
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

Modules: one per metric (:mod:`.beta_vae`, :mod:`.factor_vae`, :mod:`.mig_score`,
:mod:`.dci_score`, :mod:`.sap_score`, :mod:`.modularity`, :mod:`.irs_score`,
:mod:`.downstream`); what several of them use (:mod:`.common`: input checks, histogram
discretisation, plug-in information; :mod:`.estimators`: the scikit-learn models;
:mod:`.sampling`: codes and factors drawn through ``representation_fn``); the suite by name
(:mod:`.suite`); and the evaluation of a checkpoint with its report and figures
(:mod:`.checkpoint_eval`, :mod:`.figures`; not imported here, as they load JAX models).
"""

from ssljax.evaluation.disentanglement.beta_vae import beta_vae_score
from ssljax.evaluation.disentanglement.common import (
    NUM_BINS,
    discrete_entropy,
    discrete_mutual_info,
    histogram_discretize,
)
from ssljax.evaluation.disentanglement.dci_score import (
    compute_dci,
    dci,
    dci_from_importance,
    gbt_importance_matrix,
)
from ssljax.evaluation.disentanglement.downstream import (
    downstream_accuracy,
    downstream_task,
    statistical_efficiency,
)
from ssljax.evaluation.disentanglement.estimators import (
    PREDICTORS,
    gradient_boosting,
    logistic_regression,
    logistic_regression_cv,
)
from ssljax.evaluation.disentanglement.factor_vae import factor_vae_score
from ssljax.evaluation.disentanglement.irs_score import irs, irs_from_codes, irs_scores
from ssljax.evaluation.disentanglement.mig_score import compute_mig, mig, mig_from_mutual_info
from ssljax.evaluation.disentanglement.modularity import (
    compute_modularity_explicitness,
    explicitness_per_factor,
    modularity_explicitness,
    modularity_from_mutual_info,
)
from ssljax.evaluation.disentanglement.sampling import RepresentationFn, generate_factor_code
from ssljax.evaluation.disentanglement.sap_score import (
    compute_sap,
    sap,
    sap_from_score_matrix,
    sap_score_matrix,
)
from ssljax.evaluation.disentanglement.suite import (
    DEFAULTS,
    METRICS,
    evaluate_all,
    metric_settings,
)

__all__ = [
    "DEFAULTS",
    "METRICS",
    "NUM_BINS",
    "PREDICTORS",
    "RepresentationFn",
    "beta_vae_score",
    "compute_dci",
    "compute_mig",
    "compute_modularity_explicitness",
    "compute_sap",
    "dci",
    "dci_from_importance",
    "discrete_entropy",
    "discrete_mutual_info",
    "downstream_accuracy",
    "downstream_task",
    "evaluate_all",
    "explicitness_per_factor",
    "factor_vae_score",
    "gbt_importance_matrix",
    "generate_factor_code",
    "gradient_boosting",
    "histogram_discretize",
    "irs",
    "irs_from_codes",
    "irs_scores",
    "logistic_regression",
    "logistic_regression_cv",
    "metric_settings",
    "mig",
    "mig_from_mutual_info",
    "modularity_explicitness",
    "modularity_from_mutual_info",
    "sap",
    "sap_from_score_matrix",
    "sap_score_matrix",
    "statistical_efficiency",
]
