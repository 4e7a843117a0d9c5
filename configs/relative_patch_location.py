"""Context prediction (Doersch et al. 2015): which of its 8 neighbours a patch is.

Objective defaults (the paper's): a centre patch and one of its 8 neighbours with a gap and
jitter between them, colour dropping in every patch (2 of 3 channels replaced by noise of
1/100 the kept channel's std) against chromatic aberration, no per-patch normalisation, the
encoder's BatchNorm statistics from a quarter of the batch's whole images (ours);
``patch_size``, ``gap`` and ``jitter`` have no default. ``model.classifier``: per-patch fc6
(``crop_dim``), the two vectors concatenated (centre first) into fc7 (``hidden_dims``) and
the 8-way fc8; there is no projector.

Datasets (``--config configs/relative_patch_location.py:<dataset>``; default fashion_mnist):

fashion_mnist
  Native 28x28 resolution: 10x10 patches (CPU). No upsampling: a centre patch and one of its
  8 neighbours, 10x10 pixels each with a 4-pixel gap and a +-2 pixel jitter of the neighbour
  per axis, need 2 x 10 + 4 + 2 = 26 <= 28 pixels; the centre is placed uniformly where both
  patches fit. Doersch et al. use 96-pixel patches with 48-pixel gaps and up to 7 pixels of
  jitter; the gap here is 0.4 of a patch. Each patch goes through the demo's ConvNet (shared
  weights) and a per-patch Dense(256) (fc6), the two vectors, concatenated (centre first),
  through Dense(512) (fc7) and the 8-way classifier. Grayscale images: no chromatic
  aberration to counter. Batch 128 pairs; SGD with momentum 0.9, learning rate 0.1, weight
  decay 5e-4 (our settings). The encoder's BatchNorm statistics come from 32 whole images per
  step (objective.image_stats_fraction 0.25), not from the patches: the probe runs the
  encoder on whole images.

  Linear probe: the plain encoder on whole 28x28 images, block4 pooled to 3x3 (2,304-d), the
  demo's probe.

    python -m ssljax.train --config configs/relative_patch_location.py:fashion_mnist --workdir runs/rpl_fmnist
    python -m ssljax.linear_eval --workdir runs/rpl_fmnist

  Expected: see docs/pretext_tasks.md, "All six tasks on Fashion-MNIST: configs, paper
  numbers, measured" (measured numbers there).

cifar10
  Native resolution: 12x12 patches, ResNet-18. Doersch et al. 2015: a centre patch and one of
  its 8 neighbours (8-way softmax), patches of 96 pixels with gaps of 48 (half a patch) and
  jitter of up to 7 pixels (~7%), each patch through the same encoder up to fc6 (4096), fc6
  outputs concatenated into fc7 (4096) and fc8. Against chromatic aberration they project out
  the green-magenta axis or drop 2 of the 3 colour channels, replacing them by Gaussian noise
  of ~1/100 of the kept channel's std; we drop channels in every patch.

  Here, on 32x32 images and with the same ratios: 12x12 patches, a 6-pixel gap, +-1 pixel
  jitter (a pair spans at most 31 pixels), ResNet-18 (CIFAR stem) as the patch encoder, SGD
  momentum 0.9 with a cosine schedule from 0.01, weight decay 5e-4, batch 256, 200 epochs (the
  optimiser settings are ours). The probe reads full-colour whole images, while training sees
  one colour channel per patch: a shift the probe must bridge (set objective.color_prob < 1
  to train on some full-colour patches).

    python -m ssljax.train --config configs/relative_patch_location.py:cifar10 --workdir runs/rpl_cifar10
    python -m ssljax.linear_eval --workdir runs/rpl_cifar10

  Expected: not measured here (accelerator-sized). Doersch et al. report PASCAL VOC detection,
  no CIFAR-10 number. Kolesnikov et al. 2019 (ImageNet linear probe): relative patch
  location with ResNet50 v1 4x 46.8% (8x 50.5%), RevNet50 4x 40.6%.
"""

import ml_collections

from ssljax import config_base

DATASETS = ("fashion_mnist", "cifar10")


def get_config(arg: str = "fashion_mnist") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    c = config_base.base_config()

    # Method: per-patch fc6, fc7 over the pair, the 8-way fc8; no projector.
    c.objective = config_base.objective("relative_patch_location")
    del c.model["projector"]

    if arg == "fashion_mnist":
        config_base.demo_convnet(c)
        c.batch_size = 128  # centre/neighbour pairs
        c.total_steps = 2000
        c.objective.update(
            dict(
                patch_size=10,
                gap=4,
                jitter=2,
                color_mode="none",
                color_prob=0.0,
                noise_fraction=0.0,
            )
        )
        c.model.classifier = ml_collections.ConfigDict(
            dict(hidden_dims=(512,), use_bn=True, crop_dim=256)
        )
        c.model.conv_batch_chunk = 0
        config_base.sgd(c, 0.1, weight_decay=5e-4, warmup_steps=50)
    elif arg == "cifar10":
        config_base.cifar10_resnet18(c)
        c.batch_size = 256
        c.total_steps = 39_100  # 200 epochs of 50,000 images at batch 256
        c.objective.update(dict(patch_size=12, gap=6, jitter=1))
        c.model.classifier = ml_collections.ConfigDict(
            dict(hidden_dims=(4096,), use_bn=True, crop_dim=4096)
        )
        config_base.sgd(c, 0.01, weight_decay=5e-4, warmup_steps=500)
        c.checkpoint_every_steps = 5000
        c.log_every_steps = 100
        c.eval.layer = "block3"
        c.eval.grid = 2
    return c
