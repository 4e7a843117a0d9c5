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
    c = common.get_config()
    c.dataset.name = "fashion_mnist"
    c.batch_size = 256
    c.total_steps = 1000
    # SimCLR's small-batch recipe: square-root learning-rate scaling (0.075 * sqrt(256) = 1.2
    # with LARS) and temperature 0.1; both beat the large-batch defaults (0.3 * batch/256,
    # tau 0.5) in short runs (README, "Tuning the demo").
    c.objective.temperature = 0.1
    c.optimizer.lr_scaling = "sqrt"
    c.optimizer.base_learning_rate = 0.075
    c.model.encoder = "convnet"
    # Two stride-2 layers first, then two stride-1 layers at 7x7: the FLOPs sit in wide,
    # low-resolution convolutions, which XLA CPU runs near its matmul speed.
    c.model.encoder_kwargs.widths = (32, 64, 128, 256)
    c.model.encoder_kwargs.strides = (2, 2, 1, 1)
    c.augment = common.augment_defaults(image_size=28)
    c.augment.crop_scale = (0.2, 1.0)
    c.augment.color_jitter_strength = 0.5
    c.augment.grayscale_prob = 0.0
    # Probe the last feature map pooled to 3x3 (as iGPT and Kolesnikov et al. note, pooled
    # outputs are not always the best layer for a linear probe).
    c.eval.layer = "block4"
    c.eval.grid = 3
    return c
