"""Frozen features of a whole split in one streamed pass, on every device of every process.

A split is never held as images: each process reads its own contiguous share
(``input_pipeline.eval_process_split``) in fixed-size batches, every batch goes once through
each *extractor* (a function ``uint8 images [B, H, W, C] -> features [B, D]``; the device
ones run on all local devices with :func:`device_extractor`), and only the features are kept,
at the probe's dimension and at the storage dtype (``float32`` or ``float16``). Afterwards
every process receives every process's rows (:func:`gather_rows`, in process order, so in the
split's file order) and can run the same probe.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

FEATURE_DTYPES = {"float32": np.float32, "float16": np.float16}

# Rows of one all-gather block are sized to about this many bytes per process.
GATHER_BLOCK_BYTES = 64 * 2**20

BATCH_AXIS = "batch"

# ``uint8 images [B, H, W, C] -> [B, D]`` (a numpy array, or a jax.Array being computed).
Extractor = Callable[[np.ndarray], Any]


def feature_dtype(name: str) -> np.dtype:
    """The numpy dtype features are stored in, from the config value ``eval.feature_dtype``."""
    if name not in FEATURE_DTYPES:
        raise ValueError(
            f"eval.feature_dtype must be one of {sorted(FEATURE_DTYPES)}, got {name!r}"
        )
    return np.dtype(FEATURE_DTYPES[name])


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is ``>= value`` (and at least ``multiple``)."""
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    return max(multiple, -(-int(value) // multiple) * multiple)


def local_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh (axis ``'batch'``) over this process's devices (default: all local ones).

    Feature extraction needs no communication, so each process keeps to its own devices and
    the processes do not have to run in lockstep.
    """
    devices = list(jax.local_devices() if devices is None else devices)
    return Mesh(np.array(devices), (BATCH_AXIS,))


def replicate(tree, mesh: Mesh):
    """Every leaf of ``tree`` copied onto every device of ``mesh``."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_rows(fn: Callable, mesh: Mesh) -> Callable:
    """``fn(variables, images [B, ...]) -> [B, D]`` jitted with each device of ``mesh`` on
    ``B / n`` rows (``shard_map``; variables replicated, rows split, no communication).

    ``fn`` must treat rows independently (an encoder in eval mode does), so the result is the
    single-device one on the same rows. One compilation serves any variables of the same
    structure (e.g. the pretrained and the randomly initialised encoder).
    """
    spec = PartitionSpec(BATCH_AXIS)
    return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=(PartitionSpec(), spec), out_specs=spec))


def device_extractor(mapped: Callable, variables, mesh: Mesh) -> Extractor:
    """``uint8 np images [B, ...] -> [B, D]``: ``mapped`` (from :func:`shard_rows`) applied
    to ``variables`` (copied onto every device once), the rows split over ``mesh``.

    ``B`` must be a multiple of the mesh size (see :func:`round_up`). The result is a
    ``jax.Array`` still being computed when it is returned (JAX dispatches asynchronously),
    so the host can prepare the next batch meanwhile.
    """
    on_mesh = replicate(variables, mesh)
    row_sharding = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
    num_devices = mesh.devices.size

    def extract(images: np.ndarray) -> jax.Array:
        if images.shape[0] % num_devices:
            raise ValueError(
                f"batch of {images.shape[0]} rows is not a multiple of the {num_devices} devices"
            )
        return mapped(on_mesh, jax.device_put(images, row_sharding))

    return extract


def pixel_features(images: np.ndarray) -> np.ndarray:
    """Raw-pixel features: ``uint8 [B, H, W, C] -> float32 [B, H * W * C]`` in ``[0, 1]``."""
    flat = np.asarray(images).reshape(images.shape[0], -1)
    return flat.astype(np.float32) / np.float32(255.0)


def _store_rows(
    features: dict, start: int, mask: np.ndarray, outputs: dict, dims: Mapping[str, int]
) -> None:
    """Writes the ``mask`` rows of each extractor's output for one batch at row ``start``."""
    rows = int(mask.sum())
    for name, out in outputs.items():
        out = np.asarray(out)
        chex.assert_shape(out, (len(mask), dims[name]))
        features[name][start : start + rows] = out[mask]


def extract_split(
    batches: Iterable[Mapping[str, np.ndarray]],
    extractors: Mapping[str, Extractor],
    *,
    num_rows: int,
    dims: Mapping[str, int],
    dtype=np.float32,
    log: Callable[[str], None] | None = None,
    log_every_s: float = 60.0,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Runs every extractor over every batch once, keeping only the rows ``mask`` marks.

    A batch's outputs are copied out only after the next batch has been dispatched, so
    device extractors compute while the host reads and stores.

    Args:
      batches: ``{'image': [B, ...], 'label': [B], 'mask': bool [B]}`` (``eval_batches``).
      extractors: name -> ``images -> [B, dims[name]]``.
      num_rows: real rows the batches hold in all (the arrays are preallocated).
      dims: feature dimension of each extractor.
      dtype: storage dtype of the features.
      log: called with a progress line about every ``log_every_s`` seconds (None: silent).

    Returns:
      ``({name: dtype [num_rows, D]}, labels int32 [num_rows])``, rows in batch order.

    Raises:
      ValueError: the batches hold another number of real rows than ``num_rows``, or an
        extractor returns another shape than announced.
    """
    features = {name: np.empty((num_rows, dims[name]), dtype) for name in extractors}
    labels = np.empty((num_rows,), np.int32)
    filled = 0
    pending = None
    start = last_log = time.perf_counter()
    for batch in batches:
        mask = np.asarray(batch["mask"], bool)
        rows = int(mask.sum())
        if filled + rows > num_rows:
            raise ValueError(f"the batches hold more than the expected {num_rows} rows")
        outputs = {name: extract(batch["image"]) for name, extract in extractors.items()}
        if pending is not None:
            _store_rows(features, *pending, dims)
        pending = (filled, mask, outputs)
        labels[filled : filled + rows] = np.asarray(batch["label"])[mask]
        filled += rows
        now = time.perf_counter()
        if log is not None and now - last_log >= log_every_s:
            last_log = now
            log(f"{filled}/{num_rows} rows ({filled / (now - start):.0f} rows/s)")
    if pending is not None:
        _store_rows(features, *pending, dims)
    if filled != num_rows:
        raise ValueError(f"the batches hold {filled} rows, expected {num_rows}")
    return features, labels


def _process_allgather(block: np.ndarray) -> np.ndarray:
    """``[P, *block.shape]``: every process's ``block`` (all have the same shape)."""
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(block, tiled=False))


def gather_rows(
    local: np.ndarray,
    counts: Sequence[int],
    *,
    process_index: int | None = None,
    block_bytes: int = GATHER_BLOCK_BYTES,
    allgather: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Every process's rows, concatenated in process order, on every process.

    Process ``p`` holds ``counts[p]`` rows. The rows are exchanged in blocks of about
    ``block_bytes`` per process (each process pads its block to the same row count), so the
    collective never holds more than one block per process. With one process ``local`` is
    returned as it is.

    Args:
      local: ``[counts[process_index], ...]`` this process's rows.
      counts: rows of every process (the same list on every process).
      process_index: this process (default ``jax.process_index()``).
      block_bytes: size of one exchanged block per process.
      allgather: ``block -> [P, *block.shape]`` (default: ``process_allgather``).

    Returns:
      ``[sum(counts), ...]`` with the dtype of ``local``.
    """
    counts = [int(c) for c in counts]
    process_index = jax.process_index() if process_index is None else process_index
    if local.shape[0] != counts[process_index]:
        raise ValueError(
            f"process {process_index} holds {local.shape[0]} rows, counts say "
            f"{counts[process_index]}"
        )
    if len(counts) == 1:
        return local
    allgather = allgather or _process_allgather
    row_shape = local.shape[1:]
    row_bytes = max(1, math.prod(row_shape) * local.dtype.itemsize)
    block = max(1, int(block_bytes) // row_bytes)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    out = np.empty((int(offsets[-1]), *row_shape), local.dtype)
    for lo in range(0, max(counts), block):
        hi = min(lo + block, max(counts))
        part = np.zeros((hi - lo, *row_shape), local.dtype)
        mine = local[lo:hi]
        part[: len(mine)] = mine
        blocks = allgather(part)
        chex.assert_shape(blocks, (len(counts), hi - lo, *row_shape))
        for p, count in enumerate(counts):
            rows = min(max(count - lo, 0), hi - lo)
            out[offsets[p] + lo : offsets[p] + lo + rows] = blocks[p, :rows]
    return out


def feature_bytes(num_rows: int, dim: int, dtype) -> int:
    """Bytes of an ``[num_rows, dim]`` feature array of ``dtype``."""
    return int(num_rows) * int(dim) * np.dtype(dtype).itemsize


def output_dim(fn: Callable, variables, image_shape: Sequence[int]) -> int:
    """``D`` of ``fn(variables, images [1, *image_shape]) -> [1, D]``, traced, not computed."""
    sample = jax.ShapeDtypeStruct((1, *image_shape), jnp.uint8)
    return int(jax.eval_shape(fn, variables, sample).shape[-1])
