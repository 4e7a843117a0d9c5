"""Energy-based models: gradient-based MCMC samplers, toy densities with exact energies and
scores, sample distances, and the score-matching and contrastive-divergence losses.

The typed objective that trains an energy network through the generic train step is
``energy`` (``ssljax.objectives.energy.Energy``); docs/energy.md describes the family.
"""

from ssljax.energy.losses import (
    DSM_WEIGHTINGS,
    contrastive_divergence_loss,
    denoising_score_matching_loss,
    score_matching_loss,
    sliced_score_matching_loss,
)
from ssljax.energy.samplers import (
    SAMPLERS,
    energy_and_grad,
    grad_energy,
    hmc,
    langevin,
    leapfrog,
    mala,
    mala_log_acceptance,
    sample,
)
from ssljax.energy.toy import (
    TOY_DENSITIES,
    ToyDensity,
    energy_distance,
    gaussian,
    gaussian_mixture,
    median_bandwidth,
    mmd,
    ring,
    toy_density,
)

__all__ = [
    "DSM_WEIGHTINGS",
    "SAMPLERS",
    "TOY_DENSITIES",
    "ToyDensity",
    "contrastive_divergence_loss",
    "denoising_score_matching_loss",
    "energy_and_grad",
    "energy_distance",
    "gaussian",
    "gaussian_mixture",
    "grad_energy",
    "hmc",
    "langevin",
    "leapfrog",
    "mala",
    "mala_log_acceptance",
    "median_bandwidth",
    "mmd",
    "ring",
    "sample",
    "score_matching_loss",
    "sliced_score_matching_loss",
    "toy_density",
]
