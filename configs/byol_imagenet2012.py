"""BYOL on ImageNet (ILSVRC-2012) with ResNet-50.

Base: configs/simclr_imagenet2012.py (data under dataset.data_dir, bfloat16 compute).
Grill et al. 2020: batch 4096, LARS lr 0.3 x batch/256 (300 epochs), weight decay 1.5e-6,
target momentum 0.99 -> 1 for 300 epochs (0.996 for 1000), 4096-256 MLPs ->
72.5% linear top-1 at 300 epochs (74.3% at 1000).

Launch: (on TPU/GPU hosts)
  python -m ssljax.train --config configs/byol_imagenet2012.py --workdir gs://.../byol_in
  python -m ssljax.linear_eval --workdir gs://.../byol_in
"""

from configs import methods, simclr_imagenet2012


def get_config():
    c = simclr_imagenet2012.get_config()
    c.total_steps = 93_840  # 300 epochs at batch 4096
    methods.byol(c, ema_momentum=0.99, hidden=4096, output_dim=256)
    c.optimizer.base_learning_rate = 0.3
    c.optimizer.weight_decay = 1.5e-6
    return c
