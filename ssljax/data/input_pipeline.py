"""Host input pipeline: decode, shuffle and batch ``uint8`` images from TFDS.

The host does no augmentation; it yields fixed-shape ``uint8`` images (see
:mod:`ssljax.data.datasets` for the per-dataset host preprocessing) and
``int32`` labels, already laid out per local device.

Two paths feed :func:`train_iterator`:

* in memory (``DatasetSpec.fits_in_memory``: Fashion-MNIST, CIFAR, STL-10):
  every process decodes the whole split once into a numpy array; each epoch
  is a full permutation of it drawn from ``(seed, epoch)``, and each process
  feeds its own slice of every global batch (so the global batch at a step
  does not depend on the number of processes). Gathering a batch
  from the array costs micro- to milliseconds, so no prefetch thread is needed.
* streaming (ImageNet): each process reads its own disjoint share of the split
  (``tfds.split_for_jax_process``); TFDS files are read in an order shuffled by the epoch
  seed, the encoded records go through a bounded shuffle buffer, then are
  decoded/cropped in parallel, batched and prefetched by ``tf.data`` with
  ``deterministic=True``. With ``host_views`` (:mod:`ssljax.data.host_views`) every
  dataset streams, and each view is an Inception crop cut from the encoded image
  (``[..., n_views, S, S, C]`` per example) instead of one centre-cropped image.

Every function here takes the dataset as a registered name (``'cifar10'``) or as a
:class:`~ssljax.data.datasets.DatasetSpec` (``spec_from_config(config.dataset)``: any TFDS
builder, an image folder, a registered dataset with overrides).

Both paths drop the remainder of every epoch, so
``steps_per_epoch = num_examples // global_batch_size``, and both support an
exact resume from any step.

TensorFlow is only used on the host: importing this module hides all GPUs
from TensorFlow so that it never reserves accelerator memory.
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Callable, Iterator, Optional, Union

import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from ssljax.data import any_tfds, fashion_mnist, image_folder
from ssljax.data import dsprites as _dsprites  # noqa: F401  (registers the "dsprites" builder)
from ssljax.data.datasets import (
    IMAGE_FOLDER,
    DatasetSpec,
    ResizeCrop,
    SplitNotFoundError,
    facts_from_spec,
    get_dataset_spec,
    spec_from_config,
)
from ssljax.data.host_views import HostViews, crop_seed, host_views_for_config, views_map_fn

# A registered dataset name, or any dataset's spec.
Dataset = Union[str, DatasetSpec]


def _hide_accelerators_from_tensorflow() -> None:
    """Makes TensorFlow see no GPU so that JAX keeps all accelerator memory."""
    try:
        tf.config.set_visible_devices([], "GPU")
    except (RuntimeError, ValueError):
        # Devices were already initialised (TensorFlow was used before this
        # import); the setting can no longer change.
        pass


_hide_accelerators_from_tensorflow()

# Shuffle buffer (in examples) of the streaming path of TFDS datasets; it holds encoded
# records (roughly 110 kB each for ImageNet JPEGs). Image folders need none (their epochs are
# permutations of the file list).
STREAM_SHUFFLE_BUFFER = 10_000

Batch = dict[str, np.ndarray]


class DatasetUnavailableError(ValueError):
    """The dataset's files are not present and cannot be prepared here."""


def as_spec(dataset: Dataset) -> DatasetSpec:
    """``dataset`` itself if it is a spec, else the spec registered under that name."""
    if isinstance(dataset, DatasetSpec):
        return dataset
    return get_dataset_spec(dataset)


# --------------------------------------------------------------------------
# Builders.


def _one_line(err: BaseException, limit: int = 300) -> str:
    """``'Type: first line of message'``, truncated, for one-line errors."""
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    if len(first) > limit:
        first = first[: limit - 3] + "..."
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _data_dir_text(data_dir: Optional[str]) -> str:
    """Human-readable TFDS data_dir (TFDS's own default when ``None``)."""
    if data_dir is not None:
        return os.fspath(data_dir)
    return os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"


NO_DOWNLOAD_ENV_VAR = "SSLJAX_NO_DOWNLOAD"


def _check_download_allowed(builder: tfds.core.DatasetBuilder) -> None:
    """Raises when preparing ``builder`` would download and downloads are switched off.

    Setting ``SSLJAX_NO_DOWNLOAD=1`` keeps every run offline (clusters without network,
    hermetic tests): data must then already be prepared, come from local files, or be
    generated in code (builders with ``GENERATED_IN_CODE = True``, e.g. dSprites).
    """
    if getattr(builder, "GENERATED_IN_CODE", False):
        return
    if os.environ.get(NO_DOWNLOAD_ENV_VAR, "") not in ("", "0") and not builder.is_prepared():
        raise RuntimeError(f"downloads are switched off by {NO_DOWNLOAD_ENV_VAR}=1")


def _static_download_and_prepare(cls: type):
    """The ``download_and_prepare`` attribute as stored in ``cls``'s MRO (TFDS wraps it in
    a descriptor that makes a new object on every attribute access)."""
    return inspect.getattr_static(cls, "download_and_prepare")


# TFDS's own download_and_prepare, as installed (before any test double replaces it).
_TFDS_DOWNLOAD_AND_PREPARE = _static_download_and_prepare(tfds.core.DatasetBuilder)


def _check_download_reachable(builder: tfds.core.DatasetBuilder) -> None:
    """Fails in seconds, instead of after TFDS's minutes of retries, when preparing
    ``builder`` would download from a host this machine cannot reach
    (:func:`ssljax.data.any_tfds.check_download_reachable`).

    Only checked when TFDS's own ``download_and_prepare`` would run: not for prepared
    datasets, datasets generated in code, or builders whose preparation is replaced (mock
    data, test doubles, builders that prepare themselves).
    """
    if getattr(builder, "GENERATED_IN_CODE", False) or builder.is_prepared():
        return
    if _static_download_and_prepare(type(builder)) is not _TFDS_DOWNLOAD_AND_PREPARE:
        return
    any_tfds.check_download_reachable(builder)


def _prepared_builder(
    make_builder: Callable[[], tfds.core.DatasetBuilder],
    failure_message: Callable[[str], str],
) -> tfds.core.DatasetBuilder:
    """Creates a builder with ``make_builder`` and prepares it (download if allowed).

    Any exception from either step is re-raised as DatasetUnavailableError with
    message ``failure_message(reason)``, ``reason`` being the original error in one
    line (see :func:`_one_line`); the original error is kept as ``__cause__``.
    """
    try:
        builder = make_builder()
        _check_download_allowed(builder)
        _check_download_reachable(builder)
        builder.download_and_prepare()
    except Exception as err:  # pylint: disable=broad-except
        raise DatasetUnavailableError(failure_message(_one_line(err))) from err
    return builder


def _fashion_mnist_builder(data_dir: Optional[str]) -> tfds.core.DatasetBuilder:
    """Local idx-file builder if possible, else TFDS's downloading builder."""
    local = fashion_mnist.FashionMnistLocal(data_dir=data_dir)
    if local.is_prepared():
        return local
    if fashion_mnist.source_files_present(local.source_dir):
        try:
            local.download_and_prepare()
        except Exception as err:  # pylint: disable=broad-except
            # Another process may have finished preparing the same data_dir.
            again = fashion_mnist.FashionMnistLocal(source_dir=local.source_dir, data_dir=data_dir)
            if again.is_prepared():
                return again
            raise DatasetUnavailableError(
                f"fashion_mnist: preparing the idx files in {local.source_dir} into "
                f"data_dir {_data_dir_text(data_dir)} failed ({_one_line(err)})"
            ) from err
        return local

    def unavailable(reason: str) -> str:
        return (
            f"fashion_mnist is unavailable: no idx .gz files in {local.source_dir} "
            f"and TFDS could not download 'fashion_mnist' into data_dir "
            f"{_data_dir_text(data_dir)} ({reason}); either run "
            f"`apt-get install dataset-fashion-mnist` (or set "
            f"{fashion_mnist.SOURCE_DIR_ENV_VAR} to a directory with the four idx "
            f".gz files), or give this machine network access so TFDS can "
            f"download fashion_mnist into data_dir"
        )

    return _prepared_builder(lambda: tfds.builder("fashion_mnist", data_dir=data_dir), unavailable)


_OWN_IMAGES = (
    f"train on your own images: --config.dataset.name={IMAGE_FOLDER} "
    "--config.dataset.data_dir=DIR --config.dataset.image_size=S "
    "(DIR/<split>/<label>/*.png|jpg)"
)


def _how_to_prepare(
    spec: DatasetSpec, builder: tfds.core.DatasetBuilder, data_dir: Optional[str] = None
) -> str:
    """One-line instructions for making ``spec``'s data available."""
    manual_dir = os.path.join(os.fspath(builder.data_dir_root), "downloads", "manual")
    if spec.manual_download:
        example = (
            "; for imagenet2012: ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar"
            if builder.name == "imagenet2012"
            else ""
        )
        return (
            f"download the source archives by hand into the TFDS manual_dir "
            f"({manual_dir}{example}) and call get_builder again, or {_OWN_IMAGES}"
        )
    directory = _data_dir_text(data_dir)
    config = getattr(builder, "builder_config", None)
    build_name = builder.name + (f"/{config.name}" if config is not None else "")
    files = any_tfds.source_filenames(builder)
    shown = ", ".join(files[:3]) + (", ..." if len(files) > 3 else "")
    manual = f"; or put its source files ({shown}) in {manual_dir}" if files else ""
    return (
        f"give this machine network access so TFDS can download and prepare "
        f"{spec.tfds_name}; or run `tfds build {build_name} --data_dir {directory}` on a "
        f"machine with network access and copy {directory}/{builder.name} here{manual}; "
        f"or {_OWN_IMAGES}"
    )


def get_builder(dataset: Dataset, *, data_dir: Optional[str] = None) -> tfds.core.DatasetBuilder:
    """Returns a prepared TFDS builder for ``dataset``.

    ``fashion_mnist`` uses the offline ``fashion_mnist_local`` builder when the
    idx files are present (or it was prepared before in ``data_dir``), else
    TFDS's ``fashion_mnist`` with download. Image folders use
    :class:`~ssljax.data.image_folder.ImageFolderBuilder` on ``spec.folder`` (nothing to
    prepare). Other datasets use ``tfds.builder(spec.tfds_name)``. Preparation runs once
    per ``data_dir``; when it must download from a host this machine cannot reach it fails
    within seconds.

    Args:
      dataset: a registered name (see ``ssljax.data.datasets``) or a spec.
      data_dir: TFDS data directory; ``None`` for TFDS's default
        (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``). Unused by image folders.

    Raises:
      ValueError: unknown dataset name; an image folder that cannot be read.
      DatasetUnavailableError: the data cannot be prepared here.
    """
    spec = as_spec(dataset)
    if spec.folder is not None:
        return image_folder.folder_builder(spec.folder, channels=spec.image_shape[-1])
    if spec.tfds_name == "fashion_mnist":
        return _fashion_mnist_builder(data_dir)
    name = spec.name
    try:
        builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    except Exception as err:  # pylint: disable=broad-except
        raise DatasetUnavailableError(
            f"{name}: TFDS has no usable builder {spec.tfds_name!r} ({_one_line(err)})"
        ) from err
    return _prepared_builder(
        lambda: builder,
        lambda reason: (
            f"{name} is unavailable: TFDS could not prepare {spec.tfds_name!r} in "
            f"data_dir {_data_dir_text(data_dir)} ({reason}); to prepare it, "
            f"{_how_to_prepare(spec, builder, data_dir)}"
        ),
    )


def _split_names(split: str) -> list[str]:
    """Split names in a TFDS split string: ``'train[:10%]+test'`` -> ``['train', 'test']``."""
    return [part.split("[")[0].strip() for part in split.split("+")]


def check_split(builder: tfds.core.DatasetBuilder, spec: DatasetSpec, split: Any) -> None:
    """Raises :class:`~ssljax.data.datasets.SplitNotFoundError` (one line, listing the
    splits found) when ``split`` names a split the dataset does not have. Nothing is
    checked for split objects or builders that record no splits (e.g. mock data)."""
    if not isinstance(split, str):
        return
    found = sorted(builder.info.splits.keys())
    if not found:
        return
    for name in _split_names(split):
        if name not in found and name != "all":
            where = (
                f"image folder {spec.folder}"
                if spec.folder is not None
                else f"dataset {spec.name!r}"
            )
            raise SplitNotFoundError(
                f"{where} has no split {name!r}; splits found: {', '.join(found)} (set "
                "dataset.pretrain_split / train_split / test_split to one of them)"
            )


def num_examples(dataset: Dataset, split: str, data_dir: Optional[str] = None) -> int:
    """Number of examples in ``split`` (TFDS split syntax, e.g. ``'train[:10%]'``).

    Raises:
      KeyError: the builder records no split sizes (e.g. mock data).
      SplitNotFoundError: the dataset has no such split.
    """
    spec = as_spec(dataset)
    builder = get_builder(spec, data_dir=data_dir)
    check_split(builder, spec, split)
    return int(builder.info.splits[split].num_examples)


def dataset_facts(config):
    """The pretraining data's ``DatasetFacts`` for ``config`` (computed once per run), from
    ``spec_from_config(config.dataset)``.

    The split's size comes from the prepared builder; a builder that records no split sizes
    (TFDS's ``mock_data``) gives the dataset's published size instead, or, for datasets
    without one (any other TFDS dataset), the size ``tf.data`` gives the split.
    """
    spec = spec_from_config(config.dataset)
    data_dir = config.dataset.get("data_dir")
    try:
        n = num_examples(spec, spec.pretrain_split, data_dir=data_dir)
    except KeyError:
        n = None
        if not spec.pretrain_examples:
            try:
                n = _host_examples(get_builder(spec, data_dir=data_dir), spec.pretrain_split)
            except ValueError:
                n = None
    return facts_from_spec(spec, n, host_views=host_views_for_config(config, spec))


# --------------------------------------------------------------------------
# Decoding.


def _central_window(height: tf.Tensor, width: tf.Tensor, resize_crop: ResizeCrop):
    """Central square ``(top, left, size)`` in original pixels that becomes the
    crop after resizing the shorter side to ``resize_crop.resize_shorter``."""
    shorter = tf.cast(tf.minimum(height, width), tf.float32)
    fraction = resize_crop.crop_size / resize_crop.resize_shorter
    size = tf.maximum(1, tf.cast(tf.round(shorter * fraction), tf.int32))
    size = tf.minimum(size, tf.minimum(height, width))
    return (height - size) // 2, (width - size) // 2, size


def decode_resize_crop(encoded: tf.Tensor, resize_crop: ResizeCrop, channels: int) -> tf.Tensor:
    """Decodes an encoded image, resizes its shorter side and centre-crops.

    Equivalent to resizing the shorter side to ``resize_shorter`` and taking the
    central ``crop_size`` square, but crops first so JPEGs are only partly
    decoded (``decode_and_crop_jpeg``) and the resize touches fewer pixels.

    Returns:
      ``uint8 [crop_size, crop_size, channels]``.
    """

    def from_jpeg():
        shape = tf.image.extract_jpeg_shape(encoded)
        top, left, size = _central_window(shape[0], shape[1], resize_crop)
        window = tf.stack([top, left, size, size])
        return tf.image.decode_and_crop_jpeg(encoded, window, channels=channels)

    def from_other():
        image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
        shape = tf.shape(image)
        top, left, size = _central_window(shape[0], shape[1], resize_crop)
        return tf.image.crop_to_bounding_box(image, top, left, size, size)

    square = tf.cond(tf.io.is_jpeg(encoded), from_jpeg, from_other)
    out = resize_crop.crop_size
    resized = tf.image.resize(square, [out, out], method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def _index_from_tfds_id(tfds_id: tf.Tensor, shard_offsets: np.ndarray) -> tf.Tensor:
    """Position of an example in its split, from a TFDS id ``<file>-00012-of-01024__345``."""
    shard = tf.strings.to_number(
        tf.strings.regex_replace(tfds_id, r"^.*-(\d+)-of-\d+__\d+$", r"\1"), tf.int64
    )
    record = tf.strings.to_number(
        tf.strings.regex_replace(tfds_id, r"^.*__(\d+)$", r"\1"), tf.int64
    )
    return tf.cast(tf.gather(tf.constant(shard_offsets, tf.int64), shard) + record, tf.int32)


def _shard_offsets(builder: tfds.core.DatasetBuilder, split: str) -> Optional[np.ndarray]:
    """First example index of every file shard of ``split``, or None when unknown."""
    try:
        lengths = list(builder.info.splits[split].shard_lengths)
    except (KeyError, AttributeError, TypeError):
        return None
    if not lengths:
        return None
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


def _select_fn(
    spec: DatasetSpec, shard_offsets: Optional[np.ndarray] = None
) -> Callable[[dict], dict]:
    """Keeps the image, the int32 label and the int32 ``index`` of a TFDS example: its
    position in the split when ``shard_offsets`` are given and the reader returns TFDS ids,
    else -1 (e.g. mocked data)."""

    def select(example):
        out = {
            "image": example[spec.image_key],
            "label": tf.cast(example[spec.label_key], tf.int32),
        }
        if shard_offsets is not None and "tfds_id" in example:
            out["index"] = _index_from_tfds_id(example["tfds_id"], shard_offsets)
        else:
            out["index"] = tf.constant(-1, tf.int32)
        return out

    return select


def _decode_fn(spec: DatasetSpec, *, training: bool) -> Callable[[dict], dict]:
    """Turns a selected example into a fixed-shape ``uint8`` image + label."""
    resize_crop = spec.preprocess_for(training)
    shape = spec.image_shape_for(training)

    def decode(example):
        image = example["image"]
        if resize_crop is not None:
            image = decode_resize_crop(image, resize_crop, channels=shape[-1])
        return dict(example, image=tf.ensure_shape(image, shape))

    return decode


def _decoders(spec: DatasetSpec, *, training: bool, keep_encoded: bool = False) -> Optional[dict]:
    """TFDS decoders: keep images encoded when the host resizes/crops them (or cuts host
    views from them, ``keep_encoded``)."""
    if spec.preprocess_for(training) is None and not keep_encoded:
        return None
    return {spec.image_key: tfds.decode.SkipDecoding()}


def data_options() -> tf.data.Options:
    """``tf.data`` options of every pipeline here: deterministic order."""
    options = tf.data.Options()
    options.deterministic = True
    return options


def _read(
    builder: tfds.core.DatasetBuilder,
    spec: DatasetSpec,
    split: Any,
    *,
    training: bool,
    shuffle_seed: Optional[int] = None,
    shard_offsets: Optional[np.ndarray] = None,
    keep_encoded: bool = False,
) -> tf.data.Dataset:
    """Selected (still encoded if the host crops) examples of ``split``.

    With ``shuffle_seed`` the file order is shuffled deterministically from it;
    without, examples come in file order. With ``shard_offsets`` (see ``_shard_offsets``)
    each example also carries its ``index`` in the split. With ``keep_encoded`` images stay
    encoded whatever the spec's preprocessing (host views are cut from them).
    """
    check_split(builder, spec, split)
    read_config = tfds.ReadConfig(
        shuffle_seed=shuffle_seed,
        options=data_options(),
        add_tfds_id=shard_offsets is not None,
    )
    ds = builder.as_dataset(
        split=split,
        shuffle_files=shuffle_seed is not None,
        decoders=_decoders(spec, training=training, keep_encoded=keep_encoded),
        read_config=read_config,
    )
    return ds.map(_select_fn(spec, shard_offsets), num_parallel_calls=tf.data.AUTOTUNE)


def _decoded(
    builder: tfds.core.DatasetBuilder, spec: DatasetSpec, split: Any, *, training: bool
) -> tf.data.Dataset:
    """Decoded fixed-shape examples of ``split`` in file order."""
    ds = _read(builder, spec, split, training=training)
    ds = ds.map(_decode_fn(spec, training=training), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.with_options(data_options())


def _raise_if_unreadable(
    err: Exception,
    builder: tfds.core.DatasetBuilder,
    spec: DatasetSpec,
    split: Any,
    *,
    training: bool,
) -> None:
    """After reading ``split`` failed with ``err``: for an image folder, raises an
    :class:`~ssljax.data.datasets.ImageDecodeError` naming the first file that cannot be
    read or decoded (found in one extra parallel pass over the split); otherwise returns."""
    if not isinstance(builder, image_folder.ImageFolderBuilder):
        return
    resize_crop = spec.preprocess_for(training)
    channels = spec.image_shape[-1]

    def decode(encoded):
        if resize_crop is None:
            return tf.io.decode_image(encoded, channels=channels, expand_animations=False)
        return decode_resize_crop(encoded, resize_crop, channels=channels)

    found = image_folder.unreadable_image_error(builder, split, decode)
    if found is not None:
        raise found from err


# Bound at import: a generator closed while the interpreter exits may run its ``except``
# clause after TensorFlow's modules were torn down (``tf.errors`` is then None).
_OP_ERROR = tf.errors.OpError


def _reading(
    batches: Iterator[Batch],
    builder: tfds.core.DatasetBuilder,
    spec: DatasetSpec,
    split: Any,
    *,
    training: bool,
) -> Iterator[Batch]:
    """``batches``, with a read failure of an image folder named by its file."""
    try:
        yield from batches
    except _OP_ERROR as err:
        _raise_if_unreadable(err, builder, spec, split, training=training)
        raise


def _to_arrays(
    ds: tf.data.Dataset,
    shape: tuple[int, ...],
    explain: Optional[Callable[[Iterator[Batch]], Iterator[Batch]]] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Materialises a decoded dataset as ``(images uint8, labels int32)``; ``explain``
    wraps the chunk iterator (e.g. :func:`_reading`, naming unreadable files)."""
    count = int(ds.cardinality())
    chunks = ds.batch(1024).prefetch(2).as_numpy_iterator()
    if explain is not None:
        chunks = explain(chunks)
    if count >= 0:  # Known size: fill preallocated arrays (no extra copy).
        images = np.empty((count, *shape), np.uint8)
        labels = np.empty((count,), np.int32)
        filled = 0
        for chunk in chunks:
            n = len(chunk["label"])
            images[filled : filled + n] = chunk["image"]
            labels[filled : filled + n] = chunk["label"]
            filled += n
        return images[:filled], labels[:filled]
    parts = list(chunks)
    if not parts:
        return np.empty((0, *shape), np.uint8), np.empty((0,), np.int32)
    return (
        np.concatenate([p["image"] for p in parts]).astype(np.uint8, copy=False),
        np.concatenate([p["label"] for p in parts]).astype(np.int32, copy=False),
    )


def load_split_arrays(
    dataset: Dataset,
    split: str,
    *,
    data_dir: Optional[str] = None,
    max_examples: Optional[int] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Loads a whole split into memory, in file order, for evaluation.

    Uses the evaluation host preprocessing (``DatasetSpec.image_shape``). Meant
    for datasets that fit in memory (Fashion-MNIST, CIFAR, STL-10 labelled
    splits). Every process loads the full split.

    Args:
      dataset: a registered name or a spec (``spec_from_config(config.dataset)``).
      split: TFDS split (e.g. ``'test'``, ``'train[:1000]'``).
      data_dir: TFDS data directory.
      max_examples: keep only the first ``max_examples`` examples.

    Returns:
      ``(images uint8 [N, H, W, C], labels int32 [N])``.
    """
    if max_examples is not None and max_examples < 0:
        raise ValueError(f"max_examples must be >= 0, got {max_examples}")
    spec = as_spec(dataset)
    builder = get_builder(spec, data_dir=data_dir)
    ds = _decoded(builder, spec, split, training=False)
    if max_examples is not None:
        ds = ds.take(max_examples)
    return _to_arrays(
        ds,
        spec.image_shape,
        lambda chunks: _reading(chunks, builder, spec, split, training=False),
    )


def pad_batch(batch: Batch, batch_size: int) -> Batch:
    """Zero-pads every array of ``batch`` to ``batch_size`` rows and adds a
    boolean ``mask`` that is True on real rows."""
    n = len(batch["label"])
    if n > batch_size:
        raise ValueError(f"batch has {n} rows, more than batch_size={batch_size}")
    padded = {}
    for key, value in batch.items():
        pad = np.zeros((batch_size - n, *value.shape[1:]), value.dtype)
        padded[key] = np.concatenate([value, pad]) if n < batch_size else value
    padded["mask"] = np.arange(batch_size) < n
    return padded


def eval_process_split(split: str, *, process_index: int = 0, process_count: int = 1) -> Any:
    """Process ``process_index``'s contiguous share of ``split`` for evaluation.

    The shares are ``tfds.even_splits(split, process_count, drop_remainder=False)``: in
    order, disjoint, covering every example, their sizes differing by at most one. So
    concatenating every process's rows in process order gives the split in file order.
    With one process the split is returned unchanged.
    """
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(
            f"process_index={process_index} must be in [0, process_count={process_count})"
        )
    if process_count == 1:
        return split
    return tfds.even_splits(split, n=process_count, drop_remainder=False)[process_index]


def eval_shard_sizes(
    dataset: Dataset, split: str, *, process_count: int = 1, data_dir: Optional[str] = None
) -> list[int]:
    """Number of examples in each process's share of ``split`` (:func:`eval_process_split`).

    Read from the dataset's metadata (or, where it has none, e.g. mocked data, from the
    cardinality TFDS gives the share), so every process computes the same list without
    communicating.
    """
    spec = as_spec(dataset)
    builder = get_builder(spec, data_dir=data_dir)
    check_split(builder, spec, split)
    sizes = []
    for i in range(process_count):
        share = eval_process_split(split, process_index=i, process_count=process_count)
        try:
            sizes.append(int(builder.info.splits[share].num_examples))
        except KeyError:
            sizes.append(_host_examples(builder, share))
    return sizes


def eval_batches(
    dataset: Dataset,
    split: str,
    *,
    batch_size: int,
    data_dir: Optional[str] = None,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[Batch]:
    """Iterates once over a split (or one process's share of it), in file order, in
    fixed-size batches.

    For datasets too big to hold in memory: only ``tf.data``'s prefetch buffer of decoded
    batches is held at a time. By default the whole split is read; with
    ``process_count > 1`` only the share :func:`eval_process_split` gives
    ``process_index``.

    Yields:
      ``{'image': uint8 [batch_size, H, W, C], 'label': int32 [batch_size],
      'mask': bool [batch_size]}``; only the last batch is zero-padded, with
      ``mask`` False on the padding rows.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    spec = as_spec(dataset)
    builder = get_builder(spec, data_dir=data_dir)
    check_split(builder, spec, split)
    share = eval_process_split(split, process_index=process_index, process_count=process_count)
    ds = _decoded(builder, spec, share, training=False)
    ds = ds.map(lambda example: {"image": example["image"], "label": example["label"]})
    ds = ds.batch(batch_size).prefetch(2)
    batches = _reading(ds.as_numpy_iterator(), builder, spec, share, training=False)
    return (pad_batch(batch, batch_size) for batch in batches)


# --------------------------------------------------------------------------
# Training iterator.


def _nearest_multiples(value: int, factor: int) -> str:
    """``'248 or 256'``: the nearest positive multiples of ``factor``."""
    below = (value // factor) * factor
    above = below + factor
    if below <= 0 or below == value:
        return str(above if below <= 0 else value)
    return f"{below} or {above}"


def batch_layout(global_batch_size: int, num_devices: Optional[int] = None) -> tuple[int, int]:
    """Validates a global batch size and returns ``(local_devices, per_device)``.

    Args:
      global_batch_size: examples per step over all devices of all processes.
      num_devices: total device count; defaults to ``jax.device_count()``.

    Raises:
      ValueError: the batch is not positive or not divisible by the devices.
    """
    process_count = jax.process_count()
    if num_devices is None:
        num_devices, local_devices = jax.device_count(), jax.local_device_count()
    else:
        if num_devices <= 0 or num_devices % process_count:
            raise ValueError(
                f"num_devices={num_devices} must be a positive multiple of the "
                f"{process_count} processes"
            )
        local_devices = num_devices // process_count
    if global_batch_size <= 0:
        raise ValueError(f"global_batch_size must be positive, got {global_batch_size}")
    if global_batch_size % num_devices:
        raise ValueError(
            f"global_batch_size={global_batch_size} is not divisible by the "
            f"{num_devices} devices; use a multiple of {num_devices}, e.g. "
            f"{_nearest_multiples(global_batch_size, num_devices)}"
        )
    return local_devices, global_batch_size // num_devices


def epoch_seed(seed: int, epoch: int) -> int:
    """Non-negative 63-bit shuffle seed derived from ``(seed, epoch)``.

    Any Python int is accepted as ``seed`` (taken modulo 2**64).
    """
    entropy = [int(seed) % 2**64, int(epoch)]
    state = np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def epoch_order(num_examples: int, steps: int, batch: int, seed: int, epoch: int) -> np.ndarray:
    """Example indices of one epoch as ``[steps, batch]``: a permutation drawn
    from ``(seed, epoch)`` with the remainder dropped."""
    rng = np.random.default_rng(epoch_seed(seed, epoch))
    return rng.permutation(num_examples)[: steps * batch].reshape(steps, batch)


def _layout(batch: Batch, local_devices: int, per_device: int) -> Batch:
    """Reshapes ``[local_devices * per_device, ...]`` arrays to device-major."""
    return {k: v.reshape(local_devices, per_device, *v.shape[1:]) for k, v in batch.items()}


def _in_memory_batches(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int,
    start_step: int,
    steps: int,
    local_devices: int,
    per_device: int,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[Batch]:
    """Endless batches from a whole split held in memory, from ``start_step`` on.

    Every process holds the whole split and draws the same global order from ``(seed,
    epoch)``; process ``p`` feeds rows ``[p * per_host, (p + 1) * per_host)`` of each global
    batch. So the global batch at step ``t`` is the same for any number of processes, and a
    run on two processes equals a run on one. ``index`` is each example's position in the
    split.
    """
    per_host = local_devices * per_device
    lo, hi = process_index * per_host, (process_index + 1) * per_host
    global_batch = per_host * process_count
    epoch, skip = divmod(start_step, steps)
    while True:
        for indices in epoch_order(len(labels), steps, global_batch, seed, epoch)[skip:]:
            indices = indices[lo:hi]
            batch = {
                "image": images[indices],
                "label": labels[indices],
                "index": indices.astype(np.int32),
            }
            yield _layout(batch, local_devices, per_device)
        epoch, skip = epoch + 1, 0


def _folder_records(
    builder: image_folder.ImageFolderBuilder, host_split: Any
) -> dict[str, tf.Tensor]:
    """A folder's share ``host_split`` as ``{'path', 'label', 'index'}`` tensors in reading
    order, built once per training iterator. For ImageNet's 1.28M files (one core of the
    2-core Intel VM) the Python pass over the records takes about 0.9 s, once; each epoch's
    permutation of the tensors (:func:`_folder_epoch_records`) 0.65 s, where rebuilding the
    list every epoch took 1.7 s."""
    paths, labels, indices = builder.split_records(host_split)
    return {
        "path": tf.constant(paths, tf.string, shape=[len(paths)]),
        "label": tf.constant(labels),
        "index": tf.constant(indices),
    }


def _folder_epoch_records(records: dict[str, tf.Tensor], shuffle_seed: int) -> tf.data.Dataset:
    """One epoch of a folder's ``records`` (:func:`_folder_records`) in a full permutation
    seeded by ``shuffle_seed``."""
    order = np.random.default_rng(shuffle_seed).permutation(len(records["label"]))
    return tf.data.Dataset.from_tensor_slices(
        {key: tf.gather(value, order) for key, value in records.items()}
    )


def _read_file(record: dict) -> dict:
    """A folder record with its file's bytes as ``'image'`` in place of its ``'path'``."""
    out = {key: value for key, value in record.items() if key != "path"}
    out["image"] = tf.io.read_file(record["path"])
    return out


def _stream_epoch(
    builder: tfds.core.DatasetBuilder,
    spec: DatasetSpec,
    host_split: Any,
    *,
    shuffle_seed: int,
    buffer_size: int,
    skip: int,
    local_devices: int,
    per_device: int,
    shard_offsets: Optional[np.ndarray] = None,
    host_views: Optional[HostViews] = None,
    crop_base_seed: Optional[np.ndarray] = None,
    folder_records: Optional[dict[str, tf.Tensor]] = None,
) -> tf.data.Dataset:
    """One epoch of the streaming path, starting after ``skip`` batches.

    With ``host_views`` the views of each image are cut from its encoded file
    (:mod:`ssljax.data.host_views`), seeded by ``crop_base_seed`` and the example's position
    in the epoch's stream (counted before the resume skip, so a resumed epoch cuts the same
    crops).

    An image folder's epoch (``folder_records``: its file list from :func:`_folder_records`)
    is a permutation of the list seeded by ``shuffle_seed``, each file read in the map that decodes it (no TFDS reader, no shuffle buffer: the
    streamed read then costs what reading the file costs, ``experiments/benchmark_input.md``);
    other datasets are read by TFDS with a seeded file shuffle and a ``buffer_size`` buffer.
    """
    per_host = local_devices * per_device
    if folder_records is not None:
        # A full permutation of the file list: no shuffle buffer, and the files of skipped
        # batches are never opened. Each file is read inside the decoding map.
        ds = _folder_epoch_records(folder_records, shuffle_seed)
        load = _read_file
    else:
        ds = _read(
            builder,
            spec,
            host_split,
            training=True,
            shuffle_seed=shuffle_seed,
            shard_offsets=shard_offsets,
            keep_encoded=host_views is not None,
        )
        ds = ds.shuffle(buffer_size, seed=shuffle_seed, reshuffle_each_iteration=False)
        load = None
    layout = {}  # key -> its batch shape
    if host_views is None:
        layout["image"] = (local_devices, per_device, *spec.train_image_shape)
        # Skipping encoded records (before decoding) makes resuming cheap.
        ds = ds.skip(skip * per_host)
        decode = _decode_fn(spec, training=True)
        fn = decode if load is None else lambda example: decode(load(example))
    else:
        channels = spec.image_shape[-1]
        for key, crops in zip(("image", "local_image"), host_views.crops):
            layout[key] = (local_devices, per_device, crops.count, crops.size, crops.size, channels)
        make = views_map_fn(host_views, channels=channels, base_seed=crop_base_seed)
        ds = ds.enumerate().skip(skip * per_host)
        fn = make if load is None else lambda position, example: make(position, load(example))
    ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
    layout["label"] = layout["index"] = (local_devices, per_device)
    ds = ds.batch(per_host, drop_remainder=True)
    ds = ds.map(lambda b: {key: tf.reshape(b[key], shape) for key, shape in layout.items()})
    return ds.prefetch(tf.data.AUTOTUNE).with_options(data_options())


def _streamed_batches(
    builder: tfds.core.DatasetBuilder,
    spec: DatasetSpec,
    host_split: Any,
    *,
    seed: int,
    start_step: int,
    steps: int,
    buffer_size: int,
    local_devices: int,
    per_device: int,
    shard_offsets: Optional[np.ndarray] = None,
    host_views: Optional[HostViews] = None,
) -> Iterator[Batch]:
    """Endless batches read from TFDS files, from ``start_step`` on."""
    epoch, skip = divmod(start_step, steps)
    folder_records = None
    if isinstance(builder, image_folder.ImageFolderBuilder):
        folder_records = _folder_records(builder, host_split)  # once, not per epoch
    while True:
        crop_base_seed = None
        if host_views is not None:
            crop_base_seed = crop_seed(seed, epoch, jax.process_index())
        ds = _stream_epoch(
            builder,
            spec,
            host_split,
            shuffle_seed=epoch_seed(seed, epoch),
            buffer_size=buffer_size,
            skip=skip,
            local_devices=local_devices,
            per_device=per_device,
            shard_offsets=shard_offsets,
            host_views=host_views,
            crop_base_seed=crop_base_seed,
            folder_records=folder_records,
        )
        yield from _reading(ds.as_numpy_iterator(), builder, spec, host_split, training=True)
        epoch, skip = epoch + 1, 0


def _host_examples(builder: tfds.core.DatasetBuilder, host_split: Any) -> int:
    """Number of examples in this process's share of a split."""
    count = int(builder.as_dataset(split=host_split).cardinality())
    if count < 0:
        raise ValueError(f"cannot tell the size of split {host_split!r}")
    return count


def train_iterator(
    dataset: Dataset,
    *,
    global_batch_size: int,
    seed: int,
    start_step: int = 0,
    data_dir: Optional[str] = None,
    split: Optional[str] = None,
    num_devices: Optional[int] = None,
    host_views: Optional[HostViews] = None,
) -> Iterator[Batch]:
    """Endless, deterministically shuffled training batches for this process.

    Each process yields ``global_batch_size // process_count`` examples per
    step. In-memory datasets: every process holds the whole split and takes its
    slice of each global batch, so a run gives the same global batches on any
    number of processes. Streamed datasets: each process reads its own
    ``tfds.split_for_jax_process`` share of the split (remainder dropped). Every epoch is
    shuffled from ``(seed, epoch)`` (a full permutation for in-memory datasets and streamed
    image folders, a file shuffle plus a ``STREAM_SHUFFLE_BUFFER`` buffer for other
    streamed datasets) and its last partial batch is dropped, so ``steps_per_epoch = num_examples // global_batch_size``.
    ``train_iterator(..., start_step=k)`` yields exactly what a fresh iterator
    yields from its step ``k`` on.

    Args:
      dataset: a registered name or a spec (``spec_from_config(config.dataset)``).
      global_batch_size: examples per step over all processes; must be
        divisible by the number of devices.
      seed: shuffling seed.
      start_step: number of batches already consumed (resume point).
      data_dir: TFDS data directory.
      split: TFDS split; defaults to the dataset's ``pretrain_split``.
      num_devices: total device count, default ``jax.device_count()``.
      host_views: cut the views' crops on the host (``ssljax.data.host_views``;
        ``host_views_for_config(config)`` gives a run's): every image is read encoded
        and each view is an Inception crop of it, seeded by ``(seed, epoch, process,
        position in the epoch's stream, view)``. Such runs always stream (also datasets
        that would fit in memory), so every epoch cuts new crops. None: the host feeds
        whole images (``spec.train_image_shape``) and the device crops.

    Returns:
      An iterator of ``{'image': uint8 [local_devices, per_device, H, W, C],
      'label': int32 [local_devices, per_device], 'index': int32 [local_devices,
      per_device]}`` (label -1 for unlabelled examples, e.g. STL-10 ``unlabelled``;
      index is the example's position in the split, read from TFDS ids when streaming,
      -1 where the reader gives none). With ``host_views``: ``'image'`` is ``uint8
      [local_devices, per_device, n_global, S, S, C]`` (the global crops) and, when
      ``host_views`` has local crops, ``'local_image'`` is ``uint8 [local_devices,
      per_device, n_local, s, s, C]``.

    Raises:
      ValueError: bad batch size / start step, unknown dataset, or fewer
        examples than one global batch.
      DatasetUnavailableError: the data cannot be prepared here.
    """
    if start_step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}")
    spec = as_spec(dataset)
    name = spec.name
    local_devices, per_device = batch_layout(global_batch_size, num_devices)
    per_host = local_devices * per_device
    builder = get_builder(spec, data_dir=data_dir)
    split = spec.pretrain_split if split is None else split

    if spec.fits_in_memory and host_views is None:
        # Every process holds the whole split and feeds its slice of each global batch.
        images, labels = _to_arrays(
            _decoded(builder, spec, split, training=True),
            spec.train_image_shape,
            lambda chunks: _reading(chunks, builder, spec, split, training=True),
        )
        steps = len(labels) // (per_host * jax.process_count())
        if steps == 0:
            raise ValueError(
                f"{name} split {split!r} has {len(labels)} examples, fewer than one global "
                f"batch of {global_batch_size}"
            )
        return _in_memory_batches(
            images,
            labels,
            seed=seed,
            start_step=start_step,
            steps=steps,
            local_devices=local_devices,
            per_device=per_device,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )
    # Streamed splits: each process reads its own disjoint share of the files.
    check_split(builder, spec, split)
    host_split = tfds.split_for_jax_process(split, drop_remainder=True)
    count = _host_examples(builder, host_split)
    steps = count // per_host
    if steps == 0:
        raise ValueError(
            f"{name} split {split!r} has {count} examples on this process, fewer than "
            f"one per-process batch of {per_host} (global_batch_size={global_batch_size})"
        )
    return _streamed_batches(
        builder,
        spec,
        host_split,
        seed=seed,
        start_step=start_step,
        steps=steps,
        buffer_size=min(count, STREAM_SHUFFLE_BUFFER),
        local_devices=local_devices,
        per_device=per_device,
        shard_offsets=_shard_offsets(builder, split) if isinstance(split, str) else None,
        host_views=host_views,
    )


def steps_per_epoch(
    dataset: Dataset,
    *,
    global_batch_size: int,
    split: Optional[str] = None,
    data_dir: Optional[str] = None,
) -> int:
    """``num_examples(split) // global_batch_size`` (default: pretrain split)."""
    if global_batch_size <= 0:
        raise ValueError(f"global_batch_size must be positive, got {global_batch_size}")
    spec = as_spec(dataset)
    split = spec.pretrain_split if split is None else split
    return num_examples(spec, split, data_dir=data_dir) // global_batch_size
