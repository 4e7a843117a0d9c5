"""Binary ('same image or not') contrastive learning on CIFAR-10 with ResNet-18 (CIFAR stem).

Base: configs/simclr_cifar10.py (batch 512, 1000 epochs, SimCLR's CIFAR augmentations).
No published CIFAR setting (the seed states the task, not a recipe): SimCLR's CIFAR
settings with the binary loss. Expected: below SimCLR (one bit per pair instead of a
softmax over the batch); measured numbers belong in the README.

Launch:
  python -m ssljax.train --config configs/binary_contrastive_cifar10.py --workdir runs/binary_contrastive_cifar10
  python -m ssljax.linear_eval --workdir runs/binary_contrastive_cifar10
"""

from configs import methods, simclr_cifar10


def get_config():
    c = simclr_cifar10.get_config()
    methods.binary_contrastive(c, temperature=0.2)
    return c
