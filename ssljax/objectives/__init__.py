"""Objectives: pure loss functions of arrays, and the typed objectives that wire them to
networks and views, selected by name (``build(config.objective)``).

Importing this package imports neither TensorFlow nor TFDS.
"""

from ssljax.objectives.base import (
    DatasetFacts,
    LossAux,
    LossContext,
    Objective,
    Outputs,
    ParamGroup,
    Run,
    UpdateContext,
)

# BiGAN / ALI (Donahue et al. 2017; Dumoulin et al. 2017); registers "bigan"
from ssljax.objectives.bigan import (
    BiGAN,
    bigan_discriminator_loss,
    bigan_generator_loss,
    total_discriminator_loss,
    total_generator_loss,
)
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
from ssljax.objectives.cpc import CPC, cpc_loss
from ssljax.objectives.dim import DIM

# energy-based models (Vincent 2011; Song et al. 2019; Du & Mordatch 2019); registers "energy"
from ssljax.objectives.energy import Energy
from ssljax.objectives.entropy import align_maxent_loss, knn_entropy

# registers "autoencoder", "vae", "beta_vae", "factor_vae" and "beta_tcvae"
from ssljax.objectives.latent import (
    VAE,
    Autoencoder,
    BetaTCVAE,
    BetaVAE,
    FactorVAE,
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
from ssljax.objectives.methods import (
    BYOL,
    AlignMaxEnt,
    BarlowTwins,
    BinaryContrastive,
    InstanceDiscrimination,
    MoCo,
    SimSiam,
    VICReg,
)

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

# iGPT (Chen et al. 2020); registers "pixel_autoregressive" and "pixel_masked"
from ssljax.objectives.pixels import (
    PixelAutoregressive,
    PixelMasked,
    bert_mask,
    masked_pixel_loss,
    next_pixel_loss,
    quantize_pixels,
)

# registers "rotation", "jigsaw" and "relative_patch_location"
from ssljax.objectives.pretext import (
    Jigsaw,
    RelativePatchLocation,
    Rotation,
    per_class_accuracy,
    pretext_classification_loss,
)

# registers "inpainting", "colorization" and "denoising_autoencoder"
from ssljax.objectives.reconstruction import (
    Colorization,
    DenoisingAutoencoder,
    Inpainting,
    colorization_classification_loss,
    colorization_regression_loss,
    denoising_loss,
    discriminator_loss,
    generator_adversarial_loss,
    masked_l2_loss,
    rebalance_weights,
)
from ssljax.objectives.redundancy import barlow_twins_loss, vicreg_loss
from ssljax.objectives.registry import build, get, names, register, resolved
from ssljax.objectives.simclr import SimCLR

# word2vec (Mikolov et al. 2013a,b); registers "skip_gram" and "cbow"
from ssljax.objectives.word2vec import (
    CBOW,
    HuffmanTree,
    SkipGram,
    cbow_hidden,
    hierarchical_softmax_from_tables,
    hierarchical_softmax_loss,
    huffman_tree,
    negative_sampling_from_tables,
    negative_sampling_loss,
    skip_gram_negative_sampling,
    skip_gram_ns_from_tables,
    word_log_probabilities,
    word_probabilities,
)

__all__ = [
    "Energy",
    "BiGAN",
    "bigan_discriminator_loss",
    "bigan_generator_loss",
    "total_discriminator_loss",
    "total_generator_loss",
    "PixelAutoregressive",
    "PixelMasked",
    "bert_mask",
    "masked_pixel_loss",
    "next_pixel_loss",
    "quantize_pixels",
    "CBOW",
    "HuffmanTree",
    "SkipGram",
    "cbow_hidden",
    "hierarchical_softmax_from_tables",
    "hierarchical_softmax_loss",
    "huffman_tree",
    "negative_sampling_from_tables",
    "negative_sampling_loss",
    "skip_gram_negative_sampling",
    "skip_gram_ns_from_tables",
    "word_log_probabilities",
    "word_probabilities",
    "DatasetFacts",
    "LossAux",
    "LossContext",
    "Objective",
    "Outputs",
    "ParamGroup",
    "Run",
    "SimCLR",
    "MoCo",
    "BYOL",
    "SimSiam",
    "InstanceDiscrimination",
    "BinaryContrastive",
    "AlignMaxEnt",
    "BarlowTwins",
    "VICReg",
    "UpdateContext",
    "build",
    "resolved",
    "align_maxent_loss",
    "barlow_twins_loss",
    "cpc_loss",
    "binary_contrastive_loss",
    "Inpainting",
    "Colorization",
    "DenoisingAutoencoder",
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
    "CPC",
    "DIM",
    "Jigsaw",
    "RelativePatchLocation",
    "Rotation",
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
    "Autoencoder",
    "VAE",
    "BetaVAE",
    "FactorVAE",
    "BetaTCVAE",
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
