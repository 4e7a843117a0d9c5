"""Deterministic autoencoder through the latent means (no KL term).

Objective defaults: Bernoulli likelihood (``objective.likelihood='gaussian'`` with
``gaussian_std`` the alternative).

Datasets (``--config configs/autoencoder.py:<dataset>``; default dsprites):

dsprites
  Same encoder, decoder and optimiser as configs/vae.py:dsprites (Locatello et al. 2019); the
  decoder reconstructs from the posterior means with a Bernoulli likelihood, so nothing pushes
  the code towards N(0, I) or independence: the baseline the VAE family is compared with.

    python -m ssljax.train --config configs/autoencoder.py:dsprites --workdir runs/ae_dsprites
    python -m ssljax.evaluate_disentanglement --workdir runs/ae_dsprites

  Paper settings: architecture and optimiser of Locatello et al. (batch 64, Adam 1e-4); they
  do not train a plain autoencoder (our baseline).

  Expected: the best reconstructions of the family and no preference for axis-aligned factors.
"""

import ml_collections

from ssljax import config_base

DATASETS = ("dsprites",)


def get_config(arg: str = "dsprites") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    c = config_base.base_config()

    c.objective = config_base.objective("autoencoder")

    if arg == "dsprites":
        config_base.dsprites_locatello(c)
    return c
