"""Instance discrimination (memory bank) on ImageNet (ILSVRC-2012) with ResNet-50.

Base: configs/simclr_imagenet2012.py (data under dataset.data_dir, bfloat16 compute).
Wu et al. 2018: ResNet-50, 128-d features, tau 0.07, 4096 noise samples, bank momentum 0.5,
SGD lr 0.03, 200 epochs -> 54.0% top-1 (linear SVM on conv5).

Launch: (on TPU/GPU hosts)
  python -m ssljax.train --config configs/instance_discrimination_imagenet2012.py --workdir gs://.../instance_discrimination_in
  python -m ssljax.linear_eval --workdir gs://.../instance_discrimination_in
"""

from configs import methods, simclr_imagenet2012


def get_config():
    c = simclr_imagenet2012.get_config()
    c.batch_size = 256
    c.total_steps = 1_000_900  # 200 epochs at batch 256
    methods.instance_discrimination(c, memory_size=1_281_167, num_negatives=4096)
    c.optimizer.name = "sgd"
    c.optimizer.base_learning_rate = 0.03
    c.optimizer.weight_decay = 1e-4
    c.optimizer.warmup_steps = 0
    return c
