"""Host input throughput: views per second per host core, against the decode limit and the
PyTorch peer.

  python experiments/benchmark_input.py [--num_images 512] [--epoch_images 32768]
      [--batch_size 64] [--workers N] [--seconds 5] [--repeats 3] [--skip b,c,stages]
      [--out FILE.json] [--plot FILE.png] [--overwrite]
  python experiments/benchmark_input.py --from_json FILE.json --plot FILE.png   # plot only

A pod host decodes and crops two views per image for several accelerators at once, so its
cores are the budget. In one run, on the same synthetic JPEGs and with the same number of
worker cores (``--workers``, default ``os.cpu_count()``; the whole process, every thread and
every process it starts, is pinned to that many cores while (a), (b) and (c) are timed):

* **(a) the limit**: a full ``tf.io.decode_jpeg`` of every image (no crop, no resize),
  ``tf.data`` over the bytes held in memory, ``map(num_parallel_calls=workers)``; images/s.
* **(b) ssljax**: ``ssljax.data.input_pipeline.train_iterator(spec, host_views=HostViews(
  (CropSpec(2, 224, (0.08, 1), (3/4, 4/3)),)))`` over the image folder, iterated as the
  training loop iterates it (numpy batches; ``tf.data`` parallel calls and prefetch inside);
  views/s. The folder's spec is streamed (``fits_in_memory=False``), as an ImageNet-sized
  folder is (its 224-pixel images exceed ``IN_MEMORY_LIMIT_BYTES``). The folder holds
  ``--epoch_images`` files, repeats (hard links) of the ``--num_images`` distinct JPEGs, so
  that epochs are long and their restarts (the epoch's ``tf.data`` pipeline is rebuilt and
  its map functions traced again, about a second) are rare, as with ImageNet. The default,
  32,768, makes restarts rare. A streamed folder's epoch is a seeded permutation of its file
  list and each file is read in the map that decodes it, so (b) reads one file per image, as
  training on ImageNet does. (Until 2026-12-04 folders streamed through a 10,000-file shuffle
  buffer; an epoch of 8,192 files was then read whole while the buffer filled, so the timed
  windows read no files and flattered (b) by 5-15%.) The rate is
  the median over the timed windows in which no epoch started (over all windows when every
  one holds a start; ``epoch_restart_in_window`` says which did). ``first_batch_s`` is the
  time from ``train_iterator()`` to the first batch.
* **(c) the peer**: torchvision's ``RandomResizedCrop(224)`` + ``RandomHorizontalFlip`` +
  ``PILToTensor`` on ``PIL.Image.open(io.BytesIO(b)).convert('RGB')``, two views per image,
  through ``torch.utils.data.DataLoader(num_workers=workers, batch_size, shuffle=True,
  drop_last=True, persistent_workers=True)``, default collation to ``uint8 [B, 3, 224, 224]``
  per view; views/s; epochs of ``--epoch_images`` items, as (b)'s. This is the crop-and-flip
  part of the SimCLR/BYOL transforms that lightly and solo-learn run in DataLoader workers;
  their colour jitter, grayscale, blur, solarisation, ``ToTensor`` (float) and
  ``Normalize`` are left out (they also run on the host CPU there), so (c) is an upper bound
  on the peer's throughput. It runs in a fresh Python process that never imports TensorFlow
  (importing torchvision after TensorFlow 2.21 crashes the process); skipped with a message
  when torch or torchvision is not installed.

Rates are the median of ``--repeats`` timed windows of ``--seconds`` each, after warm-up
batches.

The stage profile cuts (b)'s work per image into cumulative single-threaded ``tf.data``
passes over the distinct images (pinned to one core, sequential map, no ``tf.data`` rewrites),
each the fastest of ``--repeats`` passes taken in interleaved rounds, less the time of an
identity pass (the pass's own cost): one whole decode per image; + two windows sampled and
cut from it; + resize to 224 (``views_map_fn``, ssljax's own map
function, with ``--host_resize``'s kernel run by ``--host_resize_backend``; with
``opencv`` the second pass samples the windows without cutting them, as OpenCV resizes views
of the decoded image, so the resize stage includes the cuts). Each stage's ms/image is the difference of consecutive cumulative passes (noise
can make a small one negative). Batching (``batch`` and numpy conversion) is timed alone, on
ready views, and added to the cumulative figure.
Host-to-device: ``jax.device_put`` of a writeable copy of one batch to the CPU device, a host
copy (the read-only numpy batch ``tf.data`` yields is aliased by JAX on the CPU, no copy:
``device_put_tf_batch_ms_per_batch``, ``tf_batch_aliased_on_cpu``); on an accelerator this is
a PCIe copy of the batch's bytes.

The synthetic JPEGs (:func:`synthetic_jpegs`) have ImageNet's sizes (20 common shapes, mean
400 x 348) and natural-image statistics (a 1/f amplitude spectrum, sharp-edged regions, sensor
noise), JPEG quality 90, so their byte sizes (50-110 kB) and decode cost are ImageNet's.

Prints a summary with the derived figures and their arithmetic, then one JSON line:

* ``machine``: ``cpu``, ``cpu_count``, ``load_average`` (1, 5, 15 min, at the start);
* ``config``: ``num_images``, ``epoch_images``, ``batch_size``, ``workers``, ``seconds``,
  ``repeats``, ``image_size``, ``views_per_image``, ``scale``, ``ratio``, ``quality``,
  ``host_resize``, ``host_resize_backend``, ``reference_images_per_s``;
* ``images``: ``count``, ``mean_bytes``, ``mean_width``, ``mean_height``;
* ``a_limit``: ``images_per_s``, ``images_per_s_per_core``, ``rates`` (each window's),
  ``epoch_restart_in_window`` (all False: it repeats the images without epochs),
  ``included``;
* ``b_ssljax`` and ``c_torchvision``: ``views_per_s``, ``views_per_s_per_core``,
  ``images_per_s``, ``rates``, ``epoch_restart_in_window``, ``steps_per_epoch``,
  ``included`` (what the pipeline does); (b) also ``first_batch_s`` and ``batch_shape``, (c)
  ``versions``; or ``skipped`` (why);
* ``stages``: ``ms_per_image`` (decode, windows_and_cuts, resize, batch,
  device_put), ``cumulative_ms_per_image``, ``pass_overhead_ms_per_image``,
  ``partial_decode_two_views_ms_per_image`` (windows from the JPEG header and one
  ``decode_and_crop_jpeg`` per view, as the reference pipelines decode, to compare with the
  cumulative ``windows_and_cuts``: one decode cut twice),
  ``decoded_pixels`` and ``decoded_pixels_match``, ``bytes_per_batch``, ``batch_shape``,
  ``device_put_ms_per_batch``, ``device_put_tf_batch_ms_per_batch``,
  ``tf_batch_aliased_on_cpu``, ``pcie_ms_per_batch`` (at ``PCIE_BYTES_PER_S``), ``note``; or
  ``skipped``;
* ``derived``: ``b_over_c_per_core`` (target >= 1.4), ``b_views_over_a_images`` (target >=
  1), ``cores_per_accelerator`` (``b``, ``c``: reference views/s over views/s/core; ``a``:
  reference images/s over decoded images/s/core, a lower bound for any pipeline that decodes
  every image whole once) and ``arithmetic`` (the same as text).

The reference accelerator: supervised ResNet-50 training in mixed precision on one A100
reaches about 2,470 images/s (NVIDIA's published ResNet-50 v1.5 figure); self-supervised
methods with two views per image need twice as many views, 4,940 views/s.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import inspect
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

# 20 (width, height) shapes common in ImageNet's training set (most images are 500 pixels on
# the longer side, landscape 4:3 first), with smaller ones so that the mean is about
# ImageNet's (400 x 350). Image i has shape IMAGENET_SHAPES[i % 20].
IMAGENET_SHAPES: tuple[tuple[int, int], ...] = (
    (500, 375),
    (375, 500),
    (500, 333),
    (320, 240),
    (500, 375),
    (400, 300),
    (500, 375),
    (333, 500),
    (500, 333),
    (200, 150),
    (500, 375),
    (375, 281),
    (500, 500),
    (225, 300),
    (500, 375),
    (375, 500),
    (500, 333),
    (240, 320),
    (500, 375),
    (160, 120),
)
JPEG_QUALITY = 90
IMAGE_SIZE = 224
VIEWS_PER_IMAGE = 2
CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
NUM_CLASSES = 10
# Supervised ResNet-50, mixed precision, one A100 (images/s); SSL needs two views per image.
REFERENCE_IMAGES_PER_S = 2470.0
# Targets of the derived figures.
TARGET_B_OVER_C = 1.4
TARGET_B_OVER_A = 1.0
# Practical host-to-device bandwidth of PCIe 4.0 x16 (bytes/s), for the transfer estimate.
PCIE_BYTES_PER_S = 25e9
STAGES = ("decode", "windows_and_cuts", "resize", "batch", "device_put")


# ---------------------------------------------------------------------------------------------
# Synthetic ImageNet-like JPEGs.


def image_shapes(num_images: int) -> list[tuple[int, int]]:
    """``(width, height)`` of the first ``num_images`` synthetic images."""
    if num_images < 1:
        raise ValueError(f"num_images={num_images} is invalid; valid: an integer >= 1")
    return [IMAGENET_SHAPES[i % len(IMAGENET_SHAPES)] for i in range(num_images)]


def _one_over_f_field(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Three unit-variance Gaussian fields ``[3, H, W]`` with amplitude spectrum ~ 1/f^1.15,
    close to natural images' 1/f (Field 1987)."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    freq = np.sqrt(fy**2 + fx**2)
    freq[0, 0] = 1.0
    amplitude = freq**-1.15
    amplitude[0, 0] = 0.0
    shape = (3, height, fx.shape[1])
    spectrum = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * amplitude
    field = np.fft.irfft2(spectrum, s=(height, width), axes=(1, 2))
    return field / field.std(axis=(1, 2), keepdims=True)


def natural_image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A ``uint8 [height, width, 3]`` image with natural-image statistics: a 1/f colour
    field (luminance-dominated), a dozen sharp-edged polygonal regions that shift its colour
    (keeping its texture), and Gaussian sensor noise (sigma 3 levels)."""
    field = _one_over_f_field(rng, height, width)
    # Channel mixing: one luminance component and two weaker opponent-colour components.
    mix = np.array([[1.0, 0.3, 0.1], [1.0, -0.15, 0.2], [1.0, -0.15, -0.3]])
    image = np.einsum("ck,khw->hwc", mix, field) * 40.0 + rng.uniform(80, 170, 3)
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    for region in range(1, 13):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.03, 0.25) * min(width, height)
        corners = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
        radii = radius * rng.uniform(0.5, 1.0, corners)
        points = [(cx + r * np.cos(a), cy + r * np.sin(a)) for r, a in zip(radii, angles)]
        draw.polygon(points, fill=region)
    labels = np.asarray(mask)
    shifts = np.concatenate([np.zeros((1, 3)), rng.uniform(-90, 90, (12, 3))])
    image = image + shifts[labels] + rng.normal(0.0, 3.0, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def synthetic_jpegs(
    num_images: int, *, seed: int = 0, quality: int = JPEG_QUALITY
) -> tuple[list[bytes], list[tuple[int, int]]]:
    """``num_images`` JPEG files (bytes, quality ``quality``, 4:2:0 chroma) of
    :func:`natural_image` at the sizes :func:`image_shapes` gives, and those
    ``(width, height)``. Image ``i`` is drawn from ``(seed, i)``."""
    if not 1 <= quality <= 100:
        raise ValueError(f"quality={quality} is invalid; valid: 1..100")
    shapes = image_shapes(num_images)
    jpegs = []
    for i, (width, height) in enumerate(shapes):
        pixels = natural_image(np.random.default_rng([seed, i]), width, height)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=quality, subsampling="4:2:0")
        jpegs.append(buffer.getvalue())
    return jpegs, shapes


def folder_file(root: str, index: int, num_classes: int = NUM_CLASSES) -> str:
    """Path of file ``index`` of :func:`write_folder`'s layout."""
    return os.path.join(root, "train", f"{index % num_classes:02d}", f"{index:06d}.jpg")


def write_folder(
    root: str,
    jpegs: Sequence[bytes],
    *,
    files: Optional[int] = None,
    num_classes: int = NUM_CLASSES,
) -> str:
    """Writes ``files`` (default ``len(jpegs)``) images as ``root/train/<label>/<index>.jpg``,
    the layout of ``dataset.name='image_folder'``; file ``i`` holds ``jpegs[i % len(jpegs)]``
    (repeats are hard links where the file system allows) and is in class ``i %
    num_classes``. Returns ``root``. Existing files are not overwritten (a ValueError names
    the first)."""
    files = len(jpegs) if files is None else int(files)
    if files < len(jpegs):
        raise ValueError(f"files={files} is invalid; valid: >= {len(jpegs)} (the images)")
    paths = []
    for i in range(files):
        path = folder_file(root, i, num_classes)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.exists(path):
            raise ValueError(f"{path} exists; write the images into an empty folder")
        if i < len(jpegs):
            with open(path, "wb") as f:
                f.write(jpegs[i])
        else:
            try:
                os.link(paths[i % len(jpegs)], path)
            except OSError:
                shutil.copyfile(paths[i % len(jpegs)], path)
        paths.append(path)
    return root


def jpeg_stats(jpegs: Sequence[bytes], shapes: Sequence[tuple[int, int]]) -> dict:
    """Count, mean byte size and mean width / height of the synthetic JPEGs."""
    sizes = np.array(shapes, float)
    return {
        "count": len(jpegs),
        "mean_bytes": float(np.mean([len(b) for b in jpegs])),
        "mean_width": float(sizes[:, 0].mean()),
        "mean_height": float(sizes[:, 1].mean()),
    }


# ---------------------------------------------------------------------------------------------
# Timing helpers.


def _thread_ids() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


@contextlib.contextmanager
def pinned_cores(count: int) -> Iterator[list[int]]:
    """Pins every thread of this process (and so every thread and process it starts) to
    ``count`` of the cores it may use; restores the previous affinity on exit. A no-op where
    the OS has no ``sched_setaffinity``."""
    if not hasattr(os, "sched_setaffinity"):
        yield list(range(count))
        return
    allowed = sorted(os.sched_getaffinity(0))
    if not 1 <= count <= len(allowed):
        raise ValueError(f"workers={count} is invalid; valid: 1..{len(allowed)} (usable cores)")
    chosen = allowed[:count]
    previous = {}
    for tid in _thread_ids():
        with contextlib.suppress(OSError):
            previous[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, chosen)
    try:
        yield chosen
    finally:
        for tid in _thread_ids():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, previous.get(tid, allowed))


def timed_rates(
    step: Callable[[], int], *, seconds: float, repeats: int, warmup: int
) -> tuple[list[float], list[int]]:
    """Units per second of ``step`` (which returns the units it produced) in ``repeats``
    back-to-back windows of at least ``seconds`` each (at least one step), after ``warmup``
    untimed steps; and the number of steps in each window."""
    for _ in range(warmup):
        step()
    rates, counts = [], []
    for _ in range(repeats):
        units, count, start = 0, 0, time.perf_counter()
        while True:
            units += step()
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        rates.append(units / elapsed)
        counts.append(count)
    return rates, counts


def epoch_starts(first_step: int, counts: Sequence[int], steps_per_epoch: int) -> list[bool]:
    """Whether each timed window holds a batch that opens an epoch: windows of ``counts[i]``
    consecutive batches, the first window starting at batch ``first_step`` (batches counted
    from 0 over the iterator's life; batch ``k`` opens an epoch when ``k %
    steps_per_epoch == 0``)."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch={steps_per_epoch} is invalid; valid: >= 1")
    out, begin = [], first_step
    for count in counts:
        end = begin + count  # the window is batches [begin, end)
        out.append(-(-begin // steps_per_epoch) * steps_per_epoch < end)
        begin = end
    return out


def _rate_summary(
    rates: list[float], workers: int, unit: str, restarts: Optional[list[bool]] = None
) -> dict:
    """Median rate and per core, each window's rate and whether an epoch restarted in it.
    The median is over the windows without a restart when there are any (a large dataset's
    epochs restart rarely), else over all."""
    restarts = [False] * len(rates) if restarts is None else list(restarts)
    clean = [r for r, restarted in zip(rates, restarts) if not restarted]
    rate = float(np.median(clean or rates))
    return {
        f"{unit}_per_s": rate,
        f"{unit}_per_s_per_core": rate / workers,
        "rates": [float(r) for r in rates],
        "epoch_restart_in_window": restarts,
    }


def _tf_options(threads: int, *, single: bool = False):
    import tensorflow as tf

    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    options.threading.max_intra_op_parallelism = 1
    if single:
        options.deterministic = True
        options.autotune.enabled = False
        options.experimental_optimization.apply_default_optimizations = False
        options.experimental_optimization.map_parallelization = False
        options.experimental_optimization.inject_prefetch = False
        options.experimental_optimization.map_and_batch_fusion = False
        options.experimental_optimization.parallel_batch = False
    else:
        options.deterministic = False
    return options


# ---------------------------------------------------------------------------------------------
# (a) The limit: full decode of every image.


def measure_limit(
    jpegs: Sequence[bytes], *, workers: int, seconds: float, repeats: int, warmup: int = 4
) -> dict:
    """Images/s of ``tf.io.decode_jpeg`` over ``jpegs`` (held in memory) with a ``tf.data``
    map of ``workers`` parallel calls. Only each image's pixel count leaves the map (in
    batches of 64), so the consumer costs nothing beside the decode."""
    import tensorflow as tf

    def pixels(encoded):
        shape = tf.shape(tf.io.decode_jpeg(encoded, channels=3))
        return tf.cast(shape[0] * shape[1], tf.int64)

    ds = tf.data.Dataset.from_tensor_slices(tf.constant(list(jpegs), tf.string)).repeat()
    ds = ds.map(pixels, num_parallel_calls=workers, deterministic=False)
    ds = ds.batch(64).prefetch(2).with_options(_tf_options(workers))
    batches = iter(ds)
    rates, _ = timed_rates(
        lambda: int(next(batches).shape[0]), seconds=seconds, repeats=repeats, warmup=warmup
    )
    return _rate_summary(rates, workers, "images") | {
        "included": "tf.io.decode_jpeg(channels=3) of every whole image, tf.data map with "
        "num_parallel_calls=workers over in-memory bytes"
    }


# ---------------------------------------------------------------------------------------------
# (b) ssljax's two-view host pipeline.


def host_views_spec(resize: str = "bicubic", backend: str = "opencv"):
    """The two global 224-pixel Inception crops of SimCLR / BYOL as ssljax's ``HostViews``,
    resized with ``resize`` (``augment.host_resize``) by ``backend``
    (``augment.host_resize_backend``)."""
    from ssljax.data.host_views import CropSpec, HostViews

    crop = CropSpec(count=VIEWS_PER_IMAGE, size=IMAGE_SIZE, scale=CROP_SCALE, ratio=CROP_RATIO)
    return HostViews(crops=(crop,), resize=resize, resize_backend=backend)


def ssljax_missing() -> Optional[str]:
    """Why (b) cannot run here, or None."""
    try:
        from ssljax.data import host_views  # noqa: F401
        from ssljax.data.input_pipeline import train_iterator
    except ImportError as err:
        return f"ssljax.data.host_views cannot be imported ({err})"
    if "host_views" not in inspect.signature(train_iterator).parameters:
        return "ssljax.data.input_pipeline.train_iterator takes no host_views= argument"
    return None


def _views_in(batch: dict) -> int:
    image = batch["image"]
    per_view = IMAGE_SIZE * IMAGE_SIZE * 3
    if image.dtype != np.uint8 or image.shape[-3:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ValueError(
            f"train_iterator gave image {image.dtype} {image.shape}; expected uint8 "
            f"[..., {IMAGE_SIZE}, {IMAGE_SIZE}, 3]"
        )
    return int(image.size // per_view)


def measure_ssljax(
    folder: str,
    *,
    batch_size: int,
    workers: int,
    seconds: float,
    repeats: int,
    warmup: Optional[int] = None,
    resize: str = "bicubic",
    backend: str = "opencv",
) -> dict:
    """Views/s of ssljax's training iterator with two host crops over the image folder,
    resized with ``resize`` by ``backend``."""
    missing = ssljax_missing()
    if missing is not None:
        return {"skipped": missing}
    import dataclasses

    from ssljax.data import input_pipeline
    from ssljax.data.datasets import spec_from_config

    spec = spec_from_config({"name": "image_folder", "data_dir": folder, "image_size": IMAGE_SIZE})
    # An ImageNet-sized folder is streamed; so is this one, whatever its size.
    spec = dataclasses.replace(spec, fits_in_memory=False)
    start = time.perf_counter()
    batches = input_pipeline.train_iterator(
        spec,
        global_batch_size=batch_size,
        seed=0,
        num_devices=1,
        host_views=host_views_spec(resize, backend),
    )
    first = next(batches)
    first_batch_s = time.perf_counter() - start
    views_per_batch = _views_in(first)
    if views_per_batch != VIEWS_PER_IMAGE * batch_size:
        raise ValueError(
            f"train_iterator gave {views_per_batch} views per batch; expected "
            f"{VIEWS_PER_IMAGE} x {batch_size}"
        )
    warmup = max(2, 2 * workers) if warmup is None else warmup
    try:
        rates, counts = timed_rates(
            lambda: _views_in(next(batches)), seconds=seconds, repeats=repeats, warmup=warmup
        )
    finally:
        batches.close()
    steps = spec.pretrain_examples // batch_size
    # Batch 0 was drawn above, batches 1..warmup in the warm-up.
    out = _rate_summary(rates, workers, "views", epoch_starts(1 + warmup, counts, steps))
    out["first_batch_s"] = first_batch_s
    out["steps_per_epoch"] = steps
    out["images_per_s"] = out["views_per_s"] / VIEWS_PER_IMAGE
    out["batch_shape"] = list(first["image"].shape)
    out["included"] = (
        "train_iterator(image_folder spec streamed, host_views=2 x CropSpec(224, scale "
        "(0.08, 1), ratio (3/4, 4/3))): permuted file list, file read, one decode per image, "
        f"stateless window + cut + {resize} resize ({backend}) per view, batch, prefetch, "
        "numpy"
    )
    return out


# ---------------------------------------------------------------------------------------------
# (c) The peer: torchvision transforms on PIL images in DataLoader workers.


class PeerViews:
    """Map-style dataset of ``length`` items (default ``len(jpegs)``; item ``i`` is
    ``jpegs[i % len(jpegs)]``): two ``RandomResizedCrop(224)`` + ``RandomHorizontalFlip`` +
    ``PILToTensor`` views (``uint8 [3, 224, 224]``) of the JPEG, decoded with PIL."""

    def __init__(
        self, jpegs: Sequence[bytes], length: Optional[int] = None, size: int = IMAGE_SIZE
    ):
        from torchvision import transforms

        self.jpegs = list(jpegs)
        self.length = len(self.jpegs) if length is None else int(length)
        self.transform = transforms.Compose(
            [
                transforms.RandomResizedCrop(size, scale=CROP_SCALE, ratio=CROP_RATIO),
                transforms.RandomHorizontalFlip(),
                transforms.PILToTensor(),
            ]
        )

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        image = Image.open(io.BytesIO(self.jpegs[index % len(self.jpegs)])).convert("RGB")
        return self.transform(image), self.transform(image), index % NUM_CLASSES


def torch_missing() -> Optional[str]:
    """Why (c) cannot run here, or None. Looks the packages up without importing them."""
    import importlib.util

    absent = [name for name in ("torch", "torchvision") if importlib.util.find_spec(name) is None]
    if absent:
        return f"{' and '.join(absent)} not installed; pip install torch torchvision"
    return None


def measure_torchvision(
    jpegs: Sequence[bytes],
    *,
    batch_size: int,
    workers: int,
    seconds: float,
    repeats: int,
    epoch_images: Optional[int] = None,
    warmup: Optional[int] = None,
) -> dict:
    """Views/s of the torchvision peer (module docstring) through a DataLoader with
    ``workers`` worker processes; an epoch has ``epoch_images`` items (default
    ``len(jpegs)``), as the image folder of (b) has files.

    Call it in a process that has not imported TensorFlow (:func:`measure_peer_process`
    does): importing torchvision (through triton) after TensorFlow 2.21 crashes the process,
    and the DataLoader forks its workers."""
    missing = torch_missing()
    if missing is not None:
        return {"skipped": missing}
    import torch
    import torchvision

    epoch_images = len(jpegs) if epoch_images is None else epoch_images
    if epoch_images < batch_size:
        raise ValueError(
            f"epoch_images={epoch_images} is invalid; valid: >= batch_size={batch_size}"
        )
    loader = torch.utils.data.DataLoader(
        PeerViews(jpegs, epoch_images),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=True,
        prefetch_factor=2,
        generator=torch.Generator().manual_seed(0),
    )

    def endless():
        while True:
            for view1, view2, _ in loader:
                if view1.dtype != torch.uint8 or tuple(view1.shape) != (
                    batch_size,
                    3,
                    IMAGE_SIZE,
                    IMAGE_SIZE,
                ):
                    raise ValueError(f"DataLoader gave {view1.dtype} {tuple(view1.shape)}")
                yield view1.shape[0] + view2.shape[0]

    stream = endless()
    warmup = max(2, 2 * workers) if warmup is None else warmup
    try:
        rates, counts = timed_rates(
            lambda: next(stream), seconds=seconds, repeats=repeats, warmup=warmup
        )
    finally:
        # Dropping the last reference to the loader shuts its persistent workers down.
        stream.close()
        stream = loader = None
        gc.collect()
    steps = epoch_images // batch_size
    out = _rate_summary(rates, workers, "views", epoch_starts(warmup, counts, steps))
    out["steps_per_epoch"] = steps
    out["images_per_s"] = out["views_per_s"] / VIEWS_PER_IMAGE
    out["versions"] = {"torch": torch.__version__, "torchvision": torchvision.__version__}
    out["included"] = (
        "PIL.Image.open(BytesIO).convert('RGB'); per view RandomResizedCrop(224, scale "
        "(0.08, 1), ratio (3/4, 4/3), bilinear, antialiased) + RandomHorizontalFlip + "
        "PILToTensor (uint8); default_collate; DataLoader(num_workers=workers, shuffle, "
        "drop_last, persistent_workers, prefetch_factor=2). Not included: colour jitter, "
        "grayscale, blur, solarize, ToTensor/Normalize (lightly and solo-learn also run these "
        "on the host)"
    )
    return out


def measure_peer_process(
    paths: Sequence[str], workdir: str, *, batch_size: int, epoch_images: int, **timing
) -> dict:
    """:func:`measure_torchvision` over the JPEG files ``paths`` in a fresh Python process
    (which inherits this thread's core affinity and never imports TensorFlow); its
    arguments go through ``workdir/peer_args.json``."""
    missing = torch_missing()
    if missing is not None:
        return {"skipped": missing}
    args_path = os.path.join(workdir, "peer_args.json")
    with open(args_path, "x") as f:
        json.dump(
            {"paths": list(paths), "batch_size": batch_size, "epoch_images": epoch_images} | timing,
            f,
        )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--peer_args", args_path],
        capture_output=True,
        text=True,
        env=env,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the torchvision peer process failed (exit {done.returncode}): {last}")
    return json.loads(lines[-1])


def _peer_main(args_path: str) -> None:
    """Entry point of the peer process: prints :func:`measure_torchvision`'s JSON."""
    with open(args_path) as f:
        settings = json.load(f)
    jpegs = []
    for path in settings.pop("paths"):
        with open(path, "rb") as f:
            jpegs.append(f.read())
    print(json.dumps(measure_torchvision(jpegs, **settings)))


# ---------------------------------------------------------------------------------------------
# Stage profile of (b).


def interleaved_best(runs: dict[str, tuple[Callable[[], Any], int]], repeats: int) -> dict:
    """Milliseconds per item of each ``runs[name] = (run, items)``: the fastest of
    ``repeats`` timed calls of ``run``, taken in rounds that call every run once (so a load
    change hits all of them alike), after one untimed call each."""
    for run, _ in runs.values():
        run()
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, (run, items) in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], (time.perf_counter() - start) / items * 1e3)
    return best


def stage_profile(
    jpegs: Sequence[bytes],
    shapes: Sequence[tuple[int, int]],
    *,
    batch_size: int,
    repeats: int,
    resize: str = "bicubic",
    backend: str = "opencv",
) -> dict:
    """Single-threaded per-image milliseconds of each stage of (b) (module docstring),
    pinned to one core. ``decoded_pixels_match`` checks that the decode pass decoded every
    pixel of the images, whose ``(width, height)`` are ``shapes``. With the ``opencv``
    backend the windows are not cut by TensorFlow (OpenCV resizes numpy views of the decoded
    image), so the second stage samples the windows only and the resize stage includes
    the cuts."""
    import jax
    import tensorflow as tf

    from ssljax.data.host_views import crop_seed, crop_window, view_seeds, views_map_fn

    host_views = host_views_spec(resize, backend)
    base = tf.constant(crop_seed(0, 0))
    count = len(jpegs)
    if count < batch_size:
        raise ValueError(f"num_images={count} is invalid; valid: >= batch_size={batch_size}")
    source = tf.data.Dataset.from_tensor_slices(tf.constant(list(jpegs), tf.string))
    positioned = source.enumerate()

    def windows(position, encoded):
        seeds = view_seeds(base, position, VIEWS_PER_IMAGE)
        return [
            tf.stack(
                crop_window(
                    tf.image.extract_jpeg_shape(encoded),
                    seeds[i],
                    scale=CROP_SCALE,
                    ratio=CROP_RATIO,
                )
            )
            for i in range(VIEWS_PER_IMAGE)
        ]

    def crops(position, encoded):
        return tuple(
            tf.image.decode_and_crop_jpeg(encoded, window, channels=3)
            for window in windows(position, encoded)
        )

    def decode_once(position, encoded):
        image = tf.io.decode_jpeg(encoded, channels=3)
        seeds = view_seeds(base, position, VIEWS_PER_IMAGE)
        out = []
        for i in range(VIEWS_PER_IMAGE):
            top, left, h, w = crop_window(
                tf.shape(image), seeds[i], scale=CROP_SCALE, ratio=CROP_RATIO
            )
            if backend == "opencv":
                out.append(tf.stack([top, left, h, w]))
            else:
                out.append(image[top : top + h, left : left + w])
        return tuple(out)

    views = views_map_fn(host_views, channels=3, base_seed=crop_seed(0, 0))
    pipelines = {
        "overhead": positioned.map(lambda p, b: b),
        "decode": positioned.map(lambda p, b: tf.io.decode_jpeg(b, channels=3)),
        "windows_and_cuts": positioned.map(decode_once),
        "resize": positioned.map(lambda p, b: views(p, {"image": b})["image"]),
        # The reference pipelines' way, for comparison: a partial decode per view.
        "partial_decode_two_views": positioned.map(crops),
    }
    options = _tf_options(1, single=True)

    def reduce_pass(ds):
        ds = ds.with_options(options)
        return tf.function(lambda: ds.reduce(np.int64(0), lambda acc, _: acc + 1), autograph=False)

    def pixel_sum(ds):
        ds = ds.with_options(options)
        total = ds.reduce(
            np.int64(0),
            lambda acc, image: acc + tf.cast(tf.shape(image)[0] * tf.shape(image)[1], tf.int64),
        )
        return int(total.numpy())

    # Batching is timed in isolation, on one image's ready views repeated: the difference of
    # two passes that each cost ~10 ms/image would bury its fraction of a millisecond.
    ready = next(iter(pipelines["resize"].take(1)))
    batched = tf.data.Dataset.from_tensors(ready).repeat(count)
    batched = batched.batch(batch_size, drop_remainder=True).with_options(options)
    batched_images = (count // batch_size) * batch_size

    def batch_pass():
        for batch in batched.as_numpy_iterator():
            assert batch.dtype == np.uint8
        return batch

    runs = {name: (reduce_pass(ds), count) for name, ds in pipelines.items()}
    runs["batch"] = (batch_pass, batched_images)
    with pinned_cores(1):
        passes = interleaved_best(runs, repeats)
        decoded = pixel_sum(pipelines["decode"])
        batch = batch_pass()
        cpu = jax.devices("cpu")[0]
        # tf.data's numpy batches are read-only, and JAX aliases read-only arrays on the CPU
        # (no copy); a writeable copy of the batch is copied, as an accelerator copies it.
        writeable = np.array(batch)
        puts = interleaved_best(
            {
                "copy": (lambda: jax.device_put(writeable, cpu).block_until_ready(), 1),
                "as_is": (lambda: jax.device_put(batch, cpu).block_until_ready(), 1),
            },
            max(3, repeats),
        )
        put_seconds = puts["copy"] / 1e3
        aliased = jax.device_put(batch, cpu).unsafe_buffer_pointer() == batch.ctypes.data
    expected = int(sum(w * h for w, h in shapes))
    # A pass's own cost (iterator, reading the bytes, counting) is the overhead pass's.
    overhead = passes.pop("overhead")
    batching = passes.pop("batch")
    cumulative = {name: ms - overhead for name, ms in passes.items()}
    cumulative["batch"] = cumulative["resize"] + batching
    alternative = cumulative.pop("partial_decode_two_views")
    per_image = {
        "decode": cumulative["decode"],
        "windows_and_cuts": cumulative["windows_and_cuts"] - cumulative["decode"],
        "resize": cumulative["resize"] - cumulative["windows_and_cuts"],
        "batch": batching,
        "device_put": put_seconds / batch_size * 1e3,
    }
    return {
        "ms_per_image": per_image,
        "cumulative_ms_per_image": cumulative
        | {"device_put": cumulative["batch"] + put_seconds / batch_size * 1e3},
        "pass_overhead_ms_per_image": overhead,
        "partial_decode_two_views_ms_per_image": alternative,
        "decoded_pixels": decoded,
        "decoded_pixels_match": decoded == expected,
        "bytes_per_batch": int(batch.nbytes),
        "batch_shape": list(batch.shape),
        "device_put_ms_per_batch": put_seconds * 1e3,
        "device_put_tf_batch_ms_per_batch": puts["as_is"],
        "tf_batch_aliased_on_cpu": bool(aliased),
        "pcie_ms_per_batch": batch.nbytes / PCIE_BYTES_PER_S * 1e3,
        "note": "single-threaded, one core, fastest of the repeated passes, less the cost of "
        "an identity pass; decode (one whole decode per image), windows_and_cuts (two windows "
        "sampled and cut from the decoded image) and resize (views_map_fn) are differences "
        "of cumulative passes, batch is timed alone (batch + numpy conversion of ready "
        "views); partial_decode_two_views (windows from the JPEG header and one "
        "decode_and_crop_jpeg per view, the reference pipelines' way) is the alternative to "
        "cumulative windows_and_cuts; device_put is "
        "jax.device_put of a writeable copy of a batch to the CPU device (a host memcpy; the "
        "read-only tf.data batch itself is aliased there, device_put_tf_batch_ms_per_batch); "
        "on an accelerator it is a PCIe copy of bytes_per_batch",
    }


# ---------------------------------------------------------------------------------------------
# Derived figures.


def derived_figures(
    a_images_per_s: float,
    b_views_per_s: Optional[float],
    c_views_per_s: Optional[float],
    *,
    workers: int,
    reference_images_per_s: float = REFERENCE_IMAGES_PER_S,
) -> dict:
    """Ratios and cores per accelerator from the measured rates (None where a part was
    skipped), with the arithmetic as text."""
    views_needed = VIEWS_PER_IMAGE * reference_images_per_s
    a_core = a_images_per_s / workers
    b_core = None if b_views_per_s is None else b_views_per_s / workers
    c_core = None if c_views_per_s is None else c_views_per_s / workers
    cores = {"a": reference_images_per_s / a_core}
    lines = [
        f"(a) per core: {a_images_per_s:.1f} images/s / {workers} cores = {a_core:.2f} "
        f"images/s/core",
        f"(a) cores for {reference_images_per_s:g} images/s if every image were decoded "
        f"whole once: {reference_images_per_s:g} / {a_core:.2f} = {cores['a']:.1f}",
    ]
    out = {
        "reference_images_per_s": reference_images_per_s,
        "reference_views_per_s": views_needed,
        "b_over_c_per_core": None,
        "b_over_c_target": TARGET_B_OVER_C,
        "b_over_c_meets_target": None,
        "b_views_over_a_images": None,
        "b_over_a_target": TARGET_B_OVER_A,
        "b_over_a_meets_target": None,
    }
    for name, per_core, rate in (("b", b_core, b_views_per_s), ("c", c_core, c_views_per_s)):
        if per_core is None:
            lines.append(f"({name}) skipped")
            continue
        cores[name] = views_needed / per_core
        lines.append(
            f"({name}) per core: {rate:.1f} views/s / {workers} cores = {per_core:.2f} "
            f"views/s/core; cores per accelerator = {VIEWS_PER_IMAGE} x "
            f"{reference_images_per_s:g} / {per_core:.2f} = {views_needed:g} / "
            f"{per_core:.2f} = {cores[name]:.1f}"
        )
    if b_core is not None and c_core is not None:
        ratio = b_core / c_core
        out["b_over_c_per_core"] = ratio
        out["b_over_c_meets_target"] = ratio >= TARGET_B_OVER_C
        lines.append(
            f"(b)/(c) per core: {b_core:.2f} / {c_core:.2f} = {ratio:.2f} (target >= "
            f"{TARGET_B_OVER_C:g})"
        )
    if b_views_per_s is not None:
        ratio = b_views_per_s / a_images_per_s
        out["b_views_over_a_images"] = ratio
        out["b_over_a_meets_target"] = ratio >= TARGET_B_OVER_A
        lines.append(
            f"(b) views/s / (a) images/s: {b_views_per_s:.1f} / {a_images_per_s:.1f} = "
            f"{ratio:.2f} (target >= {TARGET_B_OVER_A:g})"
        )
    out["cores_per_accelerator"] = cores
    out["arithmetic"] = lines
    return out


# ---------------------------------------------------------------------------------------------
# Figure.


def plot(results: dict, path: str) -> str:
    """Bar chart of views/s/core of (a), (b), (c) and of the stage profile (ms/image), from
    the results JSON; written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [
        ("(a) decode only\n(images/s/core)", results["a_limit"], "images_per_s_per_core"),
        (
            "(b) ssljax host views\n("
            f"{results['config'].get('host_resize', 'bicubic')}, "
            f"{results['config'].get('host_resize_backend', 'tensorflow')})",
            results["b_ssljax"],
            "views_per_s_per_core",
        ),
        ("(c) torchvision\nDataLoader", results["c_torchvision"], "views_per_s_per_core"),
    ]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    labels = [label for label, _, _ in parts]
    values = [part.get(key, 0.0) for _, part, key in parts]
    bars = left.bar(labels, values, color=["0.6", "tab:blue", "tab:orange"])
    for bar, (_, part, key) in zip(bars, parts):
        text = "skipped" if key not in part else f"{part[key]:.0f}"
        left.annotate(
            text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom"
        )
    config = results["config"]
    left.set_ylabel("per host core per second")
    left.set_title(f"Views/s per core ({config['workers']} workers, batch {config['batch_size']})")
    stages = results["stages"].get("ms_per_image", {})
    names = list(stages)
    labels = ["one decode" if n == "decode" else n.replace("_", " ") for n in names]
    right.barh(labels, [max(stages[n], 0.0) for n in names], color="tab:blue")
    for y, name in enumerate(names):
        right.annotate(f" {stages[name]:.3f}", (max(stages[name], 0.0), y), va="center")
    right.invert_yaxis()
    right.set_xlabel("ms per image (two views), one core")
    right.set_title("Stage profile of (b)")
    machine = results["machine"]
    fig.suptitle(
        f"{machine['cpu']}, {machine['cpu_count']} cores, load average "
        f"{', '.join(str(x) for x in machine['load_average'])} at the start; "
        f"{results['images']['count']} synthetic ImageNet-sized JPEGs, "
        f"{results['images']['mean_bytes'] / 1e3:.0f} kB mean",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# Command line.


def cpu_name() -> str:
    """The CPU model (``lscpu``'s 'Model name'), or the platform's processor string."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        text = ""
    for line in text.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} is invalid; valid: a positive number")
        return value

    return parse


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--num_images", type=_positive(int), default=512, help="distinct synthetic JPEGs"
    )
    parser.add_argument(
        "--epoch_images",
        type=_positive(int),
        default=32768,
        help="images per epoch of (b) and (c): the folder holds this many files, repeats of "
        "the distinct ones as hard links, so epoch restarts are as rare as in a large folder; "
        "long epochs read one file per image, as training does",
    )
    parser.add_argument("--batch_size", type=_positive(int), default=64)
    parser.add_argument(
        "--workers", type=_positive(int), default=os.cpu_count(), help="worker cores"
    )
    parser.add_argument(
        "--seconds", type=_positive(float), default=5.0, help="length of each timed window"
    )
    parser.add_argument(
        "--repeats", type=_positive(int), default=3, help="timed windows (median) and passes"
    )
    parser.add_argument("--quality", type=_positive(int), default=JPEG_QUALITY)
    parser.add_argument(
        "--reference_images_per_s", type=_positive(float), default=REFERENCE_IMAGES_PER_S
    )
    parser.add_argument(
        "--host_resize",
        choices=("bicubic", "bilinear"),
        default="bicubic",
        help="(b)'s resize kernel (augment.host_resize; ssljax's default: bicubic)",
    )
    parser.add_argument(
        "--host_resize_backend",
        choices=("opencv", "tensorflow"),
        default="opencv",
        help="(b)'s resize library (augment.host_resize_backend; ssljax's default: opencv)",
    )
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: b, c, stages")
    parser.add_argument("--out", help="write the results JSON here (not overwritten)")
    parser.add_argument("--plot", help="write the bar chart PNG here (not overwritten)")
    parser.add_argument("--from_json", help="plot a saved results JSON instead of measuring")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing --out / --plot files"
    )
    parser.add_argument("--peer_args", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - {"b", "c", "stages"}:
        raise ValueError(f"--skip={args.skip!r} is invalid; valid: b, c, stages")
    args.skip = skip
    if args.num_images < args.batch_size:
        raise ValueError(
            f"--num_images={args.num_images} is invalid; valid: >= --batch_size={args.batch_size}"
        )
    if args.epoch_images < args.num_images:
        raise ValueError(
            f"--epoch_images={args.epoch_images} is invalid; valid: >= --num_images="
            f"{args.num_images}"
        )
    for path in (args.out, args.plot):
        if path and os.path.exists(path) and not args.overwrite:
            raise ValueError(f"{path} exists; remove it or pass --overwrite")
    if args.from_json and not args.plot:
        raise ValueError("--from_json needs --plot FILE.png")
    return args


def summary_lines(results: dict) -> list[str]:
    """Human-readable lines: the images, the three rates, the stages and the arithmetic."""
    images, config = results["images"], results["config"]
    lines = [
        f"images: {images['count']} JPEGs, mean {images['mean_bytes'] / 1e3:.1f} kB, mean "
        f"{images['mean_width']:.0f} x {images['mean_height']:.0f}, quality {config['quality']}",
        f"workers: {config['workers']}, batch {config['batch_size']}, load average "
        f"{results['machine']['load_average']}",
    ]
    a = results["a_limit"]
    lines.append(
        f"(a) decode limit: {a['images_per_s']:.1f} images/s, "
        f"{a['images_per_s_per_core']:.1f} /core"
    )
    for key, name in (("b_ssljax", "(b) ssljax host views"), ("c_torchvision", "(c) torchvision")):
        part = results[key]
        if "skipped" in part:
            lines.append(f"{name}: skipped: {part['skipped']}")
        else:
            lines.append(
                f"{name}: {part['views_per_s']:.1f} views/s, {part['views_per_s_per_core']:.1f} "
                "/core"
            )
    stages = results["stages"]
    if "skipped" in stages:
        lines.append(f"stages: skipped: {stages['skipped']}")
    else:
        lines.append(
            "stages (ms/image, one core): "
            + ", ".join(f"{k} {v:.3f}" for k, v in stages["ms_per_image"].items())
            + f"; {stages['bytes_per_batch']} bytes per batch"
        )
    lines += results["derived"]["arithmetic"]
    return lines


def run(args: argparse.Namespace) -> dict:
    """Generates the images, measures (a), (c), the stage profile and (b), and derives the
    figures."""
    results: dict[str, Any] = {
        "machine": {
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "config": {
            "num_images": args.num_images,
            "epoch_images": args.epoch_images,
            "batch_size": args.batch_size,
            "workers": args.workers,
            "seconds": args.seconds,
            "repeats": args.repeats,
            "image_size": IMAGE_SIZE,
            "views_per_image": VIEWS_PER_IMAGE,
            "scale": list(CROP_SCALE),
            "ratio": list(CROP_RATIO),
            "quality": args.quality,
            "host_resize": args.host_resize,
            "host_resize_backend": args.host_resize_backend,
            "reference_images_per_s": args.reference_images_per_s,
        },
    }
    jpegs, shapes = synthetic_jpegs(args.num_images, quality=args.quality)
    results["images"] = jpeg_stats(jpegs, shapes)
    timing = dict(workers=args.workers, seconds=args.seconds, repeats=args.repeats)
    root = tempfile.mkdtemp(prefix="ssljax_benchmark_input_")
    try:
        folder = write_folder(root, jpegs, files=args.epoch_images)
        distinct = [folder_file(folder, i) for i in range(len(jpegs))]
        with pinned_cores(args.workers):
            results["c_torchvision"] = (
                {"skipped": "--skip c"}
                if "c" in args.skip
                else measure_peer_process(
                    distinct,
                    root,
                    batch_size=args.batch_size,
                    epoch_images=args.epoch_images,
                    **timing,
                )
            )
            results["a_limit"] = measure_limit(jpegs, **timing)
            results["b_ssljax"] = (
                {"skipped": "--skip b"}
                if "b" in args.skip
                else measure_ssljax(
                    folder,
                    batch_size=args.batch_size,
                    resize=args.host_resize,
                    backend=args.host_resize_backend,
                    **timing,
                )
            )
        results["stages"] = (
            {"skipped": "--skip stages"}
            if "stages" in args.skip
            else stage_profile(
                jpegs,
                shapes,
                batch_size=args.batch_size,
                repeats=args.repeats,
                resize=args.host_resize,
                backend=args.host_resize_backend,
            )
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results["derived"] = derived_figures(
        results["a_limit"]["images_per_s"],
        results["b_ssljax"].get("views_per_s"),
        results["c_torchvision"].get("views_per_s"),
        workers=args.workers,
        reference_images_per_s=args.reference_images_per_s,
    )
    return results


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Runs the benchmark (or, with ``--from_json``, only plots); prints the summary and one
    JSON line; writes ``--out`` and ``--plot``. Returns the results."""
    args = parse_args(argv)
    if args.peer_args:
        _peer_main(args.peer_args)
        return {}
    if args.from_json:
        with open(args.from_json) as f:
            results = json.load(f)
    else:
        results = run(args)
        for line in summary_lines(results):
            print(line)
        print(json.dumps(results))
        if args.out:
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out, "w") as f:
                json.dump(results, f, indent=1)
    if args.plot:
        os.makedirs(os.path.dirname(os.path.abspath(args.plot)), exist_ok=True)
        plot(results, args.plot)
    return results


if __name__ == "__main__":
    main()
