"""CPC v2 on CIFAR-10: 8x8 patches at stride 4 (a 7x7 grid), LayerNorm ConvNet, 4 directions.

Each 32x32 image is augmented once (crop, flip, colour jitter), cut into a 7x7 grid of
overlapping 8x8 patches, and each patch is flipped (p = 0.5) and colour-dropped (one of the
three channels kept, p = 0.5) independently, CPC v2's patch augmentation. A LayerNorm ConvNet
(CPC v2 replaced BatchNorm by LayerNorm) encodes every patch to 256-d; a 3-block row-causal
context network (512 channels) and linear critics predict 1..3 rows ahead in all four
directions, every prediction scored against all 49 x 256 patches of the global batch.

Deviations from Henaff et al. 2020, who report ImageNet results only: the encoder is our plain
ConvNet (no LayerNorm ResNet exists in ssljax), the images are CIFAR-sized, and colour dropping
is applied to half the patches (CPC v2 drops colours in every patch; keeping full colour in
half of them keeps the full-colour evaluation images in distribution). Optimiser: AdamW at
CPC v1's Adam learning rate 2e-4 (not scaled with the batch), warmup then cosine decay.

Launch:
  python -m ssljax.train --config configs/cpc_cifar10.py --workdir runs/cpc_cifar10
  python -m ssljax.linear_eval --workdir runs/cpc_cifar10

Expected: not measured here (accelerator-sized: 50k images x 49 patches per epoch). No CPC
number on CIFAR-10 is in the seeds; as an orientation, the seeds' DIM(L) table, a local
InfoNCE objective close to CPC, reports 75.2% linear top-1 from conv features on CIFAR-10.
"""

from configs import common, methods


def get_config():
    c = common.get_config()
    c.dataset.name = "cifar10"
    c.batch_size = 256
    c.total_steps = 97_600  # 500 epochs of 50,000 images at batch 256

    # Per 8x8 patch: 8x8x64 -> 8x8x128 -> 4x4x256 -> 2x2x256 -> 256-d.
    methods.cpc(c, prediction_steps=3, widths=(64, 128, 256, 256), strides=(1, 1, 2, 2),
                patch_size=8, patch_stride=4, context_width=512, context_blocks=3,
                patch_flip_prob=0.5, patch_color_drop_prob=0.5, learning_rate=2e-4,
                weight_decay=0.0, warmup_steps=1000)

    c.augment = common.augment_defaults(image_size=32)
    c.augment.crop_scale = (0.3, 1.0)
    c.augment.color_jitter_strength = 0.5
    c.augment.grayscale_prob = 0.0  # colour dropping happens per patch instead

    c.checkpoint_every_steps = 5000
    c.log_every_steps = 100
    c.eval.layer = "grid"
    c.eval.grid = 2
    return c
