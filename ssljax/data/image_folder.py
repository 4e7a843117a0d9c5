"""Your own images as an ssljax dataset: ``DIR/<split>/<label>/*.png|jpg|jpeg``.

The layout is TFDS's ``ImageFolder``'s, and :class:`ImageFolderBuilder` is that builder
(``tfds.folder_dataset.ImageFolder``) with four additions the input pipeline needs:

* TFDS's split syntax (``'train[:50%]'``, ``tfds.even_splits``, ``tfds.split_for_jax_process``),
  so each process of a multi-host run reads its own share;
* a file shuffle seeded by ``ReadConfig.shuffle_seed`` (reproducible epochs) and record ids
  (each example's position in its split, as the training batches' ``index``);
* a channel count: every image is decoded to ``channels`` channels;
* errors that name the file or the splits (:func:`find_unreadable`, ``SplitNotFoundError``).

Reading the files with TFDS's builder keeps one input path for every dataset: the same
``as_dataset``, split arithmetic and decoders serve TFDS datasets and folders. Streamed
training is the exception: it takes the split's files from :meth:`ImageFolderBuilder.split_records`
and reads each in the map that decodes it, which lets a host cut two views per image about as
fast as it decodes one (``experiments/benchmark_input.md``).

Conventions:

* **Labels**: the class folder names over all splits, sorted, are the class ids 0..K-1
  (a class missing from one split keeps its id). Files of other types are ignored.
* **Order**: a split's file order is ImageFolder's, a fixed shuffle seeded by the split name.
* **Size**: every image, of any size, is resized on the host (shorter side to
  ``image_size``, antialiased bilinear) and centre-cropped to ``image_size x image_size``;
  two-view pretraining instead cuts ``image_size`` Inception crops of the whole image on the
  host (:mod:`ssljax.data.host_views`, ``config.augment.crop_on``).
* **Channels** (``dataset.channels``, default 3): grey images are replicated to RGB, an
  alpha channel is dropped (not composited over a background); with ``channels=1`` colour
  images become luma (libpng's / libjpeg's conversion). Mixed grey, RGB and RGBA files in one
  folder all come out with the same channel count.
"""

from __future__ import annotations

import os
import re
from typing import Callable, Iterator, Optional

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from ssljax.data.datasets import (
    IMAGE_FOLDER,
    DatasetSpec,
    ImageDecodeError,
    ImageFolderError,
    memory_fits,
    square_preprocess,
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
DEFAULT_CHANNELS = 3
LAYOUT = "DIR/<split>/<label>/<image>.png|jpg|jpeg"


def _first_line(err: BaseException, limit: int = 300) -> str:
    """``'Type: first line of message'``; TensorFlow's node and op tags are left out."""
    text = getattr(err, "message", None) if isinstance(err, tf.errors.OpError) else None
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text or str(err))
    text = re.sub(r"\s*\[Op:[^\]]*\].*$", "", text, flags=re.S)
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    if len(first) > limit:
        first = first[: limit - 3] + "..."
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


class ImageFolderBuilder(tfds.folder_dataset.ImageFolder):
    """TFDS's ``ImageFolder`` with split slicing, seeded shuffles, record ids and a channel
    count (see the module docstring).

    Examples have features ``image`` (uint8 ``[H, W, channels]``, sizes vary), ``label``
    (class id) and ``image/filename``.
    """

    def __init__(self, root_dir: str, *, channels: int = DEFAULT_CHANNELS):
        if channels not in (1, 3):
            raise ValueError(f"channels={channels} is invalid; valid: 1, 3")
        self.channels = int(channels)
        super().__init__(root_dir, shape=(None, None, self.channels))

    @property
    def root(self) -> str:
        """The folder the images are read from."""
        return os.fspath(self._data_dir)

    @property
    def class_names(self) -> list[str]:
        """Class folder names; a name's position is its class id."""
        return list(self.info.features["label"].names)

    def split_names(self) -> list[str]:
        """The folder's splits, sorted."""
        return sorted(self.info.splits.keys())

    def split_files(self, split: str) -> list[str]:
        """Paths of the images of the (unsliced) ``split``, in reading order."""
        return [example.image_path for example in self._split_examples.get(split, [])]

    def _records(self, split) -> Iterator[tuple[str, int, str, int]]:
        """``(path, class id, split name, position in the split)`` of each image of
        ``split`` (TFDS split syntax), in reading order."""
        instructions = tfds.core.ReadInstruction.from_spec(split).to_absolute(self.info.splits)
        label_feature = self.info.features["label"]
        for instruction in instructions:
            examples = self._split_examples[instruction.splitname]
            # Open boundaries are None.
            start = instruction.from_ or 0
            stop = len(examples) if instruction.to is None else instruction.to
            for index in range(start, stop):
                example = examples[index]
                label = label_feature.str2int(example.label)
                yield example.image_path, label, instruction.splitname, index

    def split_records(self, split) -> tuple[list[str], np.ndarray, np.ndarray]:
        """``(paths, labels, indices)`` of ``split`` (TFDS split syntax, e.g.
        ``'train[:50%]'``) in reading order: each image's file, and its class id and
        position in its (unsliced) split as int32 arrays. The training stream reads these
        directly (no TFDS example decoding)."""
        records = list(self._records(split))
        paths = [record[0] for record in records]
        labels = np.asarray([record[1] for record in records], np.int32)
        indices = np.asarray([record[3] for record in records], np.int32)
        return paths, labels, indices

    def _as_dataset(self, split, shuffle_files=False, decoders=None, read_config=None):
        paths, labels, ids = [], [], []
        for path, label, split_name, index in self._records(split):
            paths.append(path)
            labels.append(label)
            ids.append(f"{self.name}-{split_name}.tfrecord-00000-of-00001__{index}")
        ds = tf.data.Dataset.from_tensor_slices(
            {
                "path": tf.constant(paths, tf.string),
                "label": tf.constant(labels, tf.int64),
                "tfds_id": tf.constant(ids, tf.string),
            }
        )
        if shuffle_files and paths:
            seed = getattr(read_config, "shuffle_seed", None)
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=False)
        add_id = bool(getattr(read_config, "add_tfds_id", False))
        features = self.info.features

        def load(record):
            example = features.decode_example(
                {
                    "image": tf.io.read_file(record["path"]),
                    "label": record["label"],
                    "image/filename": record["path"],
                },
                decoders=decoders,
            )
            if add_id:
                example["tfds_id"] = record["tfds_id"]
            return example

        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)


def _entries(root: str, limit: int = 8) -> str:
    try:
        names = sorted(tf.io.gfile.listdir(root))
    except tf.errors.OpError:
        return "nothing readable"
    shown = ", ".join(n.rstrip("/") for n in names[:limit]) + (" ..." if len(names) > limit else "")
    return shown or "nothing"


def folder_builder(root: str, *, channels: int = DEFAULT_CHANNELS) -> ImageFolderBuilder:
    """The :class:`ImageFolderBuilder` of ``root`` (files are listed, not read).

    Raises:
      ImageFolderError: one line, when ``root`` is not a directory or holds no image laid
        out as ``root/<split>/<label>/<image>``.
    """
    root = os.path.expanduser(os.fspath(root))
    if not tf.io.gfile.isdir(root):
        raise ImageFolderError(
            f"image folder {root} does not exist or is not a directory (dataset.data_dir "
            f"must hold the images as {LAYOUT})"
        )
    splits = [
        name.rstrip("/")
        for name in tf.io.gfile.listdir(root)
        if tf.io.gfile.isdir(os.path.join(root, name))
    ]
    builder = ImageFolderBuilder(root, channels=channels) if splits else None
    if builder is None or not builder.info.splits.total_num_examples:
        raise ImageFolderError(
            f"image folder {root} holds no images laid out as {LAYOUT} (extensions "
            f"{', '.join(IMAGE_EXTENSIONS)}); it holds: {_entries(root)}"
        )
    return builder


def spec_from_folder(
    root: Optional[str],
    *,
    image_size: Optional[int],
    channels: Optional[int] = None,
    pretrain_split: Optional[str] = None,
    train_split: Optional[str] = None,
    test_split: Optional[str] = None,
) -> DatasetSpec:
    """The spec of the image folder ``root``.

    Args:
      root: the folder (``dataset.data_dir``).
      image_size: side of the host resize (shorter side) and central crop; required.
      channels: 1 or 3 (default 3); every image is converted to it.
      pretrain_split, train_split, test_split: folder splits (default 'train', 'train',
        'test'); a missing one is an error naming the folder's splits when it is read.

    Raises:
      ValueError / ImageFolderError: one line each.
    """
    if not root:
        raise ValueError(
            f"dataset.name='{IMAGE_FOLDER}' needs --config.dataset.data_dir=DIR, the folder "
            f"holding the images as {LAYOUT}"
        )
    if image_size is None:
        raise ValueError(
            f"dataset.name='{IMAGE_FOLDER}' needs --config.dataset.image_size=S: every image "
            "is resized (shorter side) and centre-cropped to SxS on the host"
        )
    channels = DEFAULT_CHANNELS if channels is None else int(channels)
    builder = folder_builder(root, channels=channels)
    pretrain_split = pretrain_split or "train"
    image_shape = (int(image_size), int(image_size), channels)
    try:
        pretrain_examples = int(builder.info.splits[pretrain_split].num_examples)
    except (KeyError, ValueError):
        pretrain_examples = 0
    preprocess = square_preprocess(int(image_size))
    return DatasetSpec(
        name=IMAGE_FOLDER,
        tfds_name=IMAGE_FOLDER,
        image_shape=image_shape,
        num_classes=len(builder.class_names),
        pretrain_split=pretrain_split,
        train_split=train_split or "train",
        test_split=test_split or "test",
        train_preprocess=preprocess,
        eval_preprocess=preprocess,
        fits_in_memory=memory_fits(pretrain_examples, image_shape),
        pretrain_examples=pretrain_examples,
        folder=builder.root,
    )


def find_unreadable(
    paths: list[str], decode: Callable[[tf.Tensor], tf.Tensor]
) -> Optional[tuple[str, str]]:
    """``(path, reason)`` of the first file that ``decode(tf.io.read_file(path))`` fails on,
    or None. All files are tried in parallel in one ``tf.data`` pass; only the failing one
    is decoded again, eagerly, for its error message."""
    if not paths:
        return None
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.range(len(paths), dtype=tf.int64), tf.constant(paths, tf.string))
    )
    ds = ds.map(
        lambda i, path: (i, tf.shape(decode(tf.io.read_file(path)))),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).ignore_errors()
    readable = np.zeros(len(paths), bool)
    for index, _ in ds.as_numpy_iterator():
        readable[index] = True
    for index in np.flatnonzero(~readable):
        try:
            decode(tf.io.read_file(paths[index]))
        except (tf.errors.OpError, ValueError) as err:
            return paths[index], _first_line(err)
        return paths[index], "cannot be decoded"
    return None


def unreadable_image_error(
    builder: ImageFolderBuilder, split, decode: Callable[[tf.Tensor], tf.Tensor]
) -> Optional[ImageDecodeError]:
    """An :class:`ImageDecodeError` naming the first file of ``split`` (TFDS split syntax)
    that cannot be read or decoded, or None when every file decodes."""
    files = []
    for instruction in tfds.core.ReadInstruction.from_spec(split).to_absolute(builder.info.splits):
        files += builder.split_files(instruction.splitname)[instruction.from_ : instruction.to]
    found = find_unreadable(files, decode)
    if found is None:
        return None
    path, reason = found
    return ImageDecodeError(
        f"cannot read image {path} ({reason}); fix or remove the file (image folder {builder.root})"
    )


def write_image_folder(
    root: str,
    split: str,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    class_names: Optional[list[str]] = None,
    image_format: str = "png",
) -> list[str]:
    """Writes ``images`` as ``root/split/<class name>/<index>.png`` (or ``.jpg``).

    Args:
      images: uint8 ``[N, H, W, C]`` (C = 1, 3 or 4 for PNG; 1 or 3 for JPEG) or
        ``[N, H, W]``.
      labels: integer class ids ``[N]``.
      class_names: the folder of class ``i`` is ``class_names[i]``; by default the
        zero-padded id (so sorted names give back the same ids).
      image_format: ``'png'`` or ``'jpg'``.

    Returns:
      The written paths.
    """
    if image_format not in ("png", "jpg"):
        raise ValueError(f"image_format={image_format!r} is invalid; valid: png, jpg")
    images = np.asarray(images, np.uint8)
    if images.ndim == 3:
        images = images[..., None]
    labels = np.asarray(labels).astype(int)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if class_names is None:
        width = len(str(max(int(labels.max(initial=0)), 0)))
        class_names = [f"{i:0{width}d}" for i in range(int(labels.max(initial=0)) + 1)]
    paths = []
    for index, (image, label) in enumerate(zip(images, labels)):
        directory = os.path.join(os.fspath(root), split, class_names[label])
        os.makedirs(directory, exist_ok=True)
        if image_format == "png":
            data = tf.io.encode_png(image).numpy()
        else:
            data = tf.io.encode_jpeg(image, quality=95).numpy()
        path = os.path.join(directory, f"{index:06d}.{image_format}")
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
    return paths
