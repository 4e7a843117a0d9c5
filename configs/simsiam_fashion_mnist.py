"""SimSiam on Fashion-MNIST with the small ConvNet (CPU-friendly).

CPU-sized: the Fashion-MNIST demo's ConvNet, batch, optimizer and augmentations
(configs/simclr_fashion_mnist.py), so methods compare on equal terms.
Expected: linear top-1 above the random-encoder baseline; measured value in the README,
"Comparing methods" (experiments/compare_methods.py).
512-d projector / 128-d predictor bottleneck (the paper's 2048 / 512 scaled by 1/4).

Launch:
  python -m ssljax.train --config configs/simsiam_fashion_mnist.py --workdir runs/simsiam_fashion_mnist
  python -m ssljax.linear_eval --workdir runs/simsiam_fashion_mnist
"""

from configs import methods, simclr_fashion_mnist


def get_config():
    c = simclr_fashion_mnist.get_config()
    methods.simsiam(c, dim=512, predictor_hidden=128)
    return c
