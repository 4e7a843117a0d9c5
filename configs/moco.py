"""MoCo v2 (Chen et al. 2020b): a momentum key encoder and a queue of negatives.

Datasets (``--config configs/moco.py:<dataset>``; default fashion_mnist). Objective defaults
(the MoCo v2 paper's): temperature 0.2, queue 65536, key-encoder momentum 0.999 (constant).

fashion_mnist
  The small ConvNet (CPU-friendly). CPU-sized: the Fashion-MNIST demo's ConvNet, batch,
  optimizer and augmentations (configs/simclr.py:fashion_mnist), so methods compare on equal
  terms. Expected: linear top-1 above the random-encoder baseline; measured value in
  experiments/compare_methods.md (run by experiments/compare_methods.py; the README's "Results"
  has the 10-minute table). Queue 4096 (16 batches) and momentum 0.99 for a 1000-step run.

    python -m ssljax.train --config configs/moco.py:fashion_mnist --workdir runs/moco_fashion_mnist
    python -m ssljax.linear_eval --workdir runs/moco_fashion_mnist

cifar10
  ResNet-18 (CIFAR stem). Base: configs/simclr.py:cifar10 (batch 512, 1000 epochs, SimCLR's
  CIFAR augmentations). MoCo v2 has no CIFAR table; this follows the common CIFAR recipe
  (queue 4096, momentum 0.99, SGD lr 0.06 x batch/256, weight decay 5e-4) on ResNet-18,
  1000 epochs. Expected: about 90% linear top-1 (community reproductions; no paper number).

    python -m ssljax.train --config configs/moco.py:cifar10 --workdir runs/moco_cifar10
    python -m ssljax.linear_eval --workdir runs/moco_cifar10

imagenet2012
  ResNet-50. Base: configs/simclr.py:imagenet2012 (data under dataset.data_dir, bfloat16
  compute). Chen et al. 2020b (MoCo v2): batch 256, SGD lr 0.03, weight decay 1e-4, tau 0.2,
  queue 65536, momentum 0.999, MLP head, blur, cosine schedule, 200 epochs -> 67.5% linear
  top-1.

    # on TPU/GPU hosts
    python -m ssljax.train --config configs/moco.py:imagenet2012 --workdir gs://.../moco_in
    python -m ssljax.linear_eval --workdir gs://.../moco_in
"""

import ml_collections

from ssljax import config_base

DATASETS = ("fashion_mnist", "cifar10", "imagenet2012")


def get_config(arg: str = "fashion_mnist") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    c = config_base.base_config()

    c.objective = config_base.objective("moco")

    if arg == "fashion_mnist":
        config_base.fashion_mnist_demo(c)
        c.objective.queue_size = 4096
        c.objective.ema_momentum = 0.99
    elif arg == "cifar10":
        config_base.cifar10_simclr(c)
        c.objective.queue_size = 4096
        c.objective.ema_momentum = 0.99
        c.model.projector.hidden_dims = (2048,)
        c.model.projector.output_dim = 128
        c.optimizer.name = "sgd"
        c.optimizer.base_learning_rate = 0.06
        c.optimizer.weight_decay = 5e-4
    elif arg == "imagenet2012":
        config_base.imagenet2012_simclr(c)
        c.batch_size = 256
        c.total_steps = 1_000_900  # 200 epochs at batch 256
        c.model.projector.hidden_dims = (2048,)
        c.model.projector.output_dim = 128
        c.optimizer.name = "sgd"
        c.optimizer.base_learning_rate = 0.03
        c.optimizer.weight_decay = 1e-4
        c.optimizer.warmup_steps = 0
    return c
