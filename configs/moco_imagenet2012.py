"""MoCo v2 on ImageNet (ILSVRC-2012) with ResNet-50.

Base: configs/simclr_imagenet2012.py (data under dataset.data_dir, bfloat16 compute).
Chen et al. 2020b (MoCo v2): batch 256, SGD lr 0.03, weight decay 1e-4, tau 0.2,
queue 65536, momentum 0.999, MLP head, blur, cosine schedule, 200 epochs -> 67.5% linear top-1.

Launch: (on TPU/GPU hosts)
  python -m ssljax.train --config configs/moco_imagenet2012.py --workdir gs://.../moco_in
  python -m ssljax.linear_eval --workdir gs://.../moco_in
"""

from configs import methods, simclr_imagenet2012


def get_config():
    c = simclr_imagenet2012.get_config()
    c.batch_size = 256
    c.total_steps = 1_000_900  # 200 epochs at batch 256
    methods.moco(c, temperature=0.2, queue_size=65536, ema_momentum=0.999)
    c.optimizer.name = "sgd"
    c.optimizer.base_learning_rate = 0.03
    c.optimizer.weight_decay = 1e-4
    c.optimizer.warmup_steps = 0
    return c
