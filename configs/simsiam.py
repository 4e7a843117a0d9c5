"""SimSiam (Chen & He 2021): a predictor and a stop-gradient, no negatives, no target network.

Datasets (``--config configs/simsiam.py:<dataset>``; default fashion_mnist). The paper's
heads: a 3-layer projector with BatchNorm on its output and a predictor with a bottleneck
(2048-d, 512-d hidden).

fashion_mnist
  The small ConvNet (CPU-friendly). CPU-sized: the Fashion-MNIST demo's ConvNet, batch,
  optimizer and augmentations (configs/simclr.py:fashion_mnist), so methods compare on equal
  terms. Expected: linear top-1 above the random-encoder baseline; measured value in
  experiments/compare_methods.md (run by experiments/compare_methods.py; the README's "Results"
  has the 10-minute table). 512-d projector / 128-d predictor bottleneck (the paper's 2048 /
  512 scaled by 1/4).

    python -m ssljax.train --config configs/simsiam.py:fashion_mnist --workdir runs/simsiam_fashion_mnist
    python -m ssljax.linear_eval --workdir runs/simsiam_fashion_mnist

cifar10
  ResNet-18 (CIFAR stem). Base: configs/simclr.py:cifar10 (batch 512, 1000 epochs, SimCLR's
  CIFAR augmentations). Chen & He 2021, appendix D: ResNet-18 (CIFAR variant), 2-layer
  projector, batch 512, SGD lr 0.03 x batch/256, weight decay 5e-4, 800 epochs -> 91.8%
  kNN/linear top-1.

    python -m ssljax.train --config configs/simsiam.py:cifar10 --workdir runs/simsiam_cifar10
    python -m ssljax.linear_eval --workdir runs/simsiam_cifar10

imagenet2012
  ResNet-50. Base: configs/simclr.py:imagenet2012 (data under dataset.data_dir, bfloat16
  compute). Chen & He 2021: batch 512, SGD lr 0.05 x batch/256, weight decay 1e-4, 3-layer
  2048-d projector with BN on its output, 512-d predictor bottleneck, 100 epochs -> 68.1%
  linear top-1.

    # on TPU/GPU hosts
    python -m ssljax.train --config configs/simsiam.py:imagenet2012 --workdir gs://.../simsiam_in
    python -m ssljax.linear_eval --workdir gs://.../simsiam_in
"""

import ml_collections

from ssljax import config_base

DATASETS = ("fashion_mnist", "cifar10", "imagenet2012")


def get_config(arg: str = "fashion_mnist") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    c = config_base.base_config()

    c.objective = config_base.objective("simsiam")

    if arg == "fashion_mnist":
        config_base.fashion_mnist_demo(c)
        c.model.projector = config_base.mlp((512, 512), 512, bn_on_output=True)
        c.model.predictor = config_base.mlp((128,), 512)
    elif arg == "cifar10":
        config_base.cifar10_simclr(c)
        c.total_steps = 78_000  # 800 epochs at batch 512
        # The paper's CIFAR projector has 2 layers (ImageNet: 3).
        c.model.projector = config_base.mlp((2048,), 2048, bn_on_output=True)
        c.model.predictor = config_base.mlp((512,), 2048)
        c.optimizer.name = "sgd"
        c.optimizer.base_learning_rate = 0.03
        c.optimizer.weight_decay = 5e-4
        c.optimizer.warmup_steps = 0
    elif arg == "imagenet2012":
        config_base.imagenet2012_simclr(c)
        c.batch_size = 512
        c.total_steps = 25_000  # 100 epochs at batch 512
        c.model.projector = config_base.mlp((2048, 2048), 2048, bn_on_output=True)
        c.model.predictor = config_base.mlp((512,), 2048)
        c.optimizer.name = "sgd"
        c.optimizer.base_learning_rate = 0.05
        c.optimizer.weight_decay = 1e-4
        c.optimizer.warmup_steps = 0
    return c
