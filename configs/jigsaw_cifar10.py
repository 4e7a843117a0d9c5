"""Jigsaw puzzles on CIFAR-10 at native resolution: 3x3 tiles of 8x8, ResNet-18 per tile.

Noroozi & Favaro 2016 (context-free network, CFN): 3x3 tiles, 1000 permutations chosen for
maximal Hamming distance, a shared-weight encoder per tile with its own fc6 (1024 units), the
9 tile vectors concatenated into fc7 (4096) and fc8 (one logit per permutation), SGD at
learning rate 0.01, batch 256. Their tiles are 64x64 crops (random position) inside 75x75
cells of a 225x225 crop, i.e. gaps and jitter of up to 11 pixels.

Here, on 32x32 images: 8x8 tiles with a 2-pixel gap and +-1 pixel jitter per tile (the grid
spans 28 of 32 pixels; gap >= 2 * jitter so neighbouring tiles never touch), the greedy
max-min Hamming set of 1000 permutations (minimum pairwise distance 5, mean 8.0; CFN's
maximal set averages 8.00 as well), 30% of the tiles in grayscale against chromatic
aberration (our setting), ResNet-18 (CIFAR stem) as the tile encoder, SGD momentum 0.9 with
a cosine schedule from 0.01, weight decay 5e-4, 200 epochs. Tiles are not normalised one by
one (Noroozi & Favaro do normalise): the linear probe reads whole, unnormalised images.

Launch:
  python -m ssljax.train --config configs/jigsaw_cifar10.py --workdir runs/jigsaw_cifar10
  python -m ssljax.linear_eval --workdir runs/jigsaw_cifar10

Expected: not measured here (accelerator-sized). Noroozi & Favaro report ImageNet/PASCAL
transfer only, no CIFAR-10 number. Seed 002 (Kolesnikov et al. 2019, ImageNet linear probe):
Jigsaw with ResNet50 v1 4x 42.2%, v2 4x 38.4%, RevNet50 4x 40.1%.
"""

from configs import common, methods


def get_config():
    c = common.cifar10_resnet18(common.get_config())
    c.batch_size = 256
    c.total_steps = 39_100  # 200 epochs of 50,000 images at batch 256
    methods.jigsaw(c, tile_size=8, gap=2, jitter=1, num_permutations=1000,
                   min_hamming_distance=5, color_mode="gray", color_prob=0.3)
    methods.sgd(c, 0.01, weight_decay=5e-4, warmup_steps=500)
    c.checkpoint_every_steps = 5000
    c.log_every_steps = 100
    c.eval.layer = "block3"
    c.eval.grid = 2
    return c
