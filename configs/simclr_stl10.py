"""SimCLR on STL-10 (pretrain on the 100k 'unlabelled' split, probe on 'train'/'test').

ResNet-18 with the ImageNet stem at 96x96, blur on (images >= 96 px), colour strength 1.0.

Launch:
  python -m ssljax.train --config configs/simclr_stl10.py --workdir runs/simclr_stl10
  python -m ssljax.linear_eval --workdir runs/simclr_stl10
"""

from configs import common


def get_config():
    c = common.get_config()
    c.dataset.name = "stl10"
    c.batch_size = 512
    c.total_steps = 100_000
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs.stem = "imagenet"
    c.model.projector.hidden_dims = (2048,)
    c.optimizer.base_learning_rate = 0.5
    c.optimizer.warmup_steps = 2000
    c.augment = common.augment_defaults(image_size=96)
    c.checkpoint_every_steps = 5000
    c.log_every_steps = 100
    return c
