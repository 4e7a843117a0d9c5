"""Binary ('same image or not') contrastive learning: a logistic loss on view pairs.

Datasets (``--config configs/binary_contrastive.py:<dataset>``; default fashion_mnist).
Objective defaults: logistic loss on (cos - bias) / temperature of view pairs, temperature
0.2, bias 0.

fashion_mnist
  The small ConvNet (CPU-friendly). CPU-sized: the Fashion-MNIST demo's ConvNet, batch,
  optimizer and augmentations (configs/simclr.py:fashion_mnist), so methods compare on equal
  terms. Expected: linear top-1 above the random-encoder baseline; measured value in
  experiments/compare_methods.md (run by experiments/compare_methods.py; the README's "Results"
  has the 10-minute table). Every off-diagonal pair of the global batch is a negative, weighted
  to balance the positives.

    python -m ssljax.train --config configs/binary_contrastive.py:fashion_mnist --workdir runs/binary_contrastive_fashion_mnist
    python -m ssljax.linear_eval --workdir runs/binary_contrastive_fashion_mnist

cifar10
  ResNet-18 (CIFAR stem). Base: configs/simclr.py:cifar10 (batch 512, 1000 epochs, SimCLR's
  CIFAR augmentations). No published CIFAR setting (Tosh et al. 2021 state the task, not a
  recipe): SimCLR's CIFAR settings with the binary loss. Expected: below SimCLR (one bit per
  pair instead of a softmax over the batch); measured numbers belong in the README.

    python -m ssljax.train --config configs/binary_contrastive.py:cifar10 --workdir runs/binary_contrastive_cifar10
    python -m ssljax.linear_eval --workdir runs/binary_contrastive_cifar10

imagenet2012
  ResNet-50. Base: configs/simclr.py:imagenet2012 (data under dataset.data_dir, bfloat16
  compute). No published ImageNet setting: SimCLR's ImageNet settings with the binary loss.

    # on TPU/GPU hosts
    python -m ssljax.train --config configs/binary_contrastive.py:imagenet2012 --workdir gs://.../binary_contrastive_in
    python -m ssljax.linear_eval --workdir gs://.../binary_contrastive_in
"""

import ml_collections

from ssljax import config_base

DATASETS = ("fashion_mnist", "cifar10", "imagenet2012")


def get_config(arg: str = "fashion_mnist") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    c = config_base.base_config()

    c.objective = config_base.objective("binary_contrastive")

    if arg == "fashion_mnist":
        config_base.fashion_mnist_demo(c)
    elif arg == "cifar10":
        config_base.cifar10_simclr(c)
        c.model.projector.hidden_dims = (2048,)
        c.model.projector.output_dim = 128
    elif arg == "imagenet2012":
        config_base.imagenet2012_simclr(c)
        c.model.projector.hidden_dims = (2048,)
        c.model.projector.output_dim = 128
    return c
