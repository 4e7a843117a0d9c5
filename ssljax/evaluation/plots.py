"""Figures of an embedding and of a run, written as PNG files.

Every function takes arrays (or dicts) and an output path, draws on its own
``matplotlib.figure.Figure`` with the Agg renderer (no pyplot state, no display needed), writes
the PNG through ``etils.epath`` (local paths and ``gs://`` alike) and returns the path. An
existing file is never overwritten unless ``overwrite=True``. Figure sizes are fixed in pixels
(stated per function) so that pages embedding them stay stable.

* :func:`embedding_map`: a 2-D map of features coloured by class, by t-SNE (van der Maaten &
  Hinton 2008; scikit-learn) or UMAP (McInnes, Healy & Melville 2018; ``umap-learn``).
* :func:`retrieval_grid`: query images and their nearest gallery images, framed green or red
  by whether the neighbour has the query's class.
* :func:`layer_probe_bars`: linear-probe and kNN top-1 per encoder layer.
* :func:`training_curves`: loss, learning rate, collapse monitors and kNN top-1 against step,
  from a run's ``metrics.jsonl``.
"""

from __future__ import annotations

import io
import json
import math
import os
from typing import Mapping, Sequence

import numpy as np

from ssljax import io as wio

EMBEDDING_METHODS = ("tsne", "umap")
# Frame colours of the retrieval grid (RGB uint8).
SAME_CLASS_RGB = (0, 170, 0)
OTHER_CLASS_RGB = (220, 0, 0)
NEUTRAL_RGB = (110, 110, 110)


# --------------------------------------------------------------------------- output


def _new_figure(width_px: int, height_px: int, dpi: int):
    """A Figure rendering to exactly ``width_px x height_px`` pixels at ``dpi``."""
    from matplotlib.figure import Figure

    # Agg truncates width * dpi / dpi to an int; a thousandth of a pixel keeps float
    # rounding (e.g. 612.9999) from losing a column.
    return Figure(figsize=((width_px + 1e-3) / dpi, (height_px + 1e-3) / dpi), dpi=dpi)


def _check_target(path, overwrite: bool) -> None:
    """Refuses to overwrite ``path`` unless asked, and refuses non-PNG names."""
    if not os.fspath(path).lower().endswith(".png"):
        raise ValueError(f"figure path {os.fspath(path)} must end in .png")
    if not overwrite and wio.as_path(path).exists():
        raise ValueError(f"{os.fspath(path)} exists; pass overwrite=True to replace it")


def _save(fig, path, dpi: int) -> str:
    """Writes ``fig`` as PNG to ``path`` (any epath filesystem; locally through a temporary
    file and ``os.replace``, so no reader sees half a file) and returns ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    data = buffer.getvalue()
    path_str = os.fspath(path)
    if wio.is_remote(path_str):
        wio.as_path(path_str).write_bytes(data)
        return path_str
    parent = os.path.dirname(os.path.abspath(path_str))
    os.makedirs(parent, exist_ok=True)
    tmp = f"{path_str}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path_str)
    return path_str


def _check_dpi(dpi) -> int:
    if int(dpi) < 10:
        raise ValueError(f"dpi must be >= 10, got {dpi}")
    return int(dpi)


# --------------------------------------------------------------------------- classes


def _class_name(label, class_names) -> str:
    """The display name of ``label``: ``class_names[label]`` (sequence or mapping) or the
    label itself."""
    if class_names is None:
        return str(label)
    if isinstance(class_names, Mapping):
        return str(class_names.get(label, label))
    return str(class_names[int(label)])


def _check_class_names(class_names, labels: np.ndarray) -> None:
    """A sequence of names must cover every label value (labels index it)."""
    if class_names is None or isinstance(class_names, Mapping) or labels.size == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= len(class_names):
        raise ValueError(
            f"class_names has {len(class_names)} names but labels span [{low}, {high}]; "
            "pass one name per label value (or a dict label -> name)"
        )


def _class_colours(num: int) -> np.ndarray:
    """``[num, 4]`` RGBA: tab10 up to 10 classes, tab20 up to 20, else evenly spaced hues."""
    from matplotlib import colormaps

    if num <= 10:
        return colormaps["tab10"](np.arange(num))
    if num <= 20:
        return colormaps["tab20"](np.arange(num))
    return colormaps["hsv"](np.linspace(0.0, 1.0, num, endpoint=False))


# --------------------------------------------------------------------------- embedding map


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _require_umap():
    try:
        import umap
    except ImportError as err:
        raise ValueError(
            "method='umap' needs umap-learn, which is not installed: pip install umap-learn "
            f"(or use method='tsne'); import failed with: {err}"
        ) from None
    return umap


def embed_2d(features, *, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """Maps ``[N, D]`` features to ``[N, 2]`` by t-SNE or UMAP.

    Rows are L2-normalised first, so Euclidean distances follow the cosine geometry the
    retrieval metrics use. t-SNE: scikit-learn's ``TSNE`` with PCA initialisation and
    perplexity ``min(30, (N - 1) / 3)``. UMAP: ``umap.UMAP`` with its defaults.

    Args:
      features: ``[N, D]`` features, ``N >= 4``.
      method: ``'tsne'`` or ``'umap'`` (needs ``umap-learn``).
      seed: random state of the embedding.

    Returns:
      ``[N, 2]`` float64 coordinates.
    """
    if method not in EMBEDDING_METHODS:
        raise ValueError(f"method must be one of {EMBEDDING_METHODS}, got {method!r}")
    x = np.asarray(features)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D [N, D], got shape {tuple(x.shape)}")
    if x.shape[0] < 4:
        raise ValueError(f"an embedding map needs at least 4 points, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise ValueError("features contains non-finite values (NaN or inf)")
    x = _l2_normalize(x)
    if method == "umap":
        umap = _require_umap()
        return np.asarray(umap.UMAP(n_components=2, random_state=seed).fit_transform(x))
    from sklearn.manifold import TSNE

    perplexity = min(30.0, (x.shape[0] - 1) / 3.0)
    tsne = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed)
    return np.asarray(tsne.fit_transform(x), np.float64)


def subsample(num: int, max_points: int, seed: int) -> np.ndarray:
    """Sorted indices of ``min(num, max_points)`` rows drawn without replacement."""
    if num <= max_points:
        return np.arange(num)
    return np.sort(np.random.default_rng(seed).choice(num, size=max_points, replace=False))


def embedding_map(
    features,
    labels,
    path,
    *,
    method: str = "tsne",
    class_names: Sequence[str] | Mapping | None = None,
    max_points: int = 5000,
    seed: int = 0,
    title: str | None = None,
    dpi: int = 100,
    overwrite: bool = False,
) -> str:
    """A 2-D t-SNE or UMAP map of ``features``, one colour per class, with a legend.

    At most ``max_points`` rows (a random subset drawn with ``seed``) are embedded by
    :func:`embed_2d`. The PNG is ``8 x 6.5`` inches: 800 x 650 pixels at ``dpi=100``.

    Args:
      features: ``[N, D]`` features.
      labels: ``[N]`` integer labels.
      path: output ``.png`` path.
      method: ``'tsne'`` or ``'umap'`` (needs ``umap-learn``).
      class_names: names indexed by label value (sequence) or a dict label -> name.
      max_points: largest number of points embedded.
      seed: subsampling and embedding seed.
      title: figure title (default: method and number of points).
      dpi: pixels per inch.
      overwrite: replace an existing file.

    Returns:
      ``path``.
    """
    if method not in EMBEDDING_METHODS:
        raise ValueError(f"method must be one of {EMBEDDING_METHODS}, got {method!r}")
    x, y = np.asarray(features), np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"labels must have shape ({x.shape[0]},) to match features, got {tuple(y.shape)}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    if int(max_points) < 4:
        raise ValueError(f"max_points must be >= 4, got {max_points}")
    _check_class_names(class_names, y)
    dpi = _check_dpi(dpi)
    _check_target(path, overwrite)
    if method == "umap":
        _require_umap()

    keep = subsample(x.shape[0], int(max_points), seed)
    x, y = x[keep], y[keep]
    coords = embed_2d(x, method=method, seed=seed)

    fig = _new_figure(8 * dpi, int(6.5 * dpi), dpi)
    ax = fig.add_axes((0.04, 0.05, 0.68, 0.88))
    classes = np.unique(y)
    colours = _class_colours(len(classes))
    for colour, c in zip(colours, classes, strict=True):
        mask = y == c
        ax.scatter(
            coords[mask, 0],
            coords[mask, 1],
            s=4 if len(y) > 1000 else 10,
            color=colour,
            label=_class_name(c, class_names),
            linewidths=0,
            alpha=0.8,
        )
    ax.set_xticks([])
    ax.set_yticks([])
    name = "t-SNE" if method == "tsne" else "UMAP"
    ax.set_title(title if title is not None else f"{name} of {len(y)} embeddings")
    legend = ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, markerscale=3)
    for handle in legend.legend_handles:
        handle.set_alpha(1.0)
    return _save(fig, path, dpi)


# --------------------------------------------------------------------------- retrieval grid


def _as_rgb_images(name: str, images) -> np.ndarray:
    """``[N, H, W, 1|3]`` uint8 (or float in [0, 1]) -> ``[N, H, W, 3]`` uint8."""
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(
            f"{name} must be [N, H, W, 1] (grey) or [N, H, W, 3] (RGB), got shape {tuple(x.shape)}"
        )
    if np.issubdtype(x.dtype, np.floating):
        if x.size and (np.nanmin(x) < 0.0 or np.nanmax(x) > 1.0 or np.isnan(x).any()):
            raise ValueError(f"{name}: float images must lie in [0, 1]")
        x = np.round(x * 255.0).astype(np.uint8)
    elif x.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (or float in [0, 1]), got dtype {x.dtype}")
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


class GridLayout:
    """Pixel geometry of :func:`retrieval_grid` (all in pixels, origin top-left).

    Each image is enlarged ``scale`` times (nearest neighbour) and framed by ``border``
    pixels; cells are ``pad`` apart, with an extra ``gap`` between the query column and its
    neighbours, and a ``text`` band under each cell for its class name (0 without labels).
    """

    border = 3
    pad = 4
    gap = 12
    min_cell = 72

    def __init__(self, image_hw: tuple[int, int], rows: int, neighbours: int, text: int):
        h, w = image_hw
        self.scale = max(1, math.ceil(self.min_cell / max(h, w)))
        self.image_h, self.image_w = h * self.scale, w * self.scale
        self.cell_h = self.image_h + 2 * self.border
        self.cell_w = self.image_w + 2 * self.border
        self.text = text
        self.rows, self.cols = rows, neighbours + 1
        self.width = self.pad + self.cols * (self.cell_w + self.pad) + self.gap
        self.height = self.pad + rows * (self.cell_h + text + self.pad)

    def cell_origin(self, row: int, col: int) -> tuple[int, int]:
        """``(top, left)`` of the frame of cell ``(row, col)``; column 0 is the query."""
        top = self.pad + row * (self.cell_h + self.text + self.pad)
        left = self.pad + col * (self.cell_w + self.pad) + (self.gap if col > 0 else 0)
        return top, left


def retrieval_grid(
    query_images,
    gallery_images,
    neighbour_indices,
    path,
    *,
    query_labels=None,
    gallery_labels=None,
    class_names: Sequence[str] | Mapping | None = None,
    dpi: int = 100,
    overwrite: bool = False,
) -> str:
    """One row per query: the query image, then its nearest gallery images in rank order.

    Neighbours are framed green (``SAME_CLASS_RGB``) when their label equals the query's,
    red (``OTHER_CLASS_RGB``) when not; grey without labels, and the query is framed grey.
    With labels, each image has its class name underneath. Images are enlarged by an integer
    factor to at least 72 pixels a side; :class:`GridLayout` gives the exact pixel geometry
    (the PNG is ``GridLayout.width x GridLayout.height`` pixels).

    Args:
      query_images: ``[Q, H, W, 1|3]`` uint8 (or float in [0, 1]).
      gallery_images: ``[N, H, W, 1|3]`` likewise, same ``H, W``.
      neighbour_indices: ``[Q, k]`` gallery indices, nearest first (e.g. from
        ``ssljax.evaluation.retrieval.nearest_neighbours``).
      path: output ``.png`` path.
      query_labels: ``[Q]`` integer labels (together with ``gallery_labels``).
      gallery_labels: ``[N]`` integer labels.
      class_names: names indexed by label value (sequence) or a dict label -> name.
      dpi: pixels per inch of the PNG metadata (the pixel size does not depend on it).
      overwrite: replace an existing file.

    Returns:
      ``path``.
    """
    queries = _as_rgb_images("query_images", query_images)
    gallery = _as_rgb_images("gallery_images", gallery_images)
    if queries.shape[1:3] != gallery.shape[1:3]:
        raise ValueError(
            f"query images are {queries.shape[1:3]} but gallery images are {gallery.shape[1:3]}"
        )
    idx = np.asarray(neighbour_indices)
    if idx.ndim != 2 or idx.shape[0] != queries.shape[0] or idx.shape[1] < 1:
        raise ValueError(
            f"neighbour_indices must be [{queries.shape[0]}, k>=1] (one row per query), "
            f"got shape {tuple(idx.shape)}"
        )
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"neighbour_indices must be integers, got dtype {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= gallery.shape[0]):
        raise ValueError(
            f"neighbour_indices must lie in [0, {gallery.shape[0]}) (the gallery), "
            f"got values in [{idx.min()}, {idx.max()}]"
        )
    if (query_labels is None) != (gallery_labels is None):
        raise ValueError("query_labels and gallery_labels must be given together")
    labelled = query_labels is not None
    if labelled:
        qy, gy = np.asarray(query_labels), np.asarray(gallery_labels)
        for name, lab, n in (
            ("query_labels", qy, len(queries)),
            ("gallery_labels", gy, len(gallery)),
        ):
            if lab.ndim != 1 or lab.shape[0] != n:
                raise ValueError(f"{name} must have shape ({n},), got {tuple(lab.shape)}")
        _check_class_names(class_names, np.concatenate([qy, gy]))
    dpi = _check_dpi(dpi)
    _check_target(path, overwrite)

    layout = GridLayout(queries.shape[1:3], idx.shape[0], idx.shape[1], 14 if labelled else 0)
    canvas = np.full((layout.height, layout.width, 3), 255, np.uint8)
    texts = []

    def paste(row, col, image, frame, label):
        top, left = layout.cell_origin(row, col)
        canvas[top : top + layout.cell_h, left : left + layout.cell_w] = frame
        big = np.repeat(np.repeat(image, layout.scale, axis=0), layout.scale, axis=1)
        b = layout.border
        canvas[top + b : top + b + layout.image_h, left + b : left + b + layout.image_w] = big
        if label is not None:
            texts.append((left + layout.cell_w / 2, top + layout.cell_h + 1, label))

    for row in range(idx.shape[0]):
        name = _class_name(qy[row], class_names) if labelled else None
        paste(row, 0, queries[row], NEUTRAL_RGB, name)
        for col, j in enumerate(idx[row], start=1):
            if labelled:
                frame = SAME_CLASS_RGB if gy[j] == qy[row] else OTHER_CLASS_RGB
                name = _class_name(gy[j], class_names)
            else:
                frame, name = NEUTRAL_RGB, None
            paste(row, col, gallery[j], frame, name)

    fig = _new_figure(layout.width, layout.height, dpi)
    fig.figimage(canvas, xo=0, yo=0, origin="upper", resize=False)
    for x, y, text in texts:
        fig.text(
            x / layout.width,
            1.0 - y / layout.height,
            text,
            ha="center",
            va="top",
            fontsize=6.5 * 100 / dpi,
            clip_on=True,
        )
    return _save(fig, path, dpi)


# --------------------------------------------------------------------------- layer probes


LAYER_BARS = (
    ("top1", "linear probe top-1 (test)"),
    ("knn_top1", "kNN top-1 (test)"),
    ("val_top1", "linear probe top-1 (validation)"),
)


def _lighter(rgba, amount: float) -> tuple[float, float, float, float]:
    """``rgba`` moved ``amount`` of the way towards white (alpha kept)."""
    r, g, b, a = (float(v) for v in rgba)
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount, a)


def _check_layer_entries(name: str, layers) -> None:
    if not isinstance(layers, Mapping) or not layers:
        raise ValueError(f"{name} must be a non-empty dict {{layer_name: {{'top1': ..., ...}}}}")
    for layer, entry in layers.items():
        if not isinstance(entry, Mapping) or "top1" not in entry:
            keys = sorted(entry) if isinstance(entry, Mapping) else entry
            raise ValueError(f"layer {layer!r} has no 'top1' (keys: {keys})")


def layer_probe_bars(
    layers: Mapping[str, Mapping[str, float]],
    path,
    *,
    baseline: Mapping[str, Mapping[str, float]] | None = None,
    baseline_name: str = "random-init encoder",
    keys: Sequence[str] | None = None,
    title: str | None = None,
    dpi: int = 100,
    overwrite: bool = False,
) -> str:
    """Grouped bars of linear-probe top-1, kNN top-1 and validation top-1 per encoder layer.

    ``layers`` is the ``'layers'`` dict of a linear-eval report
    (``ssljax.evaluation.checkpoint_eval.summarise_layers``, or the ``'layers'`` of a
    multi-layer ``python -m ssljax.evaluate`` report): ``{layer: {'top1', 'top5',
    'knn_top1', 'val_top1', 'feature_dim'}}``, drawn in its order. ``top1`` is required;
    ``knn_top1`` and ``val_top1`` are drawn when every layer has them. With ``baseline`` (the
    same kind of dict for a reference encoder, e.g. the ``random_init`` report's
    ``'layers'``), each bar has the baseline's value drawn beside it as a lighter, hatched
    bar of the same colour. The PNG is ``8 x 4.5`` inches: 800 x 450 pixels at ``dpi=100``.

    Args:
      layers: per-layer results, in drawing order.
      path: output ``.png`` path.
      baseline: per-layer results of a reference encoder, with every layer of ``layers``.
      baseline_name: the reference encoder's name in the legend.
      keys: the results drawn, a subset of ``('top1', 'knn_top1', 'val_top1')`` in
        :data:`LAYER_BARS` order (default: every one all layers have).
      title: figure title.
      dpi: pixels per inch.
      overwrite: replace an existing file.

    Returns:
      ``path``.
    """
    _check_layer_entries("layers", layers)
    names = list(layers)
    valid = [key for key, _ in LAYER_BARS]
    if keys is not None:
        keys = list(keys)
        bad = [k for k in keys if k not in valid]
        if bad or not keys:
            raise ValueError(f"unknown bar key {(bad or [keys])[0]!r}; valid keys: {valid}")
        for key in keys:
            missing = [n for n in names if key not in layers[n]]
            if missing:
                raise ValueError(f"layer {missing[0]!r} has no {key!r} (keys asked: {keys})")
    if baseline is not None:
        _check_layer_entries("baseline", baseline)
        missing = [n for n in names if n not in baseline]
        if missing:
            raise ValueError(
                f"baseline has no layer {missing[0]!r}; it must cover every layer of layers "
                f"({names})"
            )
    dpi = _check_dpi(dpi)
    _check_target(path, overwrite)
    bars = [
        (key, text)
        for key, text in LAYER_BARS
        if (key in keys if keys is not None else all(key in layers[n] for n in names))
    ]
    # (key, legend text, values, colour, baseline?) in drawing order: each baseline bar
    # directly right of the bar it is compared with.
    series = []
    colours = _class_colours(len(bars))
    for colour, (key, text) in zip(colours, bars, strict=True):
        series.append((text, [float(layers[n][key]) for n in names], colour, False))
        if baseline is not None and all(key in baseline[n] for n in names):
            values = [float(baseline[n][key]) for n in names]
            series.append(("_nolegend_", values, colour, True))

    fig = _new_figure(8 * dpi, int(4.5 * dpi), dpi)
    ax = fig.add_axes((0.08, 0.2, 0.9, 0.68))
    width = 0.8 / len(series)
    positions = np.arange(len(names))
    for i, (text, values, colour, is_baseline) in enumerate(series):
        offset = (i - (len(series) - 1) / 2) * width
        style = dict(color=colour)
        if is_baseline:
            style = dict(color=_lighter(colour, 0.6), edgecolor=colour, hatch="///", linewidth=0)
        rects = ax.bar(positions + offset, values, width, label=text, **style)
        ax.bar_label(
            rects,
            labels=[f"{v:.3f}" for v in values],
            fontsize=7 if len(series) <= 4 else 6,
            padding=1,
            rotation=0 if len(series) <= 4 else 90,
        )
    labels = [
        f"{n}\n({layers[n]['feature_dim']}-d)" if "feature_dim" in layers[n] else n for n in names
    ]
    ax.set_xticks(positions, labels, fontsize=8)
    ax.set_ylim(0.0, 1.1)
    ax.set_ylabel("top-1 accuracy")
    ax.grid(axis="y", alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    if any(is_baseline for *_, is_baseline in series):
        from matplotlib.patches import Patch

        handles.append(
            Patch(
                facecolor="white", edgecolor="0.35", hatch="///", label=f"{baseline_name} (hatched)"
            )
        )
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=len(handles) if len(handles) <= 3 else 2,
        frameon=False,
        fontsize=8 if len(handles) > 3 else None,
    )
    ax.set_title(title if title is not None else "Frozen features per encoder layer")
    return _save(fig, path, dpi)


# --------------------------------------------------------------------------- curves


# Panels of training_curves: (title, [(key, line label, dashed)]).
CURVE_PANELS = (
    ("loss", [("loss", "loss", False)]),
    ("learning rate", [("learning_rate", "learning rate", False)]),
    (
        "collapse: std of normalised embeddings",
        [("collapse_std", "collapse_std", False), ("collapse_std_ref", "1/sqrt(d)", True)],
    ),
    ("effective rank", [("effective_rank", "effective_rank", False)]),
    ("kNN top-1", [("knn_top1", "knn_top1", False)]),
)


def read_metrics(metrics_jsonl_path) -> list[dict]:
    """The records of a run's ``metrics.jsonl`` (one JSON object with a ``'step'`` per line;
    blank lines skipped), read through ``etils.epath`` so ``gs://`` works."""
    text = wio.read_text(metrics_jsonl_path)
    if text is None:
        raise ValueError(f"{os.fspath(metrics_jsonl_path)} does not exist")
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{os.fspath(metrics_jsonl_path)} line {number} is not JSON: {err.msg}"
            ) from None
        if not isinstance(record, dict) or "step" not in record:
            raise ValueError(f"{os.fspath(metrics_jsonl_path)} line {number} has no 'step' key")
        records.append(record)
    return records


def metric_series(records: Sequence[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of ``key`` over the records that log it (numbers only), by step."""
    pairs = [
        (float(r["step"]), float(r[key]))
        for r in records
        if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)
    ]
    pairs.sort(key=lambda p: p[0])
    steps = np.array([p[0] for p in pairs])
    values = np.array([p[1] for p in pairs])
    return steps, values


def training_curves(
    metrics_jsonl_path,
    path,
    *,
    title: str | None = None,
    dpi: int = 100,
    overwrite: bool = False,
) -> str:
    """Loss, learning rate, collapse monitors and kNN top-1 against step, one panel each.

    Reads ``metrics_jsonl_path`` with :func:`read_metrics`. Panels (in ``CURVE_PANELS``)
    whose metrics no record logs are left out, so a run without a kNN monitor has no kNN
    panel; ``collapse_std`` is drawn with its reference ``collapse_std_ref`` (``1/sqrt(d)``,
    Chen & He 2021) dashed. Panels sit in 2 columns: the PNG is 10 inches wide and 3 inches
    per row of panels (1000 x 600 pixels for 3-4 panels, 1000 x 900 for 5, at ``dpi=100``).

    Returns:
      ``path``.
    """
    dpi = _check_dpi(dpi)
    _check_target(path, overwrite)
    records = read_metrics(metrics_jsonl_path)
    panels = []
    for panel_title, lines in CURVE_PANELS:
        series = [(metric_series(records, key), text, dashed) for key, text, dashed in lines]
        series = [s for s in series if s[0][0].size]
        if series:
            panels.append((panel_title, series))
    if not panels:
        keys = [key for _, lines in CURVE_PANELS for key, _, _ in lines]
        raise ValueError(f"{os.fspath(metrics_jsonl_path)} logs none of {keys}")

    rows = math.ceil(len(panels) / 2)
    fig = _new_figure(10 * dpi, 3 * rows * dpi, dpi)
    height_in = 3.0 * rows
    # Margins in inches: 0.6 above (figure title) and 0.5 below (step label).
    grid = fig.add_gridspec(
        rows,
        2,
        top=1.0 - 0.6 / height_in,
        bottom=0.5 / height_in,
        left=0.07,
        right=0.98,
        hspace=0.6,
        wspace=0.22,
    )
    all_steps = [float(r["step"]) for r in records]
    for i, (panel_title, series) in enumerate(panels):
        ax = fig.add_subplot(grid[i // 2, i % 2])
        for (steps, values), text, dashed in series:
            marker = "o" if steps.size <= 30 else None
            ax.plot(steps, values, "--" if dashed else "-", label=text, lw=1.5, marker=marker, ms=3)
        if max(all_steps) > min(all_steps):  # the same steps on every panel
            ax.set_xlim(min(all_steps), max(all_steps))
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=8, frameon=False)
    fig.suptitle(title if title is not None else os.fspath(metrics_jsonl_path), fontsize=11)
    return _save(fig, path, dpi)


def tile_images(images, *, columns: int = 8, pad: int = 2) -> np.ndarray:
    """``[N, H, W, 1|3]`` images (uint8, or float in [0, 1]) tiled row by row into one
    ``uint8 [rows * (H + pad) + pad, columns * (W + pad) + pad, 3]`` array on white."""
    x = _as_rgb_images("images", images)
    if isinstance(columns, bool) or int(columns) < 1:
        raise ValueError(f"columns={columns!r} is invalid; valid: an integer >= 1")
    n, h, w, _ = x.shape
    columns = min(int(columns), max(n, 1))
    rows = max(1, math.ceil(n / columns))
    out = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        top, left = pad + (i // columns) * (h + pad), pad + (i % columns) * (w + pad)
        out[top : top + h, left : left + w] = x[i]
    return out


def image_grid(
    images,
    path,
    *,
    columns: int = 8,
    title: str | None = None,
    scale: int = 4,
    overwrite: bool = False,
    dpi: int = 100,
) -> str:
    """Writes ``images`` (``[N, H, W, 1|3]``, uint8 or float in [0, 1]) as one PNG grid of
    ``columns`` columns, each pixel ``scale`` x ``scale`` (nearest neighbour), with an
    optional title; generated samples and reconstructions use it. Returns ``path``."""
    _check_target(path, overwrite)
    dpi = _check_dpi(dpi)
    tiled = tile_images(images, columns=columns)
    if isinstance(scale, bool) or int(scale) < 1:
        raise ValueError(f"scale={scale!r} is invalid; valid: an integer >= 1")
    tiled = np.repeat(np.repeat(tiled, int(scale), axis=0), int(scale), axis=1)
    band = 28 if title else 0
    fig = _new_figure(tiled.shape[1], tiled.shape[0] + band, dpi)
    ax = fig.add_axes((0.0, 0.0, 1.0, tiled.shape[0] / (tiled.shape[0] + band)))
    ax.imshow(tiled, interpolation="nearest")
    ax.set_axis_off()
    if title:
        fig.text(0.5, 1.0 - 0.5 * band / (tiled.shape[0] + band), title, ha="center", va="center")
    return _save(fig, path, dpi)
