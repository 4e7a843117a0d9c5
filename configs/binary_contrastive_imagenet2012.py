"""Binary ('same image or not') contrastive learning on ImageNet (ILSVRC-2012) with ResNet-50.

Base: configs/simclr_imagenet2012.py (data under dataset.data_dir, bfloat16 compute).
No published ImageNet setting: SimCLR's ImageNet settings with the binary loss.

Launch: (on TPU/GPU hosts)
  python -m ssljax.train --config configs/binary_contrastive_imagenet2012.py --workdir gs://.../binary_contrastive_in
  python -m ssljax.linear_eval --workdir gs://.../binary_contrastive_in
"""

from configs import methods, simclr_imagenet2012


def get_config():
    c = simclr_imagenet2012.get_config()
    methods.binary_contrastive(c, temperature=0.2)
    return c
