"""SimCLR on Fashion-MNIST with the small ConvNet: the default `make demo` run (CPU-sized).

Launch:
  python -m ssljax.train --config configs/simclr_fashion_mnist.py --workdir runs/demo
  python -m ssljax.linear_eval --workdir runs/demo

Expected (2 CPU cores, ~10 min of pretraining): linear-probe top-1 about 0.90 on the
Fashion-MNIST test set from block4 (3x3 pooled, 2304-d), against about 0.88 for the same
probe on the randomly initialised encoder and about 0.84 on raw pixels (README, "Results").
"""

from configs import common


def get_config():
    # The demo's ConvNet and its probe (block4 pooled to 3x3): common.demo_convnet.
    c = common.demo_convnet(common.get_config())
    c.batch_size = 256
    c.total_steps = 1000
    # SimCLR's small-batch recipe: square-root learning-rate scaling (0.075 * sqrt(256) = 1.2
    # with LARS) and temperature 0.1; both beat the large-batch defaults (0.3 * batch/256,
    # tau 0.5) in short runs (README, "Tuning the demo").
    c.objective.temperature = 0.1
    c.optimizer.lr_scaling = "sqrt"
    c.optimizer.base_learning_rate = 0.075
    c.augment = common.augment_defaults(image_size=28)
    c.augment.crop_scale = (0.2, 1.0)
    c.augment.color_jitter_strength = 0.5
    c.augment.grayscale_prob = 0.0
    return c
