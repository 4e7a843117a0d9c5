"""MoCo v2 on Fashion-MNIST with the small ConvNet (CPU-friendly).

CPU-sized: the Fashion-MNIST demo's ConvNet, batch, optimizer and augmentations
(configs/simclr_fashion_mnist.py), so methods compare on equal terms.
Expected: linear top-1 above the random-encoder baseline; measured value in the README,
"Comparing methods" (experiments/compare_methods.py).
Queue 4096 (16 batches) and momentum 0.99 for a 1000-step run.

Launch:
  python -m ssljax.train --config configs/moco_fashion_mnist.py --workdir runs/moco_fashion_mnist
  python -m ssljax.linear_eval --workdir runs/moco_fashion_mnist
"""

from configs import methods, simclr_fashion_mnist


def get_config():
    c = simclr_fashion_mnist.get_config()
    methods.moco(c, temperature=0.2, queue_size=4096, ema_momentum=0.99)
    return c
