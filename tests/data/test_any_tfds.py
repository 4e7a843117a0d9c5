"""Any TFDS dataset by name: the spec read from the builder's features, overrides of
registered datasets, one-line errors, and the fast failure offline (no network is used)."""

import socket
import time

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download.checksums import UrlInfo

from ssljax.data import any_tfds, input_pipeline
from ssljax.data.datasets import (
    DATASETS,
    FeatureKeyError,
    ResizeCrop,
    SplitNotFoundError,
    UnknownDatasetError,
    spec_from_config,
)

MOCK = 24


def one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message
    assert isinstance(err.value, ValueError)
    return message


# ----------------------------------------------------------------- spec from the features


def test_mnist_spec_from_features_and_batches():
    spec = spec_from_config({"name": "mnist"})
    assert spec.image_shape == (28, 28, 1) and spec.num_classes == 10
    assert (spec.image_key, spec.label_key) == ("image", "label")
    assert spec.train_preprocess is None and spec.eval_preprocess is None
    assert (spec.pretrain_split, spec.train_split, spec.test_split) == ("train", "train", "test")
    assert spec.fits_in_memory
    with tfds.testing.mock_data(num_examples=MOCK):
        batch = next(input_pipeline.train_iterator(spec, global_batch_size=16, seed=0))
        images, labels = input_pipeline.load_split_arrays(spec, "test")
        config = ml_collections.ConfigDict({"dataset": {"name": "mnist", "data_dir": None}})
        facts = input_pipeline.dataset_facts(config)
    assert batch["image"].shape == (8, 2, 28, 28, 1) and batch["image"].dtype == np.uint8
    assert 0 <= batch["label"].min() and batch["label"].max() < 10
    assert images.shape == (MOCK, 28, 28, 1) and labels.shape == (MOCK,)
    # Mocked data records no split sizes: the size is counted, not a published figure.
    assert facts.num_examples == MOCK and facts.name == "mnist"
    assert facts.image_shape == (28, 28, 1) and facts.num_classes == 10


def test_variable_size_images_need_image_size():
    with pytest.raises(ValueError) as err:
        spec_from_config({"name": "oxford_flowers102"})
    message = one_line(err)
    assert "variable size" in message and "image_size" in message
    spec = spec_from_config({"name": "oxford_flowers102", "image_size": 24})
    assert spec.num_classes == 102 and spec.image_shape == (24, 24, 3)
    assert spec.train_preprocess == spec.eval_preprocess == ResizeCrop(24, 24)
    with tfds.testing.mock_data(num_examples=10):
        batches = list(input_pipeline.eval_batches(spec, "test", batch_size=4))
        train = next(input_pipeline.train_iterator(spec, global_batch_size=8, seed=1))
    assert [b["mask"].sum() for b in batches] == [4, 4, 2]
    assert all(b["image"].shape == (4, 24, 24, 3) for b in batches)
    assert train["image"].shape == (8, 1, 24, 24, 3)
    assert 0 <= train["label"].min() and train["label"].max() < 102


def test_config_and_version_in_the_name():
    spec = spec_from_config({"name": "mnist:3.0.1"})
    assert spec.name == spec.tfds_name == "mnist:3.0.1" and spec.image_shape == (28, 28, 1)
    corrupted = spec_from_config({"name": "cifar10_corrupted/brightness_1"})
    assert corrupted.image_shape == (32, 32, 3) and corrupted.num_classes == 10
    with pytest.raises(ValueError) as err:
        spec_from_config({"name": "mnist/abc"})
    assert "mnist/abc" in one_line(err) and "BuilderConfig abc not found" in str(err.value)


def test_unknown_name_suggests_near_names():
    with pytest.raises(UnknownDatasetError) as err:
        spec_from_config({"name": "cifar_10"})
    message = one_line(err)
    assert "unknown dataset 'cifar_10'" in message
    assert "did you mean" in message and "cifar10" in message.split("did you mean")[1]
    assert "fashion_mnist" in message and "image_folder" in message
    assert "cifar10" in any_tfds.near_names("cifar_10")
    assert "image_folder" in any_tfds.near_names("image_folders")


def test_missing_or_wrong_feature_keys_name_the_features():
    with pytest.raises(FeatureKeyError) as err:
        spec_from_config({"name": "mnist", "image_key": "img"})
    message = one_line(err)
    assert "no feature 'img'" in message and "image (Image (28, 28, 1))" in message
    assert "label (ClassLabel 10)" in message
    with pytest.raises(FeatureKeyError) as err:
        spec_from_config({"name": "mnist", "label_key": "digit"})
    assert "no feature 'digit'" in one_line(err) and "dataset.label_key" in str(err.value)
    with pytest.raises(FeatureKeyError) as err:
        spec_from_config({"name": "oxford_flowers102", "image_size": 8, "label_key": "file_name"})
    message = one_line(err)
    assert "'file_name'" in message and "Text, not a ClassLabel" in message
    assert "label (ClassLabel 102)" in message


def test_bad_values_are_one_line_errors():
    for bad, words in (
        ({"name": "mnist", "image_size": 0}, "image_size=0"),
        ({"name": "mnist", "channels": 2}, "channels=2 is invalid; valid: 1, 3"),
        ({"name": "mnist", "channels": 3}, "converts only image folders"),
        ({"name": "cifar10", "channels": 1}, "converts only image folders"),
        ({"name": ""}, "dataset.name=''"),
        ({"name": "mnist", "test_split": ""}, "dataset.test_split=''"),
    ):
        with pytest.raises(ValueError) as err:
            spec_from_config(bad)
        assert words in one_line(err)


# --------------------------------------------------------------- registered + overrides


def test_registered_names_without_overrides_are_the_registered_specs():
    for name, spec in DATASETS.items():
        assert spec_from_config({"name": name, "data_dir": "/nowhere"}) is spec
        assert spec_from_config(name) is spec
    # A config with every new key at its default (None), as config_base writes it.
    from ssljax.config_base import base_config

    assert spec_from_config(base_config().dataset) is DATASETS["fashion_mnist"]
    # Same size or same keys as registered: still the registered spec.
    same = {"name": "cifar10", "image_size": 32, "label_key": "label", "image_key": "image"}
    assert spec_from_config(same) is DATASETS["cifar10"]


def test_registered_overrides():
    coarse = spec_from_config({"name": "cifar100", "label_key": "coarse_label"})
    assert coarse.num_classes == 20 and coarse.label_key == "coarse_label"
    assert coarse.image_shape == (32, 32, 3)
    splits = spec_from_config({"name": "stl10", "pretrain_split": "train+unlabelled"})
    assert splits.pretrain_split == "train+unlabelled" and splits.test_split == "test"
    big = spec_from_config({"name": "cifar10", "image_size": 48})
    assert big.image_shape == big.train_image_shape == (48, 48, 3)
    assert big.train_preprocess == big.eval_preprocess == ResizeCrop(48, 48)
    assert big.fits_in_memory  # 50,000 x 48 x 48 x 3 bytes = 346 MB
    huge = spec_from_config({"name": "cifar10", "image_size": 224})
    assert not huge.fits_in_memory  # 7.5 GB: streamed
    # ImageNet keeps its 256/224 ratios at the new crop size.
    small = spec_from_config({"name": "imagenet2012", "image_size": 112})
    assert small.eval_preprocess == ResizeCrop(128, 112)
    assert small.train_preprocess == ResizeCrop(128, 128)
    assert small.image_shape == (112, 112, 3) and small.train_image_shape == (128, 128, 3)
    with tfds.testing.mock_data(num_examples=8):
        images, _ = input_pipeline.load_split_arrays(big, "test")
        coarse_images, coarse_labels = input_pipeline.load_split_arrays(coarse, "test")
    assert images.shape == (8, 48, 48, 3)
    assert coarse_images.shape == (8, 32, 32, 3) and coarse_labels.max() < 20


def test_missing_split_of_a_prepared_dataset(tiny_fashion_mnist):
    with pytest.raises(SplitNotFoundError) as err:
        input_pipeline.load_split_arrays("fashion_mnist", "validation", data_dir=tiny_fashion_mnist)
    message = one_line(err)
    assert "no split 'validation'" in message and "splits found: test, train" in message
    spec = spec_from_config({"name": "fashion_mnist", "test_split": "validation"})
    with pytest.raises(SplitNotFoundError):
        input_pipeline.eval_shard_sizes(spec, spec.test_split, data_dir=tiny_fashion_mnist)
    with pytest.raises(SplitNotFoundError):
        input_pipeline.train_iterator(
            spec, global_batch_size=8, seed=0, split="train+valid", data_dir=tiny_fashion_mnist
        )


# ------------------------------------------------------------------- offline fast fail


def closed_port() -> int:
    """A local port nothing listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


UNREACHABLE_URL = f"http://127.0.0.1:{closed_port()}/toy_images.tar.gz"
PREPARE_CALLS = []


class UnreachableToy(tfds.core.GeneratorBasedBuilder):
    """A downloading builder whose only source lives on a host nobody answers at."""

    VERSION = tfds.core.Version("1.0.0")
    url_infos = {UNREACHABLE_URL: UrlInfo(size=10, checksum="0" * 64, filename="toy.tar.gz")}

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 3)),
                    "label": tfds.features.ClassLabel(num_classes=2),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        PREPARE_CALLS.append(self.name)
        return {"train": self._generate_examples(dl_manager.download(UNREACHABLE_URL))}

    def _generate_examples(self, path):
        yield 0, {"image": np.zeros((8, 8, 3), np.uint8), "label": 0}


def test_unreachable_download_fails_fast_with_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv(input_pipeline.NO_DOWNLOAD_ENV_VAR, raising=False)
    data_dir = str(tmp_path / "tfds")
    spec = spec_from_config({"name": "unreachable_toy", "data_dir": data_dir})
    assert spec.image_shape == (8, 8, 3) and spec.num_classes == 2
    start = time.monotonic()
    with pytest.raises(input_pipeline.DatasetUnavailableError) as err:
        input_pipeline.get_builder(spec, data_dir=data_dir)
    seconds = time.monotonic() - start
    message = one_line(err)
    assert seconds < 30, seconds
    assert PREPARE_CALLS == []  # TFDS's download (and its retries) never started
    assert "unreachable_toy is unavailable" in message
    assert "cannot reach the download host 127.0.0.1:" in message
    assert f"data_dir {data_dir}" in message
    assert f"`tfds build unreachable_toy --data_dir {data_dir}`" in message
    assert f"(toy.tar.gz) in {data_dir}/downloads/manual" in message
    assert "--config.dataset.name=image_folder" in message


def test_probe_gives_up_on_a_silent_host(monkeypatch):
    def hang(host, port, timeout):
        time.sleep(5)

    monkeypatch.setattr(any_tfds, "_connect", hang)
    start = time.monotonic()
    reason = any_tfds.unreachable([("example.org", 443)], timeout=0.3)
    assert time.monotonic() - start < 2
    assert reason == "example.org:443: no answer within 0.3 s"
    monkeypatch.setattr(any_tfds, "_connect", lambda host, port, timeout: None)
    assert any_tfds.unreachable([("example.org", 443)], timeout=0.3) is None


def test_probe_targets_follow_proxies(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    urls = ["https://a.example/x.tgz", "https://a.example/y.tgz", "http://b.example:8080/z"]
    assert any_tfds.connection_targets(urls) == [("a.example", 443), ("b.example", 8080)]
    monkeypatch.setenv("https_proxy", "http://proxy.local:3128")
    monkeypatch.setenv("no_proxy", "b.example")
    assert any_tfds.connection_targets(urls) == [("proxy.local", 3128), ("b.example", 8080)]


def test_no_probe_when_the_sources_are_here(tmp_path, monkeypatch):
    """Files put in the manual_dir (or already downloaded) need no network."""
    builder = tfds.builder("unreachable_toy", data_dir=str(tmp_path))
    with pytest.raises(any_tfds.DownloadUnreachableError):
        any_tfds.check_download_reachable(builder)
    manual = tmp_path / "downloads" / "manual"
    manual.mkdir(parents=True)
    (manual / "toy.tar.gz").write_bytes(b"x")
    any_tfds.check_download_reachable(builder)  # nothing to reach


def test_no_probe_when_preparation_is_replaced(tmp_path, monkeypatch):
    probed = []
    monkeypatch.setattr(any_tfds, "check_download_reachable", lambda b: probed.append(b.name))
    monkeypatch.setattr(
        tfds.core.DatasetBuilder, "download_and_prepare", lambda self, **kwargs: None
    )
    input_pipeline.get_builder(spec_from_config("mnist"), data_dir=str(tmp_path))
    assert probed == []  # TFDS's download replaced (as mock_data does): nothing to probe
