"""SimCLR on CIFAR-10 with ResNet-18 (CIFAR stem), the paper's CIFAR settings.

Chen et al. 2020 (appendix B.9 and the reference code's CIFAR command): batch 512, LARS,
lr 1.0 x batch/256, weight decay 1e-4, temperature 0.5, colour strength 0.5, no blur,
1000 epochs; the paper reports 94.0% linear top-1 with ResNet-50 (our default is ResNet-18).

Launch:
  python -m ssljax.train --config configs/simclr_cifar10.py --workdir runs/simclr_cifar10
  python -m ssljax.linear_eval --workdir runs/simclr_cifar10
"""

from configs import common


def get_config():
    c = common.cifar10_resnet18(common.get_config())
    c.batch_size = 512
    c.total_steps = 97_600  # 1000 epochs of 50,000 images at batch 512
    c.objective.temperature = 0.5
    c.model.projector.hidden_dims = (2048,)
    c.model.projector.output_dim = 128
    c.optimizer.base_learning_rate = 1.0
    c.optimizer.lr_scaling = "linear"
    c.optimizer.weight_decay = 1e-4
    c.optimizer.warmup_steps = 980
    c.augment = common.augment_defaults(image_size=32)
    c.augment.color_jitter_strength = 0.5
    c.checkpoint_every_steps = 5000
    c.log_every_steps = 100
    return c
