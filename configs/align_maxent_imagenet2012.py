"""AlignMaxEnt on ImageNet (ILSVRC-2012) with ResNet-50.

Base: configs/simclr_imagenet2012.py (data under dataset.data_dir, bfloat16 compute).
No published ImageNet setting: SimCLR's ImageNet settings, 64-d sigmoid output.

Launch: (on TPU/GPU hosts)
  python -m ssljax.train --config configs/align_maxent_imagenet2012.py --workdir gs://.../align_maxent_in
  python -m ssljax.linear_eval --workdir gs://.../align_maxent_in
"""

from configs import methods, simclr_imagenet2012


def get_config():
    c = simclr_imagenet2012.get_config()
    methods.align_maxent(c, entropy_weight=1.0, output_dim=64)
    return c
