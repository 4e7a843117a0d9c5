"""Relative patch location on Fashion-MNIST at native 28x28 resolution: 10x10 patches (CPU).

No upsampling: a centre patch and one of its 8 neighbours, 10x10 pixels each with a 4-pixel
gap and a +-2 pixel jitter of the neighbour per axis, need 2 x 10 + 4 + 2 = 26 <= 28 pixels;
the centre is placed uniformly where both patches fit. Doersch et al. use 96-pixel patches
with 48-pixel gaps and up to 7 pixels of jitter; the gap here is 0.4 of a patch. Each patch
goes through the demo's ConvNet (shared weights) and a per-patch Dense(256) (fc6), the two
vectors, concatenated (centre first), through Dense(512) (fc7) and the 8-way classifier.
Grayscale images: no chromatic aberration to counter. Batch 128 pairs; SGD with momentum
0.9, learning rate 0.1, weight decay 5e-4 (our settings). The encoder's BatchNorm statistics
come from 32 whole images per step (objective.image_stats_fraction 0.25), not from the
patches: the probe runs the encoder on whole images.

Linear probe: the plain encoder on whole 28x28 images, block4 pooled to 3x3 (2,304-d), the
demo's probe.

Launch:
  python -m ssljax.train --config configs/relative_patch_location_fashion_mnist.py --workdir runs/rpl_fmnist
  python -m ssljax.linear_eval --workdir runs/rpl_fmnist

Expected: see the README section "Classification pretext tasks" (measured numbers there).
"""

from configs import common, methods


def get_config():
    c = common.demo_convnet(common.get_config())
    c.batch_size = 128  # centre/neighbour pairs
    c.total_steps = 2000
    methods.relative_patch_location(c, patch_size=10, gap=4, jitter=2, color_mode="none",
                                    color_prob=0.0, noise_fraction=0.0, crop_dim=256,
                                    hidden_dims=(512,))
    c.model.conv_batch_chunk = 0
    methods.sgd(c, 0.1, weight_decay=5e-4, warmup_steps=50)
    return c
