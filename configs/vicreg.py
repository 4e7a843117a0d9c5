"""VICReg (Bardes et al. 2022): invariance, variance and covariance terms on the projections.

Datasets (``--config configs/vicreg.py:<dataset>``; default fashion_mnist). Objective
defaults: coefficients 25 / 25 / 1 (the paper's). Projector: 3 layers of equal width (8192
in the paper).

fashion_mnist
  The small ConvNet (CPU-friendly). CPU-sized: the Fashion-MNIST demo's ConvNet, batch,
  optimizer and augmentations (configs/simclr.py:fashion_mnist), so methods compare on equal
  terms. Expected: linear top-1 above the random-encoder baseline; measured value in
  experiments/compare_methods.md (run by experiments/compare_methods.py; the README's "Results"
  has the 10-minute table). 3-layer 512-d projector (8192 in the paper), coefficients
  25 / 25 / 1.

    python -m ssljax.train --config configs/vicreg.py:fashion_mnist --workdir runs/vicreg_fashion_mnist
    python -m ssljax.linear_eval --workdir runs/vicreg_fashion_mnist

cifar10
  ResNet-18 (CIFAR stem). Base: configs/simclr.py:cifar10 (batch 512, 1000 epochs, SimCLR's
  CIFAR augmentations). Not in the paper; the authors' ImageNet recipe scaled to ResNet-18:
  LARS lr 0.2 x batch/256, weight decay 1e-6, 25/25/1, 3-layer 2048-d projector, 1000 epochs.
  Expected: about 90% linear top-1 (community reproductions).

    python -m ssljax.train --config configs/vicreg.py:cifar10 --workdir runs/vicreg_cifar10
    python -m ssljax.linear_eval --workdir runs/vicreg_cifar10

imagenet2012
  ResNet-50. Base: configs/simclr.py:imagenet2012 (data under dataset.data_dir, bfloat16
  compute). Bardes et al. 2022: batch 2048, LARS base lr 0.2 x batch/256, weight decay 1e-6,
  coefficients 25 / 25 / 1, 3-layer 8192-d projector, 1000 epochs -> 73.2% linear top-1.

    # on TPU/GPU hosts
    python -m ssljax.train --config configs/vicreg.py:imagenet2012 --workdir gs://.../vicreg_in
    python -m ssljax.linear_eval --workdir gs://.../vicreg_in
"""

import ml_collections

from ssljax import config_base

DATASETS = ("fashion_mnist", "cifar10", "imagenet2012")


def get_config(arg: str = "fashion_mnist") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    c = config_base.base_config()

    c.objective = config_base.objective("vicreg")

    if arg == "fashion_mnist":
        config_base.fashion_mnist_demo(c)
        dim = 512
    elif arg == "cifar10":
        config_base.cifar10_simclr(c)
        dim = 2048
        c.optimizer.base_learning_rate = 0.2
        c.optimizer.weight_decay = 1e-6
    elif arg == "imagenet2012":
        config_base.imagenet2012_simclr(c)
        c.batch_size = 2048
        c.total_steps = 625_500  # 1000 epochs at batch 2048
        dim = 8192
        c.optimizer.base_learning_rate = 0.2
        c.optimizer.weight_decay = 1e-6
    c.model.projector = config_base.mlp((dim, dim), dim)
    return c
