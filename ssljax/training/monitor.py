"""A kNN monitor during pretraining: the encoder's weighted-kNN top-1 on fixed held-out data.

Every ``config.eval_every_steps`` steps the current encoder's frozen features of a fixed bank
(the first ``eval.monitor_bank_examples`` examples of the dataset's labelled train split) and
of fixed queries (the first ``eval.monitor_query_examples`` of its test split) go through the
final evaluation's weighted kNN (``ssljax.evaluation.knn.knn_evaluate`` with ``eval.knn_k``
and ``eval.knn_temperature``: Wu et al. 2018, the monitor of Caron et al. 2021), at the
probed layer (``eval.layer``, pooled to ``eval.grid``; of several layers, the last).

Features are computed on every local device from the copies of the parameters the train
state already holds there (``ssljax.evaluation.features``); each process computes its own
share of the rows and receives the others', so every process gets the same number. The
monitor reads the state and never writes it, and draws no random numbers, so a run with it
trains exactly as a run without it.
"""

from __future__ import annotations

import time
from typing import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ssljax.evaluation import features as feats


def monitor_setting(eval_cfg, key: str) -> int:
    """``eval_cfg[key]`` as an int (its ``checkpoint_eval.EVAL_DEFAULTS`` value when a stored
    config has no such key); a value below 1 is a one-line ValueError."""
    from ssljax.evaluation.checkpoint_eval import eval_setting

    value = int(eval_setting(eval_cfg, key))
    if value < 1:
        raise ValueError(f"eval.{key}={value} must be a positive number of examples")
    return value


def eval_interval(config) -> int:
    """``config.eval_every_steps`` (0, or missing in a stored config: the monitor is off)."""
    every = int(config.get("eval_every_steps", 0) or 0)
    if every < 0:
        raise ValueError(f"eval_every_steps={every} must be >= 0 (0 turns the kNN monitor off)")
    return every


def skip_reason(spec) -> str | None:
    """Why a dataset (its ``DatasetSpec``) cannot be monitored, or None when it can: it has
    no labels, or no held-out labelled split (its probes train and test on one split, as
    dSprites', whose file order is the factor grid, so its first examples are all one
    shape)."""
    if int(spec.num_classes) < 2:
        return f"dataset {spec.name} has no labels"
    if spec.test_split == spec.train_split:
        return (
            f"dataset {spec.name} has no held-out labelled split (its probes train and test "
            f"on {spec.train_split!r})"
        )
    return None


def process_rows(num_rows: int, process_count: int) -> list[int]:
    """Rows of each process's contiguous share of ``num_rows`` (in process order, sizes
    differing by at most one, the larger first)."""
    base, extra = divmod(int(num_rows), int(process_count))
    return [base + (p < extra) for p in range(process_count)]


def local_replica(tree, mesh: Mesh):
    """Every leaf of ``tree`` replicated on ``mesh`` (this process's devices), made of the
    copies a replicated global array already holds on those devices (nothing is copied);
    other leaves (host arrays) are copied onto the mesh."""
    sharding = NamedSharding(mesh, PartitionSpec())
    devices = list(mesh.devices.flat)

    def one(x):
        if isinstance(x, jax.Array) and x.sharding.is_fully_replicated:
            copies = {shard.device: shard.data for shard in x.addressable_shards}
            if all(d in copies for d in devices):
                return jax.make_array_from_single_device_arrays(
                    x.shape, sharding, [copies[d] for d in devices]
                )
        return jax.device_put(x, sharding)

    return jax.tree.map(one, tree)


def _print(message: str) -> None:
    print(message, flush=True)


def row_batches(images: np.ndarray, labels: np.ndarray, batch_size: int):
    """``images``/``labels`` as ``eval_batches`` yields a split: fixed-size batches, the last
    zero-padded with ``mask`` False on the padding."""
    from ssljax.data.input_pipeline import pad_batch

    for lo in range(0, len(labels), batch_size):
        chunk = {"image": images[lo : lo + batch_size], "label": labels[lo : lo + batch_size]}
        yield pad_batch(chunk, batch_size)


class KnnMonitor:
    """kNN top-1 of the encoder every ``every`` steps (see the module docstring).

    Build it with :meth:`for_run`; after each step call :meth:`after_step`, which returns
    ``{'knn_top1', 'knn_seconds'}`` at the steps it evaluates and ``{}`` otherwise. The
    data is loaded at the first evaluation, once (``load_split_arrays``).
    """

    def __init__(self, config, setup, spec, every: int, *, log: Callable[[str], None] | None):
        from ssljax.evaluation.checkpoint_eval import eval_setting

        eval_cfg = config.eval
        self.every = every
        self.spec = spec
        self.setup = setup
        self.data_dir = config.dataset.get("data_dir")
        self.bank_examples = monitor_setting(eval_cfg, "monitor_bank_examples")
        self.query_examples = monitor_setting(eval_cfg, "monitor_query_examples")
        self.layer_spec = str(eval_cfg.layer)
        self.grid = int(eval_cfg.grid)
        self.k = int(eval_cfg.knn_k)
        self.temperature = float(eval_cfg.knn_temperature)
        self.eval_batch_size = int(eval_cfg.batch_size)
        self.dtype = feats.feature_dtype(eval_setting(eval_cfg, "feature_dtype"))
        self.log = log or (lambda message: None)
        self._data = None  # (bank images, bank labels, query images, query labels)
        self._extract = None  # (jitted sharded feature fn, its dimension, mesh, batch size)

    @classmethod
    def for_run(cls, config, setup, *, verbose: bool = True) -> KnnMonitor | None:
        """The run's monitor, or None when ``eval_every_steps`` is 0 (off) or the dataset
        cannot be monitored (then one line says why). ``verbose``: print its lines (process
        0). Bad settings raise a one-line ValueError; no data is read here."""
        from ssljax.data.datasets import spec_from_config

        log = _print if verbose else None
        every = eval_interval(config)
        if every == 0:
            return None
        spec = spec_from_config(config.dataset)
        reason = skip_reason(spec)
        if reason is not None:
            if log is not None:
                log(f"kNN monitor off: {reason}")
            return None
        return cls(config, setup, spec, every, log=log)

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def after_step(self, step: int, state) -> dict:
        """``evaluate(state.params, state.model_state)`` when ``step`` is due, else ``{}``."""
        if not self.due(step):
            return {}
        return self.evaluate(state.params, state.model_state)

    def load(self) -> tuple[np.ndarray, ...]:
        """The bank and the queries (images and labels), read once."""
        if self._data is None:
            from ssljax.data.input_pipeline import load_split_arrays

            start = time.perf_counter()
            spec, data_dir = self.spec, self.data_dir
            bank = load_split_arrays(
                spec, spec.train_split, data_dir=data_dir, max_examples=self.bank_examples
            )
            queries = load_split_arrays(
                spec, spec.test_split, data_dir=data_dir, max_examples=self.query_examples
            )
            self._data = (*bank, *queries)
            self.log(
                f"kNN monitor every {self.every} steps: bank {len(bank[1])} {spec.train_split!r}"
                f" examples, queries {len(queries[1])} {spec.test_split!r} examples (read in "
                f"{time.perf_counter() - start:.1f} s)"
            )
        return self._data

    def _extractor(self, variables):
        """The feature function (compiled once per run), its dimension, mesh, batch size."""
        if self._extract is None:
            from ssljax.evaluation.checkpoint_eval import encoder_feature_fn, resolve_layers
            from ssljax.models import encoder_layer_names

            encoder = self.setup.eval_model.encoder
            sample = jax.ShapeDtypeStruct((1, *self.spec.image_shape), np.float32)
            layer = resolve_layers(self.layer_spec, encoder_layer_names(encoder, variables, sample))
            fn = encoder_feature_fn(encoder, layer=layer[-1], grid=self.grid)
            mesh = feats.local_mesh()
            dim = feats.output_dim(fn, variables, self.spec.image_shape)
            batch_size = feats.round_up(self.eval_batch_size, mesh.size)
            self._extract = (feats.shard_rows(fn, mesh), dim, mesh, batch_size)
        return self._extract

    def features(self, variables, images: np.ndarray) -> np.ndarray:
        """``[N, D]`` features of ``images`` by the encoder with ``variables``: this process
        computes its share of the rows on its devices, then every process gets all rows."""
        mapped, dim, mesh, batch_size = self._extractor(variables)
        counts = process_rows(len(images), jax.process_count())
        lo = sum(counts[: jax.process_index()])
        mine = images[lo : lo + counts[jax.process_index()]]
        extract = feats.device_extractor(mapped, local_replica(variables, mesh), mesh)
        batches = row_batches(mine, np.zeros(len(mine), np.int32), batch_size)
        local, _ = feats.extract_split(
            batches, {"f": extract}, num_rows=len(mine), dims={"f": dim}, dtype=self.dtype
        )
        return feats.gather_rows(local["f"], counts)

    def evaluate(self, params, model_state) -> dict:
        """``{'knn_top1', 'knn_seconds'}`` of the encoder in ``params``/``model_state``
        (the seconds of its features and kNN; the first evaluation's include compiling the
        feature function, not reading the data)."""
        from ssljax.evaluation.checkpoint_eval import encoder_of
        from ssljax.evaluation.knn import knn_evaluate

        bank_x, bank_y, query_x, query_y = self.load()
        start = time.perf_counter()
        _, variables = encoder_of(self.setup, params, model_state)
        report = knn_evaluate(
            self.features(variables, bank_x),
            bank_y,
            self.features(variables, query_x),
            query_y,
            num_classes=int(self.spec.num_classes),
            k=self.k,
            temperature=self.temperature,
        )
        return {"knn_top1": report["top1"], "knn_seconds": time.perf_counter() - start}
