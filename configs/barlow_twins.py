"""Barlow Twins (Zbontar et al. 2021): the two views' cross-correlation matrix pushed to I.

Datasets (``--config configs/barlow_twins.py:<dataset>``; default fashion_mnist). Objective
default: lambda 0.0051 (the paper's). Projector: 3 layers of equal width (8192 in the paper).

fashion_mnist
  The small ConvNet (CPU-friendly). CPU-sized: the Fashion-MNIST demo's ConvNet, batch,
  optimizer and augmentations (configs/simclr.py:fashion_mnist), so methods compare on equal
  terms. Expected: linear top-1 above the random-encoder baseline; measured value in
  experiments/compare_methods.md (run by experiments/compare_methods.py; the README's "Results"
  has the 10-minute table). 3-layer 512-d projector (the paper's 8192 scaled to the CPU
  budget), lambda 0.0051.

    python -m ssljax.train --config configs/barlow_twins.py:fashion_mnist --workdir runs/barlow_twins_fashion_mnist
    python -m ssljax.linear_eval --workdir runs/barlow_twins_fashion_mnist

cifar10
  ResNet-18 (CIFAR stem). Base: configs/simclr.py:cifar10 (batch 512, 1000 epochs, SimCLR's
  CIFAR augmentations). Not in the paper; the authors' ImageNet recipe scaled to ResNet-18:
  LARS lr 0.2 x batch/256, weight decay 1.5e-6, lambda 0.0051, 3-layer 2048-d projector,
  1000 epochs. Expected: about 90% linear top-1 (community reproductions).

    python -m ssljax.train --config configs/barlow_twins.py:cifar10 --workdir runs/barlow_twins_cifar10
    python -m ssljax.linear_eval --workdir runs/barlow_twins_cifar10

imagenet2012
  ResNet-50. Base: configs/simclr.py:imagenet2012 (data under dataset.data_dir, bfloat16
  compute). Zbontar et al. 2021: batch 2048, LARS lr 0.2 x batch/256 for weights, weight decay
  1.5e-6, lambda 0.0051, 3-layer 8192-d projector, 1000 epochs -> 73.2% linear top-1.

    # on TPU/GPU hosts
    python -m ssljax.train --config configs/barlow_twins.py:imagenet2012 --workdir gs://.../barlow_twins_in
    python -m ssljax.linear_eval --workdir gs://.../barlow_twins_in
"""

import ml_collections

from ssljax import config_base

DATASETS = ("fashion_mnist", "cifar10", "imagenet2012")


def get_config(arg: str = "fashion_mnist") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    c = config_base.base_config()

    c.objective = config_base.objective("barlow_twins")

    if arg == "fashion_mnist":
        config_base.fashion_mnist_demo(c)
        dim = 512
    elif arg == "cifar10":
        config_base.cifar10_simclr(c)
        dim = 2048
        c.optimizer.base_learning_rate = 0.2
        c.optimizer.weight_decay = 1.5e-6
    elif arg == "imagenet2012":
        config_base.imagenet2012_simclr(c)
        c.batch_size = 2048
        c.total_steps = 625_500  # 1000 epochs at batch 2048
        dim = 8192
        c.optimizer.base_learning_rate = 0.2
        c.optimizer.weight_decay = 1.5e-6
    c.model.projector = config_base.mlp((dim, dim), dim)
    return c
