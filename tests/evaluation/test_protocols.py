"""Label-efficiency subsets, argument checks, report rows and margins."""

import numpy as np
import pytest

from ssljax.evaluation import protocols as P


def uneven_labels():
    """Class sizes 50, 30, 7, 1 and 12, shuffled."""
    labels = np.repeat([0, 1, 2, 3, 4], [50, 30, 7, 1, 12])
    return np.random.default_rng(0).permutation(labels)


def counts(labels, idx):
    return dict(zip(*np.unique(labels[idx], return_counts=True)))


@pytest.mark.parametrize(
    "fraction,expected",
    [
        # round(f * n_c), halves up, at least 1: class sizes 50, 30, 7, 1, 12.
        (0.1, {0: 5, 1: 3, 2: 1, 3: 1, 4: 1}),
        (0.25, {0: 13, 1: 8, 2: 2, 3: 1, 4: 3}),  # 12.5 -> 13, 7.5 -> 8, 1.75 -> 2
        (0.5, {0: 25, 1: 15, 2: 4, 3: 1, 4: 6}),  # 3.5 -> 4, 0.5 -> 1
        (1.0, {0: 50, 1: 30, 2: 7, 3: 1, 4: 12}),
    ],
)
def test_balanced_subset_keeps_round_fraction_of_every_class(fraction, expected):
    labels = uneven_labels()
    idx = P.balanced_subset(labels, fraction, seed=0)
    assert counts(labels, idx) == expected
    assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)  # sorted, no repeats


def test_balanced_subset_is_the_same_number_per_class_on_balanced_labels():
    labels = np.repeat(np.arange(10), 600)  # Fashion-MNIST's 10% subset, at 1/10 scale
    for fraction, per_class in ((0.01, 6), (0.1, 60)):
        idx = P.balanced_subset(labels, fraction, seed=1)
        assert set(counts(labels, idx).values()) == {per_class}


def test_balanced_subset_is_fixed_by_its_seed_and_nested():
    labels = np.random.default_rng(1).integers(0, 10, 5000)
    a = P.balanced_subset(labels, 0.1, seed=7)
    np.testing.assert_array_equal(a, P.balanced_subset(labels, 0.1, seed=7))
    assert not np.array_equal(a, P.balanced_subset(labels, 0.1, seed=8))
    # Nested for one seed: 1% inside 10% inside 50%.
    small, large = P.balanced_subset(labels, 0.01, seed=7), P.balanced_subset(labels, 0.5, 7)
    assert set(small) <= set(a) <= set(large)
    np.testing.assert_array_equal(P.balanced_subset(labels, 1.0, seed=7), np.arange(5000))


@pytest.mark.parametrize("fraction", [0, 0.0, -0.1, 1.5, float("nan"), "abc"])
def test_fraction_outside_the_unit_interval_is_a_one_line_error(fraction):
    with pytest.raises(ValueError, match=r"label fraction .* is outside \(0, 1\]") as err:
        P.balanced_subset(np.arange(10) % 2, fraction, seed=0)
    assert "\n" not in str(err.value)


def test_bad_labels_are_an_error():
    with pytest.raises(ValueError, match="1-D integer array"):
        P.balanced_subset(np.zeros((3, 2), int), 0.5, seed=0)
    with pytest.raises(ValueError, match="1-D integer array"):
        P.balanced_subset(np.array([0.5, 1.0]), 0.5, seed=0)


def test_split_validation_is_disjoint_balanced_and_leaves_every_class_in_training():
    labels = uneven_labels()
    train, val = P.split_validation(labels, 0.2, seed=0)
    assert set(train).isdisjoint(val)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    # round(0.2 n_c), at least 1, at most n_c - 1: the single example of class 3 stays.
    assert counts(labels, val) == {0: 10, 1: 6, 2: 1, 4: 2}
    assert set(labels[train]) == set(labels)
    all_train, none = P.split_validation(labels, 0.0, seed=0)
    assert len(none) == 0 and len(all_train) == len(labels)


def test_parse_protocols_and_fractions():
    assert P.parse_protocols("knn, linear") == ("linear", "knn")  # canonical order
    assert P.parse_protocols(None) == P.DEFAULT_PROTOCOLS
    with pytest.raises(ValueError) as err:
        P.parse_protocols("linear,fine_tune")
    assert str(err.value) == (
        "unknown protocol 'fine_tune'; valid protocols: linear, knn, label_efficiency, "
        "finetune, transfer"
    )
    with pytest.raises(ValueError, match="unknown protocol"):
        P.parse_protocols(",")
    assert P.parse_fractions("0.01, 0.1") == (0.01, 0.1)
    assert P.parse_fractions([1]) == (1.0,)
    with pytest.raises(ValueError, match=r"label fraction '2' is outside \(0, 1\]"):
        P.parse_fractions("0.1,2")


def test_finetune_overrides_are_checked():
    cfg = P.finetune_config({"epochs": 2, "crop_scale": (0.3, 1.0)})
    assert cfg.epochs == 2 and tuple(cfg.crop_scale) == (0.3, 1.0)
    with pytest.raises(ValueError, match=r"unknown finetune key 'epoch'; valid keys: .*epochs"):
        P.finetune_config({"epoch": 2})
    with pytest.raises(ValueError, match=r"finetune.batch_size=0 must be a positive integer"):
        P.finetune_config({"batch_size": 0})


def rows_for(fraction, probe, finetune, scratch):
    return [
        P.make_row("label_efficiency", "d", method, fraction, 10, dict(top1=t, top5=1.0))
        for method, t in (
            ("linear probe", probe),
            ("fine-tune", finetune),
            ("from scratch", scratch),
        )
    ]


def test_rows_and_margins():
    row = P.make_row(
        "linear", "fashion_mnist", "linear probe", 1.0, 60000, dict(top1=0.9, top5=0.99, l2=1e-3)
    )
    assert row["labels"] == "100% (60000)" and row["l2"] == 1e-3
    assert P.labels_text(0.01, 600) == "1% (600)"
    rows = rows_for(0.01, 0.70, 0.65, 0.60) + rows_for(0.1, 0.80, 0.86, 0.83)
    margins = P.label_efficiency_margins(rows)
    assert margins["0.01"] == pytest.approx(
        dict(
            finetune_minus_probe=-0.05,
            finetune_minus_scratch=0.05,
            pretrained_best_minus_scratch=0.10,
        )
    )
    assert margins["0.1"] == pytest.approx(
        dict(
            finetune_minus_probe=0.06,
            finetune_minus_scratch=0.03,
            pretrained_best_minus_scratch=0.03,
        )
    )
    report = dict(
        rows=rows,
        margins=margins,
        objective="simclr",
        encoder="convnet",
        checkpoint_step=5,
        dataset="d",
        layer="pooled",
        seed=0,
    )
    text = P.format_report(report)
    assert "| protocol | dataset | labels | method | top1 | top5 |" in text
    assert "| label_efficiency | d | 10% (10) | fine-tune | 0.8600 | 1.0000 |" in text
    assert "labels 1%: fine-tune - probe -0.0500, fine-tune - scratch +0.0500, " in text
