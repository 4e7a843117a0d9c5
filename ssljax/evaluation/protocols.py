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

``linear`` and ``knn`` may probe several layers (``layer='all'`` or ``'block1,block2'``): one
row per layer, and the report's ``layer`` is the best by validation top-1 (the test split
never chooses; Kolesnikov, Zhai & Beyer 2019 and Chen et al. 2020 (iGPT) find the best layer
is often not the last).

The report is written to ``W/evaluate.json`` (atomically, by process 0, after every row is
computed: a run that fails writes nothing; an existing report is replaced). With
``figures=True`` PNG figures are then written beside it by process 0 (:data:`FIGURE_FILES`,
:func:`write_figures`), from the features the protocols computed (no second extraction
pass): a t-SNE map of test embeddings, a retrieval grid, the training curves of
``W/metrics.jsonl`` and, with several layers, the per-layer probe bars. An existing figure is
never replaced unless ``overwrite_figures=True``: the run refuses before computing anything.
A figure that fails is logged and skipped; the JSON report is already written.
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
# The figures written beside the report (``figures=True``), by name.
FIGURE_FILES = {
    "tsne": "evaluate_tsne.png",
    "umap": "evaluate_umap.png",
    "retrieval": "evaluate_retrieval.png",
    "curves": "evaluate_curves.png",
    "layers": "evaluate_layers.png",
}
METRICS_FILE = "metrics.jsonl"
FIGURE_MAP_POINTS = 2000  # test embeddings in the t-SNE / UMAP map (a random subset)
FIGURE_QUERIES = 8  # rows of the retrieval grid (test queries of different classes)
FIGURE_NEIGHBOURS = 8  # train neighbours per query
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
# Several layers.


def layer_summary(reports: Mapping[str, dict]) -> dict[str, dict]:
    """Per-layer ``{top1, top5, val_top1, feature_dim[, knn_top1]}`` of probe reports
    (``evaluate_features``), in their order: the ``'layers'`` of a multi-layer report, as
    ``checkpoint_eval.summarise_layers`` gives for ``linear_eval`` (``knn_top1`` only where
    the kNN ran) and :func:`ssljax.evaluation.plots.layer_probe_bars` draws."""
    from ssljax.evaluation.checkpoint_eval import best_validation_top1

    out = {}
    for name, r in reports.items():
        entry = dict(
            top1=r["top1"],
            top5=r["top5"],
            val_top1=best_validation_top1(r),
            feature_dim=r["feature_dim"],
        )
        if "knn" in r:
            entry["knn_top1"] = r["knn"]["top1"]
        out[name] = entry
    return out


# --------------------------------------------------------------------------
# Figures.


def figure_sample(
    gallery_x,
    gallery_y,
    test_x,
    test_y,
    *,
    gallery_rows=None,
    max_points: int = FIGURE_MAP_POINTS,
    queries: int = FIGURE_QUERIES,
    neighbours: int = FIGURE_NEIGHBOURS,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """What the figures need of one layer's features, small enough to keep per layer.

    * the map: ``max_points`` test rows drawn without replacement with ``seed``
      (``plots.subsample``), their features and labels;
    * the retrieval grid (when a gallery is given): the first test row of each of
      ``min(queries, classes)`` classes drawn with ``seed``, and the indices of their
      ``min(neighbours, N)`` most cosine-similar gallery rows, nearest first
      (``retrieval.nearest_neighbours``), as rows of the train split (``gallery_rows[i]``
      is the train row of gallery row ``i``; default ``i``) with their labels.

    Args:
      gallery_x: ``[N, D]`` train features (the retrieval gallery), or None (map only).
      gallery_y: ``[N]`` their labels (None with ``gallery_x``).
      test_x: ``[M, D]`` test features.
      test_y: ``[M]`` test labels.

    Returns:
      ``{'map_index' [P], 'map_features' float32 [P, D], 'map_labels' [P]}`` and, with a
      gallery, ``'query_index' [Q], 'query_labels' [Q], 'neighbour_index' [Q, K],
      'neighbour_labels' [Q, K]``.
    """
    from ssljax.evaluation.plots import subsample
    from ssljax.evaluation.retrieval import nearest_neighbours

    test_x, test_y = np.asarray(test_x), _check_labels(test_y)
    if test_x.ndim != 2 or test_x.shape[0] != test_y.shape[0]:
        raise ValueError(
            f"test features {test_x.shape} and labels {test_y.shape} must be [M, D] and [M]"
        )
    keep = subsample(len(test_y), int(max_points), seed)
    out = dict(
        map_index=keep,
        map_features=np.asarray(test_x[keep], np.float32),
        map_labels=test_y[keep],
    )
    if gallery_x is None:
        return out
    gallery_x, gallery_y = np.asarray(gallery_x), _check_labels(gallery_y)
    rows = np.arange(len(gallery_y)) if gallery_rows is None else np.asarray(gallery_rows)
    if gallery_x.shape[0] != gallery_y.shape[0] or rows.shape != gallery_y.shape:
        raise ValueError(
            f"gallery features {gallery_x.shape}, labels {gallery_y.shape} and rows "
            f"{rows.shape} must be [N, D], [N] and [N]"
        )
    rng = np.random.default_rng(seed)
    classes = rng.permutation(np.unique(test_y))[: int(queries)]
    query = np.array([np.flatnonzero(test_y == c)[0] for c in classes], np.int64)
    k = min(int(neighbours), len(gallery_y))
    idx, _ = nearest_neighbours(test_x[query], gallery_x, k=k)
    out.update(
        query_index=query,
        query_labels=test_y[query],
        neighbour_index=rows[idx].astype(np.int64),
        neighbour_labels=gallery_y[idx],
    )
    return out


def split_rows(dataset, split: str, rows, *, data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``rows`` of ``split`` (positions in file order, as ``load_split_arrays`` and the
    streamed features number them): ``(images uint8 [R, H, W, C], labels int32 [R])`` in the
    order of ``rows``.

    Reads only those examples: the rows become absolute ranges of the base splits
    (``tfds.core.ReadInstruction``; ``split`` may be sliced, ``'train[:90%]'``, or a sum of
    slices), contiguous rows merged, joined with ``+`` into one TFDS split.

    Raises:
      ValueError: a row outside the split, or a dataset that records no split sizes.
    """
    import tensorflow_datasets as tfds

    from ssljax.data.input_pipeline import as_spec, get_builder, load_split_arrays

    spec = as_spec(dataset)
    rows = np.asarray(rows, np.int64).reshape(-1)
    if rows.size == 0:
        return np.zeros((0, *spec.image_shape), np.uint8), np.zeros((0,), np.int32)
    builder = get_builder(spec, data_dir=data_dir)
    splits = builder.info.splits
    try:
        parts = tfds.core.ReadInstruction.from_spec(split).to_absolute(splits)
        bounds = []
        for part in parts:
            size = int(splits[part.splitname].num_examples)
            lo = 0 if part.from_ is None else int(part.from_)
            hi = size if part.to is None else int(part.to)
            bounds.append((part.splitname, lo, max(lo, hi)))
    except (KeyError, ValueError, AttributeError) as err:
        raise ValueError(
            f"cannot read single rows of {spec.name!r} split {split!r}: its split sizes are "
            f"unknown ({type(err).__name__}: {err})"
        ) from None
    offsets = np.cumsum([0] + [hi - lo for _, lo, hi in bounds])
    unique = np.unique(rows)
    if unique[0] < 0 or unique[-1] >= offsets[-1]:
        raise ValueError(
            f"rows must lie in [0, {offsets[-1]}) (split {split!r} of {spec.name}), got "
            f"[{unique[0]}, {unique[-1]}]"
        )
    ranges: list[list] = []  # [name, start, stop) in the base split, contiguous rows merged
    for row in unique:
        k = int(np.searchsorted(offsets, row, side="right")) - 1
        name, lo, _ = bounds[k]
        at = lo + int(row - offsets[k])
        if ranges and ranges[-1][0] == name and ranges[-1][2] == at:
            ranges[-1][2] = at + 1
        else:
            ranges.append([name, at, at + 1])
    spec_text = "+".join(f"{name}[{a}:{b}]" for name, a, b in ranges)
    images, labels = load_split_arrays(spec, spec_text, data_dir=data_dir)
    if len(labels) != len(unique):
        raise ValueError(
            f"reading {len(unique)} rows of {spec.name!r} split {split!r} gave {len(labels)}"
        )
    at = np.searchsorted(unique, rows)
    return images[at], labels[at]


def class_names_of(spec, data_dir=None) -> list[str] | None:
    """The label names TFDS records for ``spec`` (its ``ClassLabel`` feature), or None."""
    from ssljax.data.input_pipeline import get_builder

    try:
        names = list(get_builder(spec, data_dir=data_dir).info.features[spec.label_key].names)
    except (KeyError, AttributeError, TypeError, ValueError):
        return None
    return names or None


def planned_figures(
    workdir: str,
    protocols: Sequence[str],
    *,
    several_layers: bool,
    umap: bool,
) -> dict[str, str]:
    """``{name: path}`` of the figures a run with these settings writes in ``workdir``: the
    t-SNE map always, the retrieval grid unless only ``finetune`` runs (no train features),
    UMAP when asked for and ``umap-learn`` imports, the training curves when
    ``workdir/metrics.jsonl`` exists, the layer bars with several layers."""
    from ssljax import io as wio

    names = ["tsne"]
    if umap and _umap_available():
        names.append("umap")
    if set(protocols) - {"finetune"}:
        names.append("retrieval")
    if wio.as_path(wio.join(workdir, METRICS_FILE)).exists():
        names.append("curves")
    if several_layers:
        names.append("layers")
    return {name: wio.join(workdir, FIGURE_FILES[name]) for name in names}


def _umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def check_figure_targets(paths: Mapping[str, str], overwrite: bool) -> None:
    """Refuses (one-line ValueError naming the file) when a figure file exists, unless
    ``overwrite``."""
    from ssljax import io as wio

    if overwrite:
        return
    for path in paths.values():
        if wio.as_path(path).exists():
            raise ValueError(
                f"{path} exists; pass --overwrite_figures to replace the figures, or "
                "--nofigures to write none"
            )


class FigureSource:
    """The features and images the figures of one dataset are drawn from.

    Attributes:
      dataset: its name.
      layer: the encoder layer of ``sample``.
      sample: :func:`figure_sample` of that layer.
      class_names: label names, or None.
      images: ``images(part, rows)`` -> ``uint8 [R, H, W, C]``, ``part`` ``'train'`` or
        ``'test'``, ``rows`` positions in that split.
    """

    def __init__(self, *, dataset, layer, sample, class_names, images):
        self.dataset, self.layer, self.sample = dataset, layer, sample
        self.class_names, self.images = class_names, images


def _array_images(train_images, test_images):
    arrays = {"train": train_images, "test": test_images}
    return lambda part, rows: arrays[part][np.asarray(rows)]


def _split_images(spec, data_dir, expected_labels: Mapping[str, np.ndarray]):
    """``images(part, rows)`` reading only those rows of the spec's train/test split, their
    labels checked against the labels the features were computed with."""
    splits = {"train": spec.train_split, "test": spec.test_split}

    def images(part, rows):
        got, labels = split_rows(spec, splits[part], rows, data_dir=data_dir)
        if not np.array_equal(labels, np.asarray(expected_labels[part])[np.asarray(rows)]):
            raise ValueError(
                f"rows read back from {spec.name!r} split {splits[part]!r} do not have the "
                "labels of the feature pass (the split's order is not stable)"
            )
        return got

    return images


def write_figures(
    workdir: str,
    report: Mapping[str, Any],
    source: FigureSource | None,
    paths: Mapping[str, str],
    *,
    seed: int = 0,
    overwrite: bool = False,
    log=print,
) -> tuple[dict[str, str], dict[str, str]]:
    """Draws the figures named in ``paths`` (:func:`planned_figures`) with
    ``ssljax.evaluation.plots``; returns ``(written {name: path}, failed {name: message})``.

    A figure that fails (or lacks its inputs) is logged in one line and skipped; the others
    are still drawn.
    """
    from ssljax.evaluation import plots

    what = f"{report['objective']} {report['encoder']}, step {report['checkpoint_step']}" + (
        f", layer {source.layer}" if source is not None else ""
    )

    def tsne_or_umap(method, path):
        s = source.sample
        name = "t-SNE" if method == "tsne" else "UMAP"
        plots.embedding_map(
            s["map_features"],
            s["map_labels"],
            path,
            method=method,
            class_names=source.class_names,
            max_points=len(s["map_labels"]),
            seed=seed,
            title=f"{name} of {len(s['map_labels'])} {source.dataset} test embeddings\n{what}",
            overwrite=overwrite,
        )

    def retrieval(path):
        s = source.sample
        if "neighbour_index" not in s:
            raise ValueError("no train features were computed (only fine-tuning ran)")
        neighbours = np.asarray(s["neighbour_index"])
        gallery_rows, at = np.unique(neighbours.reshape(-1), return_inverse=True)
        plots.retrieval_grid(
            source.images("test", s["query_index"]),
            source.images("train", gallery_rows),
            at.reshape(neighbours.shape).astype(np.int64),
            path,
            query_labels=s["query_labels"],
            gallery_labels=_gallery_labels(s, at),
            class_names=source.class_names,
            overwrite=overwrite,
        )

    def curves(path):
        from ssljax import io as wio

        plots.training_curves(
            wio.join(workdir, METRICS_FILE),
            path,
            title=f"{report['objective']} on {report['dataset']}: training curves ({METRICS_FILE})",
            overwrite=overwrite,
        )

    def layers(path):
        plots.layer_probe_bars(
            report["layers"],
            path,
            title=f"Linear probe per layer: {what.rsplit(', layer', 1)[0]}, grid "
            f"{report['grid']} (best by validation: {report['layer']})",
            overwrite=overwrite,
        )

    draw = {
        "tsne": lambda path: tsne_or_umap("tsne", path),
        "umap": lambda path: tsne_or_umap("umap", path),
        "retrieval": retrieval,
        "curves": curves,
        "layers": layers,
    }
    written, failed = {}, {}
    for name, path in paths.items():
        t = time.perf_counter()
        try:
            if source is None and name in ("tsne", "umap", "retrieval"):
                raise ValueError("no features to draw")
            draw[name](path)
        except Exception as err:  # a figure must not cost the report or the other figures
            from ssljax.io import first_line

            failed[name] = first_line(err)
            log(f"figure {path} not written: {type(err).__name__}: {failed[name]}")
            continue
        written[name] = path
        log(f"wrote {path} ({time.perf_counter() - t:.0f} s)")
    return written, failed


def _gallery_labels(sample: Mapping[str, np.ndarray], at: np.ndarray) -> np.ndarray:
    """Labels of the unique gallery rows ``np.unique(neighbour_index)`` (``at``: its
    inverse), from the neighbours' labels."""
    labels = np.zeros(int(at.max()) + 1, np.asarray(sample["neighbour_labels"]).dtype)
    labels[at] = np.asarray(sample["neighbour_labels"]).reshape(-1)
    return labels


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
    """The checkpoint's encoder: frozen features of its probed layers (``layers``; the
    first, ``layer``, is the one every protocol but ``linear``/``knn`` uses), and
    fine-tuning networks."""

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
        self.layers = checkpoint_eval.resolve_layers(
            eval_cfg.layer if layer is None else layer, list(frozen.layers)
        )
        self.layer = self.layers[0]
        self.grid = int(eval_cfg.grid if grid is None else grid)
        built = {name: frozen.extractor(name, self.grid) for name in self.layers}
        self.extractors = {name: fn for name, (fn, _) in built.items()}
        self.dims = {name: dim for name, (_, dim) in built.items()}
        self.extract, self.dim = built[self.layer]
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
    figures: bool = False,
    figures_umap: bool = False,
    overwrite_figures: bool = False,
) -> dict:
    """Runs ``protocols`` on the checkpoint in ``workdir`` and writes ``workdir/evaluate.json``
    (and, with ``figures``, PNG figures beside it).

    Args:
      workdir: a pretraining run directory (checkpoints/ and the stored config).
      protocols: names from :data:`PROTOCOLS` (default :data:`DEFAULT_PROTOCOLS`).
      fractions: label fractions of ``label_efficiency`` (default 1% and 10%).
      seed: seed of the label subsets, of fine-tuning (data order, augmentations, the
        from-scratch initialisation), of the fine-tuning validation split, and of the
        figures' subsets and t-SNE.
      layer: the probed layer (default ``config.eval.layer``); for ``linear`` and ``knn``
        alone also a comma-separated list or ``'all'`` (one row per layer, the best by
        validation top-1 reported as ``layer``, the per-layer summary as ``layers``).
      grid: the pooling grid of feature maps (default ``config.eval.grid``).
      step: checkpoint step (default: the newest readable).
      finetune: ``finetune.*`` overrides of ``finetune.default_config()``.
      transfer_dataset, transfer_data_dir: the ``transfer`` protocol's dataset (a
        registered name, a TFDS name, or ``image_folder``) and its directory.
      figures: write :data:`FIGURE_FILES` beside the report (process 0), after it.
      figures_umap: also a UMAP map (when ``umap-learn`` is installed).
      overwrite_figures: replace existing figure files (else an existing one is an error
        before anything is computed).

    Returns:
      ``{'rows': [...], 'margins': {...}, 'checkpoint_step', 'seed', ...}``; each row has
      ``protocol, dataset, method, fraction, num_labels, labels, top1, top5`` and details
      (``layer`` with several layers). With ``figures`` (not in the JSON, which is written
      first): ``figures`` ``{name: path}`` written and ``figure_errors`` ``{name: message}``.

    Raises:
      ValueError (one line, before anything is computed or written): an unknown protocol,
      a fraction outside ``(0, 1]``, a bad ``finetune`` key or value, ``transfer`` without a
      dataset, a layer the encoder lacks, several layers with a protocol other than
      ``linear``/``knn``, a workdir without a checkpoint, a transfer dataset without labels,
      an existing figure file (without ``overwrite_figures``).
    """
    from ssljax.data.input_pipeline import load_split_arrays
    from ssljax.evaluation.checkpoint_eval import select_layer
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
    several = len(enc.layers) > 1
    single_layer = [p for p in protocols if p not in ("linear", "knn")]
    if several and single_layer:
        raise ValueError(
            f"--layer names {len(enc.layers)} layers ({', '.join(enc.layers)}); only the "
            f"linear and knn protocols probe several layers, not {', '.join(single_layer)} "
            "(pass --protocols=linear,knn, or one layer)"
        )
    spec, eval_cfg = enc.spec, config.eval
    data_dir = config.dataset.get("data_dir")
    figure_paths = {}
    if figures:
        figure_paths = planned_figures(
            workdir, protocols, several_layers=several, umap=figures_umap
        )
        check_figure_targets(figure_paths, overwrite_figures)
        if figures_umap and "umap" not in figure_paths:
            _log("umap-learn is not installed: no UMAP map (pip install umap-learn)")
    _log(
        f"checkpoint step {step} of {workdir}; dataset {spec.name}; layer "
        f"{','.join(enc.layers)} grid {enc.grid}; protocols {','.join(protocols)}; seed {seed}"
    )
    transfer = None
    if "transfer" in protocols:  # read (and checked) before any long computation
        tspec = transfer_spec(transfer_dataset, transfer_data_dir, enc.image_shape)
        transfer = dict(spec=tspec, **transfer_arrays(tspec, transfer_data_dir, enc.image_shape))

    def sample(gallery_x, gallery_y, test_x, test_y, **kwargs):
        return figure_sample(gallery_x, gallery_y, test_x, test_y, seed=seed, **kwargs)

    rows: list[dict] = []
    source = None  # what the figures are drawn from
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

    def dataset_source(layer_name, fig_sample, images):
        return FigureSource(
            dataset=spec.name,
            layer=layer_name,
            sample=fig_sample,
            class_names=class_names_of(spec, data_dir),
            images=images,
        )

    if {"linear", "knn"} & set(protocols):
        t = time.perf_counter()
        if in_memory:
            train_x = enc.features(train_images)
            full_train_y, full_test_y = train_labels, test_labels
            features = {enc.layer: (train_x, test_x)}
        else:
            from ssljax.evaluation.checkpoint_eval import split_features
            from ssljax.evaluation.features import feature_dtype

            kwargs = dict(
                extractors=dict(enc.extractors),
                dims=dict(enc.dims),
                batch_size=enc.batch_size,
                data_dir=data_dir,
                dtype=feature_dtype(eval_cfg.get("feature_dtype", "float32")),
            )
            tr, full_train_y = split_features(spec, spec.train_split, **kwargs)
            te, full_test_y = split_features(spec, spec.test_split, **kwargs)
            features = {name: (tr.pop(name), te.pop(name)) for name in enc.layers}
        probes, samples = {}, {}
        for name in enc.layers:
            layer_train_x, layer_test_x = features.pop(name)  # freed after its probe
            if figures:
                samples[name] = sample(layer_train_x, full_train_y, layer_test_x, full_test_y)
            probes[name] = _probe(
                layer_train_x,
                full_train_y,
                layer_test_x,
                full_test_y,
                num_classes=spec.num_classes,
                eval_cfg=eval_cfg,
                knn="knn" in protocols,
            )
            del layer_train_x, layer_test_x
            r = probes[name]
            _log(
                f"{'layer ' + name + ': ' if several else ''}linear/kNN on "
                f"{len(full_train_y)} labels: top1 {r['top1']:.4f}"
                + (f" knn {r['knn']['top1']:.4f}" if "knn" in r else "")
                + (f" val {max(r['val_top1'].values()):.4f}" if r.get("val_top1") else "")
                + f" ({time.perf_counter() - t:.0f} s)"
            )
            t = time.perf_counter()
        best = select_layer(probes) if several else enc.layer
        if several:
            _log(f"best layer by validation top-1: {best}")
        n = len(full_train_y)
        for protocol in ("linear", "knn"):
            if protocol not in protocols:
                continue
            for name in enc.layers:
                extra = dict(layer=name) if several else {}
                if protocol == "linear":
                    result, method = probe_result(probes[name]), "linear probe"
                else:
                    result = dict(probes[name]["knn"])
                    method = f"kNN (k={result['k']})"
                rows.append(make_row(protocol, spec.name, method, 1.0, n, {**result, **extra}))
        if figures:
            images = (
                _array_images(train_images, test_images)
                if in_memory
                else _split_images(spec, data_dir, {"train": full_train_y, "test": full_test_y})
            )
            source = dataset_source(best, samples[best], images)
        del samples

    test = (test_images, test_labels) if in_memory else None
    if "label_efficiency" in protocols:
        largest = None  # (subset indices, their features): the figures' gallery
        for fraction in fractions:
            idx = balanced_subset(train_labels, fraction, seed)
            sub_y = train_labels[idx]
            t = time.perf_counter()
            sub_x = train_x[idx] if train_x is not None else enc.features(train_images[idx])
            if figures and source is None and (largest is None or len(idx) > len(largest[0])):
                largest = (idx, sub_x)
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
        if largest is not None:
            idx, sub_x = largest
            fig_sample = sample(sub_x, train_labels[idx], test_x, test_labels, gallery_rows=idx)
            source = dataset_source(enc.layer, fig_sample, _array_images(train_images, test_images))
    if "finetune" in protocols:
        res = _finetune_rows(
            enc, train_images, train_labels, test, cfg=ft_cfg, seed=seed, scratch=False
        )["fine-tune"]
        rows.append(make_row("finetune", spec.name, "fine-tune", 1.0, len(train_labels), res))
        if figures and source is None:  # the test features only: the map
            fig_sample = sample(None, None, test_x, test_labels)
            source = dataset_source(enc.layer, fig_sample, _array_images(train_images, test_images))
    if transfer is not None:
        t = time.perf_counter()
        tspec = transfer["spec"]
        (tr_images, tr_labels), (te_images, te_labels) = transfer["train"], transfer["test"]
        num_classes = int(max(tspec.num_classes, tr_labels.max() + 1, te_labels.max() + 1))
        tr_x, te_x = enc.features(tr_images), enc.features(te_images)
        report = _probe(
            tr_x, tr_labels, te_x, te_labels, num_classes=num_classes, eval_cfg=eval_cfg
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
        if figures and source is None:
            source = FigureSource(
                dataset=tspec.name,
                layer=enc.layer,
                sample=sample(tr_x, tr_labels, te_x, te_labels),
                class_names=class_names_of(tspec, transfer_data_dir),
                images=_array_images(tr_images, te_images),
            )
        del tr_x, te_x

    report = dict(
        rows=rows,
        margins=label_efficiency_margins(rows),
        checkpoint_step=int(step),
        workdir=str(workdir),
        dataset=spec.name,
        objective=config.objective.name,
        encoder=config.model.encoder,
        layer=best if several else enc.layer,
        grid=enc.grid,
        seed=seed,
        protocols=list(protocols),
        fractions=list(fractions),
        finetune=ft_cfg.to_dict(),
        seconds=time.perf_counter() - t0,
    )
    if several:
        report["layers"] = layer_summary(probes)
    if jax.process_index() == 0:
        write_json_atomic(str(epath.Path(workdir) / REPORT_FILE), _jsonable(report))
        if figures:
            report["figures"], report["figure_errors"] = write_figures(
                workdir,
                report,
                source,
                figure_paths,
                seed=seed,
                overwrite=overwrite_figures,
                log=_log,
            )
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
    """The report as a Markdown table (one row per protocol and label fraction, and per
    layer with several layers), with the label-efficiency margins below it."""
    from ssljax.training.logging import format_table

    layer = f"layer {report['layer']}"
    if report.get("layers"):
        layer = f"layers {','.join(report['layers'])} (best by validation: {report['layer']})"
    title = (
        f"Downstream evaluation of {report['objective']} {report['encoder']} "
        f"(step {report['checkpoint_step']}, {report['dataset']}, {layer}, "
        f"seed {report['seed']}); top-1/top-5 on each dataset's full test split"
    )
    columns = list(TABLE_COLUMNS)
    if any("layer" in row for row in report["rows"]):
        columns.insert(columns.index("method") + 1, "layer")
    lines = [title, format_table(report["rows"], columns)]
    for fraction, m in report.get("margins", {}).items():
        lines.append(
            f"labels {100 * float(fraction):g}%: fine-tune - probe {m['finetune_minus_probe']:+.4f}, "
            f"fine-tune - scratch {m['finetune_minus_scratch']:+.4f}, "
            f"best pretrained - scratch {m['pretrained_best_minus_scratch']:+.4f}"
        )
    return "\n".join(lines)
