"""Jigsaw puzzles on Fashion-MNIST at native 28x28 resolution: 3x3 tiles of 7x7 (CPU-sized).

No upsampling: the tile layout fits the 28x28 images. A 3x3 grid of 7x7 tiles with 2-pixel
gaps spans 25 pixels; the grid's origin moves by up to 1 pixel and every tile by an
independent +-1 pixel jitter per axis (25 + 2 x 1 <= 28; gap >= 2 x jitter, so neighbouring
tiles never touch). The tiles are shuffled by one of 100 permutations chosen greedily for
Hamming distance (minimum pairwise distance 6). Noroozi & Favaro use 1000; on this CPU
budget the 1000-way task does not get off the ground: after 44 steps (a 2-minute budget on a
loaded machine) its loss was still log(1000) and the probe fell below the random encoder,
while the 100-way task reached 56% and the probe rose above it (README section). Each tile
goes through the demo's ConvNet (shared weights), a per-tile Dense(256) (fc6), and the 9 tile
vectors, concatenated in slot order, through Dense(512) (fc7) and the 100-way classifier
(fc8); CFN's fc6/fc7 are 1024/4096 wide, reduced here for the CPU.
Grayscale images: no colour handling. Batch 64 puzzles (576 tiles) for many cheap steps;
SGD with momentum 0.9, learning rate 0.1, weight decay 5e-4 (our settings). The encoder's
BatchNorm statistics come from 16 whole images per step (objective.image_stats_fraction
0.25), not from the tiles: the probe runs the encoder on whole images.

Linear probe: the plain encoder on whole 28x28 images, block4 pooled to 3x3 (2,304-d), the
demo's probe, so the comparison table reads every method at the same layer.

Launch:
  python -m ssljax.train --config configs/jigsaw_fashion_mnist.py --workdir runs/jigsaw_fmnist
  python -m ssljax.linear_eval --workdir runs/jigsaw_fmnist

Expected: see the README section "Classification pretext tasks" (measured numbers there).
"""

from configs import common, methods


def get_config():
    c = common.demo_convnet(common.get_config())
    c.batch_size = 64  # puzzles; 9 x 64 tiles per step
    c.total_steps = 2000
    methods.jigsaw(c, tile_size=7, gap=2, jitter=1, num_permutations=100,
                   min_hamming_distance=6, color_mode="none", color_prob=0.0,
                   crop_dim=256, hidden_dims=(512,))
    # Hundreds of 7x7 tiles per step already make small convolutions: one call is fastest.
    c.model.conv_batch_chunk = 0
    methods.sgd(c, 0.1, weight_decay=5e-4, warmup_steps=50)
    return c
