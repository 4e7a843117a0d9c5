"""AlignMaxEnt on CIFAR-10 with ResNet-18 (CIFAR stem).

Base: configs/simclr_cifar10.py (batch 512, 1000 epochs, SimCLR's CIFAR augmentations).
von Kuegelgen et al. 2021 state the objective, not an image recipe: SimCLR's CIFAR
settings with the AlignMaxEnt loss on a 16-d sigmoid output.

Launch:
  python -m ssljax.train --config configs/align_maxent_cifar10.py --workdir runs/align_maxent_cifar10
  python -m ssljax.linear_eval --workdir runs/align_maxent_cifar10
"""

from configs import methods, simclr_cifar10


def get_config():
    c = simclr_cifar10.get_config()
    methods.align_maxent(c, entropy_weight=1.0, output_dim=16)
    return c
