"""Image folders (DIR/<split>/<label>/*.png|jpg): spec, labels, resize/crop, channels, splits,
per-process shares, one-line errors, and pretraining + linear evaluation on a folder."""

import os

import numpy as np
import pytest
import tensorflow as tf

from ssljax.data import fashion_mnist, image_folder, input_pipeline
from ssljax.data.datasets import (
    ImageDecodeError,
    ImageFolderError,
    ResizeCrop,
    SplitNotFoundError,
    spec_from_config,
)

# Fashion-MNIST's class names as folder names ('T-shirt/top' cannot be one).
NAMES = [name.replace("/", "_") for name in fashion_mnist.CLASS_NAMES]
SORTED = sorted(NAMES)


def folder_id(fmnist_label: int) -> int:
    """An image folder's class ids are its sorted class-folder names."""
    return SORTED.index(NAMES[fmnist_label])


def folder_spec(root, **settings):
    return spec_from_config(dict(name="image_folder", data_dir=str(root), **settings))


def one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message and isinstance(err.value, ValueError)
    return message


def write(path, image: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    encode = tf.io.encode_jpeg if str(path).endswith(".jpg") else tf.io.encode_png
    with open(path, "wb") as f:
        f.write(encode(image).numpy())


@pytest.fixture(scope="module")
def fmnist(tiny_fashion_mnist):
    """The tests' generated Fashion-MNIST (96 train, 40 test), read by the idx reader."""
    source = os.environ[fashion_mnist.SOURCE_DIR_ENV_VAR]
    return {split: fashion_mnist.load_split(source, split) for split in ("train", "test")}


@pytest.fixture(scope="module")
def fmnist_folder(fmnist, tmp_path_factory):
    """Fashion-MNIST written as DIR/{train,test}/<class name>/<index>.png."""
    root = tmp_path_factory.mktemp("fmnist_folder")
    for split, (images, labels) in fmnist.items():
        image_folder.write_image_folder(root, split, images, labels, class_names=NAMES)
    return str(root)


# ------------------------------------------------------------------------ spec and labels


def test_spec_labels_and_images(fmnist, fmnist_folder):
    spec = folder_spec(fmnist_folder, image_size=28, channels=1)
    assert spec.name == "image_folder" and spec.folder == fmnist_folder
    assert spec.image_shape == spec.train_image_shape == (28, 28, 1)
    assert spec.num_classes == 10 and spec.pretrain_examples == 96
    assert (spec.pretrain_split, spec.train_split, spec.test_split) == ("train", "train", "test")
    assert spec.train_preprocess == spec.eval_preprocess == ResizeCrop(28, 28)
    assert input_pipeline.get_builder(spec).class_names == SORTED

    images, labels = input_pipeline.load_split_arrays(spec, "test")
    originals, fmnist_labels = fmnist["test"]
    assert images.shape == (40, 28, 28, 1) and images.dtype == np.uint8
    assert labels.dtype == np.int32
    # Lossless PNGs at their own size: every row is exactly one original image, and its
    # label is the sorted position of its class folder's name.
    wanted = {img.tobytes(): folder_id(label) for img, label in zip(originals, fmnist_labels)}
    got = {img.tobytes(): int(label) for img, label in zip(images, labels)}
    assert got == wanted

    rgb, rgb_labels = input_pipeline.load_split_arrays(
        folder_spec(fmnist_folder, image_size=28), "test"
    )
    assert rgb.shape == (40, 28, 28, 3)  # default: three channels, grey replicated
    np.testing.assert_array_equal(rgb, np.repeat(images, 3, axis=-1))
    np.testing.assert_array_equal(rgb_labels, labels)


def test_train_iterator_batches_follow_the_split(fmnist_folder):
    spec = folder_spec(fmnist_folder, image_size=28, channels=1)
    images, labels = input_pipeline.load_split_arrays(spec, "train")
    it = input_pipeline.train_iterator(spec, global_batch_size=16, seed=3)
    batches = [next(it) for _ in range(7)]  # 6 steps per epoch: crosses into epoch 2
    again = next(input_pipeline.train_iterator(spec, global_batch_size=16, seed=3, start_step=6))
    first_epoch = []
    for batch in batches:
        assert batch["image"].shape == (8, 2, 28, 28, 1)
        index = batch["index"].reshape(-1)
        np.testing.assert_array_equal(batch["image"].reshape(-1, 28, 28, 1), images[index])
        np.testing.assert_array_equal(batch["label"].reshape(-1), labels[index])
        first_epoch += index.tolist()
    assert sorted(first_epoch[:96]) == list(range(96))  # one epoch: a permutation
    np.testing.assert_array_equal(again["image"], batches[6]["image"])  # exact resume


def test_streamed_path_on_a_folder(fmnist_folder):
    """Folders too big for memory are streamed: per-process shares of the files, a seeded
    shuffle, and each example's index in the split read from its record id."""
    import dataclasses

    spec = folder_spec(fmnist_folder, image_size=28, channels=1)
    images, labels = input_pipeline.load_split_arrays(spec, "train")
    streamed = dataclasses.replace(spec, fits_in_memory=False)
    it = input_pipeline.train_iterator(streamed, global_batch_size=16, seed=3)
    batches = [next(it) for _ in range(6)]  # one epoch of 96
    again = input_pipeline.train_iterator(streamed, global_batch_size=16, seed=3, start_step=4)
    np.testing.assert_array_equal(next(again)["image"], batches[4]["image"])
    seen = []
    for batch in batches:
        index = batch["index"].reshape(-1)
        np.testing.assert_array_equal(batch["image"].reshape(-1, 28, 28, 1), images[index])
        np.testing.assert_array_equal(batch["label"].reshape(-1), labels[index])
        seen += index.tolist()
    assert sorted(seen) == list(range(96))


def test_split_records_follow_split_syntax(fmnist_folder):
    builder = image_folder.folder_builder(fmnist_folder, channels=1)
    spec = folder_spec(fmnist_folder, image_size=28, channels=1)
    _, labels = input_pipeline.load_split_arrays(spec, "train")
    files = builder.split_files("train")
    for split, want in [
        ("train", range(96)),
        ("train[10:20]", range(10, 20)),
        ("train[90%:]", range(86, 96)),
    ]:
        paths, got_labels, indices = builder.split_records(split)
        assert indices.dtype == got_labels.dtype == np.int32
        assert indices.tolist() == list(want)
        assert paths == [files[i] for i in want]
        np.testing.assert_array_equal(got_labels, labels[indices])


def test_streamed_folder_epoch_is_a_full_permutation(fmnist_folder):
    """A streamed folder's epoch is a seeded permutation of the whole file list (no shuffle
    buffer): its order is the one computed independently from the epoch's seed."""
    import dataclasses

    spec = dataclasses.replace(
        folder_spec(fmnist_folder, image_size=28, channels=1), fits_in_memory=False
    )
    it = input_pipeline.train_iterator(spec, global_batch_size=16, seed=5)
    got = np.concatenate([next(it)["index"].reshape(-1) for _ in range(12)])  # two epochs
    for epoch in range(2):
        order = np.random.default_rng(input_pipeline.epoch_seed(5, epoch)).permutation(96)
        np.testing.assert_array_equal(got[96 * epoch : 96 * (epoch + 1)], order)
    assert not np.array_equal(got[:96], got[96:])  # each epoch has its own order


# ------------------------------------------------------------------------ resize and crop


def test_resize_shorter_side_and_centre_crop(fmnist, tmp_path):
    image = fmnist["test"][0][0]  # [28, 28, 1]
    big = np.kron(image[..., 0], np.ones((2, 2), np.uint8))[..., None]  # 56 x 56
    write(
        tmp_path / "train" / "a_tall" / "0.png",
        np.pad(image, ((6, 6), (0, 0), (0, 0)), constant_values=255),
    )
    write(
        tmp_path / "train" / "b_wide" / "0.png",
        np.pad(image, ((0, 0), (8, 8), (0, 0)), constant_values=255),
    )
    write(tmp_path / "train" / "c_big" / "0.png", big)
    write(
        tmp_path / "train" / "d_big_wide" / "0.png",
        np.pad(big, ((0, 0), (12, 12), (0, 0)), constant_values=255),
    )
    images, labels = input_pipeline.load_split_arrays(
        folder_spec(tmp_path, image_size=28, channels=1), "train"
    )
    by_class = dict(zip(labels.tolist(), images))
    # Shorter side already 28: only the central square is kept, pixel for pixel.
    np.testing.assert_array_equal(by_class[0], image)
    np.testing.assert_array_equal(by_class[1], image)
    # 56 -> 28: an antialiased bilinear resize, as tf.image.resize computes it on the whole
    # image; the centre crop of a wider image gives the same.
    reference = tf.image.resize(big.astype(np.float32), (28, 28), antialias=True).numpy()
    reference = np.clip(np.round(reference), 0, 255)
    assert np.abs(by_class[2].astype(int) - reference).max() <= 1
    np.testing.assert_array_equal(by_class[3], by_class[2])
    # Halving an image doubled by pixel repetition gives it back up to the filter's blur.
    assert np.abs(by_class[2].astype(int) - image).mean() < 20


def test_mixed_sizes_and_channel_counts(tmp_path):
    """Grey, RGB and RGBA PNGs and grey / RGB JPEGs of different sizes in one folder come
    out at one size and one channel count."""
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (30, 40, 1), np.uint8)
    colour = rng.integers(0, 256, (37, 29, 3), np.uint8)
    alpha = rng.integers(0, 256, (37, 29, 1), np.uint8)
    smooth = np.kron(rng.integers(0, 256, (5, 5, 1), np.uint8), np.ones((8, 8, 1), np.uint8))
    write(tmp_path / "train" / "a_grey" / "0.png", grey)
    write(tmp_path / "train" / "b_rgb" / "0.png", colour)
    write(tmp_path / "train" / "c_rgba" / "0.png", np.concatenate([colour, alpha], -1))
    write(tmp_path / "train" / "d_grey_as_rgb" / "0.png", np.repeat(grey, 3, -1))
    write(tmp_path / "train" / "e_grey" / "0.jpg", smooth)
    write(tmp_path / "train" / "f_rgb" / "0.jpg", np.repeat(smooth, 3, -1)[:, :20])
    rgb, labels = input_pipeline.load_split_arrays(folder_spec(tmp_path, image_size=16), "train")
    assert rgb.shape == (6, 16, 16, 3)
    rgb = dict(zip(labels.tolist(), rgb))
    for grey_class in (0, 3, 4):  # grey (and grey stored as RGB): three equal channels
        np.testing.assert_array_equal(rgb[grey_class][..., 0], rgb[grey_class][..., 1])
        np.testing.assert_array_equal(rgb[grey_class][..., 0], rgb[grey_class][..., 2])
    np.testing.assert_array_equal(rgb[0], rgb[3])
    np.testing.assert_array_equal(rgb[2], rgb[1])  # the alpha channel is dropped
    assert len({rgb[c].tobytes() for c in rgb}) == 4  # the rest differ

    mono, labels = input_pipeline.load_split_arrays(
        folder_spec(tmp_path, image_size=16, channels=1), "train"
    )
    assert mono.shape == (6, 16, 16, 1)
    mono = dict(zip(labels.tolist(), mono))
    np.testing.assert_array_equal(mono[3], mono[0])  # R = G = B = v becomes v
    np.testing.assert_array_equal(mono[0], rgb[0][..., :1])
    np.testing.assert_array_equal(mono[2], mono[1])
    assert np.abs(mono[4].astype(int) - rgb[4][..., :1]).max() <= 2  # JPEG: lossy, close


# ----------------------------------------------------------------------------- splits


def test_splits_map_to_pretrain_train_test(tmp_path):
    rng = np.random.default_rng(1)
    for split, classes, count in (("unlabelled", "ab", 4), ("train", "ab", 3), ("val", "abc", 3)):
        for c in classes:
            for i in range(count):
                write(tmp_path / split / c / f"{i}.png", rng.integers(0, 256, (9, 9, 3), np.uint8))
    spec = folder_spec(tmp_path, image_size=8, pretrain_split="unlabelled", test_split="val")
    assert spec.num_classes == 3 and spec.pretrain_examples == 8
    assert (spec.pretrain_split, spec.train_split, spec.test_split) == (
        "unlabelled",
        "train",
        "val",
    )
    _, val_labels = input_pipeline.load_split_arrays(spec, spec.test_split)
    assert sorted(val_labels.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    batch = next(input_pipeline.train_iterator(spec, global_batch_size=8, seed=0))
    assert batch["image"].shape == (8, 1, 8, 8, 3)

    default = folder_spec(tmp_path, image_size=8)
    assert default.pretrain_split == default.train_split == "train"
    with pytest.raises(SplitNotFoundError) as err:
        input_pipeline.load_split_arrays(default, default.test_split)
    message = one_line(err)
    assert f"image folder {tmp_path} has no split 'test'" in message
    assert "splits found: train, unlabelled, val" in message
    with pytest.raises(SplitNotFoundError):
        list(input_pipeline.eval_batches(default, "test", batch_size=4))
    with pytest.raises(SplitNotFoundError):
        input_pipeline.train_iterator(default, global_batch_size=8, seed=0, split="pretrain")


def test_process_shares_cover_the_split_in_order(fmnist_folder):
    spec = folder_spec(fmnist_folder, image_size=28, channels=1)
    sizes = input_pipeline.eval_shard_sizes(spec, "train", process_count=3)
    assert sizes == [32, 32, 32]
    rows = []
    for index in range(3):
        for batch in input_pipeline.eval_batches(
            spec, "train", batch_size=20, process_index=index, process_count=3
        ):
            rows.append(batch["image"][batch["mask"]])
    whole, _ = input_pipeline.load_split_arrays(spec, "train")
    np.testing.assert_array_equal(np.concatenate(rows), whole)


# ----------------------------------------------------------------------------- errors


def test_folder_errors(tmp_path):
    with pytest.raises(ValueError) as err:
        spec_from_config({"name": "image_folder", "image_size": 8})
    assert "needs --config.dataset.data_dir=DIR" in one_line(err)
    with pytest.raises(ValueError) as err:
        folder_spec(tmp_path)
    assert "needs --config.dataset.image_size=S" in one_line(err)
    with pytest.raises(ImageFolderError) as err:
        folder_spec(tmp_path / "missing", image_size=8)
    assert f"image folder {tmp_path / 'missing'} does not exist" in one_line(err)
    (tmp_path / "loose.png").write_bytes(b"")
    (tmp_path / "train").mkdir()
    with pytest.raises(ImageFolderError) as err:
        folder_spec(tmp_path, image_size=8)
    message = one_line(err)
    assert "holds no images laid out as DIR/<split>/<label>/<image>" in message
    assert "it holds: loose.png, train" in message
    with pytest.raises(ValueError) as err:
        folder_spec(tmp_path, image_size=8, channels=4)
    assert "channels=4 is invalid; valid: 1, 3" in one_line(err)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_unreadable_image_names_the_file(tmp_path, damage):
    rng = np.random.default_rng(2)
    for i in range(6):
        write(
            tmp_path / "train" / "ab"[i % 2] / f"{i}.png",
            rng.integers(0, 256, (12, 10, 3), np.uint8),
        )
    bad = tmp_path / "train" / "b" / "bad.png"
    good = tf.io.encode_png(rng.integers(0, 256, (12, 10, 3), np.uint8)).numpy()
    bad.write_bytes(
        {"garbage": b"not an image", "truncated": good[: len(good) // 2], "empty": b""}[damage]
    )
    spec = folder_spec(tmp_path, image_size=8)
    calls = {
        "load_split_arrays": lambda: input_pipeline.load_split_arrays(spec, "train"),
        "train_iterator": lambda: next(
            input_pipeline.train_iterator(spec, global_batch_size=8, seed=0)
        ),
        "eval_batches": lambda: list(input_pipeline.eval_batches(spec, "train", batch_size=4)),
    }
    for name, call in calls.items():
        with pytest.raises(ImageDecodeError) as err:
            call()
        message = one_line(err)
        assert message.startswith(f"cannot read image {bad} ("), (name, message)
        assert "fix or remove the file" in message and "function_node" not in message


def test_find_unreadable_on_good_files(tmp_path):
    rng = np.random.default_rng(3)
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.png"))
        write(paths[-1], rng.integers(0, 256, (5, 5, 1), np.uint8))
    decode = lambda encoded: tf.io.decode_image(encoded, channels=3, expand_animations=False)  # noqa: E731
    assert image_folder.find_unreadable(paths, decode) is None
    assert image_folder.find_unreadable(paths + [str(tmp_path / "gone.png")], decode)[0].endswith(
        "gone.png"
    )


# ------------------------------------------------------- pretraining and linear evaluation


def test_pretrain_and_evaluate_on_an_image_folder(fmnist_folder, make_tiny_config, tmp_path):
    from ssljax.evaluation.checkpoint_eval import evaluate_workdir
    from ssljax.training.loop import train_and_evaluate

    config = make_tiny_config(fmnist_folder)
    config.dataset.name = "image_folder"
    config.dataset.image_size = 20  # resized from 28: the host resize runs in training too
    config.total_steps = 2
    config.eval.l2_grid = (1e-3,)
    workdir = str(tmp_path / "run")
    result = train_and_evaluate(config, workdir, progress=False)
    assert result["status"] == "completed" and result["step"] == 2
    report = evaluate_workdir(workdir)
    assert report["dataset"] == "image_folder" and report["checkpoint_step"] == 2
    assert report["raw_pixels"]["feature_dim"] == 20 * 20 * 3
    # The generated classes are bars at class-dependent rows: raw pixels separate them.
    assert report["raw_pixels"]["top1"] >= 0.9
    for key in ("top1", "top5"):
        assert 0.0 <= report[key] <= 1.0
