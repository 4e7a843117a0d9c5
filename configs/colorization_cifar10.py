"""Colorization on CIFAR-10 with ResNet-18 (CIFAR stem), accelerator-sized.

Zhang et al. 2016 ("Colorful Image Colorization"): from the lightness L predict the ab colour
channels as a distribution over quantised ab bins, trained with a cross entropy against soft
targets (5 nearest bins, Gaussian sigma 5) and class rebalancing (lambda 0.5) so rare,
saturated colours are not ignored; they predict at a quarter of the input resolution. Here:
the 261 bins of the 10-unit ab grid that 8-bit sRGB colours reach (the paper: 313 in-gamut
bins), the running bin distribution for rebalancing kept in the train state (the paper uses
ImageNet's), targets at half resolution (16x16, target_stride 2), a two-stage decoder from
block4 (4x4x512). ``objective.loss='regression'`` is the L2 option on ab (which Zhang et al.
found to give desaturated colours).

The encoder sees the image with a = b = 0 as RGB (lightness only); linear evaluation feeds the
full-colour images, so the probed encoder meets colour for the first time there (a shift the
paper avoids by evaluating on grey inputs).

Ours, not the paper's: ResNet-18 instead of AlexNet/VGG, CIFAR size, AdamW 1e-3, 100 epochs;
the probe reads block3 pooled to 2x2 (not tuned). Zhang et al. report ImageNet linear probes
per AlexNet layer and PASCAL VOC transfer; no CIFAR-10 number exists.

Launch:
  python -m ssljax.train --config configs/colorization_cifar10.py --workdir runs/colorization_cifar10
  python -m ssljax.linear_eval --workdir runs/colorization_cifar10

Expected: not measured here (accelerator-sized).
"""

from configs import common, methods


def get_config():
    c = common.cifar10_resnet18(common.get_config())
    c.batch_size = 256
    c.total_steps = 19_600  # 100 epochs of 50,000 images at batch 256
    methods.colorization(
        c, methods.decoder((256, 128), feature_layer="block4"),
        loss="classification", class_rebalance=True, rebalance_lambda=0.5, prior_momentum=0.99,
        target_stride=2, learning_rate=1e-3, weight_decay=0.0, warmup_steps=500)
    c.augment = common.augment_defaults(image_size=32)
    c.checkpoint_every_steps = 2000
    c.log_every_steps = 100
    c.eval.layer = "block3"
    c.eval.grid = 2
    return c
