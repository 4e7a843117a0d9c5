"""Deterministic autoencoder on dSprites through the 10 latent means (no KL term).

Same encoder, decoder and optimiser as configs/vae_dsprites.py (Locatello et al. 2019); the
decoder reconstructs from the posterior means with a Bernoulli likelihood, so nothing pushes
the code towards N(0, I) or independence: the baseline the VAE family is compared with.

Launch:
  python -m ssljax.train --config configs/autoencoder_dsprites.py --workdir runs/ae_dsprites
  python -m ssljax.evaluate_disentanglement --workdir runs/ae_dsprites

Paper settings: architecture and optimiser of Locatello et al. (batch 64, Adam 1e-4); they do
not train a plain autoencoder (our baseline).

Expected: the best reconstructions of the family and no preference for axis-aligned factors.
"""

from configs import methods, vae_dsprites


def get_config():
    return methods.autoencoder(vae_dsprites.dsprites_base())
