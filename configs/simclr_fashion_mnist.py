"""SimCLR on Fashion-MNIST with the small ConvNet: the default `make demo` run (CPU-sized).

Launch:
  python -m ssljax.train --config configs/simclr_fashion_mnist.py --workdir runs/demo
  python -m ssljax.linear_eval --workdir runs/demo

Expected: see README, "Results" (linear-probe top-1 on the Fashion-MNIST test set).
"""

from configs import common


def get_config():
    c = common.get_config()
    c.dataset.name = "fashion_mnist"
    c.batch_size = 256
    c.total_steps = 1000
    c.objective.temperature = 0.5
    c.model.encoder = "convnet"
    # Downsampling in the first layer keeps most FLOPs in wide, matmul-friendly layers:
    # the step runs ~2x faster on CPU than with a stride-1 first layer.
    c.model.encoder_kwargs.widths = (32, 64, 128, 256)
    c.model.encoder_kwargs.strides = (2, 1, 2, 2)
    c.augment = common.augment_defaults(image_size=28)
    c.augment.crop_scale = (0.2, 1.0)
    c.augment.color_jitter_strength = 0.5
    c.augment.grayscale_prob = 0.0
    return c
