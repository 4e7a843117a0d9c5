"""VICReg on Fashion-MNIST with the small ConvNet (CPU-friendly).

CPU-sized: the Fashion-MNIST demo's ConvNet, batch, optimizer and augmentations
(configs/simclr_fashion_mnist.py), so methods compare on equal terms.
Expected: linear top-1 above the random-encoder baseline; measured value in the README,
"Comparing methods" (experiments/compare_methods.py).
3-layer 512-d projector (8192 in the paper), coefficients 25 / 25 / 1.

Launch:
  python -m ssljax.train --config configs/vicreg_fashion_mnist.py --workdir runs/vicreg_fashion_mnist
  python -m ssljax.linear_eval --workdir runs/vicreg_fashion_mnist
"""

from configs import methods, simclr_fashion_mnist


def get_config():
    c = simclr_fashion_mnist.get_config()
    methods.vicreg(c, dim=512)
    return c
