"""Deep InfoMax, local objective (DIM(L)), on Fashion-MNIST with the demo ConvNet (CPU-sized).

The demo's ConvNet, batch 256 and probe (configs/simclr_fashion_mnist.py), so methods compare
on equal terms. DIM(L): the 64-d global vector Y (pooled features -> 1024 -> 64) must pick out
its own image among the batch at every location of the 7x7x128 block3 feature map (JSD
estimator, separable critics of 256 units into 128-d), plus uniform-prior matching on Y
(gamma 0.1, discriminator 1000-200-1). Ours for a short CPU run: narrower critics than the
paper's 512 units, Adam 1e-3 with warmup and cosine decay (paper: Adam 1e-4, constant),
mild crops and flips (the paper trains CIFAR-10 without augmentation).

Launch:
  python -m ssljax.train --config configs/dim_fashion_mnist.py --workdir runs/dim_fashion_mnist
  python -m ssljax.linear_eval --workdir runs/dim_fashion_mnist

Expected: linear top-1 above the random-encoder baseline at the comparison's 2-minute budget
(experiments/compare_methods.py); measured values in the README section on Deep InfoMax.
"""

from configs import common, methods, simclr_fashion_mnist


def get_config():
    c = simclr_fashion_mnist.get_config()
    methods.dim(c, estimator="jsd", global_weight=0.0, local_weight=1.0, prior_weight=0.1,
                local_layer="block3", critic_hidden=256, critic_embed=128, critic_layers=1,
                learning_rate=1e-3, weight_decay=0.0, warmup_steps=50)
    c.total_steps = 1000
    c.augment = common.augment_defaults(image_size=28)
    c.augment.crop_scale = (0.5, 1.0)
    c.augment.color_jitter_strength = 0.0
    c.augment.color_jitter_prob = 0.0
    c.augment.grayscale_prob = 0.0
    return c
