"""Denoising autoencoder on Fashion-MNIST with the demo's ConvNet (CPU-sized).

Vincent et al. 2008/2010: corrupt the input, reconstruct the clean image with an L2 loss.
Here: additive Gaussian noise of standard deviation 0.5 (clipped to [0, 1]), the demo's
ConvNet (configs/simclr_fashion_mnist.py) as encoder and the same decoder as
configs/inpainting_fashion_mnist.py (a 7x7 convolution, then two x2 resize-convolution
stages from block4 back to 28x28, sigmoid output). Vincent et al. used masking noise (25% of
the pixels zeroed) for MNIST; ``objective.noise='masking'`` gives it.

Launch:
  python -m ssljax.train --config configs/denoising_autoencoder_fashion_mnist.py --workdir runs/dae_fmnist
  python -m ssljax.linear_eval --workdir runs/dae_fmnist

Expected (2 CPU cores shared with other jobs, about 4 s/step): the 2-minute comparison run got
30 steps and 0.871 linear top-1 on block4 pooled to 3x3, below the random encoder's 0.879; a
60-step run was no better on block4 in a probe trained on 10,000 labels (README section
"Reconstruction pretext tasks"). Not tuned; longer runs were not measured.
"""

from configs import methods, simclr_fashion_mnist


def get_config():
    c = simclr_fashion_mnist.get_config()
    methods.denoising_autoencoder(
        c, methods.decoder((32, 32, 16), upsample=(1, 2, 2), feature_layer="block4"),
        noise="gaussian", noise_stddev=0.5, learning_rate=1e-3, weight_decay=0.0,
        warmup_steps=50)
    return c
