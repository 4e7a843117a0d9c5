"""VICReg on CIFAR-10 with ResNet-18 (CIFAR stem).

Base: configs/simclr_cifar10.py (batch 512, 1000 epochs, SimCLR's CIFAR augmentations).
Not in the paper; the authors' ImageNet recipe scaled to ResNet-18: LARS lr 0.2 x
batch/256, weight decay 1e-6, 25/25/1, 3-layer 2048-d projector, 1000 epochs.
Expected: about 90% linear top-1 (community reproductions).

Launch:
  python -m ssljax.train --config configs/vicreg_cifar10.py --workdir runs/vicreg_cifar10
  python -m ssljax.linear_eval --workdir runs/vicreg_cifar10
"""

from configs import methods, simclr_cifar10


def get_config():
    c = simclr_cifar10.get_config()
    methods.vicreg(c, dim=2048)
    c.optimizer.base_learning_rate = 0.2
    c.optimizer.weight_decay = 1e-6
    return c
