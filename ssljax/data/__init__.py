"""Host-side data loading: dataset registry, offline Fashion-MNIST, input pipeline.

Augmentations live in ``ssljax.data.augment`` (imported separately).
"""

from ssljax.data.datasets import (
    DATASETS,
    DatasetSpec,
    ResizeCrop,
    dataset_names,
    get_dataset_spec,
)
from ssljax.data.fashion_mnist import FashionMnistLocal
from ssljax.data.dsprites import DSprites, Dsprites  # registers the 'dsprites' TFDS builder
from ssljax.data.input_pipeline import (
    DatasetUnavailableError,
    batch_layout,
    eval_batches,
    get_builder,
    load_split_arrays,
    num_examples,
    steps_per_epoch,
    train_iterator,
)

__all__ = [
    "DATASETS",
    "DSprites",
    "Dsprites",
    "DatasetSpec",
    "DatasetUnavailableError",
    "FashionMnistLocal",
    "ResizeCrop",
    "batch_layout",
    "dataset_names",
    "eval_batches",
    "get_builder",
    "get_dataset_spec",
    "load_split_arrays",
    "num_examples",
    "steps_per_epoch",
    "train_iterator",
]
