"""Barlow Twins on ImageNet (ILSVRC-2012) with ResNet-50.

Base: configs/simclr_imagenet2012.py (data under dataset.data_dir, bfloat16 compute).
Zbontar et al. 2021: batch 2048, LARS lr 0.2 x batch/256 for weights, weight decay 1.5e-6,
lambda 0.0051, 3-layer 8192-d projector, 1000 epochs -> 73.2% linear top-1.

Launch: (on TPU/GPU hosts)
  python -m ssljax.train --config configs/barlow_twins_imagenet2012.py --workdir gs://.../barlow_twins_in
  python -m ssljax.linear_eval --workdir gs://.../barlow_twins_in
"""

from configs import methods, simclr_imagenet2012


def get_config():
    c = simclr_imagenet2012.get_config()
    c.batch_size = 2048
    c.total_steps = 625_500  # 1000 epochs at batch 2048
    methods.barlow_twins(c, lambd=0.0051, dim=8192)
    c.optimizer.base_learning_rate = 0.2
    c.optimizer.weight_decay = 1.5e-6
    return c
