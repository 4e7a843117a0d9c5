"""Instance discrimination with a memory bank (Wu et al. 2018): each image is its own class.

Datasets (``--config configs/instance_discrimination.py:<dataset>``; default fashion_mnist).
Objective defaults (the paper's): 128-d features, temperature 0.07, bank momentum 0.5, 4096
negatives, random initial rows, no proximal regulariser; ``objective.memory_size`` (the
pretraining split's size) has no default.

fashion_mnist
  The small ConvNet (CPU-friendly). CPU-sized: the Fashion-MNIST demo's ConvNet, batch,
  optimizer and augmentations (configs/simclr.py:fashion_mnist), so methods compare on equal
  terms. One view per image; the bank holds the 60,000 training images. Ours, for runs of a
  few epochs: every row starts as the initial network's feature of its un-augmented image
  (objective.memory_init = 'prefill', one forward pass before step 1), and the LARS rate is a
  quarter of the demo's. Together they lift a 1696-step run (7 epochs) from level with the
  random encoder (0.8791, with rows filled at each image's first visit and a tenth of the
  rate) to 0.8905 linear top-1; experiments/compare_methods.md has the measurements. The
  method comparison's 10-minute row: 2117 steps, 0.8924 / kNN 0.8296.

    python -m ssljax.train --config configs/instance_discrimination.py:fashion_mnist --workdir runs/instance_discrimination_fashion_mnist
    python -m ssljax.linear_eval --workdir runs/instance_discrimination_fashion_mnist

cifar10
  ResNet-18 (CIFAR stem). Base: configs/simclr.py:cifar10 (batch 512, 1000 epochs, SimCLR's
  CIFAR augmentations). Wu et al. 2018 (CIFAR-10, ResNet-18): tau 0.07, bank momentum 0.5,
  4096 noise samples, SGD lr 0.03 -> 80.8% kNN top-1 (their Table 1, NCE); our probe numbers
  add a linear classifier.

    python -m ssljax.train --config configs/instance_discrimination.py:cifar10 --workdir runs/instance_discrimination_cifar10
    python -m ssljax.linear_eval --workdir runs/instance_discrimination_cifar10

imagenet2012
  ResNet-50. Base: configs/simclr.py:imagenet2012 (data under dataset.data_dir, bfloat16
  compute). Wu et al. 2018: ResNet-50, 128-d features, tau 0.07, 4096 noise samples, bank
  momentum 0.5, SGD lr 0.03, 200 epochs -> 54.0% top-1 (linear SVM on conv5).

    # on TPU/GPU hosts
    python -m ssljax.train --config configs/instance_discrimination.py:imagenet2012 --workdir gs://.../instance_discrimination_in
    python -m ssljax.linear_eval --workdir gs://.../instance_discrimination_in
"""

import ml_collections

from ssljax import config_base

DATASETS = ("fashion_mnist", "cifar10", "imagenet2012")


def get_config(arg: str = "fashion_mnist") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    c = config_base.base_config()

    c.objective = config_base.objective("instance_discrimination")

    if arg == "fashion_mnist":
        config_base.fashion_mnist_demo(c)
        c.objective.memory_size = 60_000
        c.objective.memory_init = "prefill"
        # A quarter of the demo's LARS rate (peak 0.3 at batch 256): features drift less
        # between an image's visits, so its bank row is less stale.
        c.optimizer.base_learning_rate = 0.01875
    elif arg == "cifar10":
        config_base.cifar10_simclr(c)
        c.objective.memory_size = 50_000
        c.model.projector.hidden_dims = (2048,)
        c.model.projector.output_dim = 128
        c.optimizer.name = "sgd"
        c.optimizer.base_learning_rate = 0.03
        c.optimizer.weight_decay = 5e-4
    elif arg == "imagenet2012":
        config_base.imagenet2012_simclr(c)
        c.batch_size = 256
        c.total_steps = 1_000_900  # 200 epochs at batch 256
        c.objective.memory_size = 1_281_167
        c.model.projector.hidden_dims = (2048,)
        c.model.projector.output_dim = 128
        c.optimizer.name = "sgd"
        c.optimizer.base_learning_rate = 0.03
        c.optimizer.weight_decay = 1e-4
        c.optimizer.warmup_steps = 0
    return c
