"""Figures of ``python -m ssljax.evaluate``: written beside the report from the features the
protocols computed, with their stated pixel sizes and the right images; none with
``--nofigures``; the layer chart only with several layers; an existing figure is kept.

The checkpoint is the tiny config's initial state, returned by a patched
``restore_for_eval`` (as ``tests/evaluation/test_streamed_eval.py`` does): the figures do
not depend on training, and no model is pretrained here. The linear probe is replaced by a
nearest-class-mean classifier that records the features it is given (the probe itself is
pinned by tests/evaluation/test_linear_probe.py and the evaluate rows by
tests/test_evaluate_cli.py): the figures must be drawn from exactly those features.
"""

import json
import os
import re

import jax
import numpy as np
import pytest
from PIL import Image
from threadpoolctl import threadpool_limits

from ssljax.evaluation import protocols as P
from ssljax.evaluation.plots import (
    NEUTRAL_RGB,
    OTHER_CLASS_RGB,
    SAME_CLASS_RGB,
    GridLayout,
    layer_probe_bars,
)
from tests.test_evaluate_cli import run_cli

STEP = 7
# A metrics.jsonl as training writes it: loss, learning rate and the collapse monitors
# (4 panels of training_curves: 1000 x 600 pixels).
RECORDS = [
    dict(
        step=s,
        loss=5.0 - s / 100,
        learning_rate=min(1.0, s / 100),
        collapse_std=0.05 + s / 4000,
        collapse_std_ref=0.0884,
        effective_rank=10.0 + s / 20,
    )
    for s in (50, 100, 150, 200)
]


@pytest.fixture(scope="module")
def checkpoint(tiny_fashion_mnist):
    """Makes ``restore_for_eval`` return the tiny config's initial state as step ``STEP``."""
    from ssljax.training import loop
    from tests.conftest import tiny_config

    config = tiny_config(tiny_fashion_mnist)
    config.eval.l2_grid = (1e-3,)  # one L2 value: no validation fits, fewer compilations
    setup = loop.build_setup(config)
    state = jax.device_get(loop.initial_state(config, setup))
    probed = []  # (train features, test features) of every probe call, in order

    def nearest_mean_probe(train_x, train_y, test_x, test_y, *, num_classes, eval_cfg, knn=True):
        probed.append((np.asarray(train_x), np.asarray(test_x)))
        means = np.stack([train_x[train_y == c].mean(axis=0) for c in range(num_classes)])
        scores = lambda x: -((x[:, None, :] - means[None]) ** 2).sum(-1)  # noqa: E731
        top1 = float(np.mean(scores(test_x).argmax(1) == test_y))
        ranks = (-scores(test_x)).argsort(1)[:, :5]
        train_top1 = float(np.mean(scores(train_x).argmax(1) == train_y))
        return dict(
            top1=top1,
            top5=float(np.mean((ranks == test_y[:, None]).any(1))),
            l2=1e-3,
            val_top1={"0.001": train_top1},
            train_top1=train_top1,
            feature_dim=int(train_x.shape[1]),
            solver="nearest_mean",
        )

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            loop, "restore_for_eval", lambda workdir, step=None: (config, setup, state, STEP)
        )
        patch.setattr(P, "_probe", nearest_mean_probe)
        yield dict(probed=probed, data_dir=tiny_fashion_mnist)


def make_workdir(path, metrics=True):
    path.mkdir(exist_ok=True)
    if metrics:
        (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return path


def run(args, capsys):
    # t-SNE's OpenMP threads spin-wait on a shared machine (tests/evaluation/test_plots.py).
    with threadpool_limits(limits=1):
        return run_cli(args, capsys)


def read_png(path) -> np.ndarray:
    """``[H, W, 3]`` uint8 pixels of a PNG (fails on anything that is not a PNG)."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def pngs(directory) -> set[str]:
    return {name for name in os.listdir(directory) if name.endswith(".png")}


def load(split, data_dir):
    from ssljax.data.input_pipeline import load_split_arrays

    return load_split_arrays("fashion_mnist", split, data_dir=data_dir)


def cell_image(pixels, layout, row, col):
    """The image pasted in cell ``(row, col)`` of a retrieval grid, at its original size
    (every ``scale``-th pixel), and the colour of its frame."""
    top, left = layout.cell_origin(row, col)
    b = layout.border
    inner = pixels[top + b : top + b + layout.image_h, left + b : left + b + layout.image_w]
    return inner[:: layout.scale, :: layout.scale], tuple(pixels[top, left])


def test_figures_are_written_beside_the_report(checkpoint, tmp_path, capsys):
    workdir = make_workdir(tmp_path / "run")
    code, out, err = run([f"--workdir={workdir}", "--protocols=linear"], capsys)
    assert code == 0, err[-3000:]
    report = json.load(open(workdir / "evaluate.json"))
    assert [r["protocol"] for r in report["rows"]] == ["linear"]
    assert pngs(workdir) == {"evaluate_tsne.png", "evaluate_retrieval.png", "evaluate_curves.png"}
    for name in sorted(pngs(workdir)):
        assert f"figure: {workdir / name}" in out

    assert read_png(workdir / "evaluate_tsne.png").shape == (650, 800, 3)
    assert read_png(workdir / "evaluate_curves.png").shape == (600, 1000, 3)
    # Retrieval grid: 8 queries (the first test image of 8 classes drawn with seed 0), 8
    # train neighbours each, 28x28 images with labels.
    pixels = read_png(workdir / "evaluate_retrieval.png")
    layout = GridLayout((28, 28), 8, 8, 14)
    assert pixels.shape == (layout.height, layout.width, 3)
    test_images, test_labels = load("test", checkpoint["data_dir"])
    train_images, train_labels = load("train", checkpoint["data_dir"])
    classes = np.random.default_rng(0).permutation(np.unique(test_labels))[:8]
    queries = [int(np.flatnonzero(test_labels == c)[0]) for c in classes]

    # The neighbours must be the most cosine-similar train images of the probed features.
    ((train_f, test_f),) = checkpoint["probed"][-1:]
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    train_f, test_f = unit(train_f.astype(np.float64)), unit(test_f.astype(np.float64))
    for row, q in enumerate(queries):
        image, frame = cell_image(pixels, layout, row, 0)
        np.testing.assert_array_equal(image, np.repeat(test_images[q], 3, axis=-1))
        assert frame == NEUTRAL_RGB
        sims = np.sort(train_f @ test_f[q])[::-1]
        for col in range(1, 9):
            image, frame = cell_image(pixels, layout, row, col)
            (match,) = np.flatnonzero(
                (train_images == image[None, ..., :1]).all(axis=(1, 2, 3))
            )  # one train image
            same = train_labels[match] == test_labels[q]
            assert frame == (SAME_CLASS_RGB if same else OTHER_CLASS_RGB)
            # Rank col's similarity (ties may swap equal neighbours; float32 features).
            assert train_f[match] @ test_f[q] == pytest.approx(sims[col - 1], abs=1e-4)


def test_an_existing_figure_is_kept_unless_asked_and_nofigures_writes_none(
    checkpoint, tmp_path, capsys
):
    workdir = make_workdir(tmp_path / "run")
    kept = workdir / "evaluate_retrieval.png"
    kept.write_bytes(b"an earlier figure")
    code, _, err = run([f"--workdir={workdir}", "--protocols=linear"], capsys)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert lines == [
        f"error: {kept} exists; pass --overwrite_figures to replace the figures, or "
        "--nofigures to write none"
    ], err
    # Refused before anything was computed: no report, no other figure.
    assert sorted(os.listdir(workdir)) == ["evaluate_retrieval.png", "metrics.jsonl"]
    assert kept.read_bytes() == b"an earlier figure"

    code, _, err = run([f"--workdir={workdir}", "--protocols=linear", "--nofigures"], capsys)
    assert code == 0, err[-3000:]
    assert sorted(os.listdir(workdir)) == [
        "evaluate.json",
        "evaluate_retrieval.png",
        "metrics.jsonl",
    ]
    assert kept.read_bytes() == b"an earlier figure"

    # Asked to: replaced, by a PNG.
    code, _, err = run(
        [f"--workdir={workdir}", "--protocols=linear", "--overwrite_figures"], capsys
    )
    assert code == 0, err[-3000:]
    assert read_png(kept).shape[2] == 3
    assert pngs(workdir) == {"evaluate_tsne.png", "evaluate_retrieval.png", "evaluate_curves.png"}


def test_several_layers_give_rows_per_layer_and_the_layer_chart(
    checkpoint, tmp_path, capsys, monkeypatch
):
    from ssljax.evaluation import plots

    def broken(*args, **kwargs):
        raise RuntimeError("no map today")

    monkeypatch.setattr(plots, "embedding_map", broken)
    workdir = make_workdir(tmp_path / "run")
    checkpoint["probed"].clear()
    code, out, err = run([f"--workdir={workdir}", "--protocols=linear", "--layer=all"], capsys)
    assert code == 0, err[-3000:]
    # Each layer's own features were probed: 8 and 16 channels at grid 1, pooled 16.
    assert [(tr.shape, te.shape) for tr, te in checkpoint["probed"]] == [
        ((96, 8), (40, 8)),
        ((96, 16), (40, 16)),
        ((96, 16), (40, 16)),
    ]
    report = json.load(open(workdir / "evaluate.json"))  # written before the figures
    layers = ["block1", "block2", "pooled"]
    assert [(r["protocol"], r["layer"]) for r in report["rows"]] == [
        ("linear", name) for name in layers
    ]
    assert list(report["layers"]) == layers
    for row in report["rows"]:
        entry = report["layers"][row["layer"]]
        assert (entry["top1"], entry["top5"]) == (row["top1"], row["top5"])
    # The reported layer is the best by validation top-1 (the first of equals).
    val = [report["layers"][n]["val_top1"] for n in layers]
    assert report["layer"] == layers[int(np.argmax(val))]
    assert "| protocol | dataset | labels | method | layer | top1 | top5 |" in out

    # The failed figure is one logged line; the others are written.
    assert pngs(workdir) == {
        "evaluate_retrieval.png",
        "evaluate_curves.png",
        "evaluate_layers.png",
    }
    assert re.search(r"figure .*evaluate_tsne.png not written: RuntimeError: no map today", out)
    assert read_png(workdir / "evaluate_layers.png").shape == (450, 800, 3)


def test_several_layers_need_the_linear_or_knn_protocol(checkpoint, tmp_path, capsys):
    workdir = make_workdir(tmp_path / "run")
    code, _, err = run(
        [f"--workdir={workdir}", "--protocols=linear,finetune", "--layer=block1,pooled"], capsys
    )
    assert code == 2
    assert re.search(
        r"^error: --layer names 2 layers \(block1, pooled\); only the linear and knn "
        r"protocols probe several layers, not finetune",
        err.strip(),
    ), err
    assert sorted(os.listdir(workdir)) == ["metrics.jsonl"]


def test_planned_figures_follow_the_run(tmp_path, monkeypatch):
    import sys

    workdir = str(make_workdir(tmp_path / "run", metrics=False))
    plan = P.planned_figures(workdir, ["finetune"], several_layers=False, umap=False)
    assert list(plan) == ["tsne"]
    make_workdir(tmp_path / "run")
    monkeypatch.setitem(sys.modules, "umap", None)  # umap-learn not importable
    plan = P.planned_figures(workdir, ["linear", "knn"], several_layers=True, umap=True)
    assert list(plan) == ["tsne", "retrieval", "curves", "layers"]
    assert plan["layers"] == os.path.join(workdir, "evaluate_layers.png")


def test_figure_sample_matches_brute_force_neighbours():
    rng = np.random.default_rng(0)
    gallery_x = rng.standard_normal((60, 5)).astype(np.float32)
    gallery_y = np.arange(60) % 4
    test_x = rng.standard_normal((30, 5)).astype(np.float32)
    test_y = (np.arange(30) * 7) % 4
    rows = 1000 + 2 * np.arange(60)  # gallery row i is train row 1000 + 2i
    s = P.figure_sample(
        gallery_x,
        gallery_y,
        test_x,
        test_y,
        gallery_rows=rows,
        max_points=12,
        queries=3,
        neighbours=5,
        seed=1,
    )
    # The map: 12 distinct sorted test rows and their features.
    assert len(s["map_index"]) == 12 and np.all(np.diff(s["map_index"]) > 0)
    np.testing.assert_array_equal(s["map_features"], test_x[s["map_index"]])
    np.testing.assert_array_equal(s["map_labels"], test_y[s["map_index"]])
    # Queries: the first test row of 3 different classes.
    q = s["query_index"]
    assert len(set(test_y[q])) == 3
    assert all(np.flatnonzero(test_y == test_y[i])[0] == i for i in q)
    # Neighbours: cosine similarity, nearest first, as train rows with their labels.
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    expected = np.argsort(-(unit(test_x[q]) @ unit(gallery_x).T), axis=1)[:, :5]
    np.testing.assert_array_equal(s["neighbour_index"], rows[expected])
    np.testing.assert_array_equal(s["neighbour_labels"], gallery_y[expected])
    # No gallery: the map only; everything fits: every row.
    s = P.figure_sample(None, None, test_x, test_y, max_points=100)
    assert set(s) == {"map_index", "map_features", "map_labels"}
    np.testing.assert_array_equal(s["map_index"], np.arange(30))


def test_split_rows_reads_only_the_asked_rows(tiny_fashion_mnist):
    images, labels = load("train", tiny_fashion_mnist)
    rows = [5, 3, 3, 95, 0, 50, 51]
    got, got_labels = P.split_rows("fashion_mnist", "train", rows, data_dir=tiny_fashion_mnist)
    np.testing.assert_array_equal(got, images[rows])
    np.testing.assert_array_equal(got_labels, labels[rows])
    # A sliced split numbers its own rows: row 0 of train[10:60] is train row 10.
    got, _ = P.split_rows("fashion_mnist", "train[10:60]", [49, 0, 7], data_dir=tiny_fashion_mnist)
    np.testing.assert_array_equal(got, images[[59, 10, 17]])
    with pytest.raises(ValueError, match=r"rows must lie in \[0, 50\)"):
        P.split_rows("fashion_mnist", "train[10:60]", [50], data_dir=tiny_fashion_mnist)


def test_layer_bars_draw_the_baseline_beside_each_bar(tmp_path):
    """One layer, linear top-1 0.88 and the baseline's 0.55: the solid bar rises
    0.88 / 1.1 of the axes' 306 pixels above its bottom (row 360), the lighter baseline bar
    0.55 / 1.1 of them."""
    layers = {"pooled": dict(top1=0.88, knn_top1=0.8, val_top1=0.87)}
    baseline = {"pooled": dict(top1=0.55, knn_top1=0.5, val_top1=0.54)}
    path = layer_probe_bars(layers, tmp_path / "bars.png", baseline=baseline, keys=["top1"])
    pixels = read_png(path)[:360].astype(int)  # above the axes' bottom: no legend
    solid = np.array([31, 119, 180])  # tab10 blue
    light = np.round(solid + 0.6 * (255 - solid))  # 60% towards white
    is_light = (np.abs(pixels - light) <= 2).all(axis=-1)
    is_solid = (np.abs(pixels - solid) <= 2).all(axis=-1)
    light_cols = is_light.any(axis=0)
    solid_cols = is_solid.any(axis=0) & ~light_cols  # the baseline's hatch is the solid colour
    assert light_cols.sum() > 20 and solid_cols.sum() > 20
    assert np.flatnonzero(solid_cols).max() < np.flatnonzero(light_cols).min()  # beside it
    top_light = np.flatnonzero(is_light[:, light_cols].any(axis=1)).min()
    top_solid = np.flatnonzero(is_solid[:, solid_cols].any(axis=1)).min()
    assert top_solid == pytest.approx(360 - 0.88 / 1.1 * 306, abs=3)
    assert top_light == pytest.approx(360 - 0.55 / 1.1 * 306, abs=3)

    with pytest.raises(ValueError, match="baseline has no layer 'block1'"):
        layer_probe_bars(
            {"block1": dict(top1=0.5), **layers}, tmp_path / "x.png", baseline=baseline
        )
    with pytest.raises(ValueError, match="unknown bar key 'top5'"):
        layer_probe_bars(layers, tmp_path / "x.png", keys=["top5"])
    with pytest.raises(ValueError, match="exists"):
        layer_probe_bars(layers, path, baseline=baseline)
