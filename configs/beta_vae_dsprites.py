"""beta-VAE on dSprites (Higgins et al. 2017) with Locatello et al. 2019's settings.

Same model and optimiser as configs/vae_dsprites.py; the KL term is weighted by beta = 4
(``--config.objective.beta=16`` for a stronger bottleneck). ``beta_vae`` is the ``vae`` record
under its own name (``ssljax/objectives/latent.py``).

Launch:
  python -m ssljax.train --config configs/beta_vae_dsprites.py --workdir runs/beta_vae_dsprites
  python -m ssljax.evaluate_disentanglement --workdir runs/beta_vae_dsprites

Paper settings: Locatello et al. sweep beta in {1, 2, 4, 6, 8, 16} (50 seeds each), batch 64,
Adam 1e-4, 300,000 steps; Higgins et al. report their dSprites results with beta = 4
(a fully connected encoder there).

Expected: larger beta trades reconstruction for a smaller KL and fewer active latents; see the
README section "Latent-variable models and disentanglement" for our short-budget table.
"""

from configs import methods, vae_dsprites


def get_config():
    return methods.vae(vae_dsprites.dsprites_base(), beta=4.0, name="beta_vae")
