"""iGPT autoregressive pixel prediction (Chen et al. 2020, "Generative Pretraining from Pixels"):
a GPT-2-style Transformer reads each image as a sequence of quantised pixels in raster order
and predicts every pixel from the ones before it (causal attention; the input is the sequence
shifted right behind a start token). Its per-layer features are then probed linearly.

Objective defaults: 8 grey levels (3 bits), images average pooled 2x2 before quantising
(28x28 -> 14x14: 196 tokens). The encoder is ``model.encoder = 'pixel_transformer'``
(``ssljax.models.transformer.PixelTransformer``; pre-LayerNorm blocks, learned position
embeddings); its sizes are ``model.encoder_kwargs`` (width, depth, num_heads, mlp_ratio), the
prediction head a linear layer on every position; there is no projector.

Datasets (``--config configs/pixel_autoregressive.py:<dataset>``; default fashion_mnist):

fashion_mnist
  CPU-sized: width 64, 4 blocks, 4 heads (head size 16), MLP 256, 0.21M parameters; batch
  64 images (12,544 predicted tokens), 700 steps (0.75 epoch), AdamW with peak learning
  rate 3e-3 after 50 warmup steps, cosine decay, weight decay 0.01 on kernels and
  embeddings. No augmentation. In short runs at batch 64 (60 steps, constant rate after 10
  warmup steps) 3e-3 led 1e-3 at every 10-step mean (0.95 against 1.00 nats per token over
  steps 50-60).

  Step time, measured with the library's step benchmark (one jitted step of 64 images on
  one CPU device; attention in slices of 32 images, ``attention_batch_chunk`` auto) on this
  project's 2-core VM, shared with other jobs (load average 0.8-1.5 during the measurement,
  the benchmark included): 0.69 s per step (median of 20; best 0.63 s), 11 s to compile,
  23.5 GFLOP per step (37 GFLOP/s, 0.20 of the machine's dense-matmul peak). 700 steps, 3
  kNN monitor evaluations (6,000 images, about 15 s each) and compilation take about 9
  minutes there. Measure it on your machine with

    python experiments/benchmark_step.py --config configs/pixel_autoregressive.py:fashion_mnist --steps 20 --pipeline_batches 0

  Linear probe: ``eval.layer = 'layer2'``, the middle of the four blocks (each block's output
  averaged over the 196 positions, 64-d). iGPT finds the best autoregressive features in the
  middle of the network, not at the end; read the per-layer curve with the per-layer probe
  (the last two commands; the probe reads every listed layer from one pass of the network
  over the 70,000 images, one for the pretrained and one for the random-init encoder:
  about 8 minutes for five layers on the 2-core VM):

    python -m ssljax.train --config configs/pixel_autoregressive.py:fashion_mnist --workdir runs/pixel_ar_fmnist
    python -m ssljax.linear_eval --workdir runs/pixel_ar_fmnist
    python -m ssljax.linear_eval --workdir runs/pixel_ar_fmnist --layer layer1,layer2,layer3,layer4,pooled
    python experiments/demo_figures.py --workdir runs/pixel_ar_fmnist --out runs/pixel_ar_fmnist/figures --layers=layer1,layer2,layer3,layer4,pooled

  Measured (2-core AMD EPYC VM, 2026-12-03): 700 steps in 590 s; linear probe per layer,
  test top-1 (random-init Transformer): layer1 0.7630 (0.6783), layer2 0.7791 (0.6964),
  layer3 0.7752 (0.7031), layer4 0.7771 (0.7018), pooled 0.7716 (0.7055); validation picks
  layer3 (docs/figures/pixel_autoregressive_layers.png). The loss is logged in nats per token
  and as ``bits_per_dim`` (bits per quantised 14x14 pixel; a uniform guess is 3 bits).
  Paper reference (Chen et al. 2020, CIFAR-10, iGPT-L, 32x32x3 with a 9-bit palette): 96.3%
  linear-probe top-1 from the best middle layer; no Fashion-MNIST numbers are published.
"""

import ml_collections

from ssljax import config_base

DATASETS = ("fashion_mnist",)


def get_config(arg: str = "fashion_mnist") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    # Method: a causal Transformer over pixel tokens with a per-position prediction head.
    return config_base.pixel_transformer("pixel_autoregressive", arg)
