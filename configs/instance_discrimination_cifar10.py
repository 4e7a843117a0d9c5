"""Instance discrimination (memory bank) on CIFAR-10 with ResNet-18 (CIFAR stem).

Base: configs/simclr_cifar10.py (batch 512, 1000 epochs, SimCLR's CIFAR augmentations).
Wu et al. 2018 (CIFAR-10, ResNet-18): tau 0.07, bank momentum 0.5, 4096 noise samples,
SGD lr 0.03 -> 80.8% kNN top-1 (their Table 1, NCE); our probe numbers add a linear classifier.

Launch:
  python -m ssljax.train --config configs/instance_discrimination_cifar10.py --workdir runs/instance_discrimination_cifar10
  python -m ssljax.linear_eval --workdir runs/instance_discrimination_cifar10
"""

from configs import methods, simclr_cifar10


def get_config():
    c = simclr_cifar10.get_config()
    methods.instance_discrimination(c, memory_size=50_000, num_negatives=4096)
    c.optimizer.name = "sgd"
    c.optimizer.base_learning_rate = 0.03
    c.optimizer.weight_decay = 5e-4
    return c
