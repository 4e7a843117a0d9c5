"""SimSiam on CIFAR-10 with ResNet-18 (CIFAR stem).

Base: configs/simclr_cifar10.py (batch 512, 1000 epochs, SimCLR's CIFAR augmentations).
Chen & He 2021, appendix D: ResNet-18 (CIFAR variant), 2-layer projector, batch 512,
SGD lr 0.03 x batch/256, weight decay 5e-4, 800 epochs -> 91.8% kNN/linear top-1.

Launch:
  python -m ssljax.train --config configs/simsiam_cifar10.py --workdir runs/simsiam_cifar10
  python -m ssljax.linear_eval --workdir runs/simsiam_cifar10
"""

from configs import methods, simclr_cifar10


def get_config():
    c = simclr_cifar10.get_config()
    c.total_steps = 78_000  # 800 epochs at batch 512
    methods.simsiam(c, dim=2048, predictor_hidden=512)
    c.model.projector = methods.mlp((2048,), 2048, bn_on_output=True)
    c.optimizer.name = "sgd"
    c.optimizer.base_learning_rate = 0.03
    c.optimizer.weight_decay = 5e-4
    c.optimizer.warmup_steps = 0
    return c
