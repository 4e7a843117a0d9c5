"""Weighted cosine kNN: hand-made votes, invariances, chunking, clamping, errors."""

import json

import numpy as np
import pytest

from ssljax.evaluation import knn_evaluate, knn_scores
from tests.tolerances import f32_sum_tol


def brute_force_scores(train_x, train_y, test_x, num_classes, k, temperature):
    """Straightforward NumPy float64 version of the weighted vote."""
    tr = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    te = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
    sims = te @ tr.T
    scores = np.zeros((len(test_x), num_classes))
    for i, row in enumerate(sims):
        for j in np.argsort(-row, kind="stable")[:k]:
            scores[i, train_y[j]] += np.exp(row[j] / temperature)
    return scores


def random_problem(seed=0, num_train=120, num_test=37, dim=6, num_classes=10):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((num_classes, dim))
    train_y = rng.integers(0, num_classes, num_train)
    test_y = rng.integers(0, num_classes, num_test)
    train_x = (centers[train_y] + 0.8 * rng.standard_normal((num_train, dim))).astype(np.float32)
    test_x = (centers[test_y] + 0.8 * rng.standard_normal((num_test, dim))).astype(np.float32)
    return train_x, train_y, test_x, test_y


def test_k1_is_nearest_neighbour_label():
    train_x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], np.float32)
    train_y = np.array([0, 1, 2, 3])
    # Nearest in angle: (2, 0.1) -> +x axis, (0.1, -3) -> -y axis, (-1, -0.9) -> -x axis.
    test_x = np.array([[2.0, 0.1], [0.1, -3.0], [-1.0, -0.9]], np.float32)
    scores = np.asarray(knn_scores(train_x, train_y, test_x, num_classes=4, k=1))
    np.testing.assert_array_equal(scores.argmax(1), [0, 3, 2])
    # Exactly one class per row receives a vote.
    assert ((scores > 0).sum(1) == 1).all()
    result = knn_evaluate(train_x, train_y, test_x, np.array([0, 3, 2]), num_classes=4, k=1)
    assert result["top1"] == 1.0


def test_k3_weighted_vote_beats_majority():
    # One very close neighbour of class 0 against two farther ones of class 1.
    train_x = np.array([[1.0, 0.05], [0.3, 1.0], [0.3, -1.0], [-1.0, 0.0]], np.float32)
    train_y = np.array([0, 1, 1, 2])
    test_x = np.array([[1.0, 0.0]], np.float32)
    temperature = 0.07
    scores = np.asarray(
        knn_scores(train_x, train_y, test_x, num_classes=3, k=3, temperature=temperature)
    )[0]
    # By hand: cosine with (1, 0) is x / |x|; the class-2 point (sim -1) is not in the top 3.
    sim = train_x[:3, 0] / np.linalg.norm(train_x[:3], axis=1)
    expected = np.array(
        [
            np.exp(sim[0] / temperature),
            np.exp(sim[1] / temperature) + np.exp(sim[2] / temperature),
            0.0,
        ]
    )
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert scores.argmax() == 0
    # The unweighted majority of the same three neighbours is class 1 ...
    assert np.bincount(train_y[:3]).argmax() == 1
    # ... and a very high temperature (almost equal weights) recovers it.
    flat = np.asarray(knn_scores(train_x, train_y, test_x, num_classes=3, k=3, temperature=100.0))
    assert flat[0].argmax() == 1


def test_matches_brute_force():
    train_x, train_y, test_x, _ = random_problem()
    for k, temperature in [(5, 0.07), (20, 0.5)]:
        scores = knn_scores(train_x, train_y, test_x, num_classes=10, k=k, temperature=temperature)
        expected = brute_force_scores(train_x, train_y, test_x, 10, k, temperature)
        np.testing.assert_allclose(np.asarray(scores), expected, rtol=1e-4)


def test_cosine_scale_invariance():
    train_x, train_y, test_x, test_y = random_problem(seed=1)
    rng = np.random.default_rng(2)
    train_scaled = train_x * rng.uniform(0.01, 100.0, (len(train_x), 1)).astype(np.float32)
    test_scaled = test_x * rng.uniform(0.01, 100.0, (len(test_x), 1)).astype(np.float32)
    base = knn_scores(train_x, train_y, test_x, num_classes=10, k=7)
    scaled = knn_scores(train_scaled, train_y, test_scaled, num_classes=10, k=7)
    np.testing.assert_allclose(np.asarray(scaled), np.asarray(base), rtol=1e-4)
    assert knn_evaluate(train_scaled, train_y, test_scaled, test_y, num_classes=10, k=7) == (
        knn_evaluate(train_x, train_y, test_x, test_y, num_classes=10, k=7)
    )


def test_chunked_equals_unchunked():
    train_x, train_y, test_x, _ = random_problem(seed=3, num_test=37)
    whole = knn_scores(train_x, train_y, test_x, num_classes=10, k=9, batch_size=1024)
    chunked = knn_scores(train_x, train_y, test_x, num_classes=10, k=9, batch_size=8)
    assert chunked.shape == whole.shape == (37, 10)
    # Other matmul shapes may reorder the d=6 dot products; exp(s / 0.07) turns an error of
    # the cosine into 1 / 0.07 times that relative error, and the 9 positive votes add theirs.
    np.testing.assert_allclose(
        np.asarray(chunked), np.asarray(whole), rtol=f32_sum_tol(2 * 6 + 9, magnitude=1 / 0.07)
    )


def test_evaluate_report():
    train_x, train_y, test_x, test_y = random_problem(seed=4)
    result = knn_evaluate(train_x, train_y, test_x, test_y, num_classes=10, k=10, batch_size=16)
    assert set(result) == {"top1", "top5", "k", "temperature"}
    assert 0.0 <= result["top1"] <= result["top5"] <= 1.0
    assert result["top1"] > 0.3  # clustered data: far above chance (0.1)
    assert result["k"] == 10 and result["temperature"] == 0.07
    assert json.loads(json.dumps(result)) == result


def test_k_larger_than_train_set_is_clamped():
    train_x, train_y, test_x, test_y = random_problem(seed=5, num_train=12)
    big = knn_scores(train_x, train_y, test_x, num_classes=10, k=500)
    full = knn_scores(train_x, train_y, test_x, num_classes=10, k=12)
    np.testing.assert_allclose(np.asarray(big), np.asarray(full), rtol=1e-6)
    # Every train point voted: each row's total weight is the sum over all of them.
    expected = brute_force_scores(train_x, train_y, test_x, 10, 12, 0.07).sum(1)
    np.testing.assert_allclose(np.asarray(big).sum(1), expected, rtol=1e-4)
    assert knn_evaluate(train_x, train_y, test_x, test_y, num_classes=10, k=500)["k"] == 12


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(k=0), "k must be >= 1"),
        (dict(temperature=0.0), "temperature"),
        (dict(temperature=0.001), "too small"),
        (dict(batch_size=0), "batch_size"),
        (dict(train_y=np.array([0, 1, 2, 9])), "label 9"),
        (dict(train_y=np.array([0, 1, 2])), "train_y must have shape"),
        (dict(test_x=np.zeros((2, 3), np.float32)), "feature dims differ"),
        (dict(train_x=np.zeros(4, np.float32)), "train_x must be 2-D"),
    ],
)
def test_bad_inputs(overrides, match):
    args = dict(
        train_x=np.eye(4, 2, dtype=np.float32),
        train_y=np.array([0, 1, 2, 0]),
        test_x=np.ones((2, 2), np.float32),
        num_classes=3,
    )
    args.update(overrides)
    with pytest.raises(ValueError, match=match):
        knn_scores(**args)


def test_bad_test_labels():
    train_x, train_y, test_x, test_y = random_problem(seed=6)
    with pytest.raises(ValueError, match="label 10"):
        knn_evaluate(train_x, train_y, test_x, np.full_like(test_y, 10), num_classes=10)
    with pytest.raises(ValueError, match="test_y must have shape"):
        knn_evaluate(train_x, train_y, test_x, test_y[:-1], num_classes=10)
