"""Objectives: pure loss functions of embeddings, and the registry that selects them by name."""

from ssljax.objectives.bootstrap import byol_loss, cosine_ema_momentum, ema_update, simsiam_loss
from ssljax.objectives.contrastive import (
    binary_contrastive_loss,
    contrastive_accuracy,
    enqueue,
    first_visit_rows,
    instance_discrimination_loss,
    l2_normalize,
    masked_moco_loss,
    moco_loss,
    proximal_term,
    simclr_logits_and_labels,
    simclr_loss,
    update_memory_bank,
)
from ssljax.objectives.entropy import align_maxent_loss, knn_entropy
from ssljax.objectives.redundancy import barlow_twins_loss, vicreg_loss
from ssljax.objectives.registry import Objective, get, names, register
from ssljax.objectives import simclr as _simclr  # noqa: F401  (registers "simclr")
from ssljax.objectives import methods as _methods  # noqa: F401  (registers the two-view methods)
from ssljax.objectives.cpc import cpc_loss  # noqa: F401  (registers "cpc")
# registers "inpainting", "colorization" and "denoising_autoencoder"
from ssljax.objectives.reconstruction import (
    colorization_classification_loss,
    colorization_regression_loss,
    denoising_loss,
    discriminator_loss,
    generator_adversarial_loss,
    masked_l2_loss,
    rebalance_weights,
)
# registers "rotation", "jigsaw" and "relative_patch_location"
from ssljax.objectives.pretext import per_class_accuracy, pretext_classification_loss
# the mutual-information bounds of Poole et al. 2019; registers "dim" (Deep InfoMax)
from ssljax.objectives.mutual_information import (
    dv_bound,
    infonce_bound,
    interpolated_bound,
    js_bound,
    mine_bound,
    nwj_bound,
    smile_bound,
    tuba_bound,
)
from ssljax.objectives import dim as _dim  # noqa: F401  (registers "dim")
# registers "autoencoder", "denoising_ae", "vae", "beta_vae", "factor_vae" and "beta_tcvae"
from ssljax.objectives.latent import (
    bernoulli_log_likelihood,
    density_ratio_tc,
    gaussian_kl,
    gaussian_kl_standard,
    gaussian_log_likelihood,
    kl_decomposition,
    minibatch_log_densities,
    permute_dims,
    reparameterize,
    tc_discriminator_loss,
    total_correlation,
)

__all__ = [
    "Objective",
    "align_maxent_loss",
    "barlow_twins_loss",
    "binary_contrastive_loss",
    "colorization_classification_loss",
    "colorization_regression_loss",
    "denoising_loss",
    "discriminator_loss",
    "generator_adversarial_loss",
    "masked_l2_loss",
    "rebalance_weights",
    "byol_loss",
    "contrastive_accuracy",
    "cosine_ema_momentum",
    "ema_update",
    "enqueue",
    "get",
    "first_visit_rows",
    "instance_discrimination_loss",
    "masked_moco_loss",
    "knn_entropy",
    "l2_normalize",
    "moco_loss",
    "proximal_term",
    "names",
    "per_class_accuracy",
    "pretext_classification_loss",
    "register",
    "simclr_logits_and_labels",
    "simclr_loss",
    "simsiam_loss",
    "update_memory_bank",
    "vicreg_loss",
    "dv_bound",
    "infonce_bound",
    "interpolated_bound",
    "js_bound",
    "mine_bound",
    "nwj_bound",
    "smile_bound",
    "tuba_bound",
    "bernoulli_log_likelihood",
    "density_ratio_tc",
    "gaussian_kl",
    "gaussian_kl_standard",
    "gaussian_log_likelihood",
    "kl_decomposition",
    "minibatch_log_densities",
    "permute_dims",
    "reparameterize",
    "tc_discriminator_loss",
    "total_correlation",
]
