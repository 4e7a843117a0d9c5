"""CPC v2 on ImageNet (ILSVRC-2012): 64x64 patches at stride 32 on 256x256 crops (7x7 grid).

Henaff et al. 2020 (CPC v2): a 7x7 grid of overlapping 64x64 patches, every patch encoded by
a ResNet-161 variant with LayerNorm instead of BatchNorm, a PixelCNN-style context network,
linear predictions of the rows below in several directions, patch augmentation (colour
dropping, flips) and Adam. Reported linear top-1 (seeds' tables): 71.5% with ResNet-161
(305M parameters), 63.8% with ResNet-50.

Deviation, stated plainly: ssljax has no LayerNorm ResNet and BatchNorm lets CPC cheat across
patches (CPC v2's own finding), so the patch encoder is our plain ConvNet with LayerNorm and
ResNet-50-like widths (64 -> 1024 channels, 64x64 -> 4x4, a 1024-d patch embedding as in CPC
v1). The context network has 5 row-causal residual blocks (1024 channels; it sees the whole
7-row grid) and predicts up to 5 rows ahead (CPC v1's setting) in all four directions.
Colour dropping is applied to half the patches (CPC v2: every patch), so full-colour
evaluation images stay in distribution. Optimiser: AdamW, lr 2e-4, batch 512 (CPC v1: 32
GPUs x 16 images). Negatives are every patch of the global batch: each device holds a
[local predictions x (49 x 512)] logit matrix per direction, so spread the batch over many
devices. Evaluation images are 224x224 centre crops (a 6x6 grid), probed on 'pooled'.
Needs the TFDS imagenet2012 data prepared under dataset.data_dir (manual download).

Launch: (on TPU/GPU hosts)
  python -m ssljax.train --config configs/cpc_imagenet2012.py --workdir gs://.../cpc_in
  python -m ssljax.linear_eval --workdir gs://.../cpc_in

Expected: not measured; with this plain ConvNet expect clearly less than CPC v2's ResNet
numbers (63.8% ResNet-50, 71.5% ResNet-161 linear top-1).
"""

from configs import common, methods


def get_config():
    c = common.get_config()
    c.dataset.name = "imagenet2012"
    c.batch_size = 512
    c.total_steps = 250_200  # 100 epochs of 1,281,167 images at batch 512
    c.dtype = "bfloat16"

    # Per 64x64 patch: 32x32x64 -> 16x16x128 -> 8x8x256 -> 4x4x512 -> 4x4x1024 -> 1024-d.
    methods.cpc(c, prediction_steps=5, widths=(64, 128, 256, 512, 1024), strides=(2, 2, 2, 2, 1),
                patch_size=64, patch_stride=32, context_width=1024, context_blocks=5,
                patch_flip_prob=0.5, patch_color_drop_prob=0.5, learning_rate=2e-4,
                weight_decay=0.0, warmup_steps=2500)

    c.augment = common.augment_defaults(image_size=256)
    c.augment.output_size = (256, 256)
    c.augment.crop_scale = (0.25, 1.0)
    c.augment.grayscale_prob = 0.0  # colour dropping happens per patch instead

    c.checkpoint_every_steps = 2000
    c.log_every_steps = 100
    c.eval.layer = "pooled"
    c.eval.grid = 1
    return c
