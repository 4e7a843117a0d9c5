"""Objectives: pure loss functions of embeddings, and the registry that selects them by name."""

from ssljax.objectives.contrastive import (
    contrastive_accuracy,
    l2_normalize,
    simclr_logits_and_labels,
    simclr_loss,
)
from ssljax.objectives.registry import Objective, get, names, register
from ssljax.objectives import simclr as _simclr  # noqa: F401  (registers "simclr")

__all__ = [
    "Objective",
    "contrastive_accuracy",
    "get",
    "l2_normalize",
    "names",
    "register",
    "simclr_logits_and_labels",
    "simclr_loss",
]
