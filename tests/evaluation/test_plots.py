"""Figures: each PNG is written with its stated pixel size, the retrieval grid's frames have
the colours the labels dictate, t-SNE keeps separated clusters apart, inputs are checked."""

import json
import os
import sys

import numpy as np
import pytest
from PIL import Image
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

from ssljax.evaluation.plots import (
    NEUTRAL_RGB,
    OTHER_CLASS_RGB,
    SAME_CLASS_RGB,
    GridLayout,
    embed_2d,
    embedding_map,
    layer_probe_bars,
    metric_series,
    read_metrics,
    retrieval_grid,
    training_curves,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read_png(path) -> np.ndarray:
    """``[H, W, 3]`` uint8 pixels of a PNG (fails on anything that is not a PNG)."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


# t-SNE's OpenMP threads spin-wait when other processes share the cores (measured on a busy
# 2-core machine: 27 s for 200 points with 2 threads, 2 s with 1), so the tests use one.
def one_thread():
    return threadpool_limits(limits=1)


def separated_clusters(n_per_class=50, num_classes=4, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(num_classes), n_per_class)
    centers = 5.0 * np.eye(num_classes, dim)
    x = (centers[y] + 0.3 * rng.standard_normal((len(y), dim))).astype(np.float32)
    return x, y


def test_tsne_keeps_separated_clusters_apart():
    x, y = separated_clusters()  # 200 points, 4 classes
    with one_thread():
        coords = embed_2d(x, method="tsne", seed=0)
    assert coords.shape == (200, 2) and np.all(np.isfinite(coords))
    # 5-NN accuracy in the 2-D map (5-fold cross-validation) stays ~1.
    accuracy = cross_val_score(KNeighborsClassifier(5), coords, y, cv=5).mean()
    assert accuracy >= 0.98


def test_embedding_map_png(tmp_path):
    x, y = separated_clusters(n_per_class=40)
    names = ["zero", "one", "two", "three"]
    with one_thread():
        out = embedding_map(x, y, tmp_path / "map.png", class_names=names, max_points=100)
    assert out == os.fspath(tmp_path / "map.png")
    pixels = read_png(out)
    assert pixels.shape == (650, 800, 3)
    # Something other than white was drawn, in more than one colour.
    drawn = pixels[(pixels < 250).any(axis=-1)]
    assert len(np.unique(drawn // 32, axis=0)) > 4
    # Nothing already saved is overwritten unless asked.
    with pytest.raises(ValueError, match="exists; pass overwrite=True"):
        embedding_map(x, y, out, max_points=100)


def test_embedding_map_errors(tmp_path, monkeypatch):
    x, y = separated_clusters(n_per_class=5)
    with pytest.raises(ValueError, match="method must be one of \\('tsne', 'umap'\\)"):
        embedding_map(x, y, tmp_path / "a.png", method="pca")
    with pytest.raises(ValueError, match="labels must have shape \\(20,\\)"):
        embedding_map(x, y[:5], tmp_path / "a.png")
    with pytest.raises(ValueError, match="class_names has 2 names but labels span \\[0, 3\\]"):
        embedding_map(x, y, tmp_path / "a.png", class_names=["a", "b"])
    with pytest.raises(ValueError, match="must end in .png"):
        embedding_map(x, y, tmp_path / "a.jpg")
    # umap-learn missing: a one-line error naming the package to install.
    monkeypatch.setitem(sys.modules, "umap", None)
    with pytest.raises(ValueError, match="needs umap-learn.*pip install umap-learn") as err:
        embedding_map(x, y, tmp_path / "a.png", method="umap")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "a.png").exists()


@pytest.mark.parametrize("channels, hw", [(1, (28, 28)), (3, (10, 12))])
def test_retrieval_grid_frames(tmp_path, channels, hw):
    rng = np.random.default_rng(0)
    # Query q is a flat image of value 40 + q; gallery images are random.
    queries = (40 + np.arange(3, dtype=np.uint8))[:, None, None, None] * np.ones(
        (3, *hw, channels), np.uint8
    )
    gallery = rng.integers(0, 256, (6, *hw, channels), dtype=np.uint8)
    query_y = np.array([0, 1, 2])
    gallery_y = np.array([0, 1, 2, 0, 1, 2])
    neighbours = np.array([[0, 1, 3], [4, 4, 2], [5, 0, 1]])
    out = retrieval_grid(
        queries,
        gallery,
        neighbours,
        tmp_path / "grid.png",
        query_labels=query_y,
        gallery_labels=gallery_y,
        class_names=["top", "trouser", "bag"],
    )
    pixels = read_png(out)
    layout = GridLayout(hw, rows=3, neighbours=3, text=14)
    assert pixels.shape == (layout.height, layout.width, 3)
    b, scale = layout.border, layout.scale
    for row in range(3):
        top, left = layout.cell_origin(row, 0)
        np.testing.assert_array_equal(pixels[top + 1, left + 1], NEUTRAL_RGB)
        # Inside the frame: the query image, enlarged (grey becomes R = G = B).
        np.testing.assert_array_equal(pixels[top + b + 5, left + b + 5], [40 + row] * 3)
        for col, j in enumerate(neighbours[row], start=1):
            top, left = layout.cell_origin(row, col)
            expected = SAME_CLASS_RGB if gallery_y[j] == query_y[row] else OTHER_CLASS_RGB
            # Frame pixels on all four sides.
            for y, x in [(top, left + 10), (top + layout.cell_h - 1, left + 10), (top + 10, left)]:
                np.testing.assert_array_equal(pixels[y, x], expected)
            image_pixel = gallery[j, 2, 3]  # source pixel (2, 3), enlarged `scale` times
            np.testing.assert_array_equal(
                pixels[top + b + 2 * scale, left + b + 3 * scale],
                np.broadcast_to(image_pixel, (3,)),
            )
    # Rows by hand: q0 (class 0): g0 green, g1 red, g3 green; q1: g4 green twice, g2 red.
    top, left = layout.cell_origin(1, 3)
    np.testing.assert_array_equal(pixels[top, left + 10], OTHER_CLASS_RGB)


def test_retrieval_grid_unlabelled_and_errors(tmp_path):
    images = np.zeros((4, 8, 8, 1), np.uint8)
    out = retrieval_grid(images[:2], images, np.array([[1, 2], [3, 0]]), tmp_path / "g.png")
    layout = GridLayout((8, 8), rows=2, neighbours=2, text=0)
    pixels = read_png(out)
    assert pixels.shape == (layout.height, layout.width, 3)
    top, left = layout.cell_origin(1, 2)
    np.testing.assert_array_equal(pixels[top, left], NEUTRAL_RGB)
    with pytest.raises(ValueError, match="neighbour_indices must lie in \\[0, 4\\)"):
        retrieval_grid(images[:2], images, np.array([[1, 4], [0, 0]]), tmp_path / "h.png")
    with pytest.raises(ValueError, match="neighbour_indices must be \\[2, k>=1\\]"):
        retrieval_grid(images[:2], images, np.array([1, 2]), tmp_path / "h.png")
    with pytest.raises(ValueError, match="query_images must be \\[N, H, W, 1\\]"):
        retrieval_grid(images[:2, :, :, 0], images, np.zeros((2, 1), int), tmp_path / "h.png")
    with pytest.raises(ValueError, match="gallery_images must be uint8"):
        retrieval_grid(images[:2], images.astype(np.int32), np.zeros((2, 1), int), "h.png")
    with pytest.raises(ValueError, match="given together"):
        retrieval_grid(
            images[:2], images, np.zeros((2, 1), int), tmp_path / "h.png", query_labels=[0, 1]
        )


def test_layer_probe_bars(tmp_path):
    layers = {
        "block2": dict(top1=0.81, top5=0.99, knn_top1=0.78, val_top1=0.8, feature_dim=1152),
        "block4": dict(top1=0.87, top5=0.99, knn_top1=0.83, val_top1=0.86, feature_dim=2304),
        "pooled": dict(top1=0.84, top5=0.99, knn_top1=0.82, val_top1=0.83, feature_dim=256),
    }
    pixels = read_png(layer_probe_bars(layers, tmp_path / "bars.png"))
    assert pixels.shape == (450, 800, 3)
    assert (pixels < 250).any()
    with pytest.raises(ValueError, match="layer 'pooled' has no 'top1'"):
        layer_probe_bars({"pooled": {"knn_top1": 0.5}}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="non-empty dict"):
        layer_probe_bars({}, tmp_path / "x.png")


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def fake_run(knn: bool):
    records = []
    for step in range(10, 110, 10):
        records.append(
            dict(
                step=step,
                loss=5.0 / step,
                learning_rate=0.1,
                collapse_std=0.08,
                collapse_std_ref=0.088,
                effective_rank=step / 10,
            )
        )
        if knn and step % 50 == 0:  # a monitor logging its own lines, less often
            records.append(dict(step=step, knn_top1=step / 200))
    return records


def test_training_curves_sizes(tmp_path):
    plain = write_jsonl(tmp_path / "plain.jsonl", fake_run(knn=False))
    with_knn = write_jsonl(tmp_path / "knn.jsonl", fake_run(knn=True))
    assert read_png(training_curves(plain, tmp_path / "a.png")).shape == (600, 1000, 3)
    assert read_png(training_curves(with_knn, tmp_path / "b.png")).shape == (900, 1000, 3)
    steps, values = metric_series(read_metrics(with_knn), "knn_top1")
    np.testing.assert_array_equal(steps, [50, 100])
    np.testing.assert_allclose(values, [0.25, 0.5])


def test_training_curves_of_the_demo_run(tmp_path):
    # metrics.jsonl of the `make demo` run (SimCLR, Fashion-MNIST, 1000 steps) kept as data.
    demo = os.path.join(REPO, "tests", "data", "demo_metrics.jsonl")
    records = read_metrics(demo)
    steps, _ = metric_series(records, "loss")
    assert len(steps) == len(records) and np.all(np.diff(steps) > 0)
    pixels = read_png(training_curves(demo, tmp_path / "demo.png", dpi=50))
    assert pixels.shape == (300, 500, 3)


def test_training_curves_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"step": 1, "loss": 2.0}\n\n{"loss": 1.0}\n')
    with pytest.raises(ValueError, match="bad.jsonl line 3 has no 'step' key"):
        training_curves(bad, tmp_path / "x.png")
    bad.write_text('{"step": 1, "loss": 2.0}\nnot json\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        training_curves(bad, tmp_path / "x.png")
    bad.write_text('{"step": 1, "other": 2.0}\n')
    with pytest.raises(ValueError, match="logs none of \\['loss'"):
        training_curves(bad, tmp_path / "x.png")
    with pytest.raises(ValueError, match="does not exist"):
        training_curves(tmp_path / "missing.jsonl", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_tile_images_places_each_image_in_its_cell():
    from ssljax.evaluation.plots import tile_images

    images = np.stack([np.full((3, 2, 1), 10 * (i + 1), np.uint8) for i in range(5)])
    tiled = tile_images(images, columns=2, pad=1)
    assert tiled.shape == (3 * 4 + 1, 2 * 3 + 1, 3)
    for i in range(5):
        top, left = 1 + (i // 2) * 4, 1 + (i % 2) * 3
        assert np.all(tiled[top : top + 3, left : left + 2] == 10 * (i + 1))
    assert np.all(tiled[0] == 255) and np.all(tiled[-4:, 4:] == 255)  # padding, empty cell
    with pytest.raises(ValueError, match=r"columns=0 is invalid"):
        tile_images(images, columns=0)


def test_image_grid_writes_a_png_and_keeps_an_existing_one(tmp_path):
    from ssljax.evaluation.plots import image_grid

    path = str(tmp_path / "grid.png")
    image_grid(np.random.default_rng(0).random((6, 8, 8, 1)), path, columns=3, title="t")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="exists"):
        image_grid(np.zeros((1, 8, 8, 1)), path)
