"""Relative patch location on CIFAR-10 at native resolution: 12x12 patches, ResNet-18.

Doersch et al. 2015: a centre patch and one of its 8 neighbours (8-way softmax), patches of
96 pixels with gaps of 48 (half a patch) and jitter of up to 7 pixels (~7%), each patch
through the same encoder up to fc6 (4096), fc6 outputs concatenated into fc7 (4096) and fc8.
Against chromatic aberration they project out the green-magenta axis or drop 2 of the 3
colour channels, replacing them by Gaussian noise of ~1/100 of the kept channel's std; we
drop channels in every patch.

Here, on 32x32 images and with the same ratios: 12x12 patches, a 6-pixel gap, +-1 pixel
jitter (a pair spans at most 31 pixels), ResNet-18 (CIFAR stem) as the patch encoder, SGD
momentum 0.9 with a cosine schedule from 0.01, weight decay 5e-4, batch 256, 200 epochs (the
optimiser settings are ours). The probe reads full-colour whole images, while training sees
one colour channel per patch: a shift the probe must bridge (set objective.color_prob < 1 to
train on some full-colour patches).

Launch:
  python -m ssljax.train --config configs/relative_patch_location_cifar10.py --workdir runs/rpl_cifar10
  python -m ssljax.linear_eval --workdir runs/rpl_cifar10

Expected: not measured here (accelerator-sized). Doersch et al. report PASCAL VOC detection,
no CIFAR-10 number. Seed 002 (Kolesnikov et al. 2019, ImageNet linear probe): relative patch
location with ResNet50 v1 4x 46.8% (8x 50.5%), RevNet50 4x 40.6%.
"""

from configs import common, methods


def get_config():
    c = common.cifar10_resnet18(common.get_config())
    c.batch_size = 256
    c.total_steps = 39_100  # 200 epochs of 50,000 images at batch 256
    methods.relative_patch_location(c, patch_size=12, gap=6, jitter=1, color_mode="drop",
                                    color_prob=1.0, noise_fraction=0.01)
    methods.sgd(c, 0.01, weight_decay=5e-4, warmup_steps=500)
    c.checkpoint_every_steps = 5000
    c.log_every_steps = 100
    c.eval.layer = "block3"
    c.eval.grid = 2
    return c
