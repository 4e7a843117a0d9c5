"""FactorVAE on dSprites (Kim & Mnih 2018) with Locatello et al. 2019's settings.

VAE loss + gamma * TC, the total correlation estimated by a discriminator (6 x 1000 LeakyReLU)
that separates latent samples from their dimension-permuted copies; it is trained in the same
step (Adam 1e-4, beta1 0.5, beta2 0.9) and kept in ``TrainState.extra``.

Launch:
  python -m ssljax.train --config configs/factor_vae_dsprites.py --workdir runs/factor_vae_dsprites
  python -m ssljax.evaluate_disentanglement --workdir runs/factor_vae_dsprites

Paper settings: Locatello et al. sweep gamma in {10, 20, 30, 40, 50, 100} (we default to 30),
batch 64, VAE Adam 1e-4, 300,000 steps. Kim & Mnih use the same discriminator.

Expected: a TC estimate close to 0 and a discriminator near chance once the aggregate
posterior factorises; see the README section "Latent-variable models and disentanglement".
"""

from configs import methods, vae_dsprites


def get_config():
    return methods.factor_vae(vae_dsprites.dsprites_base(), gamma=30.0)
