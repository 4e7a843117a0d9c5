"""beta-TCVAE (Chen et al. 2018): VAE loss + (beta - 1) * TC, the total correlation by
minibatch-weighted sampling over the global batch's posteriors (alpha = gamma = 1 in Chen et
al.'s decomposition, as disentanglement_lib).

Objective defaults: beta 6 (Chen et al.'s dSprites choice), Bernoulli likelihood.

Datasets (``--config configs/beta_tcvae.py:<dataset>``; default dsprites):

dsprites
  Locatello et al. 2019's settings (model and optimiser of configs/vae.py:dsprites).

    python -m ssljax.train --config configs/beta_tcvae.py:dsprites --workdir runs/beta_tcvae_dsprites
    python -m ssljax.evaluate_disentanglement --workdir runs/beta_tcvae_dsprites

  Paper settings: Locatello et al. sweep beta in {1, 2, 4, 6, 8, 10} (we default to 6, Chen et
  al.'s dSprites choice), batch 64, Adam 1e-4, 300,000 steps.

  Expected: the logged ``total_correlation`` falls well below the plain VAE's; see
  docs/disentanglement_metrics.md, "Models, the study script, and measured results".
"""

import ml_collections

from ssljax import config_base

DATASETS = ("dsprites",)


def get_config(arg: str = "dsprites") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    c = config_base.base_config()

    c.objective = config_base.objective("beta_tcvae")

    if arg == "dsprites":
        config_base.dsprites_locatello(c)
    return c
