"""Binary ('same image or not') contrastive learning on Fashion-MNIST with the small ConvNet (CPU-friendly).

CPU-sized: the Fashion-MNIST demo's ConvNet, batch, optimizer and augmentations
(configs/simclr_fashion_mnist.py), so methods compare on equal terms.
Expected: linear top-1 above the random-encoder baseline; measured value in the README,
"Comparing methods" (experiments/compare_methods.py).
Every off-diagonal pair of the global batch is a negative, weighted to balance the positives.

Launch:
  python -m ssljax.train --config configs/binary_contrastive_fashion_mnist.py --workdir runs/binary_contrastive_fashion_mnist
  python -m ssljax.linear_eval --workdir runs/binary_contrastive_fashion_mnist
"""

from configs import methods, simclr_fashion_mnist


def get_config():
    c = simclr_fashion_mnist.get_config()
    methods.binary_contrastive(c, temperature=0.2)
    return c
