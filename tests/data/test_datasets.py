"""Tests for the dataset registry and the offline Fashion-MNIST builder."""

import dataclasses
import gzip
import inspect
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from ssljax.data import datasets, fashion_mnist, input_pipeline

NUM_TRAIN = 20
NUM_TEST = 10


def idx_bytes(array: np.ndarray, *, magic: int | None = None) -> bytes:
    """idx bytes of ``array``, optionally with a replaced magic number."""
    data = fashion_mnist.encode_idx(array)
    return data if magic is None else magic.to_bytes(4, "big") + data[4:]


def fake_split(num: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct images: pixel (0, 0) is the example id, the rest a gradient."""
    ids = np.arange(offset, offset + num)
    grid = np.add.outer(np.arange(28), np.arange(28))
    images = (grid[None] * 3 + ids[:, None, None] * 11) % 256
    images[:, 0, 0] = ids
    return images.astype(np.uint8), (ids % 10).astype(np.uint8)


def write_fake_fashion_mnist(directory, *, bad_magic: bool = False):
    """Writes the four idx .gz files; returns {split: (images, labels)}."""
    data = {"train": fake_split(NUM_TRAIN, 0), "test": fake_split(NUM_TEST, 100)}
    fashion_mnist.write_source_files(directory, data)
    if bad_magic:
        path = os.path.join(directory, fashion_mnist.SPLIT_FILES["train"][0])
        with gzip.open(path, "wb") as f:
            f.write(idx_bytes(data["train"][0], magic=0x0000_0804))
    return data


# ----------------------------------------------------------------- registry


@pytest.mark.parametrize(
    "name,shape,classes,splits",
    [
        ("fashion_mnist", (28, 28, 1), 10, ("train", "train", "test")),
        ("cifar10", (32, 32, 3), 10, ("train", "train", "test")),
        ("cifar100", (32, 32, 3), 100, ("train", "train", "test")),
        ("stl10", (96, 96, 3), 10, ("unlabelled", "train", "test")),
        ("imagenet2012", (224, 224, 3), 1000, ("train", "train", "validation")),
    ],
)
def test_registry_entries(name, shape, classes, splits):
    spec = datasets.get_dataset_spec(name)
    assert spec.name == name
    assert spec.image_shape == shape
    assert spec.num_classes == classes
    assert (spec.pretrain_split, spec.train_split, spec.test_split) == splits
    assert spec.label_key == "label"


def test_registry_split_names_exist_in_tfds():
    """The registered TFDS names and split names match TFDS's builders."""
    for name in datasets.dataset_names():
        spec = datasets.get_dataset_spec(name)
        cls = tfds.builder_cls(spec.tfds_name)
        assert cls.name == spec.tfds_name
    stl10_source = open(inspect.getsourcefile(tfds.builder_cls("stl10"))).read()
    assert 'Split("unlabelled")' in stl10_source


def test_imagenet_host_sizes():
    spec = datasets.get_dataset_spec("imagenet2012")
    assert spec.eval_preprocess.crop_size == 224
    assert spec.train_image_shape[0] >= 224
    assert spec.train_image_shape == spec.train_image_shape[:1] * 2 + (3,)
    assert not spec.fits_in_memory
    small = datasets.get_dataset_spec("cifar10")
    assert small.train_image_shape == small.image_shape


def test_spec_is_frozen():
    spec = datasets.get_dataset_spec("cifar10")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.num_classes = 3  # type: ignore[misc]


def test_unknown_dataset_message():
    with pytest.raises(ValueError) as info:
        datasets.get_dataset_spec("mnistt")
    message = str(info.value)
    assert "\n" not in message
    assert "'mnistt'" in message
    for known in ("fashion_mnist", "cifar10", "cifar100", "stl10", "imagenet2012"):
        assert known in message


def test_resize_crop_validation():
    with pytest.raises(ValueError):
        datasets.ResizeCrop(resize_shorter=200, crop_size=224)


# ------------------------------------------------------------------ idx


def test_parse_idx_roundtrip():
    images, _ = fake_split(3, 0)
    parsed = fashion_mnist.parse_idx(idx_bytes(images), expected_ndim=3)
    np.testing.assert_array_equal(parsed, images)


def test_parse_idx_bad_magic():
    data = idx_bytes(np.zeros((2, 28, 28), np.uint8), magic=0x0000_0903)
    with pytest.raises(ValueError, match="bad magic number 0x00000903"):
        fashion_mnist.parse_idx(data, expected_ndim=3, source="x.gz")


def test_parse_idx_truncated():
    data = idx_bytes(np.zeros((2, 28, 28), np.uint8))[:-5]
    with pytest.raises(ValueError, match="corrupt idx file"):
        fashion_mnist.parse_idx(data, expected_ndim=3)


def test_read_idx_not_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="corrupt"):
        fashion_mnist.read_idx_gz(path, expected_ndim=1)


def test_png_encoder_roundtrip():
    import tensorflow as tf

    images, _ = fake_split(4, 0)
    for image, png in zip(images, fashion_mnist.encode_png_gray(images[..., None])):
        np.testing.assert_array_equal(tf.io.decode_png(png).numpy()[..., 0], image)


# ------------------------------------------------------------ local builder


def test_source_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv(fashion_mnist.SOURCE_DIR_ENV_VAR, str(tmp_path))
    assert fashion_mnist.resolve_source_dir() == str(tmp_path)
    assert fashion_mnist.resolve_source_dir("/elsewhere") == "/elsewhere"
    monkeypatch.delenv(fashion_mnist.SOURCE_DIR_ENV_VAR)
    assert fashion_mnist.resolve_source_dir() == fashion_mnist.DEFAULT_SOURCE_DIR
    assert not fashion_mnist.source_files_present(tmp_path)
    write_fake_fashion_mnist(tmp_path)
    assert fashion_mnist.source_files_present(tmp_path)


def test_local_builder_roundtrip(monkeypatch, tmp_path):
    source = tmp_path / "src"
    data = write_fake_fashion_mnist(source)
    monkeypatch.setenv(fashion_mnist.SOURCE_DIR_ENV_VAR, str(source))
    builder = input_pipeline.get_builder("fashion_mnist", data_dir=str(tmp_path))
    assert isinstance(builder, fashion_mnist.FashionMnistLocal)
    assert builder.name == "fashion_mnist_local"
    assert str(builder.data_dir).startswith(str(tmp_path))
    assert builder.info.splits["train"].num_examples == NUM_TRAIN
    assert builder.info.splits["test"].num_examples == NUM_TEST

    reference = tfds.builder("fashion_mnist", data_dir=str(tmp_path / "ref")).info
    assert builder.info.features["image"].shape == (28, 28, 1)
    assert builder.info.features["label"].names == reference.features["label"].names
    assert builder.info.features["image"].shape == reference.features["image"].shape

    for split, (images, labels) in data.items():
        loaded = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        np.testing.assert_array_equal(loaded["image"][..., 0], images)
        np.testing.assert_array_equal(loaded["label"], labels)


def test_local_builder_source_dir_argument(tmp_path):
    source = tmp_path / "src"
    data = write_fake_fashion_mnist(source)
    builder = fashion_mnist.FashionMnistLocal(source_dir=source, data_dir=tmp_path / "tfds")
    builder.download_and_prepare()
    loaded = tfds.as_numpy(builder.as_dataset(split="test", batch_size=-1))
    np.testing.assert_array_equal(loaded["image"][..., 0], data["test"][0])


def test_local_builder_bad_magic(monkeypatch, tmp_path):
    source = tmp_path / "src"
    write_fake_fashion_mnist(source, bad_magic=True)
    monkeypatch.setenv(fashion_mnist.SOURCE_DIR_ENV_VAR, str(source))
    with pytest.raises(input_pipeline.DatasetUnavailableError) as info:
        input_pipeline.get_builder("fashion_mnist", data_dir=str(tmp_path))
    message = str(info.value)
    assert "\n" not in message
    assert "bad magic number" in message
    assert "images-idx3-ubyte.gz" in message
