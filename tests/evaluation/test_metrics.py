"""Top-k accuracy on hand-made score matrices, including ties and NaNs."""

import numpy as np
import pytest

from ssljax.evaluation import accuracy_report, topk_accuracy

# Rank of the true class (number of other classes scoring >= it) per row:
# row 0: label 1 is the max            -> rank 0
# row 1: label 2 is beaten by class 0  -> rank 1
# row 2: label 0 is beaten by 2, 3, 4  -> rank 3
# row 3: label 3 is the max            -> rank 0
SCORES = np.array(
    [
        [0.1, 0.5, 0.2, 0.0, 0.2],
        [0.9, 0.3, 0.8, 0.1, 0.0],
        [0.2, 0.1, 0.3, 0.4, 0.6],
        [0.0, 0.0, 0.1, 0.7, 0.2],
    ],
    dtype=np.float32,
)
LABELS = np.array([1, 2, 0, 3])


@pytest.mark.parametrize("k, expected", [(1, 0.5), (2, 0.75), (3, 0.75), (4, 1.0), (5, 1.0)])
def test_topk_hand_made(k, expected):
    assert topk_accuracy(SCORES, LABELS, k) == pytest.approx(expected)


def test_topk_returns_python_float():
    assert type(topk_accuracy(SCORES, LABELS, 1)) is float


def test_ties_do_not_inflate():
    # A constant score matrix carries no information: nothing is top-1 correct.
    assert topk_accuracy(np.zeros((4, 5)), LABELS, 1) == 0.0
    # Three-way tie with the true class: needs k >= 3.
    scores = np.array([[1.0, 1.0, 1.0, 0.0]])
    labels = np.array([0])
    assert topk_accuracy(scores, labels, 1) == 0.0
    assert topk_accuracy(scores, labels, 2) == 0.0
    assert topk_accuracy(scores, labels, 3) == 1.0
    # argmax would break the tie in favour of class 0 and report 1.0.
    assert np.argmax(scores[0]) == 0


def test_nan_true_score_is_wrong():
    scores = np.array([[np.nan, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    assert topk_accuracy(scores, np.array([0, 0]), 1) == 0.5
    assert topk_accuracy(scores, np.array([0, 0]), 3) == 0.5


def test_accuracy_report():
    report = accuracy_report(SCORES, LABELS)
    assert report == {"top1": pytest.approx(0.5), "top5": pytest.approx(1.0)}
    # Fewer than 5 classes: top5 is reported equal to top1, not trivially 1.
    small = accuracy_report(SCORES[:, :3], np.array([1, 2, 0, 2]))
    assert small["top1"] == pytest.approx(0.5)
    assert small["top5"] == small["top1"]


@pytest.mark.parametrize(
    "scores, labels, k, match",
    [
        (SCORES, np.array([1, 2, 5, 3]), 1, "label 5"),
        (SCORES, np.array([1, 2, -1, 3]), 1, "label -1"),
        (SCORES, LABELS[:3], 1, "3 entries"),
        (SCORES[0], LABELS, 1, "2-D"),
        (SCORES, LABELS, 0, "k must be >= 1"),
        (SCORES, LABELS.astype(np.float32), 1, "integers"),
    ],
)
def test_topk_errors(scores, labels, k, match):
    with pytest.raises(ValueError, match=match):
        topk_accuracy(scores, labels, k)
