"""CPC v2 (Henaff et al. 2020): predict the embeddings of patches further down the grid.

Every image is cut into a grid of overlapping patches; a LayerNorm ConvNet encodes each patch
(CPC v2 replaced BatchNorm by LayerNorm: BatchNorm lets CPC cheat across patches), a
masked-convolution context network reads the patch grid row-causally, and one linear critic
per offset predicts the patches 1..``prediction_steps`` rows ahead in all four directions,
each prediction scored against every patch of the global batch (InfoNCE). Adam(W).
Objective defaults: 4 directions; ``prediction_steps`` and the per-patch augmentation
probabilities (``patch_flip_prob``, ``patch_color_drop_prob``) have none.

Datasets (``--config configs/cpc.py:<dataset>``; default fashion_mnist):

fashion_mnist
  8x8 patches at stride 4 (a 6x6 grid), LayerNorm ConvNet (CPU-sized). Each 28x28 image is
  augmented once (mild crop, flip, brightness/contrast), cut into a 6x6 grid of overlapping
  8x8 patches, and every patch goes through a small ConvNet with LayerNorm. A 2-block
  row-causal context network and one linear critic per offset predict the patches 1..3 rows
  ahead in all four directions; each prediction must pick its target among all 36 x batch
  patches of the batch.

    python -m ssljax.train --config configs/cpc.py:fashion_mnist --workdir runs/cpc_fmnist
    python -m ssljax.linear_eval --workdir runs/cpc_fmnist

  Expected (2 CPU cores: 2000 steps at about 3.4 step/s, 10 minutes of pretraining; final CPC
  loss about 4.7 against log(32 x 36) = 7.05 at chance, prediction accuracy about 8%):
  linear-probe top-1 about 0.90 (kNN 0.83) on the Fashion-MNIST test set from the full 6x6
  grid of 64-d patch embeddings (2304-d), against 0.87 for the same probe on the randomly
  initialised encoder and 0.85 on raw pixels. Coarser probes of the same run: 'grid' pooled to
  3x3 0.88, 2x2 0.86, 'pooled' (64-d) 0.79. Per-patch flips (objective.patch_flip_prob=0.5)
  gave 0.89.

cifar10
  8x8 patches at stride 4 (a 7x7 grid), LayerNorm ConvNet, 4 directions. Each 32x32 image is
  augmented once (crop, flip, colour jitter), cut into a 7x7 grid of overlapping 8x8 patches,
  and each patch is flipped (p = 0.5) and colour-dropped (one of the three channels kept,
  p = 0.5) independently, CPC v2's patch augmentation. A LayerNorm ConvNet encodes every patch
  to 256-d; a 3-block row-causal context network (512 channels) and linear critics predict
  1..3 rows ahead in all four directions, every prediction scored against all 49 x 256
  patches of the global batch.

  Deviations from Henaff et al. 2020, who report ImageNet results only: the encoder is our
  plain ConvNet (no LayerNorm ResNet exists in ssljax), the images are CIFAR-sized, and colour
  dropping is applied to half the patches (CPC v2 drops colours in every patch; keeping full
  colour in half of them keeps the full-colour evaluation images in distribution). Optimiser:
  AdamW at CPC v1's Adam learning rate 2e-4 (not scaled with the batch), warmup then cosine
  decay.

    python -m ssljax.train --config configs/cpc.py:cifar10 --workdir runs/cpc_cifar10
    python -m ssljax.linear_eval --workdir runs/cpc_cifar10

  Expected: not measured here (accelerator-sized: 50k images x 49 patches per epoch). Neither
  van den Oord et al. 2018 nor Henaff et al. 2020 report a CPC number on CIFAR-10; as an
  orientation, Hjelm et al. 2019 (Table 1) report 75.2% linear top-1 from conv features on
  CIFAR-10 for DIM(L), a local InfoNCE objective close to CPC.

imagenet2012
  64x64 patches at stride 32 on 256x256 crops (7x7 grid). Henaff et al. 2020 (CPC v2): a 7x7
  grid of overlapping 64x64 patches, every patch encoded by a ResNet-161 variant with LayerNorm
  instead of BatchNorm, a PixelCNN-style context network, linear predictions of the rows below
  in several directions, patch augmentation (colour dropping, flips) and Adam. Reported linear
  top-1 (Henaff et al. 2020): 71.5% with ResNet-161 (305M parameters), 63.8% with ResNet-50.

  Deviation, stated plainly: ssljax has no LayerNorm ResNet and BatchNorm lets CPC cheat across
  patches (CPC v2's own finding), so the patch encoder is our plain ConvNet with LayerNorm and
  ResNet-50-like widths (64 -> 1024 channels, 64x64 -> 4x4, a 1024-d patch embedding as in CPC
  v1). The context network has 5 row-causal residual blocks (1024 channels; it sees the whole
  7-row grid) and predicts up to 5 rows ahead (CPC v1's setting) in all four directions.
  Colour dropping is applied to half the patches (CPC v2: every patch), so full-colour
  evaluation images stay in distribution. Optimiser: AdamW, lr 2e-4, batch 512 (CPC v1: 32
  GPUs x 16 images). Negatives are every patch of the global batch: each device holds a
  [local predictions x (49 x 512)] logit matrix per direction, so spread the batch over many
  devices. Evaluation images are 224x224 centre crops (a 6x6 grid), probed on 'pooled'.
  Needs the TFDS imagenet2012 data prepared under dataset.data_dir (manual download).

    # on TPU/GPU hosts
    python -m ssljax.train --config configs/cpc.py:imagenet2012 --workdir gs://.../cpc_in
    python -m ssljax.linear_eval --workdir gs://.../cpc_in

  Expected: not measured; with this plain ConvNet expect clearly less than CPC v2's ResNet
  numbers (63.8% ResNet-50, 71.5% ResNet-161 linear top-1).
"""

import ml_collections

from ssljax import config_base

DATASETS = ("fashion_mnist", "cifar10", "imagenet2012")


def get_config(arg: str = "fashion_mnist") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    c = config_base.base_config()

    # Method: CPC's objective, a LayerNorm patch encoder and a context network, no projector.
    c.objective = config_base.objective("cpc")
    c.model.encoder = "convnet"
    c.model.encoder_kwargs.norm = "layer"
    # Dozens of patches per image already make small convolutions: one call is fastest.
    c.model.conv_batch_chunk = 0
    del c.model["projector"]

    if arg == "fashion_mnist":
        c.dataset.name = "fashion_mnist"
        c.batch_size = 32
        c.total_steps = 2000
        # Offsets k = 1..3 on the 6x6 grid; grayscale images: no colour to drop.
        c.objective.update(dict(prediction_steps=3, patch_flip_prob=0.0, patch_color_drop_prob=0.0))
        # Per 8x8 patch: 8x8x16 -> 4x4x32 -> 2x2x64, mean-pooled to a 64-d patch embedding.
        c.model.encoder_kwargs.widths = (16, 32, 64)
        c.model.encoder_kwargs.strides = (1, 2, 2)
        c.model.patches = ml_collections.ConfigDict(dict(size=8, stride=4))
        c.model.context = ml_collections.ConfigDict(
            dict(width=64, num_blocks=2, kernel_size=(2, 3))
        )
        config_base.adamw(c, 1e-3, weight_decay=1e-4, warmup_steps=100)
        # Mild augmentation of the whole image (CPC's signal comes from the patch grid itself).
        c.augment = config_base.augment_defaults(image_size=28)
        c.augment.crop_scale = (0.5, 1.0)
        c.augment.color_jitter_strength = 0.4
        c.augment.grayscale_prob = 0.0
        c.log_every_steps = 50
        c.checkpoint_every_steps = 500
        # Probe the whole 6x6 grid of patch embeddings (grid=6 keeps every patch: 2304-d).
        c.eval.layer = "grid"
        c.eval.grid = 6
    elif arg == "cifar10":
        c.dataset.name = "cifar10"
        c.batch_size = 256
        c.total_steps = 97_600  # 500 epochs of 50,000 images at batch 256
        c.objective.update(dict(prediction_steps=3, patch_flip_prob=0.5, patch_color_drop_prob=0.5))
        # Per 8x8 patch: 8x8x64 -> 8x8x128 -> 4x4x256 -> 2x2x256 -> 256-d.
        c.model.encoder_kwargs.widths = (64, 128, 256, 256)
        c.model.encoder_kwargs.strides = (1, 1, 2, 2)
        c.model.patches = ml_collections.ConfigDict(dict(size=8, stride=4))
        c.model.context = ml_collections.ConfigDict(
            dict(width=512, num_blocks=3, kernel_size=(2, 3))
        )
        config_base.adamw(c, 2e-4, weight_decay=0.0, warmup_steps=1000)
        c.augment = config_base.augment_defaults(image_size=32)
        c.augment.crop_scale = (0.3, 1.0)
        c.augment.color_jitter_strength = 0.5
        c.augment.grayscale_prob = 0.0  # colour dropping happens per patch instead
        c.checkpoint_every_steps = 5000
        c.log_every_steps = 100
        c.eval.layer = "grid"
        c.eval.grid = 2
    elif arg == "imagenet2012":
        c.dataset.name = "imagenet2012"
        c.batch_size = 512
        c.total_steps = 250_200  # 100 epochs of 1,281,167 images at batch 512
        c.dtype = "bfloat16"
        c.objective.update(dict(prediction_steps=5, patch_flip_prob=0.5, patch_color_drop_prob=0.5))
        # Per 64x64 patch: 32x32x64 -> 16x16x128 -> 8x8x256 -> 4x4x512 -> 4x4x1024 -> 1024-d.
        c.model.encoder_kwargs.widths = (64, 128, 256, 512, 1024)
        c.model.encoder_kwargs.strides = (2, 2, 2, 2, 1)
        c.model.patches = ml_collections.ConfigDict(dict(size=64, stride=32))
        c.model.context = ml_collections.ConfigDict(
            dict(width=1024, num_blocks=5, kernel_size=(2, 3))
        )
        config_base.adamw(c, 2e-4, weight_decay=0.0, warmup_steps=2500)
        c.augment = config_base.augment_defaults(image_size=256)
        c.augment.output_size = (256, 256)
        c.augment.crop_scale = (0.25, 1.0)
        c.augment.grayscale_prob = 0.0  # colour dropping happens per patch instead
        c.checkpoint_every_steps = 2000
        c.log_every_steps = 100
        c.eval.layer = "pooled"
        c.eval.grid = 1
    return c
