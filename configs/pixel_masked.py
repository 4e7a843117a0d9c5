"""iGPT-BERT masked pixel prediction (Chen et al. 2020, "Generative Pretraining from Pixels";
the BERT objective of Devlin et al. 2019 on pixels): a Transformer with bidirectional
attention reads each image as a sequence of quantised pixels in raster order, 15% of the
positions replaced by a [MASK] token, and predicts the pixels at the masked positions. Its
per-layer features are then probed linearly.

Objective defaults: 8 grey levels (3 bits), images average pooled 2x2 before quantising
(28x28 -> 14x14: 196 tokens), each position masked independently with probability 0.15 and
replaced by [MASK] only (iGPT's choice: no random or unchanged tokens as in BERT's 80/10/10);
the loss is the cross entropy over the masked positions. The encoder is ``model.encoder =
'pixel_transformer'`` (``ssljax.models.transformer.PixelTransformer``; pre-LayerNorm blocks,
learned position embeddings); its sizes are ``model.encoder_kwargs`` (width, depth,
num_heads, mlp_ratio), the prediction head a linear layer on every position; there is no
projector.

Datasets (``--config configs/pixel_masked.py:<dataset>``; default fashion_mnist):

fashion_mnist
  The same network and optimiser as configs/pixel_autoregressive.py:fashion_mnist, so the
  two objectives compare at equal steps: width 64, 4 blocks, 4 heads, MLP 256, 0.21M
  parameters; batch 64 images (about 1,900 masked tokens per step), 700 steps (0.75
  epoch), AdamW with peak learning rate 3e-3 after 50 warmup steps, cosine decay, weight
  decay 0.01 on kernels and embeddings. No augmentation. In a short run at batch 64 (60
  steps, constant 3e-3 after 10 warmup steps) the masked loss fell from 1.78 to 1.24 nats
  per masked token (first and last 10-step means).

  Step time, measured with the library's step benchmark (one jitted step of 64 images on
  one CPU device; attention in slices of 32 images, ``attention_batch_chunk`` auto) on this
  project's 2-core VM, shared with other jobs (load average 1.2-1.5 during the measurement,
  the benchmark included): 0.70 s per step (median of 20; best 0.64 s), 9 s to compile,
  23.4 GFLOP per step (the whole sequence goes through the network, so a step costs what
  an autoregressive one does). 700 steps, 3 kNN monitor evaluations (6,000 images, about
  15 s each) and compilation take about 9 minutes there. Measure it on your machine with

    python experiments/benchmark_step.py --config configs/pixel_masked.py:fashion_mnist --steps 20 --pipeline_batches 0

  Linear probe: ``eval.layer = 'layer2'``, the middle of the four blocks (each block's output
  averaged over the 196 positions, 64-d); the probe sees whole, unmasked images. The best
  layer need not be the last (iGPT); read the per-layer curve with the per-layer probe
  (the last two commands; the probe reads every listed layer from one pass of the network
  over the 70,000 images, one for the pretrained and one for the random-init encoder:
  about 8 minutes for five layers on the 2-core VM):

    python -m ssljax.train --config configs/pixel_masked.py:fashion_mnist --workdir runs/pixel_masked_fmnist
    python -m ssljax.linear_eval --workdir runs/pixel_masked_fmnist
    python -m ssljax.linear_eval --workdir runs/pixel_masked_fmnist --layer layer1,layer2,layer3,layer4,pooled
    python experiments/demo_figures.py --workdir runs/pixel_masked_fmnist --out runs/pixel_masked_fmnist/figures --layers=layer1,layer2,layer3,layer4,pooled

  Measured (2-core Intel Xeon VM, 2026-12-04): 700 steps in 397 s; linear probe per layer,
  test top-1 (random-init Transformer): layer1 0.7001 (0.6533), layer2 0.7102 (0.6481),
  layer3 0.7131 (0.6542), layer4 0.7105 (0.6443), pooled 0.7197 (0.6495); validation picks
  pooled (docs/figures/pixel_masked_layers.png), 5.5 points below the autoregressive model
  at equal steps. The loss is logged in nats per masked token and as ``bits_per_dim`` (bits
  per masked quantised pixel; a uniform guess is 3 bits), with ``masked_fraction`` (about
  0.15). No Fashion-MNIST numbers are published; on CIFAR-10 the paper's BERT models probe
  below its autoregressive ones of the same size.
"""

import ml_collections

from ssljax import config_base

DATASETS = ("fashion_mnist",)


def get_config(arg: str = "fashion_mnist") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    # Method: a bidirectional Transformer over pixel tokens with a per-position head.
    return config_base.pixel_transformer("pixel_masked", arg)
