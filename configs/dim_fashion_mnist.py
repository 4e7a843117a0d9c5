"""Deep InfoMax, local objective (DIM(L)), on Fashion-MNIST with the demo ConvNet (CPU-sized).

The demo's ConvNet, batch 256, augmentations and probe (configs/simclr_fashion_mnist.py), so
methods compare on equal terms. DIM(L): the 64-d global vector Y (pooled features -> 1024 ->
64) must pick out its own image among the 256 of the batch at every location of the
7x7x128 block3 feature map (InfoNCE, the paper's best estimator; separable critics of 256
units into 128-d). Ours, for a short CPU run: two augmented views with Y of each view scored
against the other view's feature map (``objective.cross_view``, as in AMDIM), no prior
matching, narrower critics than the paper's 512 units, Adam 3e-3 with warmup and cosine decay
(paper: one unaugmented view, prior matching gamma 0.1, Adam 1e-4). At 181 steps (the
comparison's 2 minutes) Adam 3e-3 probed at 0.8817, 1e-3 at 0.8718. In 150-300-step trials
the single-view variants (JSD or InfoNCE, with or without the prior, lr 1e-4 to 1e-3) did not
beat the random encoder's probe; the two-view one did (README section on Deep InfoMax).

Launch:
  python -m ssljax.train --config configs/dim_fashion_mnist.py --workdir runs/dim_fashion_mnist
  python -m ssljax.linear_eval --workdir runs/dim_fashion_mnist

Expected: linear top-1 above the random-encoder baseline when trained for a few hundred
steps; measured values in the README section on Deep InfoMax. The method comparison's
10-minute row: 673 steps, 0.8982 / kNN 0.8169 (random encoder 0.8790 / 0.7801).
"""

from configs import methods, simclr_fashion_mnist


def get_config():
    c = simclr_fashion_mnist.get_config()
    methods.dim(c, estimator="infonce", global_weight=0.0, local_weight=1.0, prior_weight=0.0,
                local_layer="block3", critic_hidden=256, critic_embed=128, critic_layers=1,
                learning_rate=3e-3, weight_decay=0.0, warmup_steps=50, cross_view=True)
    c.total_steps = 1000
    return c
