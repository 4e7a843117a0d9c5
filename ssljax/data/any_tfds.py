"""Any TFDS image-classification builder as an ssljax dataset, and the offline fast fail.

:func:`spec_from_tfds` reads a :class:`~ssljax.data.datasets.DatasetSpec` from a TFDS
builder's ``info.features``: the image feature (``dataset.image_key``, default the
builder's supervised image key, else ``'image'``, else its only ``Image`` feature) gives the
image shape and channels, the label feature (``dataset.label_key``, default the supervised
label key, else ``'label'``, else the only ``ClassLabel``) the number of classes. Images of
variable size (a ``None`` height or width) need ``dataset.image_size``: the host resizes the
shorter side and takes the central square, as for image folders; two-view pretraining cuts
``image_size`` Inception crops of the whole image on the host instead
(:mod:`ssljax.data.host_views`).

Preparing a TFDS dataset downloads its source files. Without network TFDS retries each
download for about two minutes; :func:`check_download_reachable` instead opens one TCP
connection to every download host (or to the proxy that would carry it) with a short
timeout before ``download_and_prepare``, so an offline machine fails in seconds.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import socket
import threading
import time
import urllib.parse
import urllib.request
from typing import Optional

import numpy as np
import tensorflow_datasets as tfds

from ssljax.data import dsprites as _dsprites  # noqa: F401  (registers the "dsprites" builder)
from ssljax.data.datasets import (
    DATASETS,
    IMAGE_FOLDER,
    DatasetSpec,
    FeatureKeyError,
    UnknownDatasetError,
    memory_fits,
    square_preprocess,
)

# Seconds the download probe waits for all hosts together.
PROBE_TIMEOUT_S = 5.0
# At most this many distinct hosts are probed.
MAX_PROBED_HOSTS = 8


def _first_line(err: BaseException, limit: int = 300) -> str:
    """``'Type: first line of message'`` (truncated) of an exception."""
    lines = str(err).strip().splitlines()
    first = lines[0] if lines else ""
    if len(first) > limit:
        first = first[: limit - 3] + "..."
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def base_name(name: str) -> str:
    """``'name/config:version'`` -> ``'name'``."""
    return name.split(":")[0].split("/")[0].strip()


def near_names(name: str, n: int = 5) -> list[str]:
    """Names close to ``name`` among ssljax's datasets, ``image_folder`` and the TFDS
    builders of this installation (no community datasets: listing them needs network)."""
    candidates = set(tfds.list_builders(with_community_datasets=False))
    candidates.update(DATASETS)
    candidates.add(IMAGE_FOLDER)
    return difflib.get_close_matches(base_name(name), sorted(candidates), n=n, cutoff=0.6)


def tfds_builder(name: str, *, data_dir: Optional[str] = None) -> tfds.core.DatasetBuilder:
    """``tfds.builder(name, data_dir=data_dir)`` (prepares nothing, reads no data).

    Raises:
      UnknownDatasetError: one line, when TFDS has no such builder, with near names.
      ValueError: one line, for a bad config, version or name syntax.
    """
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        near = near_names(name)
        hint = f"did you mean {', '.join(near)}? " if near else ""
        raise UnknownDatasetError(
            f"unknown dataset {name!r}: neither an ssljax dataset "
            f"({', '.join(sorted(DATASETS))}) nor a TFDS builder; {hint}"
            f"({IMAGE_FOLDER!r} reads your own images from DIR/<split>/<label>/*.png)"
        ) from None
    except Exception as err:  # pylint: disable=broad-except
        raise ValueError(f"cannot use TFDS dataset {name!r}: {_first_line(err)}") from None


def _features_text(features) -> str:
    """``'image (Image (None, None, 3)), label (ClassLabel 102)'``."""
    parts = []
    for key in features.keys():
        feature = features[key]
        kind = type(feature).__name__
        if isinstance(feature, tfds.features.ClassLabel):
            kind += f" {feature.num_classes}"
        elif isinstance(feature, tfds.features.Image):
            kind += f" {tuple(feature.shape)}"
        parts.append(f"{key} ({kind})")
    return ", ".join(parts)


def _keys_of(features, kind) -> list[str]:
    return [k for k in features.keys() if isinstance(features[k], kind)]


def choose_key(
    name: str,
    features,
    supervised: Optional[str],
    key: Optional[str],
    *,
    role: str,
    kind,
    default: str,
) -> str:
    """The feature key for ``role`` (``'image'`` / ``'label'``).

    The given ``key`` if any (it must be a ``kind`` feature), else the builder's supervised
    key, else ``default``, else the only ``kind`` feature.

    Raises:
      FeatureKeyError: one line naming the features the dataset has.
    """
    kind_name = kind.__name__
    if key is not None:
        if key not in features.keys():
            raise FeatureKeyError(
                f"dataset {name!r} has no feature {key!r} (dataset.{role}_key); its "
                f"features: {_features_text(features)}"
            )
        if not isinstance(features[key], kind):
            raise FeatureKeyError(
                f"dataset {name!r}: feature {key!r} (dataset.{role}_key) is a "
                f"{type(features[key]).__name__}, not a {kind_name}; its features: "
                f"{_features_text(features)}"
            )
        return key
    for candidate in (supervised, default):
        if candidate is not None and candidate in features.keys():
            if isinstance(features[candidate], kind):
                return candidate
    found = _keys_of(features, kind)
    if len(found) == 1:
        return found[0]
    what = f"several {kind_name} features" if found else f"no {kind_name} feature"
    raise FeatureKeyError(
        f"dataset {name!r} has {what} to use as its {role}; set dataset.{role}_key to one "
        f"of its features: {_features_text(features)}"
    )


def _supervised(builder) -> tuple[Optional[str], Optional[str]]:
    keys = builder.info.supervised_keys
    if isinstance(keys, (tuple, list)) and len(keys) == 2 and all(isinstance(k, str) for k in keys):
        return keys[0], keys[1]
    return None, None


def _num_examples(builder, split: str) -> int:
    """Known size of ``split`` (0 when the builder records none, e.g. not prepared)."""
    try:
        return int(builder.info.splits[split].num_examples)
    except (KeyError, ValueError, TypeError, AttributeError):
        return 0


def image_and_label(
    builder,
    name: str,
    *,
    image_key: Optional[str] = None,
    label_key: Optional[str] = None,
) -> tuple[str, tuple, str, int]:
    """``(image_key, image_shape, label_key, num_classes)`` of a builder's features.

    Raises:
      FeatureKeyError: a missing key or a feature of the wrong kind (one line, naming the
        features), an image feature that is not uint8.
    """
    features = builder.info.features
    image_default, label_default = _supervised(builder)
    image_key = choose_key(
        name,
        features,
        image_default,
        image_key,
        role="image",
        kind=tfds.features.Image,
        default="image",
    )
    label_key = choose_key(
        name,
        features,
        label_default,
        label_key,
        role="label",
        kind=tfds.features.ClassLabel,
        default="label",
    )
    image = features[image_key]
    if np.dtype(image.np_dtype) != np.uint8:
        raise FeatureKeyError(
            f"dataset {name!r}: image feature {image_key!r} holds {image.np_dtype} images; "
            "only uint8 images are supported"
        )
    num_classes = features[label_key].num_classes
    if not num_classes:
        raise FeatureKeyError(
            f"dataset {name!r}: label feature {label_key!r} names no classes; set "
            f"dataset.label_key to one of its features: {_features_text(features)}"
        )
    return image_key, tuple(image.shape), label_key, int(num_classes)


def spec_from_tfds(
    name: str,
    *,
    data_dir: Optional[str] = None,
    image_key: Optional[str] = None,
    label_key: Optional[str] = None,
    image_size: Optional[int] = None,
    channels: Optional[int] = None,
    pretrain_split: Optional[str] = None,
    train_split: Optional[str] = None,
    test_split: Optional[str] = None,
) -> DatasetSpec:
    """The spec of the TFDS builder ``name`` (``'name/config:version'`` allowed), read
    from its ``info.features`` without preparing it.

    Args:
      name: TFDS builder name.
      data_dir: TFDS data directory (a prepared dataset there also gives split sizes).
      image_key, label_key: feature names (default: see the module docstring).
      image_size: host resize (shorter side) + central crop side; required when the
        image feature's height or width is None.
      channels: must equal the image feature's channel count if given (only image
        folders convert channels).
      pretrain_split, train_split, test_split: default 'train', 'train', 'test'.

    Raises:
      UnknownDatasetError, FeatureKeyError, ValueError: one line each.
    """
    builder = tfds_builder(name, data_dir=data_dir)
    image_key, shape, label_key, num_classes = image_and_label(
        builder, name, image_key=image_key, label_key=label_key
    )
    height, width, depth = shape
    if channels is not None and channels != depth:
        raise ValueError(
            f"dataset.channels={channels}: {name} has {depth}-channel images; "
            "dataset.channels converts only image folders"
        )
    if image_size is None:
        if height is None or width is None:
            raise ValueError(
                f"dataset {name!r} has images of variable size (shape {shape}); set "
                "--config.dataset.image_size=S to resize the shorter side to S and take "
                "the central SxS crop"
            )
        preprocess = None
        image_shape = (int(height), int(width), int(depth))
    elif (height, width) == (image_size, image_size):
        preprocess = None
        image_shape = (image_size, image_size, int(depth))
    else:
        preprocess = square_preprocess(image_size)
        image_shape = (image_size, image_size, int(depth))
    pretrain_split = pretrain_split or "train"
    pretrain_examples = _num_examples(builder, pretrain_split)
    return DatasetSpec(
        name=name,
        tfds_name=name,
        image_shape=image_shape,
        num_classes=num_classes,
        pretrain_split=pretrain_split,
        train_split=train_split or "train",
        test_split=test_split or "test",
        image_key=image_key,
        label_key=label_key,
        train_preprocess=preprocess,
        eval_preprocess=preprocess,
        fits_in_memory=memory_fits(pretrain_examples, image_shape),
        manual_download=bool(getattr(type(builder), "MANUAL_DOWNLOAD_INSTRUCTIONS", None)),
        pretrain_examples=pretrain_examples,
    )


def with_feature_keys(
    spec: DatasetSpec,
    *,
    data_dir: Optional[str] = None,
    image_key: Optional[str] = None,
    label_key: Optional[str] = None,
) -> DatasetSpec:
    """A registered spec reading other features (e.g. CIFAR-100's ``coarse_label``, 20
    classes): their number of classes and channels come from the TFDS features."""
    builder = tfds_builder(spec.tfds_name, data_dir=data_dir)
    image_key, shape, label_key, num_classes = image_and_label(
        builder,
        spec.name,
        image_key=image_key or spec.image_key,
        label_key=label_key or spec.label_key,
    )
    changed = dict(image_key=image_key, label_key=label_key, num_classes=num_classes)
    if shape[-1] != spec.image_shape[-1]:
        changed["image_shape"] = (*spec.image_shape[:2], int(shape[-1]))
    return dataclasses.replace(spec, **changed)


# ---------------------------------------------------------------------------------------------
# Offline fast fail.


class DownloadUnreachableError(ConnectionError):
    """A host the dataset downloads from cannot be reached from this machine."""


_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}


def download_urls(builder: tfds.core.DatasetBuilder) -> list[str]:
    """The source URLs a builder registers (its checksums file); [] when it lists none."""
    try:
        infos = builder.url_infos
    except Exception:  # pylint: disable=broad-except
        return []
    return sorted(infos or {})


def source_filenames(builder: tfds.core.DatasetBuilder) -> list[str]:
    """File names of the registered source files (what TFDS accepts in its manual_dir)."""
    try:
        infos = builder.url_infos or {}
        return sorted({info.filename for info in infos.values() if info.filename})
    except Exception:  # pylint: disable=broad-except
        return []


def _sources_present(builder: tfds.core.DatasetBuilder, urls: list[str]) -> bool:
    """Whether every URL's file is already here: downloaded in ``<data_dir>/downloads``, or
    placed by hand in ``<data_dir>/downloads/manual`` under its file name (TFDS then reads
    it instead of downloading)."""
    try:
        from tensorflow_datasets.core.download import resource

        infos = builder.url_infos or {}
        directory = os.path.join(os.fspath(builder.data_dir_root), "downloads")

        def present(url):
            info = infos[url]
            names = [resource.get_dl_fname(url, info.checksum)]
            names += [os.path.join("manual", info.filename)] if info.filename else []
            return any(os.path.exists(os.path.join(directory, n)) for n in names)

        return all(present(url) for url in urls)
    except Exception:  # pylint: disable=broad-except
        return False


def connection_targets(urls: list[str]) -> list[tuple[str, int]]:
    """``(host, port)`` to connect to for each URL: its host, or the proxy that would
    carry it (``*_proxy`` environment variables, ``no_proxy`` respected); distinct, in
    order."""
    proxies = urllib.request.getproxies()
    targets = []
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if not parts.hostname:
            continue
        proxy = proxies.get(parts.scheme)
        if proxy and not urllib.request.proxy_bypass(parts.hostname):
            proxy_parts = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
            target = (
                proxy_parts.hostname or "",
                proxy_parts.port or _DEFAULT_PORTS.get(proxy_parts.scheme, 80),
            )
        else:
            target = (parts.hostname, parts.port or _DEFAULT_PORTS.get(parts.scheme, 443))
        if target[0] and target not in targets:
            targets.append(target)
    return targets


def _connect(host: str, port: int, timeout: float) -> None:
    with socket.create_connection((host, port), timeout=timeout):
        pass


def unreachable(targets: list[tuple[str, int]], timeout: float = PROBE_TIMEOUT_S) -> Optional[str]:
    """Why the first unreachable ``(host, port)`` cannot be reached, or None when every
    target accepts a TCP connection within ``timeout`` seconds (all probed at once; name
    resolution included, so a hanging resolver also counts as unreachable)."""
    targets = targets[:MAX_PROBED_HOSTS]
    errors: dict[tuple[str, int], BaseException] = {}

    def probe(target):
        try:
            _connect(*target, timeout)
        except BaseException as err:  # pylint: disable=broad-except
            errors[target] = err

    threads = [threading.Thread(target=probe, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    for target, thread in zip(targets, threads):
        host, port = target
        if thread.is_alive():
            return f"{host}:{port}: no answer within {timeout:g} s"
        if target in errors:
            return f"{host}:{port}: {_first_line(errors[target])}"
    return None


def check_download_reachable(
    builder: tfds.core.DatasetBuilder, timeout: float = PROBE_TIMEOUT_S
) -> None:
    """Raises :class:`DownloadUnreachableError` when preparing ``builder`` would download
    from a host this machine cannot reach (nothing is checked for a builder that lists no
    URLs or whose files are already here, downloaded or put in the manual_dir)."""
    urls = download_urls(builder)
    if not urls or _sources_present(builder, urls):
        return
    reason = unreachable(connection_targets(urls), timeout)
    if reason is not None:
        raise DownloadUnreachableError(f"cannot reach the download host {reason}")
