"""Barlow Twins on Fashion-MNIST with the small ConvNet (CPU-friendly).

CPU-sized: the Fashion-MNIST demo's ConvNet, batch, optimizer and augmentations
(configs/simclr_fashion_mnist.py), so methods compare on equal terms.
Expected: linear top-1 above the random-encoder baseline; measured value in the README,
"Comparing methods" (experiments/compare_methods.py).
3-layer 512-d projector (the paper's 8192 scaled to the CPU budget), lambda 0.0051.

Launch:
  python -m ssljax.train --config configs/barlow_twins_fashion_mnist.py --workdir runs/barlow_twins_fashion_mnist
  python -m ssljax.linear_eval --workdir runs/barlow_twins_fashion_mnist
"""

from configs import methods, simclr_fashion_mnist


def get_config():
    c = simclr_fashion_mnist.get_config()
    methods.barlow_twins(c, lambd=0.0051, dim=512)
    return c
