"""Energy-based model (``objective.name = 'energy'``): an energy network ``E(x)`` (the encoder
then a linear head) trained by denoising score matching (Vincent 2011): the score
``-grad_x E`` of noisy images ``x + sigma z`` regresses ``-z / sigma``, weighted by
``sigma^2`` (Song & Ermon 2019). ``objective.training='sliced_score_matching'`` (Song et al.
2019) or ``'contrastive_divergence'`` (Du & Mordatch 2019: Langevin negatives from a replay
buffer) select the other trainings; docs/energy.md describes them. The network is applied in
inference mode (the score of one image must not depend on its batch), so the encoder here
normalises with LayerNorm (``norm='layer'``), not BatchNorm. There is no projector and no
augmentation: the score is learned on the images themselves.

Datasets (``--config configs/energy.py:<dataset>``; default fashion_mnist):

fashion_mnist
  The demo's ConvNet (widths 32-64-128-256, strides 2-2-1-1) with LayerNorm, a linear
  energy head on its pooled features. Images in [0, 1], noise ``sigma = 0.1``; batch 128
  images, 800 steps, AdamW at 1e-3 after 50 warmup steps, cosine decay, weight decay 1e-4.
  Each step differentiates the input gradient of the energy (a second-order step): 12.2
  GFLOP per 64 images, 0.24 s per 64-image step at best on the project's shared 2-core VM
  (``experiments/benchmark_step.py --config configs/energy.py:fashion_mnist``, batch 64), so
  800 steps of 128 images take about 6.5 minutes of compute, about 10 with compilation and
  the kNN monitor (every 200 steps) on a quiet machine.

  Linear probe: the encoder on whole images, block4 pooled to 3x3 (2,304-d), the demo's probe.

    python -m ssljax.train --config configs/energy.py:fashion_mnist --workdir runs/energy
    python -m ssljax.linear_eval --workdir runs/energy

  Measured (2-core Intel Xeon VM, 2026-12-04, the method comparison's 10-minute budget:
  1,930 steps): linear probe block4 3x3 0.8641 (kNN 0.7605), level with the same LayerNorm
  ConvNet at random initialisation (0.8642). Langevin from noise on this one-noise-level model
  gives noise, not garments (docs/energy.md). No published Fashion-MNIST linear-probe number
  exists for score-matching features.
"""

import ml_collections

from ssljax import config_base

DATASETS = ("fashion_mnist",)


def get_config(arg: str = "fashion_mnist") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    c = config_base.base_config()

    # Method: an energy head on the encoder's pooled features, no projector.
    c.objective = config_base.objective(
        "energy", training="denoising_score_matching", sigma=0.1, dsm_weighting="sigma2"
    )
    del c.model["projector"]

    if arg == "fashion_mnist":
        config_base.demo_convnet(c)
        c.model.encoder_kwargs.norm = "layer"
        c.batch_size = 128
        c.total_steps = 800
        config_base.adamw(c, 1e-3, weight_decay=1e-4, warmup_steps=50)
    return c
