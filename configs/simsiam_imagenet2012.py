"""SimSiam on ImageNet (ILSVRC-2012) with ResNet-50.

Base: configs/simclr_imagenet2012.py (data under dataset.data_dir, bfloat16 compute).
Chen & He 2021: batch 512, SGD lr 0.05 x batch/256, weight decay 1e-4, 3-layer 2048-d
projector with BN on its output, 512-d predictor bottleneck, 100 epochs -> 68.1% linear top-1.

Launch: (on TPU/GPU hosts)
  python -m ssljax.train --config configs/simsiam_imagenet2012.py --workdir gs://.../simsiam_in
  python -m ssljax.linear_eval --workdir gs://.../simsiam_in
"""

from configs import methods, simclr_imagenet2012


def get_config():
    c = simclr_imagenet2012.get_config()
    c.batch_size = 512
    c.total_steps = 25_000  # 100 epochs at batch 512
    methods.simsiam(c, dim=2048, predictor_hidden=512)
    c.optimizer.name = "sgd"
    c.optimizer.base_learning_rate = 0.05
    c.optimizer.weight_decay = 1e-4
    c.optimizer.warmup_steps = 0
    return c
