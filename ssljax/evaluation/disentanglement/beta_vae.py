"""BetaVAE score (Higgins et al. 2017): 10000 train / 5000 eval points, batch 64, logistic
regression on the mean absolute code difference of batches sharing one factor."""

from __future__ import annotations

import numpy as np

from ssljax.data.dsprites import as_random_state
from ssljax.evaluation.disentanglement.common import check_positive
from ssljax.evaluation.disentanglement.estimators import fit_classifier, logistic_regression
from ssljax.evaluation.disentanglement.sampling import RepresentationFn, grouped_samples, represent


def _beta_vae_points(data, representation_fn, batch_size, num_points, random_state, rep_batch):
    """disentanglement_lib's BetaVAE training points: label = the factor held fixed
    between two batches, feature = mean |z1 - z2| over the batch."""
    labels = np.zeros(num_points, np.int64)
    features = []
    done = 0
    for group in grouped_samples(num_points, 2 * batch_size, rep_batch):
        observations = []
        for p in range(group):
            k = random_state.randint(data.num_factors)
            factors1 = data.sample_factors(batch_size, random_state)
            factors2 = data.sample_factors(batch_size, random_state)
            factors2[:, k] = factors1[:, k]
            observations.append(data.sample_observations_from_factors(factors1, random_state))
            observations.append(data.sample_observations_from_factors(factors2, random_state))
            labels[done + p] = k
        codes = represent(representation_fn, np.concatenate(observations), rep_batch)
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
    check_positive(batch_size=batch_size, num_train=num_train, num_eval=num_eval)
    random_state = as_random_state(random_state)
    x_train, y_train = _beta_vae_points(
        data, representation_fn, batch_size, num_train, random_state, representation_batch_size
    )
    model = fit_classifier(lambda: logistic_regression(random_state), x_train, y_train)
    train_accuracy = float(np.mean(model.predict(x_train) == y_train))
    x_eval, y_eval = _beta_vae_points(
        data, representation_fn, batch_size, num_eval, random_state, representation_batch_size
    )
    eval_accuracy = float(np.mean(model.predict(x_eval) == y_eval))
    return {"train_accuracy": train_accuracy, "eval_accuracy": eval_accuracy}
