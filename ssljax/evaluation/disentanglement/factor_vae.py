"""FactorVAE score (Kim & Mnih 2018): 10000 points for the variances, 10000 train / 5000 eval
points, batch 64, codes with std < 0.05 pruned, majority-vote classifier."""

from __future__ import annotations

import numpy as np

from ssljax.data.dsprites import as_random_state
from ssljax.evaluation.disentanglement.common import check_positive
from ssljax.evaluation.disentanglement.sampling import RepresentationFn, grouped_samples, represent


def _factor_vae_votes(
    data,
    representation_fn,
    batch_size,
    num_points,
    random_state,
    global_variances,
    active,
    rep_batch,
) -> np.ndarray:
    """Votes ``[num_factors, num_active]``: (factor held fixed, active code of least
    normalised variance) over ``num_points`` batches."""
    votes = np.zeros((data.num_factors, int(active.sum())), np.int64)
    for group in grouped_samples(num_points, batch_size, rep_batch):
        observations, fixed = [], []
        for _ in range(group):
            k = random_state.randint(data.num_factors)
            factors = data.sample_factors(batch_size, random_state)
            factors[:, k] = factors[0, k]
            observations.append(data.sample_observations_from_factors(factors, random_state))
            fixed.append(k)
        codes = represent(representation_fn, np.concatenate(observations), rep_batch)
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
    check_positive(
        batch_size=batch_size,
        num_train=num_train,
        num_eval=num_eval,
        num_variance_estimate=num_variance_estimate,
    )
    random_state = as_random_state(random_state)
    observations = data.sample_observations(num_variance_estimate, random_state)
    global_variances = np.var(
        represent(representation_fn, observations, representation_batch_size), axis=0, ddof=1
    )
    active = np.sqrt(global_variances) >= prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    train_votes = _factor_vae_votes(
        data,
        representation_fn,
        batch_size,
        num_train,
        random_state,
        global_variances,
        active,
        representation_batch_size,
    )
    classifier = np.argmax(train_votes, axis=0)
    columns = np.arange(train_votes.shape[1])
    train_accuracy = train_votes[classifier, columns].sum() / train_votes.sum()
    eval_votes = _factor_vae_votes(
        data,
        representation_fn,
        batch_size,
        num_eval,
        random_state,
        global_variances,
        active,
        representation_batch_size,
    )
    eval_accuracy = eval_votes[classifier, columns].sum() / eval_votes.sum()
    return {
        "train_accuracy": float(train_accuracy),
        "eval_accuracy": float(eval_accuracy),
        "num_active_dims": int(active.sum()),
    }
