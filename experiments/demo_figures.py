"""Figures and retrieval metrics of the Fashion-MNIST SimCLR demo, for the README.

  python experiments/demo_figures.py --workdir runs/demo --out docs/figures [--overwrite]

Reads the workdir's newest checkpoint and its stored config, embeds Fashion-MNIST with the
encoder's ``'pooled'`` features (grid 1), and writes to ``--out``:

* ``demo_tsne.png`` (and ``demo_umap.png`` when umap-learn is installed): ``--map_points``
  test embeddings, a random subset, coloured by class;
* ``demo_retrieval.png``: ``--queries`` test images of different classes, each with its
  ``--neighbours`` nearest train images by cosine similarity (green frame: same class);
* ``demo_curves.png``: loss, learning rate and collapse monitors from ``metrics.jsonl``;
* ``demo_metrics.json``: the retrieval metrics of Musgrave, Belongie & Lim 2020 (R@1,
  R-Precision, MAP@R) of the test set against the train gallery and, leave-one-out, within
  the test set, and the NMI of k-means (k = 10) on the test embeddings.

Existing files are kept unless ``--overwrite`` is given.

The per-layer linear probe is a separate step (several minutes of CPU: every layer of the
pretrained and of the random-init encoder is probed on all 60,000 train images):

  python experiments/demo_figures.py --workdir runs/demo --out docs/figures \
      --layers=block1,block2,block3,block4,pooled

writes only ``demo_layers.png``: ``python -m ssljax.linear_eval --layer ...`` (its
``evaluate_workdir``, with the random-init baseline) on the workdir's stored evaluation
settings (grid, L2 grid, kNN k), the test top-1 of the linear probe and of the kNN
classifier per layer, the random-init encoder's beside each bar. Linear evaluation writes
``linear_eval.json`` into the workdir it reads, so it reads a temporary copy and the
workdir is left as it was. ``--layers_grid`` overrides the pooling grid.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "Workdir of a finished demo run.")
_OUT = flags.DEFINE_string("out", "docs/figures", "Output directory of the figures.")
_LAYER = flags.DEFINE_string("layer", "pooled", "Encoder layer whose features are embedded.")
_MAP_POINTS = flags.DEFINE_integer("map_points", 3000, "Test points in the t-SNE / UMAP maps.")
_QUERIES = flags.DEFINE_integer("queries", 8, "Rows of the retrieval grid.")
_NEIGHBOURS = flags.DEFINE_integer("neighbours", 8, "Train neighbours per query.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the subsets, t-SNE/UMAP and k-means.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace existing output files.")
_LAYERS = flags.DEFINE_string(
    "layers",
    None,
    "Only the per-layer probe step: comma-separated layers (or 'all') -> demo_layers.png.",
)
_LAYERS_GRID = flags.DEFINE_integer(
    "layers_grid", None, "Pooling grid of the per-layer probes (default: the run's eval.grid)."
)


def _stamp(message: str, start: float) -> None:
    print(f"[{time.perf_counter() - start:7.1f} s] {message}", flush=True)


def probe_layers(workdir: str, layers: str, grid: int | None) -> dict:
    """The linear-eval report (``checkpoint_eval.evaluate_workdir``) of ``layers`` of the
    workdir's newest checkpoint, with the random-init baseline; computed on a temporary
    copy of the workdir (checkpoints and stored config), which is then deleted."""
    import shutil
    import tempfile

    from ssljax import io as wio
    from ssljax.evaluation.checkpoint_eval import evaluate_workdir

    if wio.is_remote(workdir):
        raise ValueError(f"--layers copies the workdir locally; {workdir} is remote")
    with tempfile.TemporaryDirectory(prefix="demo_layers_") as tmp:
        copy = os.path.join(tmp, "run")
        shutil.copytree(os.path.join(workdir, "checkpoints"), os.path.join(copy, "checkpoints"))
        shutil.copy2(os.path.join(workdir, "config.json"), copy)
        return evaluate_workdir(copy, layer=layers, grid=grid, baselines=True)


def layers_table(report: dict) -> str:
    """Per layer: feature dimension, linear-probe and kNN test top-1 of the pretrained and
    the random-init encoder, and the probe's validation top-1 (Markdown)."""
    from ssljax.training.logging import format_table

    base = report["random_init"]["layers"]
    rows = [
        dict(
            layer=name,
            dim=r["feature_dim"],
            probe_top1=r["top1"],
            knn_top1=r["knn_top1"],
            val_top1=r["val_top1"],
            random_probe_top1=base[name]["top1"],
            random_knn_top1=base[name]["knn_top1"],
        )
        for name, r in report["layers"].items()
    ]
    return format_table(rows, list(rows[0]))


def layers_main(start: float) -> int:
    """The ``--layers`` step: probes every layer, draws ``demo_layers.png``."""
    from ssljax import io as wio
    from ssljax.evaluation import plots

    workdir = _WORKDIR.value
    path = wio.join(_OUT.value, "demo_layers.png")
    if not _OVERWRITE.value and wio.as_path(path).exists():
        print(f"{path} exists; pass --overwrite to replace it", file=sys.stderr)
        return 1
    wio.ensure_dir(_OUT.value)
    report = probe_layers(workdir, _LAYERS.value, _LAYERS_GRID.value)
    _stamp(f"probed {', '.join(report['layers'])} at grid {report['grid']}", start)
    print(layers_table(report))
    print(f"best layer by validation top-1: {report['layer']}")
    plots.layer_probe_bars(
        report["layers"],
        path,
        baseline=report["random_init"]["layers"],
        keys=("top1", "knn_top1"),
        title=f"{report['objective']} {report['encoder']} on Fashion-MNIST, step "
        f"{report['checkpoint_step']}: frozen features per layer (grid {report['grid']})",
        overwrite=_OVERWRITE.value,
    )
    print(path)
    return 0


def main(argv) -> int:
    del argv
    if _LAYERS.value:
        return layers_main(time.perf_counter())
    import numpy as np

    from ssljax import io as wio
    from ssljax.data.fashion_mnist import CLASS_NAMES
    from ssljax.data.input_pipeline import load_split_arrays
    from ssljax.evaluation import plots
    from ssljax.evaluation.checkpoint_eval import compute_features, encoder_of, feature_fn
    from ssljax.evaluation.retrieval import kmeans_nmi, nearest_neighbours, retrieval_metrics
    from ssljax.training.loop import restore_for_eval

    start = time.perf_counter()
    workdir, out = _WORKDIR.value, _OUT.value
    names = {
        "tsne": "demo_tsne.png",
        "umap": "demo_umap.png",
        "retrieval": "demo_retrieval.png",
        "curves": "demo_curves.png",
        "metrics": "demo_metrics.json",
    }
    paths = {key: wio.join(out, name) for key, name in names.items()}
    if not _OVERWRITE.value:
        existing = [p for p in paths.values() if wio.as_path(p).exists()]
        if existing:
            print(f"{existing[0]} exists; pass --overwrite to replace it", file=sys.stderr)
            return 1
    wio.ensure_dir(out)

    config, setup, state, step = restore_for_eval(workdir)
    dataset = config["dataset"]["name"]
    if dataset != "fashion_mnist":
        print(f"{workdir} trained on {dataset}; this script draws Fashion-MNIST", file=sys.stderr)
        return 1
    method_name = str(config["objective"]["name"])
    encoder, variables = encoder_of(setup, state.params, state.model_state)
    fn = feature_fn(encoder, layer=_LAYER.value, grid=1)
    test_x, test_y = load_split_arrays(dataset, "test")
    train_x, train_y = load_split_arrays(dataset, "train")
    _stamp(f"restored step {step}; {len(train_x)} train and {len(test_x)} test images", start)
    test_f = compute_features(fn, variables, test_x, batch_size=1000)
    train_f = compute_features(fn, variables, train_x, batch_size=1000)
    _stamp(f"features: {_LAYER.value}, {test_f.shape[1]}-d", start)

    gallery = retrieval_metrics(
        test_f, test_y, gallery_features=train_f, gallery_labels=train_y, nmi=False
    )
    _stamp("retrieval against the train gallery", start)
    within_test = retrieval_metrics(test_f, test_y, nmi=False)
    nmi = kmeans_nmi(test_f, test_y, seed=_SEED.value)
    _stamp("leave-one-out retrieval on test, k-means NMI", start)
    report = {
        "workdir": workdir,
        "checkpoint_step": int(step),
        "objective": method_name,
        "layer": _LAYER.value,
        "feature_dim": int(test_f.shape[1]),
        "test_queries_train_gallery": gallery,
        "test_leave_one_out": within_test,
        "test_kmeans_nmi": nmi,
        "seed": _SEED.value,
    }
    wio.write_text_atomic(paths["metrics"], json.dumps(report, indent=2, sort_keys=True) + "\n")
    for title, r in (("test -> train", gallery), ("test, leave-one-out", within_test)):
        print(
            f"{title:20s} R@1 {r['recall_at_1']:.4f}  R-Precision {r['r_precision']:.4f}  "
            f"MAP@R {r['map_at_r']:.4f}  (mean R {r['mean_r']:.0f})"
        )
    print(f"{'k-means NMI (test)':20s} {nmi:.4f}")

    overwrite = _OVERWRITE.value
    # Queries: the first test image of each of `queries` randomly drawn classes.
    rng = np.random.default_rng(_SEED.value)
    classes = rng.permutation(np.unique(test_y))[: _QUERIES.value]
    queries = np.array([np.flatnonzero(test_y == c)[0] for c in classes])
    neighbours, _ = nearest_neighbours(test_f[queries], train_f, k=_NEIGHBOURS.value)
    plots.retrieval_grid(
        test_x[queries],
        train_x,
        neighbours,
        paths["retrieval"],
        query_labels=test_y[queries],
        gallery_labels=train_y,
        class_names=CLASS_NAMES,
        overwrite=overwrite,
    )
    plots.training_curves(
        wio.join(workdir, "metrics.jsonl"),
        paths["curves"],
        title=f"{method_name} on Fashion-MNIST: training curves (metrics.jsonl)",
        overwrite=overwrite,
    )
    _stamp("retrieval grid and curves", start)
    methods = ["tsne"]
    try:
        import umap  # noqa: F401

        methods.append("umap")
    except ImportError:
        print("umap-learn is not installed: no UMAP map (pip install umap-learn)")
    for method in methods:
        plots.embedding_map(
            test_f,
            test_y,
            paths[method],
            method=method,
            class_names=CLASS_NAMES,
            max_points=_MAP_POINTS.value,
            seed=_SEED.value,
            title=f"{'t-SNE' if method == 'tsne' else 'UMAP'} of {_MAP_POINTS.value} "
            f"Fashion-MNIST test embeddings ({method_name}, step {step})",
            overwrite=overwrite,
        )
        _stamp(f"{method} map", start)
    for key in ["retrieval", "curves", *methods, "metrics"]:
        print(paths[key])
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
