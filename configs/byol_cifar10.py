"""BYOL on CIFAR-10 with ResNet-18 (CIFAR stem).

Base: configs/simclr_cifar10.py (batch 512, 1000 epochs, SimCLR's CIFAR augmentations).
BYOL's appendix (CIFAR-10 with ResNet-18 variants): LARS, 4096-256 MLPs, base momentum
0.99 for CIFAR-scale runs, 1000 epochs. Expected: about 91-92% linear top-1.

Launch:
  python -m ssljax.train --config configs/byol_cifar10.py --workdir runs/byol_cifar10
  python -m ssljax.linear_eval --workdir runs/byol_cifar10
"""

from configs import methods, simclr_cifar10


def get_config():
    c = simclr_cifar10.get_config()
    methods.byol(c, ema_momentum=0.99, hidden=4096, output_dim=256)
    c.optimizer.base_learning_rate = 1.0
    c.optimizer.weight_decay = 1.5e-6
    return c
