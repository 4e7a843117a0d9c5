"""Defaults shared by every experiment; a method/dataset file only states what differs.

Keys:
  seed                 PRNG seed for initialisation, augmentation and data order.
  batch_size           global batch (all devices, all hosts); must divide by the device count.
  accumulate_steps     micro-batches per device and step (gradient accumulation, 1: off); the
                       per-device batch must divide by it. A step is still one global batch
                       and one update; BatchNorm statistics and in-batch negatives come from a
                       micro-batch (ssljax/training/step.py).
  total_steps          optimisation steps.
  dtype                compute dtype: float32 | bfloat16 (parameters stay float32; float16
                       is refused: it would need loss scaling).
  dataset.name         a name from ssljax.data.datasets (fashion_mnist, cifar10, ...).
  objective.name       a name from ssljax.objectives.names() (simclr, ...).
  model.encoder        convnet | resnet18 | resnet50 (+ model.encoder_kwargs).
  model.conv_batch_chunk  images per convolution call (-1 auto: 32 on CPU, whole batch
                       on accelerators); results do not depend on it.
  optimizer.*          name (lars | adamw | sgd | lamb), base_learning_rate scaled by
                       batch_size / 256 when lr_scaling='linear' (SimCLR, BYOL), weight decay
                       masked off biases and normalisation parameters, warmup + cosine;
                       lr_multipliers.<part> scales one part's updates (1: unchanged).
  augment.*            SimCLR augmentation parameters (ssljax.data.augment).
  eval.*               linear probe / kNN settings read by ssljax.linear_eval.
"""

import ml_collections
from ml_collections import config_dict


def augment_defaults(image_size: int) -> ml_collections.ConfigDict:
    """SimCLR's augmentation recipe (Chen et al. 2020, appendix A) for an image size."""
    return ml_collections.ConfigDict(
        dict(
            crop_scale=(0.08, 1.0),
            crop_ratio=(3 / 4, 4 / 3),
            output_size=config_dict.placeholder(tuple),
            flip=True,
            color_jitter_strength=1.0,
            color_jitter_prob=0.8,
            grayscale_prob=0.2,
            blur_prob=0.5 if image_size >= 96 else 0.0,
            blur_sigma=(0.1, 2.0),
        )
    )


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.batch_size = 256
    c.accumulate_steps = 1
    c.total_steps = 1000
    c.dtype = "float32"

    c.dataset = ml_collections.ConfigDict()
    c.dataset.name = "fashion_mnist"
    c.dataset.data_dir = config_dict.placeholder(str)

    c.objective = ml_collections.ConfigDict()
    c.objective.name = "simclr"
    c.objective.temperature = 0.5

    c.model = ml_collections.ConfigDict()
    c.model.encoder = "convnet"
    c.model.encoder_kwargs = ml_collections.ConfigDict()
    # Images per convolution call: -1 = auto (32 on CPU, where cache-sized slices run the
    # convolutions 1.2-2x faster; the whole batch on GPU/TPU), 0 = whole batch, n > 0 = n.
    c.model.conv_batch_chunk = -1
    c.model.projector = ml_collections.ConfigDict(
        dict(hidden_dims=(512,), output_dim=128, use_bn=True)
    )

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "lars"
    c.optimizer.base_learning_rate = 0.3
    c.optimizer.lr_scaling = "linear"
    c.optimizer.weight_decay = 1e-6
    c.optimizer.momentum = 0.9
    c.optimizer.warmup_steps = 100
    c.optimizer.end_learning_rate_factor = 0.0
    # Factor on the final updates of each top-level part of the model (1: unchanged).
    c.optimizer.lr_multipliers = ml_collections.ConfigDict(
        dict(encoder=1.0, projector=1.0, predictor=1.0)
    )

    c.augment = augment_defaults(image_size=28)

    c.log_every_steps = 50
    c.checkpoint_every_steps = 500
    c.keep_checkpoints = 2

    c.eval = ml_collections.ConfigDict()
    c.eval.layer = "pooled"
    c.eval.grid = 1
    c.eval.batch_size = 1000
    c.eval.l2_grid = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
    c.eval.val_fraction = 0.1
    c.eval.knn_k = 200
    c.eval.knn_temperature = 0.07
    c.eval.baselines = True
    # Scaling: features are stored at the probe's dimension in this dtype ('float16' halves
    # memory); train features above max_probe_bytes (as float32) use the streamed probe and
    # kNN in chunks of probe_chunk_bytes; the raw-pixel baseline is skipped above
    # max_raw_pixel_bytes (ImageNet's would be 718 GiB).
    c.eval.feature_dtype = "float32"
    c.eval.max_probe_bytes = 4 * 2**30
    c.eval.max_raw_pixel_bytes = 4 * 2**30
    c.eval.probe_chunk_bytes = 256 * 2**20
    c.eval.probe_epochs = 20
    c.eval.probe_batch_size = 256
    c.eval.probe_learning_rate = 1e-2
    return c


def demo_convnet(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The Fashion-MNIST demo's encoder and probe, shared by every method compared on it.

    Two stride-2 layers first, then two stride-1 layers at 7x7: the FLOPs sit in wide,
    low-resolution convolutions, which XLA CPU runs near its matmul speed. The probe reads the
    last feature map pooled to 3x3 (as iGPT and Kolesnikov et al. note, pooled outputs are not
    always the best layer for a linear probe).
    """
    c.dataset.name = "fashion_mnist"
    c.model.encoder = "convnet"
    c.model.encoder_kwargs.widths = (32, 64, 128, 256)
    c.model.encoder_kwargs.strides = (2, 2, 1, 1)
    c.eval.layer = "block4"
    c.eval.grid = 3
    return c


def cifar10_resnet18(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """CIFAR-10 with ResNet-18 and its CIFAR stem (3x3 stride-1 first convolution, no max
    pool), the encoder of every ``*_cifar10.py`` config."""
    c.dataset.name = "cifar10"
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs.stem = "cifar"
    return c
