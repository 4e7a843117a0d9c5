"""Defaults shared by every experiment config, and the loader of config files.

A config file (``configs/<method>.py``) defines ``get_config(arg)``, ``arg`` naming the
dataset; it starts from :func:`base_config` and states only what differs. Load one with
``load_config('configs/byol.py:cifar10')`` or on the command line with
``--config configs/byol.py:cifar10`` (the ``ml_collections.config_flags`` convention).

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
  dataset.name         a name from ssljax.data.datasets (fashion_mnist, cifar10, ...), any
                       TFDS builder name ('name', 'name/config', 'name/config:version'; its
                       image shape, channels and classes are read from the builder's
                       features), or 'image_folder' (your images as DIR/<split>/<label>/*.png
                       or .jpg). ssljax.data.datasets.spec_from_config reads every key below.
  dataset.data_dir     TFDS data directory (None: TFDS's default); for 'image_folder' the
                       folder DIR.
  dataset.image_key, dataset.label_key
                       TFDS feature names of the images / the class labels (None: the
                       builder's supervised keys, else 'image' / 'label', else its only Image
                       / ClassLabel feature).
  dataset.image_size   S: the host resizes every image's shorter side to S and takes the
                       central SxS crop. Required for image folders and for TFDS datasets of
                       variable-size images (None: native size).
  dataset.channels     image folders only: 1 or 3 (None: 3); every image is converted to it
                       (grey replicated to RGB, alpha dropped, colour to luma for 1).
  dataset.pretrain_split, dataset.train_split, dataset.test_split
                       splits for pretraining, probe training and probe testing (None: the
                       dataset's own; 'train', 'train', 'test' for TFDS names and folders).
  objective.name       a name from ssljax.objectives.names() (simclr, ...); the other
                       objective.* keys are that objective's hyperparameters, each with its
                       default in the objective class (a config states only what differs).
  model.encoder        convnet | resnet18 | resnet50 | vae_conv | pixel_transformer (+ model.encoder_kwargs).
  model.conv_batch_chunk  images per convolution call (-1 auto: 32 on CPU, whole batch
                       on accelerators); results do not depend on it.
  model.projector      MLP head on the pooled features (hidden_dims, output_dim, use_bn,
                       bn_on_output, output_bias); methods add their own parts
                       (model.predictor, model.decoder, model.classifier, ...).
  optimizer.*          name (lars | adamw | sgd | lamb), base_learning_rate scaled by
                       batch_size / 256 when lr_scaling='linear' (SimCLR, BYOL), weight decay
                       masked off biases and normalisation parameters, warmup + cosine;
                       lr_multipliers.<part> scales one part's updates (1: unchanged).
  augment.*            SimCLR augmentation parameters (ssljax.views.augment).
  augment.crop_on      where the random resized crop is taken: 'auto' (default: on the host
                       for imagenet2012, image folders and variable-size TFDS datasets when
                       the objective makes two augmented views, else on the device), 'host'
                       (Inception crops cut from the encoded image, ssljax.data.host_views)
                       or 'device'.
  augment.local_crops, augment.local_crop_size, augment.local_crop_scale
                       multi-crop: local crops per image (0: none), their side and area
                       range; host crops only (batch['local_image']).
  log_every_steps      steps between logged metrics.
  eval_every_steps     steps between kNN monitor evaluations during pretraining (0: off): the
                       weighted-kNN top-1 of the current encoder (eval.layer, eval.knn_*) on
                       eval.monitor_query_examples test examples against a bank of
                       eval.monitor_bank_examples train examples, logged as knn_top1 (and its
                       cost as knn_seconds); one line says it is skipped for datasets
                       without labels or a held-out test split (dSprites). See
                       ssljax/training/monitor.py.
  checkpoint_every_steps, keep_checkpoints  checkpoint interval and how many are kept.
  eval.*               linear probe / kNN settings read by ssljax.linear_eval.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Sequence

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
            # Where the random resized crop is taken (ssljax.data.host_views): 'auto' (the
            # host for ImageNet, image folders and variable-size TFDS datasets with a
            # two-view objective, else the device), 'host' or 'device'.
            crop_on="auto",
            # The host crops' resize kernel: 'bicubic' (SimCLR's and BYOL's reference
            # pipelines) or 'bilinear' (big_vision's; cheaper on the host).
            host_resize="bicubic",
            # The library that resizes them: 'opencv' (8-bit kernels, a half to a third of
            # TensorFlow's host time; bicubic with a = -0.75) or 'tensorflow' (float32).
            host_resize_backend="opencv",
            # Multi-crop (SwAV, DINO): local crops per image, their side and area range.
            local_crops=0,
            local_crop_size=96,
            local_crop_scale=(0.05, 0.14),
        )
    )


# The kNN monitor's default interval. On the Fashion-MNIST demo one evaluation (5000 + 1000
# images) costs as much as 2.6-5.4 training steps, the first one 4-9 steps more (compiling) and
# reading its data 1 step: every 200 steps it adds 2-3.5% to the demo's 1000 steps.
EVAL_EVERY_STEPS = 200


def base_config() -> ml_collections.ConfigDict:
    """The defaults every config file starts from (SimCLR on Fashion-MNIST, small ConvNet)."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.batch_size = 256
    c.accumulate_steps = 1
    c.total_steps = 1000
    c.dtype = "float32"

    c.dataset = ml_collections.ConfigDict()
    c.dataset.name = "fashion_mnist"
    c.dataset.data_dir = config_dict.placeholder(str)
    # Users' own data (None: the dataset's defaults; see the module docstring).
    c.dataset.image_key = config_dict.placeholder(str)
    c.dataset.label_key = config_dict.placeholder(str)
    c.dataset.image_size = config_dict.placeholder(int)
    c.dataset.channels = config_dict.placeholder(int)
    c.dataset.pretrain_split = config_dict.placeholder(str)
    c.dataset.train_split = config_dict.placeholder(str)
    c.dataset.test_split = config_dict.placeholder(str)

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
    c.eval_every_steps = EVAL_EVERY_STEPS
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
    # The kNN monitor's fixed bank (first examples of the train split) and queries (of the
    # test split).
    c.eval.monitor_bank_examples = 5000
    c.eval.monitor_query_examples = 1000
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


# ---------------------------------------------------------------------------------------------
# Encoders and training recipes shared by several methods' configs.


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
    pool), the encoder of every method's CIFAR-10 config."""
    c.dataset.name = "cifar10"
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs.stem = "cifar"
    return c


def fashion_mnist_demo(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The Fashion-MNIST demo's encoder, probe, batch, optimizer and augmentations
    (``configs/simclr.py:fashion_mnist`` without its objective), so methods compare on
    equal terms.

    SimCLR's small-batch recipe: LARS with square-root learning-rate scaling (0.075 *
    sqrt(256) = 1.2), which beat the large-batch default (0.3 * batch/256) in short runs
    (docs/demo_tuning.md, "Tuning the demo (how the defaults were chosen)"); milder crops and
    colour jitter, no grayscale.
    """
    demo_convnet(c)
    c.batch_size = 256
    c.total_steps = 1000
    c.optimizer.lr_scaling = "sqrt"
    c.optimizer.base_learning_rate = 0.075
    c.augment = augment_defaults(image_size=28)
    c.augment.crop_scale = (0.2, 1.0)
    c.augment.color_jitter_strength = 0.5
    c.augment.grayscale_prob = 0.0
    return c


def cifar10_simclr(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """SimCLR's CIFAR-10 training settings (``configs/simclr.py:cifar10`` without its
    objective and projector), the base of the two-view methods' CIFAR-10 configs.

    Chen et al. 2020 (appendix B.9 and the reference code's CIFAR command): ResNet-18 with the
    CIFAR stem, batch 512, LARS lr 1.0 x batch/256, weight decay 1e-4, colour strength 0.5,
    no blur, 1000 epochs.
    """
    cifar10_resnet18(c)
    c.batch_size = 512
    c.total_steps = 97_600  # 1000 epochs of 50,000 images at batch 512
    c.optimizer.base_learning_rate = 1.0
    c.optimizer.lr_scaling = "linear"
    c.optimizer.weight_decay = 1e-4
    c.optimizer.warmup_steps = 980
    c.augment = augment_defaults(image_size=32)
    c.augment.color_jitter_strength = 0.5
    c.checkpoint_every_steps = 5000
    c.log_every_steps = 100
    return c


def imagenet2012_simclr(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """SimCLR's ImageNet training settings (``configs/simclr.py:imagenet2012`` without its
    objective and projector), the base of the two-view methods' ImageNet configs.

    Chen et al. 2020: ResNet-50, batch 4096, LARS lr 0.3 x batch/256 = 4.8, weight decay
    1e-6, 10 warmup epochs then cosine decay, 224x224 crops, bfloat16 compute. Needs the TFDS
    imagenet2012 data prepared under dataset.data_dir (manual download).
    """
    c.dataset.name = "imagenet2012"
    c.batch_size = 4096
    c.total_steps = 31_280  # 100 epochs of 1,281,167 images at batch 4096
    c.dtype = "bfloat16"
    c.model.encoder = "resnet50"
    c.model.encoder_kwargs.stem = "imagenet"
    c.optimizer.base_learning_rate = 0.3
    c.optimizer.weight_decay = 1e-6
    c.optimizer.warmup_steps = 3128
    c.augment = augment_defaults(image_size=224)
    c.augment.output_size = (224, 224)
    c.checkpoint_every_steps = 2000
    c.log_every_steps = 100
    return c


def dsprites_locatello(
    c: ml_collections.ConfigDict,
    *,
    latent_dim: int = 10,
    learning_rate: float = 1e-4,
    encoder_kernel_sizes: Sequence[int] = (4, 4, 4, 4),
) -> ml_collections.ConfigDict:
    """dSprites with Locatello et al. 2019's model and optimiser (their Tables 1 and 2, the
    beta-VAE architecture), the base of the latent-variable configs.

    Encoder: conv 32-4-s2, 32-4-s2, 64-4-s2, 64-4-s2, FC 256, ``latent_dim`` Gaussian latents
    (means and log-variances); the mirrored decoder FC 256, FC 4x4x64, upconv 64, 32, 32, C
    (4x4, stride 2) to logits; Adam (beta1 0.9, beta2 0.999, eps 1e-8) at a constant 1e-4, no
    weight decay, batch 64, 300,000 steps; the probe and the metrics read the latent means.
    ``encoder_kernel_sizes=(4, 4, 2, 2)`` gives disentanglement_lib's code.
    """
    c.dataset.name = "dsprites"
    c.batch_size = 64
    c.total_steps = 300_000
    c.model.encoder = "vae_conv"
    c.model.encoder_kwargs = ml_collections.ConfigDict(
        dict(
            widths=(32, 32, 64, 64),
            kernel_sizes=tuple(encoder_kernel_sizes),
            strides=(2, 2, 2, 2),
            hidden=256,
            latent_dim=latent_dim,
        )
    )
    c.model.vae_decoder = ml_collections.ConfigDict(
        dict(hidden=256, start_shape=(4, 4, 64), widths=(64, 32, 32), kernel_size=4)
    )
    if "projector" in c.model:
        del c.model["projector"]
    adamw(c, learning_rate, weight_decay=0.0, warmup_steps=0)
    c.optimizer.end_learning_rate_factor = 1.0  # constant learning rate
    c.eval.layer = "mean"  # the latent means are the representation
    c.log_every_steps = 100
    c.checkpoint_every_steps = 10_000
    c.eval.baselines = False
    return c


# ---------------------------------------------------------------------------------------------
# Small generic helpers.


def objective(name: str, **overrides) -> ml_collections.ConfigDict:
    """``config.objective`` for objective ``name``: every hyperparameter with its default from
    the objective's class (the one place defaults live), then ``overrides``.

    Listing every key lets a run's settings be read in its ``config.json`` and lets any key
    be overridden on the command line (``--config.objective.temperature=0.2``). Bad names
    and keys are one-line errors.
    """
    from ssljax import objectives

    values = objectives.resolved(dict(name=name, **overrides))
    return ml_collections.ConfigDict(values, type_safe=False)


def mlp(
    hidden_dims: Sequence[int],
    output_dim: int,
    *,
    use_bn: bool = True,
    bn_on_output: bool = False,
    output_bias: bool = True,
) -> ml_collections.ConfigDict:
    """An ``MLPHead`` description (``model.projector`` / ``model.predictor``)."""
    return ml_collections.ConfigDict(
        dict(
            hidden_dims=tuple(hidden_dims),
            output_dim=output_dim,
            use_bn=use_bn,
            bn_on_output=bn_on_output,
            output_bias=output_bias,
        )
    )


def adamw(
    c: ml_collections.ConfigDict, learning_rate: float, *, weight_decay: float, warmup_steps: int
) -> ml_collections.ConfigDict:
    """AdamW at ``learning_rate`` without batch-size scaling."""
    c.optimizer.name = "adamw"
    c.optimizer.base_learning_rate = learning_rate
    c.optimizer.lr_scaling = "none"
    c.optimizer.weight_decay = weight_decay
    c.optimizer.warmup_steps = warmup_steps
    return c


def sgd(
    c: ml_collections.ConfigDict,
    learning_rate: float,
    *,
    weight_decay: float,
    warmup_steps: int,
    momentum: float = 0.9,
) -> ml_collections.ConfigDict:
    """SGD with momentum at ``learning_rate`` without batch-size scaling."""
    c.optimizer.name = "sgd"
    c.optimizer.base_learning_rate = learning_rate
    c.optimizer.lr_scaling = "none"
    c.optimizer.momentum = momentum
    c.optimizer.weight_decay = weight_decay
    c.optimizer.warmup_steps = warmup_steps
    return c


def pixel_transformer(method: str, dataset: str) -> ml_collections.ConfigDict:
    """An iGPT-style config (``pixel_autoregressive`` or ``pixel_masked``): the
    ``pixel_transformer`` encoder (width 64, 4 blocks, 4 heads, MLP ratio 4), no projector;
    on Fashion-MNIST batch 64, 700 steps, AdamW 3e-3 (weight decay 0.01, 50 warmup steps),
    the probe on ``layer2`` at grid 1. Both objectives share it, so they compare at equal
    network, steps and optimiser."""
    c = base_config()
    c.objective = objective(method)
    c.model.encoder = "pixel_transformer"
    c.model.encoder_kwargs = ml_collections.ConfigDict(
        dict(width=64, depth=4, num_heads=4, mlp_ratio=4)
    )
    del c.model["projector"]
    if dataset == "fashion_mnist":
        c.dataset.name = "fashion_mnist"
        c.batch_size = 64
        c.total_steps = 700
        adamw(c, 3e-3, weight_decay=0.01, warmup_steps=50)
        c.eval.layer = "layer2"
        c.eval.grid = 1
    return c


# word2vec.c's per-pair learning rates (its ``-alpha`` defaults).
WORD2VEC_ALPHA = {"skip_gram": 0.025, "cbow": 0.05}


def word2vec(method: str, corpus: str, **overrides) -> ml_collections.ConfigDict:
    """A word2vec config (``skip_gram`` or ``cbow``) on ``corpus`` (``synthetic_text`` or
    ``text_files``), its optimizer as ``word2vec.c`` trains: plain SGD whose per-example rate
    is ``alpha`` (the batch loss is a mean, so the rate is ``alpha x batch``, scaled with
    the batch), decayed to ``1e-4 alpha`` (cosine here, linear in the C code); no weight
    decay, no warmup. The image settings (model, augment, eval) are removed."""
    from ssljax.data.text_source import TEXT_DATASETS

    c = base_config()
    for key in ("model", "augment", "eval"):
        del c[key]
    c.eval_every_steps = 0  # no kNN monitor: a text run is scored from its checkpoint
    c.objective = objective(method, **overrides)
    c.dataset = ml_collections.ConfigDict(dict(name=corpus, data_dir=None))
    c.dataset.data_dir = config_dict.placeholder(str)
    for key, value in TEXT_DATASETS[corpus].items():
        c.dataset[key] = (
            value
            if value is not None
            else config_dict.placeholder(int if key == "max_vocab" else str)
        )
    c.optimizer.name = "sgd"
    c.optimizer.base_learning_rate = WORD2VEC_ALPHA[method] * 256
    c.optimizer.lr_scaling = "linear"  # alpha x batch_size
    c.optimizer.momentum = 0.0
    c.optimizer.weight_decay = 0.0
    c.optimizer.warmup_steps = 0
    c.optimizer.end_learning_rate_factor = 1e-4
    del c.optimizer["lr_multipliers"]
    return c


def check_arg(arg: str, choices: Sequence[str], config_file: str) -> str:
    """``arg`` if it is one of ``choices``; otherwise a one-line ValueError naming the bad
    value and the valid ones (``config_file``: the calling file, for the message)."""
    if arg not in choices:
        raise ValueError(
            f"{os.path.basename(config_file)}: unknown dataset {arg!r}; valid: {', '.join(choices)}"
        )
    return arg


# ---------------------------------------------------------------------------------------------
# Loading.


def split_spec(spec: str) -> tuple[str, str | None]:
    """``'path/to/file.py:arg'`` -> ``('path/to/file.py', 'arg')``; no ``:arg`` -> None."""
    index = spec.rfind(".py:")
    if index < 0:
        return spec, None
    return spec[: index + 3], spec[index + 4 :]


def import_config_module(path: str):
    """The config file at ``path`` imported as a module (by path, outside any package)."""
    name = "ssljax_config_" + os.path.splitext(os.path.basename(path))[0]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ValueError(f"cannot import config file {path!r}: not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def load_config(spec: str) -> ml_collections.ConfigDict:
    """The config ``spec`` names: ``path/to/file.py`` (its ``get_config()``) or
    ``path/to/file.py:arg`` (its ``get_config(arg)``), e.g. ``configs/byol.py:cifar10``.

    Relative paths are read from the current directory. The file is imported by path (it
    is not a module of any package).

    Raises:
      ValueError: one line, for a missing file, a file without ``get_config``, or an
        argument ``get_config`` refuses.
    """
    path, arg = split_spec(spec)
    if not os.path.isfile(path):
        raise ValueError(f"config file {path!r} not found (from {spec!r})")
    module = import_config_module(path)
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise ValueError(f"config file {path!r} defines no get_config()")
    try:
        config = get_config() if arg is None else get_config(arg)
    except TypeError as err:
        raise ValueError(f"config file {path!r}: get_config({arg!r}) failed: {err}") from err
    if not isinstance(config, ml_collections.ConfigDict):
        raise ValueError(
            f"config file {path!r}: get_config() returned {type(config).__name__}, not a ConfigDict"
        )
    return config
