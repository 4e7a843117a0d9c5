"""Host-side data loading: dataset registry, offline Fashion-MNIST, any TFDS dataset, image
folders, input pipeline, and text corpora for word2vec (``ssljax.data.text``).

``spec_from_config(config.dataset)`` turns a config's dataset settings into a
``DatasetSpec`` (a registered name, any TFDS builder name, or ``image_folder``); every
input-pipeline function takes a registered name or such a spec.

Device-side view making (augmentations, corruptions, pretext transforms) lives in
``ssljax.views``.

The registry (``ssljax.data.datasets``) needs neither TensorFlow nor TFDS; the names that do
(builders, the input pipeline) are imported on first use, so ``import ssljax.data.datasets``
works on a machine without TensorFlow.
"""

import importlib

from ssljax.data.datasets import (
    DATASETS,
    IMAGE_FOLDER,
    DatasetSpec,
    FeatureKeyError,
    ImageDecodeError,
    ImageFolderError,
    ResizeCrop,
    SplitNotFoundError,
    UnknownDatasetError,
    dataset_names,
    facts_from_spec,
    get_dataset_spec,
    spec_from_config,
)

# name -> module of the names that import TensorFlow/TFDS.
_LAZY = {
    "FashionMnistLocal": "ssljax.data.fashion_mnist",
    "DSprites": "ssljax.data.dsprites",
    "DSpritesBuilder": "ssljax.data.dsprites",
    "DatasetUnavailableError": "ssljax.data.input_pipeline",
    "ImageFolderBuilder": "ssljax.data.image_folder",
    "write_image_folder": "ssljax.data.image_folder",
    "batch_layout": "ssljax.data.input_pipeline",
    "dataset_facts": "ssljax.data.input_pipeline",
    "eval_batches": "ssljax.data.input_pipeline",
    "get_builder": "ssljax.data.input_pipeline",
    "load_split_arrays": "ssljax.data.input_pipeline",
    "num_examples": "ssljax.data.input_pipeline",
    "steps_per_epoch": "ssljax.data.input_pipeline",
    "train_iterator": "ssljax.data.input_pipeline",
    "Vocabulary": "ssljax.data.text",
    "SyntheticCorpusParams": "ssljax.data.text",
    "tokenize": "ssljax.data.text",
    "build_vocabulary": "ssljax.data.text",
    "read_text_files": "ssljax.data.text",
    "keep_probabilities": "ssljax.data.text",
    "subsample": "ssljax.data.text",
    "unigram_table": "ssljax.data.text",
    "sample_negatives": "ssljax.data.text",
    "expected_pair_weights": "ssljax.data.text",
    "offset_weights": "ssljax.data.text",
    "skip_gram_pairs": "ssljax.data.text",
    "cbow_windows": "ssljax.data.text",
    "synthetic_corpus": "ssljax.data.text",
    "true_pair_probabilities": "ssljax.data.text",
    "true_pmi": "ssljax.data.text",
    "true_similarity": "ssljax.data.text",
    "word2vec_examples": "ssljax.data.text",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ssljax.data' has no attribute {name!r}")


__all__ = [
    "Vocabulary",
    "SyntheticCorpusParams",
    "tokenize",
    "build_vocabulary",
    "read_text_files",
    "keep_probabilities",
    "subsample",
    "unigram_table",
    "sample_negatives",
    "expected_pair_weights",
    "offset_weights",
    "skip_gram_pairs",
    "cbow_windows",
    "synthetic_corpus",
    "true_pair_probabilities",
    "true_pmi",
    "true_similarity",
    "word2vec_examples",
    "DATASETS",
    "DSprites",
    "DSpritesBuilder",
    "DatasetSpec",
    "DatasetUnavailableError",
    "FashionMnistLocal",
    "FeatureKeyError",
    "IMAGE_FOLDER",
    "ImageDecodeError",
    "ImageFolderBuilder",
    "ImageFolderError",
    "ResizeCrop",
    "SplitNotFoundError",
    "UnknownDatasetError",
    "batch_layout",
    "dataset_facts",
    "dataset_names",
    "eval_batches",
    "facts_from_spec",
    "get_builder",
    "get_dataset_spec",
    "load_split_arrays",
    "num_examples",
    "spec_from_config",
    "steps_per_epoch",
    "train_iterator",
    "write_image_folder",
]
