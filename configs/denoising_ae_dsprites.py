"""Denoising autoencoder on dSprites through the 10 latent means (Vincent et al. 2008).

Each input pixel is zeroed with probability 0.25 (masking noise, as Vincent et al. for binary
MNIST); the decoder reconstructs the clean image from the posterior means. Same model and
optimiser as configs/autoencoder_dsprites.py (Locatello et al. 2019).

Launch:
  python -m ssljax.train --config configs/denoising_ae_dsprites.py --workdir runs/dae_dsprites
  python -m ssljax.evaluate_disentanglement --workdir runs/dae_dsprites

Paper settings: Vincent et al. 2008 use 25% masking noise on MNIST with one hidden layer; the
architecture and optimiser here are Locatello et al.'s (our combination).

Expected: reconstructions slightly worse than the plain autoencoder's.
"""

from configs import methods, vae_dsprites


def get_config():
    return methods.denoising_ae(vae_dsprites.dsprites_base(), noise="masking", drop_prob=0.25)
