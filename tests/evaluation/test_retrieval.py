"""Retrieval metrics (Musgrave et al. 2020): hand-ranked examples, NumPy / scikit-learn
references, invariances, bounds, lone queries and input errors."""

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score
from sklearn.neighbors import NearestNeighbors

from ssljax.evaluation.retrieval import (
    kmeans_nmi,
    map_at_r,
    metrics_from_relevance,
    nearest_neighbours,
    r_precision,
    recall_at_1,
    retrieval_metrics,
)


def reference_metrics(query_x, query_y, gallery_x=None, gallery_y=None, max_r=None):
    """Plain NumPy float64: rank by cosine (stable argsort), then the paper's definitions."""
    loo = gallery_x is None
    if loo:
        gallery_x, gallery_y = query_x, query_y
    q = query_x / np.linalg.norm(query_x, axis=1, keepdims=True)
    g = gallery_x / np.linalg.norm(gallery_x, axis=1, keepdims=True)
    sims = q.astype(np.float64) @ g.T.astype(np.float64)
    r1, rp, mapr = [], [], []
    for i, row in enumerate(sims):
        order = np.argsort(-row, kind="stable")
        if loo:
            order = order[order != i]
        rel = gallery_y[order] == query_y[i]
        r = int(rel.sum())
        if max_r is not None:
            r = min(r, max_r)
        if r == 0:
            continue
        r1.append(rel[0])
        rp.append(rel[:r].sum() / r)
        precision = np.cumsum(rel[:r]) / np.arange(1, r + 1)
        mapr.append((precision * rel[:r]).sum() / r)
    return np.mean(r1), np.mean(rp), np.mean(mapr)


def clusters(seed=0, n=90, dim=8, num_classes=5, noise=1.0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((num_classes, dim))
    y = rng.integers(0, num_classes, n)
    x = (centers[y] + noise * rng.standard_normal((n, dim))).astype(np.float32)
    return x, y


def on_circle(degrees):
    t = np.deg2rad(np.asarray(degrees, np.float64))
    return np.stack([np.cos(t), np.sin(t)], axis=1).astype(np.float32)


def test_relevance_to_metrics_by_hand():
    relevance = np.array(
        [
            [1, 0, 1, 0],  # R=2: ranks 1..2 count. P(1)=1 -> MAP@R = (1/1 + 0)/2 = 0.5, RP = 1/2
            # (the hit at rank 3 is past R; MAP@R sums i = 1..R only).
            [1, 0, 1, 0],  # R=3: MAP@R = (1/1 + 0 + 2/3)/3 = 5/9, RP = 2/3
            [0, 1, 1, 1],  # R=4: MAP@R = (0 + 1/2 + 2/3 + 3/4)/4 = 23/48, RP = 3/4
            [0, 0, 0, 1],  # R=1: MAP@R = 0, RP = 0, R@1 = 0
            [1, 1, 0, 0],  # R=2: everything 1
        ],
        bool,
    )
    r = np.array([2, 3, 4, 1, 2])
    out = {k: np.asarray(v) for k, v in metrics_from_relevance(relevance, r).items()}
    np.testing.assert_allclose(out["recall_at_1"], [1, 1, 0, 0, 1])
    np.testing.assert_allclose(out["r_precision"], [1 / 2, 2 / 3, 3 / 4, 0, 1], rtol=1e-6)
    np.testing.assert_allclose(out["map_at_r"], [1 / 2, 5 / 9, 23 / 48, 0, 1], rtol=1e-6)


def test_leave_one_out_on_the_circle_by_hand():
    # Unit vectors at these angles; cosine ranks by angular distance. Labels A=0, B=1.
    #   A0 0deg, A1 10deg, B0 22deg, A2 35deg, B1 90deg, B2 100deg; every R = 2.
    # Query  ranking (angular distance)           rel        R@1  RP   MAP@R
    # A0     A1 10, B0 22, A2 35, B1 90, B2 100   1 0 1 0 0  1    1/2  (1 + 0)/2 = 1/2
    # A1     A0 10, B0 12, A2 25, B1 80, B2 90    1 0 1 0 0  1    1/2  1/2
    # B0     A1 12, A2 13, A0 22, B1 68, B2 78    0 0 0 1 1  0    0    0
    # A2     B0 13, A1 25, A0 35, B1 55, B2 65    0 1 1 0 0  0    1/2  (0 + 1/2)/2 = 1/4
    # B1     B2 10, A2 55, B0 68, A1 80, A0 90    1 0 1 0 0  1    1/2  1/2
    # B2     B1 10, A2 65, B0 78, A1 90, A0 100   1 0 1 0 0  1    1/2  1/2
    x = on_circle([0, 10, 22, 35, 90, 100])
    y = np.array([0, 0, 1, 0, 1, 1])
    out = retrieval_metrics(x, y, nmi=False)
    assert out["recall_at_1"] == pytest.approx(4 / 6)
    assert out["r_precision"] == pytest.approx(2.5 / 6)
    assert out["map_at_r"] == pytest.approx(2.25 / 6)
    assert out["num_queries"] == 6 and out["num_lone_queries"] == 0 and out["mean_r"] == 2
    # The single-metric functions agree.
    assert recall_at_1(x, y) == pytest.approx(4 / 6)
    assert r_precision(x, y) == pytest.approx(2.5 / 6)
    assert map_at_r(x, y) == pytest.approx(2.25 / 6)
    idx, _ = nearest_neighbours(x, k=5)
    np.testing.assert_array_equal(idx[0], [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(idx[3], [2, 1, 0, 4, 5])


def test_query_gallery_by_hand():
    # Gallery: g0 A 0deg, g1 B 30deg, g2 A 50deg, g3 B 180deg. Queries: A at 20deg, B at 170deg.
    # Query A (R=2): g1 10, g2 30, g0 20 -> order g1, g0, g2, g3 -> rel 0 1 1 0:
    #   R@1 0, RP 1/2, MAP@R (0 + 1/2)/2 = 1/4.
    # Query B (R=2): g3 10, g2 120, g1 140, g0 170 -> rel 1 0 1 0: R@1 1, RP 1/2, MAP@R 1/2.
    gallery = on_circle([0, 30, 50, 180])
    gallery_y = np.array([0, 1, 0, 1])
    query = on_circle([20, 170])
    out = retrieval_metrics(
        query, np.array([0, 1]), gallery_features=gallery, gallery_labels=gallery_y, nmi=False
    )
    assert out["recall_at_1"] == pytest.approx(1 / 2)
    assert out["r_precision"] == pytest.approx(1 / 2)
    assert out["map_at_r"] == pytest.approx((1 / 4 + 1 / 2) / 2)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_numpy_reference_and_sklearn_1nn(seed):
    x, y = clusters(seed, noise=1.5)
    out = retrieval_metrics(x, y, chunk_rows=16, nmi=False)
    r1, rp, mapr = reference_metrics(x, y)
    assert out["recall_at_1"] == pytest.approx(r1, abs=1e-6)
    assert out["r_precision"] == pytest.approx(rp, abs=1e-6)
    assert out["map_at_r"] == pytest.approx(mapr, abs=1e-6)
    # scikit-learn 1-NN on cosine distance; kneighbors() without X leaves each point out.
    nn = NearestNeighbors(n_neighbors=1, metric="cosine").fit(x)
    first = nn.kneighbors(return_distance=False)[:, 0]
    assert out["recall_at_1"] == pytest.approx(np.mean(y[first] == y))


def test_query_gallery_matches_references():
    x, y = clusters(2, n=120, noise=1.5)
    qx, qy, gx, gy = x[:40], y[:40], x[40:], y[40:]
    out = retrieval_metrics(qx, qy, gallery_features=gx, gallery_labels=gy, chunk_rows=7, nmi=False)
    r1, rp, mapr = reference_metrics(qx, qy, gx, gy)
    assert (out["recall_at_1"], out["r_precision"], out["map_at_r"]) == pytest.approx(
        (r1, rp, mapr), abs=1e-6
    )
    first = NearestNeighbors(n_neighbors=1, metric="cosine").fit(gx).kneighbors(qx)[1][:, 0]
    assert out["recall_at_1"] == pytest.approx(np.mean(gy[first] == qy))


def test_max_r_caps_r():
    x, y = clusters(3, noise=1.5)
    out = retrieval_metrics(x, y, max_r=5, nmi=False)
    r1, rp, mapr = reference_metrics(x, y, max_r=5)
    assert (out["r_precision"], out["map_at_r"]) == pytest.approx((rp, mapr), abs=1e-6)
    assert out["recall_at_1"] == pytest.approx(r1) and out["mean_r"] == 5


def test_chunking_and_invariances():
    x, y = clusters(4, n=60, noise=1.5)
    base = retrieval_metrics(x, y, chunk_rows=len(x), nmi=False)
    keys = ("recall_at_1", "r_precision", "map_at_r")
    for chunk in (1, 7):
        out = retrieval_metrics(x, y, chunk_rows=chunk, nmi=False)
        assert [out[k] for k in keys] == pytest.approx([base[k] for k in keys], abs=1e-6)
    # Positive per-row scaling leaves cosine similarities unchanged.
    scales = np.random.default_rng(0).uniform(0.1, 10.0, (len(x), 1)).astype(np.float32)
    out = retrieval_metrics(x * scales, y, nmi=False)
    assert [out[k] for k in keys] == pytest.approx([base[k] for k in keys], abs=1e-6)
    # Permuting the examples permutes the queries and the gallery together.
    perm = np.random.default_rng(1).permutation(len(x))
    out = retrieval_metrics(x[perm], y[perm], nmi=False)
    assert [out[k] for k in keys] == pytest.approx([base[k] for k in keys], abs=1e-6)
    # Renaming the labels changes nothing either.
    out = retrieval_metrics(x, 100 - 3 * y, nmi=False)
    assert [out[k] for k in keys] == pytest.approx([base[k] for k in keys], abs=1e-6)


def test_separated_classes_score_one():
    # Each class is a tight cone around its own axis.
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 6)
    x = (np.eye(4)[y] * 10 + 0.1 * rng.standard_normal((24, 4))).astype(np.float32)
    out = retrieval_metrics(x, y, chunk_rows=5)
    for key in ("recall_at_1", "r_precision", "map_at_r", "nmi"):
        assert out[key] == pytest.approx(1.0), key


def test_kmeans_nmi_matches_sklearn_and_bounds():
    x, y = clusters(5, n=150, noise=0.7)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected = normalized_mutual_info_score(
        y, KMeans(n_clusters=5, random_state=3).fit_predict(xn.astype(np.float64))
    )
    assert kmeans_nmi(x, y, seed=3) == pytest.approx(expected, abs=1e-6)
    # Labels independent of the features: NMI near 0; renaming the labels: same NMI.
    random_y = np.random.default_rng(0).integers(0, 5, len(x))
    assert kmeans_nmi(x, random_y) < 0.1
    assert kmeans_nmi(x, 7 - y, seed=3) == pytest.approx(expected, abs=1e-6)
    assert 0.0 <= kmeans_nmi(x, y, num_clusters=2) <= 1.0


def test_lone_queries_skipped_or_raised():
    # Class 2 has one example: its query has R = 0 and is left out of every metric.
    x = on_circle([0, 10, 90, 100, 200])
    y = np.array([0, 0, 1, 1, 2])
    out = retrieval_metrics(x, y, nmi=False)
    assert out["num_queries"] == 4 and out["num_lone_queries"] == 1
    assert out["recall_at_1"] == out["r_precision"] == out["map_at_r"] == 1.0
    with pytest.raises(ValueError, match="query 4 \\(label 2\\) has no other example"):
        retrieval_metrics(x, y, lone_queries="raise")
    with pytest.raises(ValueError, match="R = 0 for all 3 queries"):
        retrieval_metrics(x[:3], np.array([0, 1, 2]))
    # A query class absent from the gallery is lone too.
    out = retrieval_metrics(
        x[:2], np.array([0, 5]), gallery_features=x, gallery_labels=y, nmi=False
    )
    assert out["num_lone_queries"] == 1 and out["num_queries"] == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(labels=np.zeros(5, int)), "labels has 5 labels but features has 6 rows"),
        (dict(labels=np.zeros((6, 1), int)), "labels must be 1-D"),
        (dict(labels=np.zeros(6)), "labels must be integers"),
        (dict(features=np.zeros(6)), "features must be 2-D"),
        (dict(features=np.full((6, 2), np.nan)), "features contains non-finite"),
        (dict(chunk_rows=0), "chunk_rows must be >= 1"),
        (dict(max_r=0), "max_r must be None or >= 1"),
        (dict(lone_queries="drop"), "lone_queries must be one of \\('skip', 'raise'\\)"),
        (dict(gallery_features=np.ones((3, 2))), "must be given together"),
        (
            dict(gallery_features=np.ones((3, 3)), gallery_labels=np.zeros(3, int)),
            "feature dims differ",
        ),
        (
            dict(gallery_features=np.ones((3, 2)), gallery_labels=np.zeros(4, int)),
            "gallery_labels has 4 labels but gallery has 3 rows",
        ),
    ],
)
def test_bad_input_one_line_errors(kwargs, message):
    args = dict(features=on_circle(range(0, 60, 10)), labels=np.array([0, 0, 0, 1, 1, 1]))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message) as err:
        retrieval_metrics(args.pop("features"), args.pop("labels"), **args)
    assert "\n" not in str(err.value)


def test_nearest_neighbours_matches_argsort_and_errors():
    x, _ = clusters(6, n=30)
    g, _ = clusters(7, n=25)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    idx, sims = nearest_neighbours(x, g, k=4, chunk_rows=8)
    np.testing.assert_array_equal(idx, np.argsort(-(xn @ gn.T), axis=1, kind="stable")[:, :4])
    np.testing.assert_allclose(sims, np.take_along_axis(xn @ gn.T, idx, 1), atol=1e-6)
    with pytest.raises(ValueError, match="k must be in \\[1, 29\\]"):
        nearest_neighbours(x, k=30)
    with pytest.raises(ValueError, match="num_clusters must be in \\[1, 30\\]"):
        kmeans_nmi(x, np.zeros(30, int), num_clusters=31)
