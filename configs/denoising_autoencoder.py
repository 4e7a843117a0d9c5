"""Denoising autoencoder (Vincent et al. 2008/2010): corrupt the input, reconstruct the clean
image.

Objective defaults: additive Gaussian noise of standard deviation 0.3 (clipped to [0, 1]);
``objective.noise='masking'`` zeroes each pixel with probability ``drop_prob`` (0.25)
instead; corrupted/clean pixel weights 1/1 (plain MSE; other values give Vincent et al.'s
'emphasised' variant); no augmentation of the input. On fashion_mnist and cifar10 a
``model.decoder`` reconstructs the image from an encoder feature map (L2 loss, AdamW); on
dsprites the latent-variable model decodes the posterior means (Bernoulli likelihood).

Datasets (``--config configs/denoising_autoencoder.py:<dataset>``; default fashion_mnist):

fashion_mnist
  The demo's ConvNet (CPU-sized). Masking noise, each pixel zeroed with probability 0.5
  (Vincent et al. zeroed 25% of MNIST's pixels; ``objective.noise='gaussian'`` gives additive
  noise instead), the demo's ConvNet (configs/simclr.py:fashion_mnist) as encoder and the same
  decoder as configs/inpainting.py:fashion_mnist (a 7x7 convolution, then two x2
  resize-convolution stages from block4 back to 28x28, sigmoid output). The decoder reads a
  7x7x256 map, more values than the image has, so weak corruption is solved without learning
  much: in 253-step trials (probe block4 3x3, random encoder 0.8790) Gaussian noise of std 0.5
  gave 0.8746 and masking half the pixels 0.8845.

    python -m ssljax.train --config configs/denoising_autoencoder.py:fashion_mnist --workdir runs/dae_fmnist
    python -m ssljax.linear_eval --workdir runs/dae_fmnist

  Expected: the comparison tables (experiments/compare_methods.md; the 10-minute one also in
  the README, "Results"): 0.8837 linear top-1 at 2 minutes (254 steps), 0.8915 / kNN 0.7872 at
  10 minutes (1268 steps), against the random encoder's 0.8790 / 0.7801.

cifar10
  ResNet-18 (CIFAR stem), accelerator-sized. Additive Gaussian noise of standard deviation 0.3
  (clipped to [0, 1]) and a three-stage resize-convolution decoder from block4 (4x4x512) back
  to 32x32x3 (sigmoid output); AdamW at 1e-3, 100 epochs; the probe reads block3 pooled to
  2x2 (not tuned).

  Paper reference: the Deep InfoMax table (Hjelm et al. 2019, Table 1) lists a plain (not
  denoising) autoencoder on CIFAR-10 at 62.19% (conv features), 55.78% (fc, 1024-d) and 54.47%
  (64-d code) with their encoder; Vincent et al. report no CIFAR-10 number.

    python -m ssljax.train --config configs/denoising_autoencoder.py:cifar10 --workdir runs/dae_cifar10
    python -m ssljax.linear_eval --workdir runs/dae_cifar10

  Expected: not measured here (accelerator-sized).

dsprites
  Through the 10 latent means of Locatello et al. 2019's model. Each input pixel is zeroed with
  probability 0.25 (masking noise, as Vincent et al. for binary MNIST); the decoder
  reconstructs the clean image from the posterior means. Same model and optimiser as
  configs/autoencoder.py:dsprites (Locatello et al. 2019).

    python -m ssljax.train --config configs/denoising_autoencoder.py:dsprites --workdir runs/dae_dsprites
    python -m ssljax.evaluate_disentanglement --workdir runs/dae_dsprites

  Paper settings: Vincent et al. 2008 use 25% masking noise on MNIST with one hidden layer;
  the architecture and optimiser here are Locatello et al.'s (our combination).

  Expected: reconstructions slightly worse than the plain autoencoder's.
"""

import ml_collections

from ssljax import config_base

DATASETS = ("fashion_mnist", "cifar10", "dsprites")


def get_config(arg: str = "fashion_mnist") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    c = config_base.base_config()

    c.objective = config_base.objective("denoising_autoencoder")

    if arg == "fashion_mnist":
        config_base.fashion_mnist_demo(c)
        c.objective.noise = "masking"
        c.objective.drop_prob = 0.5
        del c.model["projector"]
        c.model.decoder = ml_collections.ConfigDict(
            dict(
                widths=(32, 32, 16),
                upsample=(1, 2, 2),
                feature_layer="block4",
                channel_fc=False,
                kernel_size=3,
                norm="batch",
            )
        )
        config_base.adamw(c, 1e-3, weight_decay=0.0, warmup_steps=50)
    elif arg == "cifar10":
        config_base.cifar10_resnet18(c)
        c.batch_size = 256
        c.total_steps = 19_600  # 100 epochs of 50,000 images at batch 256
        del c.model["projector"]
        c.model.decoder = ml_collections.ConfigDict(
            dict(
                widths=(256, 128, 64),
                feature_layer="block4",
                channel_fc=False,
                kernel_size=3,
                norm="batch",
            )
        )
        config_base.adamw(c, 1e-3, weight_decay=0.0, warmup_steps=500)
        c.augment = config_base.augment_defaults(image_size=32)
        c.checkpoint_every_steps = 2000
        c.log_every_steps = 100
        c.eval.layer = "block3"
        c.eval.grid = 2
    elif arg == "dsprites":
        config_base.dsprites_locatello(c)
        c.objective.noise = "masking"
    return c
