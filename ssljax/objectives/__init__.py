"""Objectives: pure loss functions of embeddings, and the registry that selects them by name."""

from ssljax.objectives.bootstrap import byol_loss, cosine_ema_momentum, ema_update, simsiam_loss
from ssljax.objectives.contrastive import (
    binary_contrastive_loss,
    contrastive_accuracy,
    enqueue,
    instance_discrimination_loss,
    l2_normalize,
    moco_loss,
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

__all__ = [
    "Objective",
    "align_maxent_loss",
    "barlow_twins_loss",
    "binary_contrastive_loss",
    "byol_loss",
    "contrastive_accuracy",
    "cosine_ema_momentum",
    "ema_update",
    "enqueue",
    "get",
    "instance_discrimination_loss",
    "knn_entropy",
    "l2_normalize",
    "moco_loss",
    "names",
    "register",
    "simclr_logits_and_labels",
    "simclr_loss",
    "simsiam_loss",
    "update_memory_bank",
    "vicreg_loss",
]
