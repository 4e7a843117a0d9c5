"""Registry of the datasets ssljax knows how to feed.

Every dataset is read through TFDS. The host only decodes, (for ImageNet)
resizes and centre-crops to a fixed square, shuffles and batches ``uint8``
images; all augmentations run later on the accelerator.

Host-side image sizes:

* Fixed-size datasets (Fashion-MNIST, CIFAR, STL-10) are used at their native
  size for every purpose.
* ImageNet images vary in size, so the host resizes the shorter side and takes
  a central square crop:

  - training (``train_iterator``, i.e. pretraining and linear-probe training):
    shorter side -> 256, central 256x256 crop. This keeps the whole central
    square so the on-device random-resized-crop (output 224) has room to pick
    crops of any scale and position inside it.
  - evaluation (``load_split_arrays`` / ``eval_batches``): shorter side -> 256,
    central 224x224 crop (the usual 0.875 crop ratio).
"""

from __future__ import annotations

import dataclasses
import types
from typing import Mapping, Optional


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
        read no data); runs read the size from the prepared dataset instead.
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


def facts_from_spec(spec: DatasetSpec, num_examples: int | None = None):
    """The ``DatasetFacts`` objectives see, from a spec and the pretraining split's size
    (by default the published size, ``spec.pretrain_examples``)."""
    if num_examples is None:
        num_examples = spec.pretrain_examples
    from ssljax.objectives.base import DatasetFacts

    return DatasetFacts(
        name=spec.name,
        image_shape=tuple(int(d) for d in spec.train_image_shape),
        num_examples=int(num_examples),
        num_classes=int(spec.num_classes),
        pretrain_split=spec.pretrain_split,
        in_memory=bool(spec.fits_in_memory and spec.train_preprocess is None),
    )
