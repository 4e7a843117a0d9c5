"""A per-machine cache of linear evaluation's baselines.

The random-encoder and raw-pixel probes of ``linear_eval`` do not depend on pretraining: they
are fixed by the dataset, the encoder's architecture and seed (its initial parameters), the
probed layers and grid, and the probe's settings. Computing them costs two thirds of the
demo's evaluation, every time, for the same answer. So they are computed once per machine and
read back afterwards, keyed by exactly those inputs:

* the dataset: its :class:`~ssljax.data.datasets.DatasetSpec` (name, TFDS builder, splits,
  keys, image shape, host preprocessing, image folder) and the number of train and test
  examples;
* for the random encoder: a SHA-256 of its initial variables (architecture *and* seed, with
  nothing left to trust), the probed layers and the pooling grid;
* the probe's settings (every ``eval.*`` key that changes a probe's result) and
  :data:`PROBE_VERSION`, which changes whenever the probe's code gives different numbers.

An entry is one JSON file ``<kind>-<key>.json`` in the cache directory: ``$SSLJAX_CACHE_DIR``
or ``~/.cache/ssljax/baselines``. Entries are written atomically and never overwritten (the
same key gives the same result); a file that cannot be parsed is ignored and recomputed.
Float results computed on another CPU can differ in the last digits, which is why the cache
is per machine and not shipped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Mapping, Optional

import jax
import numpy as np
from etils import epath

from ssljax.training.logging import write_json_atomic

# Bump when the probe code changes its results (solver, standardisation, kNN, splits).
PROBE_VERSION = 1

CACHE_ENV = "SSLJAX_CACHE_DIR"
KINDS = ("random_init", "raw_pixels")

# ``eval.*`` keys that change a probe's result.
PROBE_KEYS = (
    "l2_grid",
    "val_fraction",
    "knn_k",
    "knn_temperature",
    "feature_dtype",
    "max_probe_bytes",
    "max_raw_pixel_bytes",
    "probe_chunk_bytes",
    "probe_epochs",
    "probe_batch_size",
    "probe_learning_rate",
)


def cache_dir(override: Optional[str] = None) -> epath.Path:
    """``override``, else ``$SSLJAX_CACHE_DIR``, else ``~/.cache/ssljax/baselines``."""
    if override:
        return epath.Path(override)
    env = os.environ.get(CACHE_ENV)
    if env:
        return epath.Path(env)
    return epath.Path(os.path.expanduser("~")) / ".cache" / "ssljax" / "baselines"


def variables_digest(variables) -> str:
    """SHA-256 of a pytree of arrays: every leaf's path, dtype, shape and bytes."""
    digest = hashlib.sha256()
    leaves = jax.tree_util.tree_flatten_with_path(variables)[0]
    for path, leaf in leaves:
        array = np.ascontiguousarray(np.asarray(leaf))
        digest.update(jax.tree_util.keystr(path).encode())
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _jsonable(value):
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


def probe_settings(eval_cfg, defaults: Mapping[str, Any]) -> dict:
    """The ``eval.*`` settings of :data:`PROBE_KEYS` (``defaults`` for keys a stored config
    lacks)."""
    return {key: _jsonable(eval_cfg.get(key, defaults.get(key))) for key in PROBE_KEYS}


def machine_name() -> str:
    """The CPU model (``/proc/cpuinfo``), else the platform's machine name."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_key(kind: str, fields: Mapping[str, Any]) -> str:
    """The key of a baseline of ``kind`` (:data:`KINDS`) described by ``fields``: a SHA-256
    of their canonical JSON with the kind and :data:`PROBE_VERSION`."""
    if kind not in KINDS:
        raise ValueError(f"unknown baseline kind {kind!r}; valid: {', '.join(KINDS)}")
    canonical = json.dumps(
        {"kind": kind, "probe_version": PROBE_VERSION, **_jsonable(dict(fields))},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def files_fingerprint(root) -> str:
    """SHA-256 of the files under ``root``: every relative path with its size and
    modification time (local folders), or every file name of the folder itself with its size
    (remote ones); a folder that cannot be listed (mocked data) is named instead. The data are
    not read: rewriting or adding a file changes the fingerprint."""
    digest = hashlib.sha256()
    root_text = os.fspath(root)
    if os.path.isdir(root_text):
        for directory, dirs, files in os.walk(root_text):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(directory, name)
                stat = os.stat(path)
                rel = os.path.relpath(path, root_text)
                digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    else:  # a remote (or absent) folder: its own files, one level (a TFDS version folder)
        try:
            for path in sorted(epath.Path(root_text).iterdir(), key=str):
                if path.is_file():
                    digest.update(f"{path.name}\0{path.stat().length}\n".encode())
        except (OSError, NotImplementedError, ValueError):
            digest.update(f"unlisted:{root_text}".encode())
    return digest.hexdigest()


def dataset_fields(spec, num_train: int, num_test: int, fingerprint: str = "") -> dict:
    """What identifies the evaluation data: the spec, the split sizes and the files'
    fingerprint (:func:`files_fingerprint` of the prepared data)."""
    return {
        "dataset": _jsonable(spec),
        "num_train": int(num_train),
        "num_test": int(num_test),
        "files": fingerprint,
    }


def entry_path(directory: epath.Path, kind: str, key: str) -> epath.Path:
    return directory / f"{kind}-{key}.json"


def read_entry(directory: epath.Path, kind: str, key: str) -> Optional[dict]:
    """The cached report of ``kind`` under ``key``, or None (absent or unreadable)."""
    path = entry_path(directory, kind, key)
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key or "report" not in entry:
        return None
    return entry


def write_entry(
    directory: epath.Path, kind: str, key: str, report: Any, fields: Mapping[str, Any]
) -> Optional[epath.Path]:
    """Stores ``report`` under ``key`` unless an entry is already there (same key, same
    result: nothing is overwritten). Returns the path written, or None. A cache that
    cannot be written (read-only home, full disk) is not an error for the evaluation."""
    path = entry_path(directory, kind, key)
    try:
        if path.exists():
            return None
        directory.mkdir(parents=True, exist_ok=True)
        entry = {
            "key": key,
            "kind": kind,
            "probe_version": PROBE_VERSION,
            "machine": machine_name(),
            "jax": jax.__version__,
            "fields": _jsonable(dict(fields)),
            "report": report,
        }
        write_json_atomic(str(path), entry)
    except OSError:
        return None
    return path
