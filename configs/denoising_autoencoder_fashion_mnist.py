"""Denoising autoencoder on Fashion-MNIST with the demo's ConvNet (CPU-sized).

Vincent et al. 2008/2010: corrupt the input, reconstruct the clean image with an L2 loss.
Here: masking noise, each pixel zeroed with probability 0.5 (Vincent et al. zeroed 25% of
MNIST's pixels; ``objective.noise='gaussian'`` gives additive noise instead), the demo's
ConvNet (configs/simclr_fashion_mnist.py) as encoder and the same decoder as
configs/inpainting_fashion_mnist.py (a 7x7 convolution, then two x2 resize-convolution
stages from block4 back to 28x28, sigmoid output). The decoder reads a 7x7x256 map, more
values than the image has, so weak corruption is solved without learning much: in 253-step
trials (probe block4 3x3, random encoder 0.8790) Gaussian noise of std 0.5 gave 0.8746 and
masking half the pixels 0.8845.

Launch:
  python -m ssljax.train --config configs/denoising_autoencoder_fashion_mnist.py --workdir runs/dae_fmnist
  python -m ssljax.linear_eval --workdir runs/dae_fmnist

Expected: the README's comparison tables: 0.8837 linear top-1 at 2 minutes (254 steps),
0.8915 / kNN 0.7872 at 10 minutes (1268 steps), against the random encoder's 0.8790 / 0.7801.
"""

from configs import methods, simclr_fashion_mnist


def get_config():
    c = simclr_fashion_mnist.get_config()
    methods.denoising_autoencoder(
        c, methods.decoder((32, 32, 16), upsample=(1, 2, 2), feature_layer="block4"),
        noise="masking", drop_prob=0.5, learning_rate=1e-3, weight_decay=0.0,
        warmup_steps=50)
    return c
