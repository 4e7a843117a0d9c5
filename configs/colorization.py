"""Colorization (Zhang et al. 2016, "Colorful Image Colorization"): from the lightness L
predict the ab colour channels as a distribution over quantised ab bins.

Objective defaults (the paper's): classification over the in-gamut bins of a 10-unit ab grid,
soft targets (5 nearest bins, Gaussian sigma 5), class rebalancing with lambda 0.5 from a
running bin distribution (momentum 0.99), targets at full resolution, no augmentation of the
input; ``objective.ab_loss='regression'`` is the L2 option on ab (which Zhang et al. found to
give desaturated colours). ``model.decoder``: resize-convolution stages from an encoder
feature map; there is no projector. AdamW without batch-size scaling.

Datasets (``--config configs/colorization.py:<dataset>``; default cifar10):

cifar10
  ResNet-18 (CIFAR stem), accelerator-sized. Zhang et al. predict at a quarter of the input
  resolution. Here: the 261 bins of the 10-unit ab grid that 8-bit sRGB colours reach (the
  paper: 313 in-gamut bins), the running bin distribution for rebalancing kept in the train
  state (the paper uses ImageNet's), targets at half resolution (16x16, target_stride 2), a
  two-stage decoder from block4 (4x4x512).

  The encoder sees the image with a = b = 0 as RGB (lightness only); linear evaluation feeds
  the full-colour images, so the probed encoder meets colour for the first time there (a
  shift the paper avoids by evaluating on grey inputs).

  Ours, not the paper's: ResNet-18 instead of AlexNet/VGG, CIFAR size, AdamW 1e-3, 100
  epochs; the probe reads block3 pooled to 2x2 (not tuned). Zhang et al. report ImageNet
  linear probes per AlexNet layer and PASCAL VOC transfer; no CIFAR-10 number exists.

    python -m ssljax.train --config configs/colorization.py:cifar10 --workdir runs/colorization_cifar10
    python -m ssljax.linear_eval --workdir runs/colorization_cifar10

  Expected: not measured here (accelerator-sized).
"""

import ml_collections

from ssljax import config_base

DATASETS = ("cifar10",)


def get_config(arg: str = "cifar10") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    c = config_base.base_config()

    # Method: a decoder instead of the projector.
    c.objective = config_base.objective("colorization")
    del c.model["projector"]

    if arg == "cifar10":
        config_base.cifar10_resnet18(c)
        c.batch_size = 256
        c.total_steps = 19_600  # 100 epochs of 50,000 images at batch 256
        c.objective.target_stride = 2  # targets at 16x16
        c.model.decoder = ml_collections.ConfigDict(
            dict(
                widths=(256, 128),
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
    return c
