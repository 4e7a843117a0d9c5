"""FactorVAE (Kim & Mnih 2018): VAE loss + gamma * TC, the total correlation estimated by a
discriminator that separates latent samples from their dimension-permuted copies.

Objective defaults: gamma 30, a 6 x 1000 LeakyReLU discriminator trained in the same step with
Adam (lr 1e-4, beta1 0.5, beta2 0.9) and kept in the train state, Bernoulli likelihood.

Datasets (``--config configs/factor_vae.py:<dataset>``; default dsprites):

dsprites
  Locatello et al. 2019's settings (model and optimiser of configs/vae.py:dsprites).

    python -m ssljax.train --config configs/factor_vae.py:dsprites --workdir runs/factor_vae_dsprites
    python -m ssljax.evaluate_disentanglement --workdir runs/factor_vae_dsprites

  Paper settings: Locatello et al. sweep gamma in {10, 20, 30, 40, 50, 100} (we default to
  30), batch 64, VAE Adam 1e-4, 300,000 steps. Kim & Mnih use the same discriminator.

  Expected: a TC estimate close to 0 and a discriminator near chance once the aggregate
  posterior factorises; see docs/disentanglement_metrics.md, "Models, the study script, and
  measured results".
"""

import ml_collections

from ssljax import config_base

DATASETS = ("dsprites",)


def get_config(arg: str = "dsprites") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    c = config_base.base_config()

    c.objective = config_base.objective("factor_vae")

    if arg == "dsprites":
        config_base.dsprites_locatello(c)
    return c
