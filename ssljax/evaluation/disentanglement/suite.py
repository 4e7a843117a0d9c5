"""Every metric by name with disentanglement_lib's settings: :data:`DEFAULTS`,
:data:`METRICS` and :func:`evaluate_all`."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from ssljax.evaluation.disentanglement.beta_vae import beta_vae_score
from ssljax.evaluation.disentanglement.common import NUM_BINS
from ssljax.evaluation.disentanglement.dci_score import compute_dci
from ssljax.evaluation.disentanglement.downstream import downstream_task
from ssljax.evaluation.disentanglement.factor_vae import factor_vae_score
from ssljax.evaluation.disentanglement.irs_score import irs
from ssljax.evaluation.disentanglement.mig_score import compute_mig
from ssljax.evaluation.disentanglement.modularity import compute_modularity_explicitness
from ssljax.evaluation.disentanglement.sampling import RepresentationFn
from ssljax.evaluation.disentanglement.sap_score import compute_sap

# disentanglement_lib config/unsupervised_study_v1/metric_configs (sample
# counts) and the metric functions' own defaults (batch sizes of 16).
DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "beta_vae": dict(batch_size=64, num_train=10000, num_eval=5000),
    "factor_vae": dict(
        batch_size=64,
        num_train=10000,
        num_eval=5000,
        num_variance_estimate=10000,
        prune_threshold=0.05,
    ),
    "mig": dict(num_train=10000, batch_size=16, num_bins=NUM_BINS),
    "dci": dict(num_train=10000, num_test=5000, batch_size=16),
    "sap": dict(num_train=10000, num_test=5000, batch_size=16, continuous_factors=False),
    "modularity_explicitness": dict(
        num_train=10000, num_test=5000, batch_size=16, num_bins=NUM_BINS
    ),
    "irs": dict(num_train=10000, batch_size=16, diff_quantile=0.99, num_bins=NUM_BINS),
    # Predictors: logistic_regression_cv and gradient_boosting respectively.
    "downstream_logistic_regression": dict(
        num_train=(10, 100, 1000, 10000), num_test=5000, batch_size=16
    ),
    "downstream_gradient_boosting": dict(
        num_train=(10, 100, 1000, 10000), num_test=5000, batch_size=16
    ),
}


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
            raise ValueError(
                f"unknown disentanglement metric {name!r}; valid: {', '.join(METRICS)}"
            )
    results = {}
    for name in names:
        settings = metric_settings(name, overrides.get(name))
        results[name] = METRICS[name](
            data, representation_fn, np.random.RandomState(random_seed), **settings
        )
    return results
