"""Deep InfoMax, local objective (DIM(L)), on CIFAR-10 with a DCGAN-style ConvNet.

Hjelm et al. 2019 (ICLR), seed 001's table: linear evaluation of CIFAR-10 features from a
DCGAN-like encoder (conv layers -> fc 1024 -> Y 64); conv-feature accuracy 75.21 (DIM(L)
infoNCE), 73.25 (JSD), 72.66 (DV), 52.2 for DIM(G). From the seed: local MI between Y and
a feature map, 512-unit MLP critics. Not in the seed, as we recall Hjelm et al. 2019 (check
the paper before relying on them): an 8x8 local map, uniform-prior matching with gamma 0.1
and a 1000-200-1 discriminator, Adam 1e-4 at a constant rate, batch 64, no augmentation,
1000 epochs. Ours: the encoder is the project's ConvNet
(3x3 convolutions 64-128-256 at strides 1-2-2, BatchNorm, ReLU; block3 is the 8x8x256 map)
with global average pooling before the 1024-unit layer (the paper flattens); critics are
dot products of 512-d embeddings for the global term too; InfoNCE as the estimator (the
paper's best; ``--config.objective.estimator=jsd`` or ``dv`` for the other rows).

Launch:
  python -m ssljax.train --config configs/dim_cifar10.py --workdir runs/dim_cifar10
  python -m ssljax.linear_eval --workdir runs/dim_cifar10

Expected: not run here (CPU-only machine); the paper's numbers above are the target.
"""

from configs import common, methods


def get_config():
    c = common.get_config()
    c.dataset.name = "cifar10"
    c.batch_size = 64
    c.total_steps = 781_250  # 1000 epochs of 50,000 images at batch 64
    c.model.encoder = "convnet"
    c.model.encoder_kwargs.widths = (64, 128, 256)
    c.model.encoder_kwargs.strides = (1, 2, 2)
    methods.dim(c, estimator="infonce", global_weight=0.0, local_weight=1.0, prior_weight=0.1,
                local_layer="block3", critic_hidden=512, critic_embed=512, critic_layers=1,
                learning_rate=1e-4, weight_decay=0.0, warmup_steps=0)
    c.optimizer.end_learning_rate_factor = 1.0  # constant learning rate
    c.augment = common.augment_defaults(image_size=32)
    c.augment.crop_scale = (1.0, 1.0)
    c.augment.crop_ratio = (1.0, 1.0)
    c.augment.flip = False
    c.augment.color_jitter_strength = 0.0
    c.augment.color_jitter_prob = 0.0
    c.augment.grayscale_prob = 0.0
    c.augment.blur_prob = 0.0
    c.eval.layer = "block3"
    c.eval.grid = 1
    c.checkpoint_every_steps = 10_000
    c.log_every_steps = 100
    return c
