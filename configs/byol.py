"""BYOL (Grill et al. 2020): an online network predicts an EMA target network's projection.

Datasets (``--config configs/byol.py:<dataset>``; default fashion_mnist). Objective defaults:
target momentum 0.996 -> 1 (cosine schedule), each view through its own forward pass
(BatchNorm statistics per view), as in the reference code. The projector and predictor are
the reference MLP: Linear -> BN -> ReLU -> Linear without an output bias (its hidden bias is
cancelled by the BN, so MLPHead leaves it out).

fashion_mnist
  The small ConvNet (CPU-friendly). CPU-sized: the Fashion-MNIST demo's ConvNet, batch,
  optimizer and augmentations (configs/simclr.py:fashion_mnist), so methods compare on equal
  terms. Measured at a 2- or 5-minute budget: linear top-1 level with the random-encoder
  baseline (experiments/compare_methods.md, "Two minutes per method" and "5 minutes: BYOL and
  instance discrimination"); at 10 minutes (888 steps) above it, 0.8856 / kNN 0.8157. With
  --config.total_steps=1000 (13 min on 2 CPU cores): 0.8866 linear / 0.8212 kNN against the
  random encoder's 0.8790 / 0.7801. BatchNorm per view and MLPs without an output bias, as the
  reference code. 512-128 MLPs; target base momentum 0.9 (-> 1, cosine): with 0.99 the target
  barely moved in a 2-minute run and the probe stayed below the random encoder
  (experiments/compare_methods.md).

    python -m ssljax.train --config configs/byol.py:fashion_mnist --workdir runs/byol_fashion_mnist
    python -m ssljax.linear_eval --workdir runs/byol_fashion_mnist

cifar10
  ResNet-18 (CIFAR stem). Base: configs/simclr.py:cifar10 (batch 512, 1000 epochs, SimCLR's
  CIFAR augmentations). BYOL's appendix (CIFAR-10 with ResNet-18 variants): LARS, 4096-256
  MLPs, base momentum 0.99 for CIFAR-scale runs, 1000 epochs. Expected: about 91-92% linear
  top-1.

    python -m ssljax.train --config configs/byol.py:cifar10 --workdir runs/byol_cifar10
    python -m ssljax.linear_eval --workdir runs/byol_cifar10

imagenet2012
  ResNet-50. Base: configs/simclr.py:imagenet2012 (data under dataset.data_dir, bfloat16
  compute). Grill et al. 2020: batch 4096, LARS lr 0.3 x batch/256 (300 epochs), weight decay
  1.5e-6, target momentum 0.99 -> 1 for 300 epochs (0.996 for 1000), 4096-256 MLPs -> 72.5%
  linear top-1 at 300 epochs (74.3% at 1000).

    # on TPU/GPU hosts
    python -m ssljax.train --config configs/byol.py:imagenet2012 --workdir gs://.../byol_in
    python -m ssljax.linear_eval --workdir gs://.../byol_in
"""

import ml_collections

from ssljax import config_base

DATASETS = ("fashion_mnist", "cifar10", "imagenet2012")


def get_config(arg: str = "fashion_mnist") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    c = config_base.base_config()

    c.objective = config_base.objective("byol")

    if arg == "fashion_mnist":
        config_base.fashion_mnist_demo(c)
        c.objective.ema_momentum = 0.9
        hidden, output_dim = 512, 128
    elif arg == "cifar10":
        config_base.cifar10_simclr(c)
        c.objective.ema_momentum = 0.99
        hidden, output_dim = 4096, 256
        c.optimizer.base_learning_rate = 1.0
        c.optimizer.weight_decay = 1.5e-6
    elif arg == "imagenet2012":
        config_base.imagenet2012_simclr(c)
        c.total_steps = 93_840  # 300 epochs at batch 4096
        c.objective.ema_momentum = 0.99
        hidden, output_dim = 4096, 256
        c.optimizer.base_learning_rate = 0.3
        c.optimizer.weight_decay = 1.5e-6
    c.model.projector = config_base.mlp((hidden,), output_dim, output_bias=False)
    c.model.predictor = config_base.mlp((hidden,), output_dim, output_bias=False)
    return c
