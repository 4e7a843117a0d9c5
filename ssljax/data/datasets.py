"""Registry of the datasets ssljax knows how to feed.

Every dataset is read through TFDS. The host decodes, shuffles and batches ``uint8``
images, and for variable-size images either cuts the views' random resized crops or
resizes and centre-crops to a fixed square; every other augmentation runs on the
accelerator.

Host-side image sizes:

* Fixed-size datasets (Fashion-MNIST, CIFAR, STL-10) are used at their native
  size for every purpose; their random resized crops are taken on the device.
* ImageNet images vary in size:

  - pretraining of the two-view methods (``config.augment.crop_on='auto'``, the default,
    resolves to ``'host'``; :mod:`ssljax.data.host_views`): per view, an Inception crop
    (Szegedy et al. 2015) of area 0.08-1 and aspect 3/4-4/3 is sampled over the whole
    JPEG (``tf.image.stateless_sample_distorted_bounding_box``), only that window is
    decoded (``tf.io.decode_and_crop_jpeg``) and resized (bicubic) to 224, as the
    SimCLR (Chen et al. 2020) and BYOL (Grill et al. 2020) reference pipelines do;
    ``train_iterator(..., host_views=...)`` yields ``[..., 2, 224, 224, 3]`` crops.
  - training without host views (``crop_on='device'``, the objectives that make their
    own views, linear-probe training through ``train_iterator``): ``train_preprocess``,
    shorter side -> 256, central 256x256 crop, which keeps the whole central square so
    the on-device random-resized-crop (output 224) has room inside it.
  - evaluation (``load_split_arrays`` / ``eval_batches``): shorter side -> 256,
    central 224x224 crop (the usual 0.875 crop ratio).

Users' own data (:func:`spec_from_config`, the one place that turns ``config.dataset`` into
a :class:`DatasetSpec`):

* any TFDS builder by name (``'name'``, ``'name/config'``, ``'name/config:version'``): the
  image shape, channels and classes are read from the builder's ``info.features``
  (:mod:`ssljax.data.any_tfds`); variable-size images need ``dataset.image_size``;
* ``image_folder``: ``DIR/<split>/<label>/*.png|jpg|jpeg`` read by TFDS's ``ImageFolder``
  (:mod:`ssljax.data.image_folder`), every image resized (shorter side) and centre-cropped
  to ``dataset.image_size`` (or, for two-view pretraining, cut into ``image_size`` host
  crops as ImageNet) and converted to ``dataset.channels`` (3 by default);
* a registered name with overrides (splits, keys, image size).
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Mapping, Optional


@dataclasses.dataclass(frozen=True)
class ResizeCrop:
    """Host preprocessing for variable-size images.

    Attributes:
      resize_shorter: the shorter image side is resized to this many pixels.
      crop_size: then a central ``crop_size x crop_size`` square is taken.
    """

    resize_shorter: int
    crop_size: int

    def __post_init__(self):
        if not 0 < self.crop_size <= self.resize_shorter:
            raise ValueError(
                f"need 0 < crop_size <= resize_shorter, got crop_size={self.crop_size}, "
                f"resize_shorter={self.resize_shorter}"
            )


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Static description of one dataset as ssljax uses it.

    Attributes:
      name: ssljax name (the registry key).
      tfds_name: TFDS builder name (for ``fashion_mnist`` this is the built-in
        TFDS builder; a local offline builder is preferred when available).
      image_shape: ``(H, W, C)`` of host-preprocessed images on the evaluation
        path (``load_split_arrays``, ``eval_batches``).
      num_classes: number of label classes.
      pretrain_split: TFDS split used for self-supervised pretraining.
      train_split: labelled TFDS split used to train probes / fine-tune.
      test_split: labelled TFDS split used for evaluation.
      image_key: image feature name in the TFDS examples.
      label_key: label feature name in the TFDS examples.
      train_preprocess: host resize/crop for ``train_iterator``; ``None`` for
        fixed-size images, which are passed through unchanged.
      eval_preprocess: host resize/crop on the evaluation path; ``None`` for
        fixed-size images.
      fits_in_memory: whether a whole split may be held in host memory; such
        datasets are cached as one array and shuffled over the full split.
        Otherwise records are streamed through a bounded shuffle buffer.
      manual_download: TFDS cannot download the source files itself; they must
        be placed in the builder's ``manual_dir`` first.
      pretrain_examples: the published size of the pretraining split (benchmarks that
        read no data); runs read the size from the prepared dataset instead. 0 when
        unknown.
      folder: root of an image folder (``DIR/<split>/<label>/*.png``) for
        ``name='image_folder'``; None for TFDS datasets.
    """

    name: str
    tfds_name: str
    image_shape: tuple[int, int, int]
    num_classes: int
    pretrain_split: str
    train_split: str
    test_split: str
    image_key: str = "image"
    label_key: str = "label"
    train_preprocess: Optional[ResizeCrop] = None
    eval_preprocess: Optional[ResizeCrop] = None
    fits_in_memory: bool = True
    manual_download: bool = False
    pretrain_examples: int = 0
    folder: Optional[str] = None

    @property
    def train_image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of the images ``train_iterator`` yields."""
        if self.train_preprocess is None:
            return self.image_shape
        size = self.train_preprocess.crop_size
        return (size, size, self.image_shape[-1])

    def preprocess_for(self, training: bool) -> Optional[ResizeCrop]:
        """Host resize/crop for the training or the evaluation path."""
        return self.train_preprocess if training else self.eval_preprocess

    def image_shape_for(self, training: bool) -> tuple[int, int, int]:
        """Host image shape for the training or the evaluation path."""
        return self.train_image_shape if training else self.image_shape


IMAGENET_TRAIN_PREPROCESS = ResizeCrop(resize_shorter=256, crop_size=256)
IMAGENET_EVAL_PREPROCESS = ResizeCrop(resize_shorter=256, crop_size=224)

DATASETS: Mapping[str, DatasetSpec] = types.MappingProxyType(
    {
        spec.name: spec
        for spec in (
            DatasetSpec(
                name="fashion_mnist",
                pretrain_examples=60000,
                tfds_name="fashion_mnist",
                image_shape=(28, 28, 1),
                num_classes=10,
                pretrain_split="train",
                train_split="train",
                test_split="test",
            ),
            DatasetSpec(
                name="cifar10",
                pretrain_examples=50000,
                tfds_name="cifar10",
                image_shape=(32, 32, 3),
                num_classes=10,
                pretrain_split="train",
                train_split="train",
                test_split="test",
            ),
            DatasetSpec(
                name="cifar100",
                pretrain_examples=50000,
                tfds_name="cifar100",
                image_shape=(32, 32, 3),
                num_classes=100,
                pretrain_split="train",
                train_split="train",
                test_split="test",
                label_key="label",  # The fine label; 'coarse_label' has 20 classes.
            ),
            DatasetSpec(
                name="stl10",
                pretrain_examples=100000,
                tfds_name="stl10",
                image_shape=(96, 96, 3),
                num_classes=10,
                # 100k unlabelled images; their label is -1 in TFDS.
                pretrain_split="unlabelled",
                train_split="train",
                test_split="test",
            ),
            DatasetSpec(
                name="imagenet2012",
                pretrain_examples=1281167,
                tfds_name="imagenet2012",
                image_shape=(224, 224, 3),
                num_classes=1000,
                pretrain_split="train",
                train_split="train",
                test_split="validation",
                train_preprocess=IMAGENET_TRAIN_PREPROCESS,
                eval_preprocess=IMAGENET_EVAL_PREPROCESS,
                fits_in_memory=False,
                manual_download=True,
            ),
            DatasetSpec(
                # Rendered in code by ssljax.data.dsprites (TFDS builder 'dsprites', no
                # download). One split of all 737,280 images in index order; the label is
                # the shape (3 classes), the other factors are TFDS features and follow
                # from the example's index. Probes train and test on the same split (as
                # disentanglement metrics sample from the whole set). About 3 GB in memory.
                name="dsprites",
                pretrain_examples=737280,
                tfds_name="dsprites",
                image_shape=(64, 64, 1),
                num_classes=3,
                pretrain_split="train",
                train_split="train",
                test_split="train",
                label_key="label_shape",
            ),
        )
    }
)


def dataset_names() -> tuple[str, ...]:
    """Names of all registered datasets, sorted."""
    return tuple(sorted(DATASETS))


def get_dataset_spec(name: str) -> DatasetSpec:
    """Returns the :class:`DatasetSpec` registered under ``name``.

    Raises:
      ValueError: (single line) naming the unknown value and the known names.
    """
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown dataset {name!r}; known datasets: {', '.join(dataset_names())}"
        ) from None


# ---------------------------------------------------------------------------------------------
# Users' own data: config.dataset -> DatasetSpec.

IMAGE_FOLDER = "image_folder"
# A split whose host-preprocessed images take at most this many bytes is held in memory
# (as STL-10's 100k unlabelled 96x96x3 images, 2.8 GB, are); larger ones are streamed.
IN_MEMORY_LIMIT_BYTES = 4 * 2**30
# The optional keys of ``config.dataset`` (ssljax/config_base.py); None means "default".
DATASET_KEYS = (
    "name",
    "data_dir",
    "image_key",
    "label_key",
    "image_size",
    "channels",
    "train_split",
    "test_split",
    "pretrain_split",
)
_SPLIT_KEYS = ("pretrain_split", "train_split", "test_split")


class UnknownDatasetError(ValueError):
    """A dataset name that is neither registered here nor a TFDS builder."""


class FeatureKeyError(ValueError):
    """An image or label key that the dataset's features do not have (or of the wrong kind)."""


class SplitNotFoundError(ValueError):
    """A split the dataset (or image folder) does not have."""


class ImageFolderError(ValueError):
    """An image folder that is missing or not laid out as ``DIR/<split>/<label>/<image>``."""


class ImageDecodeError(ValueError):
    """An image file that cannot be read or decoded."""


def dataset_settings(dataset_cfg: Any) -> dict:
    """``config.dataset`` (a ConfigDict, a mapping, or just a name) as a dict holding every
    key of :data:`DATASET_KEYS` (None where the config has no value; configs stored before
    a key existed lack it)."""
    if isinstance(dataset_cfg, str):
        dataset_cfg = {"name": dataset_cfg}
    get = getattr(dataset_cfg, "get", None)
    if get is None:
        raise ValueError(
            f"config.dataset must be a ConfigDict, a mapping or a name, got "
            f"{type(dataset_cfg).__name__}"
        )
    settings = {key: get(key, None) for key in DATASET_KEYS}
    name = settings["name"]
    if not isinstance(name, str) or not name:
        raise ValueError(f"dataset.name={name!r} must be a non-empty string")
    for key in ("image_size", "channels"):
        value = settings[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"dataset.{key}={value!r} must be an integer")
    if settings["image_size"] is not None and settings["image_size"] <= 0:
        raise ValueError(f"dataset.image_size={settings['image_size']} must be positive")
    if settings["channels"] not in (None, 1, 3):
        raise ValueError(f"dataset.channels={settings['channels']} is invalid; valid: 1, 3")
    for key in ("image_key", "label_key") + _SPLIT_KEYS:
        value = settings[key]
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"dataset.{key}={value!r} must be a non-empty string")
    return settings


def memory_fits(num_examples: int, image_shape: tuple[int, ...]) -> bool:
    """Whether ``num_examples`` uint8 images of ``image_shape`` fit the in-memory path
    (:data:`IN_MEMORY_LIMIT_BYTES`); an unknown size (0) counts as fitting."""
    size = 1
    for d in image_shape:
        size *= int(d)
    return int(num_examples) * size <= IN_MEMORY_LIMIT_BYTES


def square_preprocess(image_size: int) -> ResizeCrop:
    """Shorter side -> ``image_size``, central ``image_size`` square: the host resize of
    image folders and of TFDS datasets given ``dataset.image_size``."""
    return ResizeCrop(resize_shorter=image_size, crop_size=image_size)


def _resized(spec: DatasetSpec, image_size: int) -> DatasetSpec:
    """``spec`` at host image side ``image_size``.

    Fixed-size datasets are resized (shorter side) and centre-cropped to the new side on
    both paths; datasets that already resize on the host (ImageNet) keep their ratios
    (256 / 224: shorter side 256, eval crop 224, train crop 256, scaled to the new crop).
    """
    if spec.eval_preprocess is None:
        if tuple(spec.image_shape[:2]) == (image_size, image_size):
            return spec
        train = evaluation = square_preprocess(image_size)
    else:
        scale = image_size / spec.eval_preprocess.crop_size

        def scaled(rc: ResizeCrop) -> ResizeCrop:
            return ResizeCrop(
                resize_shorter=max(1, round(rc.resize_shorter * scale)),
                crop_size=max(1, round(rc.crop_size * scale)),
            )

        evaluation = ResizeCrop(
            resize_shorter=max(image_size, round(spec.eval_preprocess.resize_shorter * scale)),
            crop_size=image_size,
        )
        train = scaled(spec.train_preprocess or spec.eval_preprocess)
    shape = (image_size, image_size, spec.image_shape[-1])
    train_shape = (train.crop_size, train.crop_size, spec.image_shape[-1])
    return dataclasses.replace(
        spec,
        image_shape=shape,
        train_preprocess=train,
        eval_preprocess=evaluation,
        fits_in_memory=spec.fits_in_memory and memory_fits(spec.pretrain_examples, train_shape),
    )


def _with_overrides(spec: DatasetSpec, settings: dict) -> DatasetSpec:
    """A registered ``spec`` with the overrides ``settings`` gives (unchanged without)."""
    splits = {k: settings[k] for k in _SPLIT_KEYS if settings[k] is not None}
    if splits:
        spec = dataclasses.replace(spec, **splits)
    keys = {
        key: settings[key]
        for key in ("image_key", "label_key")
        if settings[key] is not None and settings[key] != getattr(spec, key)
    }
    if keys:  # another feature: its classes (and channels) come from the TFDS features
        from ssljax.data import any_tfds

        spec = any_tfds.with_feature_keys(spec, data_dir=settings["data_dir"], **keys)
    channels = settings["channels"]
    if channels is not None and channels != spec.image_shape[-1]:
        raise ValueError(
            f"dataset.channels={channels}: {spec.name} has {spec.image_shape[-1]}-channel "
            f"images; dataset.channels converts only image folders"
        )
    if settings["image_size"] is not None:
        spec = _resized(spec, settings["image_size"])
    return spec


def spec_from_config(dataset_cfg: Any) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``config.dataset``: the one place a config's dataset
    settings become a spec.

    * a registered name (:data:`DATASETS`) -> its spec, with the overrides the config gives
      (``*_split``, ``image_key``/``label_key``, ``image_size``); without overrides the
      registered spec itself;
    * ``'image_folder'`` -> the spec of the folder ``dataset.data_dir``
      (:func:`ssljax.data.image_folder.spec_from_folder`);
    * any other name -> a TFDS builder name (``'name/config:version'`` allowed) whose spec is
      read from its ``info.features`` (:func:`ssljax.data.any_tfds.spec_from_tfds`).

    Args:
      dataset_cfg: ``config.dataset`` (a ConfigDict or mapping with the keys of
        :data:`DATASET_KEYS`, missing ones meaning None) or a dataset name.

    Raises:
      ValueError: one line: a bad value, an unknown name (with near names), a missing image
        or label key (naming the features), a folder that cannot be read.
    """
    settings = dataset_settings(dataset_cfg)
    name = settings["name"]
    if name == IMAGE_FOLDER:
        from ssljax.data import image_folder

        return image_folder.spec_from_folder(
            settings["data_dir"],
            image_size=settings["image_size"],
            channels=settings["channels"],
            **{k: settings[k] for k in _SPLIT_KEYS},
        )
    if name in DATASETS:
        return _with_overrides(DATASETS[name], settings)
    from ssljax.data import any_tfds

    return any_tfds.spec_from_tfds(
        name,
        data_dir=settings["data_dir"],
        image_key=settings["image_key"],
        label_key=settings["label_key"],
        image_size=settings["image_size"],
        channels=settings["channels"],
        **{k: settings[k] for k in _SPLIT_KEYS},
    )


def facts_from_spec(spec: DatasetSpec, num_examples: int | None = None, *, host_views=None):
    """The ``DatasetFacts`` objectives see, from a spec and the pretraining split's size
    (by default the published size, ``spec.pretrain_examples``).

    With ``host_views`` (a :class:`ssljax.data.host_views.HostViews`: the views' crops are
    cut on the host) the training images are the global crops, ``(S, S, C)``, and are not
    held in memory.
    """
    if num_examples is None:
        num_examples = spec.pretrain_examples
    from ssljax.objectives.base import DatasetFacts

    image_shape = tuple(int(d) for d in spec.train_image_shape)
    in_memory = bool(spec.fits_in_memory and spec.train_preprocess is None)
    if host_views is not None:
        size = int(host_views.global_crops.size)
        image_shape = (size, size, image_shape[-1])
        in_memory = False
    return DatasetFacts(
        name=spec.name,
        image_shape=image_shape,
        num_examples=int(num_examples),
        num_classes=int(spec.num_classes),
        pretrain_split=spec.pretrain_split,
        in_memory=in_memory,
    )
