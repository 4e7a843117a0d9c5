"""SimCLR on CIFAR-100 with ResNet-18 (CIFAR stem); settings as configs/simclr_cifar10.py.

Launch:
  python -m ssljax.train --config configs/simclr_cifar100.py --workdir runs/simclr_cifar100
  python -m ssljax.linear_eval --workdir runs/simclr_cifar100
"""

from configs import simclr_cifar10


def get_config():
    c = simclr_cifar10.get_config()
    c.dataset.name = "cifar100"
    return c
