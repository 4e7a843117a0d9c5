"""beta-TCVAE on dSprites (Chen et al. 2018) with Locatello et al. 2019's settings.

VAE loss + (beta - 1) * TC, TC by minibatch-weighted sampling over the global batch's
posteriors (alpha = gamma = 1 in Chen et al.'s decomposition, as disentanglement_lib).

Launch:
  python -m ssljax.train --config configs/beta_tcvae_dsprites.py --workdir runs/beta_tcvae_dsprites
  python -m ssljax.evaluate_disentanglement --workdir runs/beta_tcvae_dsprites

Paper settings: Locatello et al. sweep beta in {1, 2, 4, 6, 8, 10} (we default to 6, Chen et
al.'s dSprites choice), batch 64, Adam 1e-4, 300,000 steps.

Expected: the logged ``total_correlation`` falls well below the plain VAE's; see the README
section "Latent-variable models and disentanglement".
"""

from configs import methods, vae_dsprites


def get_config():
    return methods.beta_tcvae(vae_dsprites.dsprites_base(), beta=6.0)
