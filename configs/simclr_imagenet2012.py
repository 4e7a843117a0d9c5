"""SimCLR on ImageNet (ILSVRC-2012) with ResNet-50, the paper's main setting.

Chen et al. 2020: batch 4096, LARS, lr 0.3 x batch/256 = 4.8, weight decay 1e-6,
temperature 0.1, 2-layer projection MLP to 128-d, 10 warmup epochs, cosine decay;
100 epochs -> 64.5% (batch 4096), 1000 epochs -> 69.3% linear top-1.
Needs the TFDS imagenet2012 data prepared under dataset.data_dir (manual download).

Launch: (on TPU/GPU hosts)
  python -m ssljax.train --config configs/simclr_imagenet2012.py --workdir gs://.../simclr_in
  python -m ssljax.linear_eval --workdir gs://.../simclr_in
"""

from configs import common


def get_config():
    c = common.get_config()
    c.dataset.name = "imagenet2012"
    c.batch_size = 4096
    c.total_steps = 31_280  # 100 epochs of 1,281,167 images at batch 4096
    c.dtype = "bfloat16"
    c.objective.temperature = 0.1
    c.model.encoder = "resnet50"
    c.model.encoder_kwargs.stem = "imagenet"
    c.model.projector.hidden_dims = (2048,)
    c.model.projector.output_dim = 128
    c.optimizer.base_learning_rate = 0.3
    c.optimizer.weight_decay = 1e-6
    c.optimizer.warmup_steps = 3128
    c.augment = common.augment_defaults(image_size=224)
    c.augment.output_size = (224, 224)
    c.checkpoint_every_steps = 2000
    c.log_every_steps = 100
    return c
