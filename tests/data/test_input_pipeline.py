"""Tests for the host input pipeline (8 forced host CPU devices)."""

import itertools

import jax
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from ssljax.data import datasets, fashion_mnist, input_pipeline

NUM_TRAIN = 20
NUM_TEST = 10
GLOBAL_BATCH = 8  # One example per device: 20 train examples -> 2 steps/epoch.


def fake_split(num, offset):
    """Distinct 28x28 images whose pixel (0, 0) is the example id."""
    ids = np.arange(offset, offset + num)
    images = (np.arange(28 * 28).reshape(28, 28)[None] + ids[:, None, None] * 13) % 256
    images[:, 0, 0] = ids
    return images.astype(np.uint8), (ids % 10).astype(np.uint8)


@pytest.fixture(scope="module")
def fake_fmnist(tmp_path_factory):
    """Tiny Fashion-MNIST prepared in its own TFDS data_dir."""
    root = tmp_path_factory.mktemp("fmnist")
    data = {"train": fake_split(NUM_TRAIN, 0), "test": fake_split(NUM_TEST, 100)}
    fashion_mnist.write_source_files(root / "src", data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(fashion_mnist.SOURCE_DIR_ENV_VAR, str(root / "src"))
        input_pipeline.get_builder("fashion_mnist", data_dir=str(root / "tfds"))
    return str(root / "tfds"), data


def take(iterator, n):
    return list(itertools.islice(iterator, n))


def example_ids(batch):
    """Pixel (0, 0) holds the example id in the fake data."""
    return batch["image"][..., 0, 0, 0].reshape(-1).tolist()


def assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


# ------------------------------------------------------------ train_iterator


def test_eight_devices_and_no_gpu_for_tensorflow():
    assert jax.device_count() == 8
    assert tf.config.get_visible_devices("GPU") == []


def test_train_iterator_fake_fashion_mnist(fake_fmnist):
    data_dir, data = fake_fmnist
    it = input_pipeline.train_iterator(
        "fashion_mnist", global_batch_size=16, seed=0, data_dir=data_dir
    )
    batch = next(it)
    assert batch["image"].shape == (8, 2, 28, 28, 1)
    assert batch["image"].dtype == np.uint8
    assert batch["label"].shape == (8, 2)
    assert batch["label"].dtype == np.int32
    images, labels = data["train"]
    assert batch["index"].shape == (8, 2) and batch["index"].dtype == np.int32
    for image, label, position in zip(
        batch["image"].reshape(-1, 28, 28), batch["label"].reshape(-1), batch["index"].reshape(-1)
    ):
        index = int(image[0, 0])
        np.testing.assert_array_equal(image, images[index])
        assert label == labels[index]
        assert position == index  # the example's position in the split (memory banks)


def test_index_from_tfds_id():
    offsets = np.array([0, 10, 25, 40])
    ids = tf.constant(
        [
            "imagenet2012-train.tfrecord-00002-of-00004__7",
            "imagenet2012-train.array_record-00000-of-00004__0",
            "fashion_mnist-train.tfrecord-00003-of-00004__12",
        ]
    )
    got = input_pipeline._index_from_tfds_id(ids, offsets).numpy().tolist()
    assert got == [32, 0, 52]


def test_exact_resume_across_epochs(fake_fmnist):
    data_dir, _ = fake_fmnist
    kwargs = dict(global_batch_size=GLOBAL_BATCH, seed=3, data_dir=data_dir)
    total = 7  # 2 steps per epoch: covers several epoch boundaries.
    fresh = take(input_pipeline.train_iterator("fashion_mnist", **kwargs), total)
    for start in (1, 2, 3, 5):
        resumed = take(
            input_pipeline.train_iterator("fashion_mnist", start_step=start, **kwargs),
            total - start,
        )
        assert_batches_equal(resumed, fresh[start:])


def test_epochs_are_permutations_and_differ(fake_fmnist):
    data_dir, _ = fake_fmnist
    steps = NUM_TRAIN // GLOBAL_BATCH
    it = input_pipeline.train_iterator(
        "fashion_mnist", global_batch_size=GLOBAL_BATCH, seed=0, data_dir=data_dir
    )
    epochs = []
    for _ in range(3):
        ids = [i for batch in take(it, steps) for i in example_ids(batch)]
        assert len(ids) == steps * GLOBAL_BATCH  # Remainder dropped.
        assert len(set(ids)) == len(ids)  # No example twice in an epoch.
        assert set(ids) <= set(range(NUM_TRAIN))
        epochs.append(ids)
    assert epochs[0] != epochs[1] or epochs[1] != epochs[2]


def test_seeds_change_order(fake_fmnist):
    data_dir, _ = fake_fmnist

    def first_epoch(seed):
        it = input_pipeline.train_iterator(
            "fashion_mnist", global_batch_size=GLOBAL_BATCH, seed=seed, data_dir=data_dir
        )
        return [i for batch in take(it, 2) for i in example_ids(batch)]

    assert first_epoch(0) == first_epoch(0)
    assert first_epoch(0) != first_epoch(1)


def test_epoch_order_full_shuffle():
    order = input_pipeline.epoch_order(1000, 3, 256, seed=0, epoch=0)
    assert order.shape == (3, 256)
    assert len(np.unique(order)) == order.size
    assert order.max() > 900  # Drawn from the whole split, not a window.
    again = input_pipeline.epoch_order(1000, 3, 256, seed=0, epoch=0)
    np.testing.assert_array_equal(order, again)
    other = input_pipeline.epoch_order(1000, 3, 256, seed=0, epoch=1)
    assert not np.array_equal(order, other)
    assert input_pipeline.epoch_seed(-1, 0) >= 0


def test_split_argument_and_num_devices(fake_fmnist):
    data_dir, _ = fake_fmnist
    it = input_pipeline.train_iterator(
        "fashion_mnist",
        global_batch_size=8,
        seed=0,
        data_dir=data_dir,
        split="test",
        num_devices=4,
    )
    batch = next(it)
    assert batch["image"].shape == (4, 2, 28, 28, 1)
    assert set(example_ids(batch)) <= set(range(100, 100 + NUM_TEST))


# ------------------------------------------------------------------ mocked


MOCK_EXAMPLES = 24


@pytest.mark.parametrize(
    "name,split",
    [
        ("cifar10", None),
        ("cifar100", None),
        ("stl10", None),
        ("stl10", "train"),
        ("imagenet2012", None),
    ],
)
def test_train_iterator_mocked(name, split):
    spec = datasets.get_dataset_spec(name)
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
        it = input_pipeline.train_iterator(name, global_batch_size=16, seed=0, split=split)
        batches = take(it, 3)  # Crosses the epoch boundary (24 // 16 = 1 step).
    for batch in batches:
        assert batch["image"].shape == (8, 2, *spec.train_image_shape)
        assert batch["image"].dtype == np.uint8
        assert batch["label"].shape == (8, 2)
        assert batch["label"].dtype == np.int32
        assert batch["index"].shape == (8, 2) and batch["index"].dtype == np.int32
        low = -1 if (split or spec.pretrain_split) == "unlabelled" else 0
        assert low <= batch["label"].min() and batch["label"].max() < spec.num_classes
    if name == "imagenet2012":
        assert spec.train_image_shape == (256, 256, 3)


def test_streaming_resume_mocked():
    """Exact resume on the streaming (ImageNet) path."""
    kwargs = dict(global_batch_size=8, seed=5)
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):  # 3 steps per epoch.
        fresh = take(input_pipeline.train_iterator("imagenet2012", **kwargs), 5)
        resumed = take(input_pipeline.train_iterator("imagenet2012", start_step=2, **kwargs), 3)
        other_seed = take(
            input_pipeline.train_iterator("imagenet2012", global_batch_size=8, seed=6), 1
        )
    assert_batches_equal(resumed, fresh[2:])
    assert not np.array_equal(other_seed[0]["image"], fresh[0]["image"])
    epoch = np.concatenate([b["image"].reshape(8, -1) for b in fresh[:3]])
    assert len(np.unique(epoch, axis=0)) == 3 * 8  # No repeat within the epoch.


def test_eval_paths_mocked():
    with tfds.testing.mock_data(num_examples=10):
        images, labels = input_pipeline.load_split_arrays("cifar10", "test")
        batches = list(input_pipeline.eval_batches("imagenet2012", "validation", batch_size=4))
    assert images.shape == (10, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (10,) and labels.dtype == np.int32
    assert [b["mask"].sum() for b in batches] == [4, 4, 2]
    for batch in batches:
        assert batch["image"].shape == (4, 224, 224, 3)
        assert batch["image"].dtype == np.uint8
        assert batch["label"].dtype == np.int32


# -------------------------------------------------------------- eval paths


def test_load_split_arrays_in_order(fake_fmnist):
    data_dir, data = fake_fmnist
    images, labels = input_pipeline.load_split_arrays("fashion_mnist", "test", data_dir=data_dir)
    assert images.shape == (NUM_TEST, 28, 28, 1) and images.dtype == np.uint8
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(images[..., 0], data["test"][0])
    np.testing.assert_array_equal(labels, data["test"][1])
    first, first_labels = input_pipeline.load_split_arrays(
        "fashion_mnist", "train", data_dir=data_dir, max_examples=5
    )
    np.testing.assert_array_equal(first[..., 0], data["train"][0][:5])
    np.testing.assert_array_equal(first_labels, data["train"][1][:5])
    assert input_pipeline.num_examples("fashion_mnist", "train", data_dir) == NUM_TRAIN


def test_eval_batches_padding(fake_fmnist):
    data_dir, data = fake_fmnist
    batches = list(
        input_pipeline.eval_batches("fashion_mnist", "test", batch_size=4, data_dir=data_dir)
    )
    assert len(batches) == 3
    for batch in batches:
        assert batch["image"].shape == (4, 28, 28, 1)
        assert batch["label"].shape == (4,) and batch["mask"].dtype == np.bool_
    np.testing.assert_array_equal(batches[-1]["mask"], [True, True, False, False])
    assert not batches[-1]["image"][2:].any() and not batches[-1]["label"][2:].any()
    images = np.concatenate([b["image"][b["mask"]] for b in batches])
    labels = np.concatenate([b["label"][b["mask"]] for b in batches])
    np.testing.assert_array_equal(images[..., 0], data["test"][0])
    np.testing.assert_array_equal(labels, data["test"][1])


def test_eval_batches_exact_multiple(fake_fmnist):
    data_dir, _ = fake_fmnist
    batches = list(
        input_pipeline.eval_batches("fashion_mnist", "test", batch_size=5, data_dir=data_dir)
    )
    assert [b["mask"].all() for b in batches] == [True, True]


def test_pad_batch():
    batch = {"image": np.ones((2, 3), np.uint8), "label": np.array([4, 5], np.int32)}
    padded = input_pipeline.pad_batch(batch, 5)
    assert padded["image"].shape == (5, 3)
    np.testing.assert_array_equal(padded["label"], [4, 5, 0, 0, 0])
    np.testing.assert_array_equal(padded["mask"], [True, True, False, False, False])
    with pytest.raises(ValueError):
        input_pipeline.pad_batch(batch, 1)


# ------------------------------------------------------------ host cropping


@pytest.mark.parametrize("encoder", ["png", "jpeg"])
def test_decode_resize_crop_matches_resize_then_crop(encoder):
    height, width = 120, 200
    yy, xx = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    image = np.stack([xx, yy, (xx + yy) // 2], -1).astype(np.uint8)
    encode = tf.io.encode_png if encoder == "png" else tf.io.encode_jpeg
    encoded = encode(image)
    rc = datasets.ResizeCrop(resize_shorter=64, crop_size=56)
    out = input_pipeline.decode_resize_crop(encoded, rc, channels=3).numpy()
    assert out.shape == (56, 56, 3) and out.dtype == np.uint8
    # Reference: resize the shorter side to 64, then take the central 56 crop.
    resized = tf.image.resize(image, [64, round(64 * width / height)], antialias=True)
    top, left = (64 - 56) // 2, (resized.shape[1] - 56) // 2
    reference = resized[top : top + 56, left : left + 56].numpy()
    assert np.abs(out.astype(np.float32) - reference).mean() < 3.0


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("batch,suggestion", [(250, "248 or 256"), (4, "8"), (12, "8 or 16")])
def test_batch_not_divisible(batch, suggestion):
    with pytest.raises(ValueError) as info:
        input_pipeline.train_iterator("fashion_mnist", global_batch_size=batch, seed=0)
    message = str(info.value)
    assert f"global_batch_size={batch}" in message and "8 devices" in message
    assert suggestion in message and "\n" not in message


def test_batch_layout():
    assert input_pipeline.batch_layout(256) == (8, 32)
    assert input_pipeline.batch_layout(256, num_devices=4) == (4, 64)
    with pytest.raises(ValueError, match="256.*3 devices"):
        input_pipeline.batch_layout(256, num_devices=3)
    with pytest.raises(ValueError, match="positive"):
        input_pipeline.batch_layout(0)


def test_bad_start_step_and_too_small_split(fake_fmnist):
    data_dir, _ = fake_fmnist
    with pytest.raises(ValueError, match="start_step"):
        input_pipeline.train_iterator("fashion_mnist", global_batch_size=8, seed=0, start_step=-1)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        input_pipeline.train_iterator(
            "fashion_mnist", global_batch_size=32, seed=0, data_dir=data_dir
        )


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'nope'.*cifar10"):
        input_pipeline.train_iterator("nope", global_batch_size=8, seed=0)
    with pytest.raises(ValueError, match="unknown dataset"):
        input_pipeline.get_builder("nope")


def test_fashion_mnist_unavailable(monkeypatch, tmp_path):
    """No idx files and no network: one-line error naming both remedies."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(fashion_mnist.SOURCE_DIR_ENV_VAR, str(empty))
    attempts = []

    def no_network(self, *args, **kwargs):
        attempts.append(self.name)
        raise ConnectionError("network disabled in this test")

    # The download path is replaced, so the test can never reach the network.
    monkeypatch.setattr(tfds.builder_cls("fashion_mnist"), "download_and_prepare", no_network)
    with pytest.raises(input_pipeline.DatasetUnavailableError) as info:
        input_pipeline.train_iterator(
            "fashion_mnist", global_batch_size=8, seed=0, data_dir=str(tmp_path / "tfds")
        )
    message = str(info.value)
    assert attempts == ["fashion_mnist"]
    assert "\n" not in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "network" in message and "download fashion_mnist" in message
    assert str(tmp_path / "tfds") in message and str(empty) in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "name,hint", [("cifar10", "network access"), ("imagenet2012", "manual_dir")]
)
def test_tfds_prepare_failure(monkeypatch, tmp_path, name, hint):
    def fail(self, *args, **kwargs):
        raise AssertionError("source files missing\nsecond line")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", fail)
    with pytest.raises(input_pipeline.DatasetUnavailableError) as info:
        input_pipeline.get_builder(name, data_dir=str(tmp_path))
    message = str(info.value)
    assert "\n" not in message
    assert name in message and str(tmp_path) in message and hint in message
