"""MoCo v2 on CIFAR-10 with ResNet-18 (CIFAR stem).

Base: configs/simclr_cifar10.py (batch 512, 1000 epochs, SimCLR's CIFAR augmentations).
MoCo v2 has no CIFAR table; this follows the common CIFAR recipe (queue 4096,
momentum 0.99, SGD lr 0.06 x batch/256, weight decay 5e-4) on ResNet-18, 1000 epochs.
Expected: about 90% linear top-1 (community reproductions; no paper number).

Launch:
  python -m ssljax.train --config configs/moco_cifar10.py --workdir runs/moco_cifar10
  python -m ssljax.linear_eval --workdir runs/moco_cifar10
"""

from configs import methods, simclr_cifar10


def get_config():
    c = simclr_cifar10.get_config()
    methods.moco(c, temperature=0.2, queue_size=4096, ema_momentum=0.99)
    c.optimizer.name = "sgd"
    c.optimizer.base_learning_rate = 0.06
    c.optimizer.weight_decay = 5e-4
    return c
