"""beta-VAE (Higgins et al. 2017): the VAE loss with the KL term weighted by beta.

``beta_vae`` is the ``vae`` objective under its own name (``ssljax/objectives/latent.py``);
objective defaults: beta 1 (the plain VAE), Bernoulli likelihood.

Datasets (``--config configs/beta_vae.py:<dataset>``; default dsprites):

dsprites
  Locatello et al. 2019's settings. Same model and optimiser as configs/vae.py:dsprites; the
  KL term is weighted by beta = 4 (``--config.objective.beta=16`` for a stronger bottleneck).

    python -m ssljax.train --config configs/beta_vae.py:dsprites --workdir runs/beta_vae_dsprites
    python -m ssljax.evaluate_disentanglement --workdir runs/beta_vae_dsprites

  Paper settings: Locatello et al. sweep beta in {1, 2, 4, 6, 8, 16} (50 seeds each), batch
  64, Adam 1e-4, 300,000 steps; Higgins et al. report their dSprites results with beta = 4
  (a fully connected encoder there).

  Expected: larger beta trades reconstruction for a smaller KL and fewer active latents; see
  docs/disentanglement_metrics.md, "Models, the study script, and measured results", for our
  short-budget tables.
"""

import ml_collections

from ssljax import config_base

DATASETS = ("dsprites",)


def get_config(arg: str = "dsprites") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    c = config_base.base_config()

    c.objective = config_base.objective("beta_vae")

    if arg == "dsprites":
        config_base.dsprites_locatello(c)
        c.objective.beta = 4.0
    return c
