"""Downstream protocols on a pretraining checkpoint: one report row per protocol.

``python -m ssljax.evaluate --workdir W --protocols=...`` calls :func:`evaluate_workdir`,
which reads ``W``'s checkpoint and stored config (never training internals) and runs:

- ``linear``: the L2-regularised linear probe on frozen features of the whole train split
  (``checkpoint_eval.evaluate_features``, as ``python -m ssljax.linear_eval``);
- ``knn``: the weighted kNN classifier on the same features (Wu et al. 2018);
- ``label_efficiency``: for each label fraction (default 1% and 10%, the semi-supervised
  protocol of Chen et al. 2020, SimCLR, Section 6), a class-balanced subset of the train
  labels (:func:`balanced_subset`) and three rows: the linear probe on the subset, the
  pretrained encoder fine-tuned on it, and the same network trained from random
  initialisation with the same recipe ("from scratch", ``ssljax.evaluation.finetune``);
- ``finetune``: fine-tuning on every train label;
- ``transfer``: the linear probe (and kNN) on another dataset's train/test splits (Kornblith
  et al. 2019, "Do Better ImageNet Models Transfer Better?"), its images brought to the
  encoder's input shape by ``ssljax.evaluation.adapt.adapt_images``.

Every row reports top-1/top-5 on the *full* test split of its dataset. Hyperparameters are
never chosen on the test split: the probe's L2 is chosen on data held out from its own
training labels, the fine-tuning recipe is fixed (``finetune.default_config``) or chosen on
``finetune.validation_fraction`` of the labelled subset.

The report is written to ``W/evaluate.json`` (atomically, by process 0, after every row is
computed: a run that fails writes nothing), and no other file is touched.
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping, Sequence

import jax
import ml_collections
import numpy as np
from etils import epath

from ssljax.training.logging import write_json_atomic

REPORT_FILE = "evaluate.json"
PROTOCOLS = ("linear", "knn", "label_efficiency", "finetune", "transfer")
DEFAULT_PROTOCOLS = ("linear", "knn", "label_efficiency")
DEFAULT_FRACTIONS = (0.01, 0.1)
TABLE_COLUMNS = ["protocol", "dataset", "labels", "method", "top1", "top5"]


# --------------------------------------------------------------------------
# Arguments.


def parse_protocols(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """Protocol names from ``'linear,knn'`` or a sequence, in :data:`PROTOCOLS` order.

    Raises:
      ValueError: an unknown name (the message lists the valid ones), or none at all.
    """
    if spec is None:
        return DEFAULT_PROTOCOLS
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [str(n).strip() for n in names if str(n).strip()]
    bad = [n for n in names if n not in PROTOCOLS]
    if bad or not names:
        raise ValueError(
            f"unknown protocol {(bad or [spec])[0]!r}; valid protocols: {', '.join(PROTOCOLS)}"
        )
    return tuple(p for p in PROTOCOLS if p in names)


def check_fraction(fraction) -> float:
    """``fraction`` as a float if it lies in ``(0, 1]``, else a one-line ValueError."""
    try:
        value = float(fraction)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 < value <= 1.0:
        raise ValueError(
            f"label fraction {fraction!r} is outside (0, 1]; e.g. 0.01 for 1% of the labels"
        )
    return value


def parse_fractions(spec: str | Sequence[float] | None) -> tuple[float, ...]:
    """Label fractions from ``'0.01,0.1'`` or a sequence, each checked to be in ``(0, 1]``."""
    if spec is None:
        return DEFAULT_FRACTIONS
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    items = [i for i in items if str(i).strip()]
    if not items:
        raise ValueError(f"no label fraction in {spec!r}; e.g. 0.01,0.1")
    return tuple(check_fraction(str(i).strip() if isinstance(i, str) else i) for i in items)


def finetune_config(overrides: Mapping[str, Any] | None = None) -> ml_collections.ConfigDict:
    """``finetune.default_config()`` with ``overrides`` applied and checked.

    Raises:
      ValueError: an unknown key (the message lists the valid ones) or a bad value.
    """
    from ssljax.evaluation import finetune

    cfg = finetune.default_config()
    for key, value in dict(overrides or {}).items():
        if key not in cfg:
            raise ValueError(f"unknown finetune key {key!r}; valid keys: {', '.join(sorted(cfg))}")
        with cfg.ignore_type():
            cfg[key] = value
    finetune.check_config(cfg)
    return cfg


# --------------------------------------------------------------------------
# Label subsets.


def _check_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be a 1-D integer array, got shape {labels.shape} dtype {labels.dtype}"
        )
    return labels


def per_class_count(class_size: int, fraction: float) -> int:
    """Examples kept of a class of ``class_size``: ``round(fraction * class_size)`` (halves
    round up), at least 1 and at most ``class_size``."""
    return int(min(class_size, max(1, math.floor(fraction * class_size + 0.5))))


def _class_orders(labels: np.ndarray, seed: int) -> dict[int, np.ndarray]:
    """For each class, its example indices in the order of one seeded permutation."""
    order = np.random.default_rng(seed).permutation(len(labels))
    ranked = labels[order]
    return {int(c): order[ranked == c] for c in np.unique(labels)}


def balanced_subset(labels, fraction: float, seed: int) -> np.ndarray:
    """Indices of a class-balanced subset of ``labels``, fixed by ``seed``.

    Every class ``c`` of ``n_c`` examples keeps ``round(fraction * n_c)`` of them (at least
    1), as the 1% and 10% ImageNet subsets of SimCLR (Chen et al. 2020) keep about the same
    number of images per class. The examples are the first of one permutation of the whole
    split drawn from ``seed``, so for one seed the subsets are **nested**: the 1% subset is
    contained in the 10% subset (and every smaller fraction in every larger one).

    Args:
      labels: ``int [N]`` class of each example.
      fraction: in ``(0, 1]``; 1 keeps every example.
      seed: the subset's seed.

    Returns:
      ``int64 [M]`` sorted indices into ``labels``.

    Raises:
      ValueError: ``fraction`` outside ``(0, 1]`` or labels that are not a 1-D integer array.
    """
    fraction = check_fraction(fraction)
    labels = _check_labels(labels)
    picked = [
        idx[: per_class_count(len(idx), fraction)]
        for idx in _class_orders(labels, int(seed)).values()
    ]
    if not picked:
        return np.zeros((0,), np.int64)
    return np.sort(np.concatenate(picked)).astype(np.int64)


def split_validation(labels, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A class-balanced held-out part of a labelled set: ``(train positions, validation
    positions)`` into ``labels``.

    Each class of ``n_c >= 2`` examples gives ``round(fraction * n_c)`` of them to validation
    (at least 1, at most ``n_c - 1``); a class with one example stays in training. With
    ``fraction == 0`` everything is training.
    """
    labels = _check_labels(labels)
    if not 0.0 <= float(fraction) < 1.0:
        raise ValueError(f"validation fraction {fraction!r} must be in [0, 1)")
    if float(fraction) == 0.0:
        return np.arange(len(labels), dtype=np.int64), np.zeros((0,), np.int64)
    held = [
        idx[: min(len(idx) - 1, per_class_count(len(idx), float(fraction)))]
        for idx in _class_orders(labels, int(seed)).values()
    ]
    val = np.sort(np.concatenate(held)).astype(np.int64)
    train = np.setdiff1d(np.arange(len(labels)), val).astype(np.int64)
    return train, val


# --------------------------------------------------------------------------
# Rows.


def labels_text(fraction: float, num_labels: int) -> str:
    """``'1% (600)'``: the fraction of the train labels used, and their number."""
    percent = f"{100 * fraction:.4g}%"
    return f"{percent} ({num_labels})"


def make_row(
    protocol: str, dataset: str, method: str, fraction: float, num_labels: int, result: dict
) -> dict:
    """A report row: what was trained on what, and its test top-1/top-5 (plus the method's
    own details, e.g. the probe's l2 or the fine-tuning steps)."""
    row = dict(
        protocol=protocol,
        dataset=dataset,
        method=method,
        fraction=float(fraction),
        num_labels=int(num_labels),
        labels=labels_text(fraction, num_labels),
        top1=float(result["top1"]),
        top5=float(result["top5"]),
    )
    for key, value in result.items():
        if key not in row and key not in ("val_top1", "num_train", "num_test"):
            row[key] = value
    if "val_top1" in result:  # the probe: {l2: top1}; fine-tuning: a float
        row["val_top1"] = result["val_top1"]
    return row


def probe_result(report: dict) -> dict:
    """The fields of an ``evaluate_features`` report a row keeps."""
    out = dict(top1=report["top1"], top5=report["top5"], l2=report["l2"])
    out["val_top1"] = report.get("val_top1", {})
    out["solver"] = report.get("solver")
    if "knn" in report:
        out["knn_top1"] = report["knn"]["top1"]
    return out


def label_efficiency_margins(rows: Sequence[dict]) -> dict[str, dict]:
    """Per label fraction: fine-tune minus probe, fine-tune minus scratch, and the better
    of the pretrained rows (fine-tune, probe) minus scratch (test top-1)."""
    by_fraction: dict[float, dict[str, float]] = {}
    for row in rows:
        if row["protocol"] == "label_efficiency":
            by_fraction.setdefault(row["fraction"], {})[row["method"]] = row["top1"]
    margins = {}
    for fraction, top1 in sorted(by_fraction.items()):
        if {"linear probe", "fine-tune", "from scratch"} <= set(top1):
            ft, probe, scratch = top1["fine-tune"], top1["linear probe"], top1["from scratch"]
            margins[f"{fraction:g}"] = dict(
                finetune_minus_probe=ft - probe,
                finetune_minus_scratch=ft - scratch,
                pretrained_best_minus_scratch=max(ft, probe) - scratch,
            )
    return margins


# --------------------------------------------------------------------------
# The evaluation.


def _log(message: str) -> None:
    if jax.process_index() == 0:
        print(f"[evaluate] {message}", flush=True)


def transfer_spec(name: str, data_dir, image_shape):
    """The transfer dataset's ``DatasetSpec`` (``spec_from_config``): a registered name as
    registered; an image folder (``data_dir``) or another TFDS name resized on the host to
    the encoder's side ``max(H, W)`` (``adapt_images`` then centre-crops and converts the
    channels).

    Raises:
      ValueError: one line: an unknown name, an unreadable folder, or no label feature.
    """
    from ssljax.data.datasets import DATASETS, IMAGE_FOLDER, FeatureKeyError, spec_from_config

    settings = dict(name=name, data_dir=data_dir)
    if name not in DATASETS:
        settings["image_size"] = int(max(image_shape[:2]))
    if name == IMAGE_FOLDER:
        settings["channels"] = int(image_shape[-1])
    try:
        return spec_from_config(ml_collections.ConfigDict(settings))
    except FeatureKeyError as err:
        if "label" not in str(err):
            raise
        raise ValueError(
            f"transfer dataset {name!r} has no labels ({err}); the transfer probe needs "
            "labelled train and test splits"
        ) from None


def transfer_arrays(spec, data_dir, image_shape) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{'train': (images, labels), 'test': ...}`` of a transfer dataset, the images as
    ``uint8 [N, *image_shape]`` (``adapt_images``).

    Raises:
      ValueError: a split without labels (negative labels, e.g. an unlabelled split) or a
        dataset of fewer than two classes.
    """
    from ssljax.data.input_pipeline import load_split_arrays
    from ssljax.evaluation.adapt import adapt_images

    out = {}
    for part, split in (("train", spec.train_split), ("test", spec.test_split)):
        images, labels = load_split_arrays(spec, split, data_dir=data_dir)
        labels = np.asarray(labels)
        if labels.size == 0 or labels.min() < 0 or int(spec.num_classes or 0) < 2:
            raise ValueError(
                f"transfer dataset {spec.name!r} has no labels in its {split!r} split "
                f"({labels.size} examples, {spec.num_classes} classes); the transfer probe "
                "needs labelled train and test splits of at least two classes"
            )
        out[part] = (adapt_images(images, image_shape), labels.astype(np.int32))
    return out


class _Encoder:
    """The checkpoint's encoder: frozen features of one layer, and fine-tuning networks."""

    def __init__(self, config, setup, state, *, layer: str | None, grid: int | None):
        from ssljax.data.datasets import spec_from_config
        from ssljax.encoder import encoder_from_state
        from ssljax.evaluation import checkpoint_eval
        from ssljax.evaluation import features as feats

        self.config, self.setup = config, setup
        eval_cfg = config.eval
        frozen = encoder_from_state(config, setup, state, int(state.step))
        self.module, self.variables = frozen.module, frozen.variables
        self.spec = spec_from_config(config.dataset)
        self.image_shape = frozen.image_shape
        layers = checkpoint_eval.resolve_layers(
            eval_cfg.layer if layer is None else layer, list(frozen.layers)
        )
        if len(layers) != 1:
            raise ValueError(
                f"--layer names {len(layers)} layers ({', '.join(layers)}); the protocols probe "
                "one (python -m ssljax.linear_eval --layer all picks the best by validation)"
            )
        self.layer = layers[0]
        self.grid = int(eval_cfg.grid if grid is None else grid)
        self.extract, self.dim = frozen.extractor(self.layer, self.grid)
        self.batch_size = feats.round_up(int(eval_cfg.batch_size), len(frozen.devices))

    def features(self, images: np.ndarray) -> np.ndarray:
        """Frozen features ``float32 [N, D]`` of uint8 images (on every local device)."""
        from ssljax.evaluation.checkpoint_eval import compute_features

        return compute_features(
            lambda _, x: self.extract(x), None, images, batch_size=self.batch_size
        )

    def classifier(self, num_classes: int):
        """The fine-tuning network (cross-replica BatchNorm over ``'batch'``), its head on
        the probed layer and grid."""
        from ssljax.evaluation.finetune import Classifier

        encoder = getattr(self.setup.train_model, "encoder", None)
        if encoder is None:
            raise ValueError(
                f"objective {self.config.objective.name!r} has no encoder to fine-tune"
            )
        return Classifier(
            encoder=encoder, num_classes=int(num_classes), layer=self.layer, grid=self.grid
        )


def _probe(train_x, train_y, test_x, test_y, *, num_classes, eval_cfg, knn=True) -> dict:
    from ssljax.evaluation.checkpoint_eval import evaluate_features

    return evaluate_features(
        train_x, train_y, test_x, test_y, num_classes=num_classes, eval_cfg=eval_cfg, knn=knn
    )


def _finetune_rows(
    enc: _Encoder,
    images: np.ndarray,
    labels: np.ndarray,
    test: tuple[np.ndarray, np.ndarray],
    *,
    cfg,
    seed: int,
    scratch: bool,
) -> dict[str, dict]:
    """Fine-tunes (and, with ``scratch``, trains from random initialisation) on the given
    labels; returns ``{'fine-tune': result, 'from scratch': result}``."""
    from ssljax.evaluation import finetune

    num_classes = enc.spec.num_classes
    train_pos, val_pos = split_validation(labels, float(cfg.validation_fraction), seed)
    evals = {"test": test}
    if len(val_pos):
        evals["val"] = (images[val_pos], labels[val_pos])
    train = (images[train_pos], labels[train_pos])
    classifier = enc.classifier(num_classes)
    init_rng = jax.random.PRNGKey(seed)
    starts = {
        "fine-tune": finetune.init_variables(classifier, init_rng, enc.image_shape, enc.variables)
    }
    if scratch:
        starts["from scratch"] = finetune.init_variables(classifier, init_rng, enc.image_shape)
    out = {}
    for method, variables in starts.items():
        t = time.perf_counter()
        res = finetune.finetune_and_evaluate(
            classifier,
            variables,
            train,
            evals,
            cfg=cfg,
            num_classes=num_classes,
            seed=seed,
            log=lambda m, method=method: _log(f"{method}: {m}"),
        )
        extra = f" val {res['val_top1']:.4f}" if "val_top1" in res else ""
        _log(
            f"{method} on {len(train[1])} labels: top1 {res['top1']:.4f}{extra} "
            f"({res['steps']} steps, {time.perf_counter() - t:.0f} s)"
        )
        out[method] = res
    return out


def evaluate_workdir(
    workdir: str,
    *,
    protocols: str | Sequence[str] | None = None,
    fractions: str | Sequence[float] | None = None,
    seed: int = 0,
    layer: str | None = None,
    grid: int | None = None,
    step: int | None = None,
    finetune: Mapping[str, Any] | None = None,
    transfer_dataset: str | None = None,
    transfer_data_dir: str | None = None,
) -> dict:
    """Runs ``protocols`` on the checkpoint in ``workdir`` and writes ``workdir/evaluate.json``.

    Args:
      workdir: a pretraining run directory (checkpoints/ and the stored config).
      protocols: names from :data:`PROTOCOLS` (default :data:`DEFAULT_PROTOCOLS`).
      fractions: label fractions of ``label_efficiency`` (default 1% and 10%).
      seed: seed of the label subsets, of fine-tuning (data order, augmentations, the
        from-scratch initialisation) and of the fine-tuning validation split.
      layer, grid: the probed layer and its pooling grid (default ``config.eval``).
      step: checkpoint step (default: the newest readable).
      finetune: ``finetune.*`` overrides of ``finetune.default_config()``.
      transfer_dataset, transfer_data_dir: the ``transfer`` protocol's dataset (a
        registered name, a TFDS name, or ``image_folder``) and its directory.

    Returns:
      ``{'rows': [...], 'margins': {...}, 'checkpoint_step', 'seed', ...}``; each row has
      ``protocol, dataset, method, fraction, num_labels, labels, top1, top5`` and details.

    Raises:
      ValueError (one line, before anything is computed or written): an unknown protocol,
      a fraction outside ``(0, 1]``, a bad ``finetune`` key or value, ``transfer`` without a
      dataset, a layer the encoder lacks, a workdir without a checkpoint, a transfer dataset
      without labels.
    """
    from ssljax.data.input_pipeline import load_split_arrays
    from ssljax.training.loop import restore_for_eval

    t0 = time.perf_counter()
    protocols = parse_protocols(protocols)
    fractions = parse_fractions(fractions)
    ft_cfg = finetune_config(finetune)
    seed = int(seed)
    if "transfer" in protocols and not transfer_dataset:
        raise ValueError("the transfer protocol needs --transfer_dataset (e.g. cifar10)")
    if transfer_dataset and "transfer" not in protocols:
        raise ValueError(
            f"--transfer_dataset={transfer_dataset} is given but 'transfer' is not in "
            f"--protocols={','.join(protocols)}"
        )
    config, setup, state, step = restore_for_eval(workdir, step)
    enc = _Encoder(config, setup, state, layer=layer, grid=grid)
    spec, eval_cfg = enc.spec, config.eval
    data_dir = config.dataset.get("data_dir")
    _log(
        f"checkpoint step {step} of {workdir}; dataset {spec.name}; layer {enc.layer} grid "
        f"{enc.grid}; protocols {','.join(protocols)}; seed {seed}"
    )
    transfer = None
    if "transfer" in protocols:  # read (and checked) before any long computation
        tspec = transfer_spec(transfer_dataset, transfer_data_dir, enc.image_shape)
        transfer = dict(spec=tspec, **transfer_arrays(tspec, transfer_data_dir, enc.image_shape))

    rows: list[dict] = []
    in_memory = bool({"label_efficiency", "finetune"} & set(protocols))
    train_x = test_x = None
    if in_memory:
        t = time.perf_counter()
        train_images, train_labels = load_split_arrays(spec, spec.train_split, data_dir=data_dir)
        test_images, test_labels = load_split_arrays(spec, spec.test_split, data_dir=data_dir)
        test_x = enc.features(test_images)
        _log(
            f"read {len(train_labels)} train and {len(test_labels)} test images "
            f"({time.perf_counter() - t:.0f} s)"
        )
    if {"linear", "knn"} & set(protocols):
        t = time.perf_counter()
        if in_memory:
            train_x = enc.features(train_images)
            full_train_y, full_test_y = train_labels, test_labels
        else:
            from ssljax.evaluation.checkpoint_eval import split_features
            from ssljax.evaluation.features import feature_dtype

            kwargs = dict(
                extractors={"x": enc.extract},
                dims={"x": enc.dim},
                batch_size=enc.batch_size,
                data_dir=data_dir,
                dtype=feature_dtype(eval_cfg.get("feature_dtype", "float32")),
            )
            tr, full_train_y = split_features(spec, spec.train_split, **kwargs)
            te, full_test_y = split_features(spec, spec.test_split, **kwargs)
            train_x, test_x_full = tr["x"], te["x"]
        report = _probe(
            train_x,
            full_train_y,
            test_x if in_memory else test_x_full,
            full_test_y,
            num_classes=spec.num_classes,
            eval_cfg=eval_cfg,
            knn="knn" in protocols,
        )
        n = len(full_train_y)
        if "linear" in protocols:
            rows.append(make_row("linear", spec.name, "linear probe", 1.0, n, probe_result(report)))
        if "knn" in protocols:
            knn = dict(report["knn"])
            rows.append(make_row("knn", spec.name, f"kNN (k={knn['k']})", 1.0, n, knn))
        _log(
            f"linear/kNN on {n} labels: top1 {report['top1']:.4f}"
            + (f" knn {report['knn']['top1']:.4f}" if "knn" in report else "")
            + f" ({time.perf_counter() - t:.0f} s)"
        )

    test = (test_images, test_labels) if in_memory else None
    if "label_efficiency" in protocols:
        for fraction in fractions:
            idx = balanced_subset(train_labels, fraction, seed)
            sub_y = train_labels[idx]
            t = time.perf_counter()
            sub_x = train_x[idx] if train_x is not None else enc.features(train_images[idx])
            report = _probe(
                sub_x, sub_y, test_x, test_labels, num_classes=spec.num_classes, eval_cfg=eval_cfg
            )
            _log(
                f"{labels_text(fraction, len(idx))}: linear probe top1 {report['top1']:.4f} "
                f"({time.perf_counter() - t:.0f} s)"
            )
            args = ("label_efficiency", spec.name)
            rows.append(make_row(*args, "linear probe", fraction, len(idx), probe_result(report)))
            trained = _finetune_rows(
                enc, train_images[idx], sub_y, test, cfg=ft_cfg, seed=seed, scratch=True
            )
            for method, res in trained.items():
                rows.append(make_row(*args, method, fraction, len(idx), res))
    if "finetune" in protocols:
        res = _finetune_rows(
            enc, train_images, train_labels, test, cfg=ft_cfg, seed=seed, scratch=False
        )["fine-tune"]
        rows.append(make_row("finetune", spec.name, "fine-tune", 1.0, len(train_labels), res))
    if transfer is not None:
        t = time.perf_counter()
        tspec = transfer["spec"]
        (tr_images, tr_labels), (te_images, te_labels) = transfer["train"], transfer["test"]
        num_classes = int(max(tspec.num_classes, tr_labels.max() + 1, te_labels.max() + 1))
        report = _probe(
            enc.features(tr_images),
            tr_labels,
            enc.features(te_images),
            te_labels,
            num_classes=num_classes,
            eval_cfg=eval_cfg,
        )
        rows.append(
            make_row(
                "transfer", tspec.name, "linear probe", 1.0, len(tr_labels), probe_result(report)
            )
        )
        _log(
            f"transfer to {tspec.name}: top1 {report['top1']:.4f} knn {report['knn']['top1']:.4f} "
            f"({time.perf_counter() - t:.0f} s)"
        )

    report = dict(
        rows=rows,
        margins=label_efficiency_margins(rows),
        checkpoint_step=int(step),
        workdir=str(workdir),
        dataset=spec.name,
        objective=config.objective.name,
        encoder=config.model.encoder,
        layer=enc.layer,
        grid=enc.grid,
        seed=seed,
        protocols=list(protocols),
        fractions=list(fractions),
        finetune=ft_cfg.to_dict(),
        seconds=time.perf_counter() - t0,
    )
    if jax.process_index() == 0:
        write_json_atomic(str(epath.Path(workdir) / REPORT_FILE), _jsonable(report))
    return report


def _jsonable(obj):
    """Tuples -> lists, numpy scalars -> Python numbers (for the JSON report)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def format_report(report: dict) -> str:
    """The report as a Markdown table (one row per protocol and label fraction), with the
    label-efficiency margins below it."""
    from ssljax.training.logging import format_table

    title = (
        f"Downstream evaluation of {report['objective']} {report['encoder']} "
        f"(step {report['checkpoint_step']}, {report['dataset']}, layer {report['layer']}, "
        f"seed {report['seed']}); top-1/top-5 on each dataset's full test split"
    )
    lines = [title, format_table(report["rows"], TABLE_COLUMNS)]
    for fraction, m in report.get("margins", {}).items():
        lines.append(
            f"labels {100 * float(fraction):g}%: fine-tune - probe {m['finetune_minus_probe']:+.4f}, "
            f"fine-tune - scratch {m['finetune_minus_scratch']:+.4f}, "
            f"best pretrained - scratch {m['pretrained_best_minus_scratch']:+.4f}"
        )
    return "\n".join(lines)
