"""Denoising autoencoder on CIFAR-10 with ResNet-18 (CIFAR stem), accelerator-sized.

Vincent et al. 2008/2010: corrupt, then reconstruct the clean image with an L2 loss. Here:
additive Gaussian noise of standard deviation 0.3 (clipped to [0, 1]) and a three-stage
resize-convolution decoder from block4 (4x4x512) back to 32x32x3 (sigmoid output); AdamW at
1e-3, 100 epochs; the probe reads block3 pooled to 2x2 (not tuned).

Paper reference: the Deep InfoMax table in seed 001 (Hjelm et al. 2019) lists a plain
(not denoising) autoencoder on CIFAR-10 at 62.19% (conv features), 55.78% (fc, 1024-d) and
54.47% (64-d code) with their encoder; Vincent et al. report no CIFAR-10 number.

Launch:
  python -m ssljax.train --config configs/denoising_autoencoder_cifar10.py --workdir runs/dae_cifar10
  python -m ssljax.linear_eval --workdir runs/dae_cifar10

Expected: not measured here (accelerator-sized).
"""

from configs import common, methods


def get_config():
    c = common.cifar10_resnet18(common.get_config())
    c.batch_size = 256
    c.total_steps = 19_600  # 100 epochs of 50,000 images at batch 256
    methods.denoising_autoencoder(
        c, methods.decoder((256, 128, 64), feature_layer="block4"),
        noise="gaussian", noise_stddev=0.3, learning_rate=1e-3, weight_decay=0.0,
        warmup_steps=500)
    c.augment = common.augment_defaults(image_size=32)
    c.checkpoint_every_steps = 2000
    c.log_every_steps = 100
    c.eval.layer = "block3"
    c.eval.grid = 2
    return c
