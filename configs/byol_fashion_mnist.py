"""BYOL on Fashion-MNIST with the small ConvNet (CPU-friendly).

CPU-sized: the Fashion-MNIST demo's ConvNet, batch, optimizer and augmentations
(configs/simclr_fashion_mnist.py), so methods compare on equal terms.
Measured at a 2- or 5-minute budget: linear top-1 level with the random-encoder baseline
(README, "Comparing methods"; experiments/compare_methods.md); at 10 minutes (888 steps)
above it, 0.8856 / kNN 0.8157. With --config.total_steps=1000
(13 min on 2 CPU cores): 0.8866 linear / 0.8212 kNN against the random encoder's
0.8790 / 0.7801. BatchNorm per view and MLPs
without an output bias, as the reference code (configs/methods.py).
512-128 MLPs; target base momentum 0.9 (-> 1, cosine): with 0.99 the target barely moved in a
2-minute run and the probe stayed below the random encoder (experiments/compare_methods.md).

Launch:
  python -m ssljax.train --config configs/byol_fashion_mnist.py --workdir runs/byol_fashion_mnist
  python -m ssljax.linear_eval --workdir runs/byol_fashion_mnist
"""

from configs import methods, simclr_fashion_mnist


def get_config():
    c = simclr_fashion_mnist.get_config()
    methods.byol(c, ema_momentum=0.9, hidden=512, output_dim=128)
    return c
