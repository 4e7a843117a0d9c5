"""Choosing which encoder layers to probe, and which one to report."""

import pytest

from ssljax.evaluation.checkpoint_eval import (
    best_validation_top1,
    format_report,
    resolve_layers,
    select_layer,
    summarise_layers,
)

SOWN = ["block1", "block2", "block3", "pooled"]


def test_resolve_layers_all_list_and_single():
    assert resolve_layers("all", SOWN) == SOWN
    assert resolve_layers("block3", SOWN) == ["block3"]
    assert resolve_layers("block2, pooled", SOWN) == ["block2", "pooled"]


@pytest.mark.parametrize("spec", ["block9", "block1,conv", ""])
def test_resolve_layers_rejects_unknown_names_with_the_valid_ones(spec):
    with pytest.raises(ValueError) as err:
        resolve_layers(spec, SOWN)
    message = str(err.value)
    assert "\n" not in message and "block1" in message and "pooled" in message


def _report(val, test):
    return dict(
        top1=test,
        top5=1.0,
        knn={"top1": 0.5},
        feature_dim=4,
        val_top1={"0.0": val - 0.1, "0.01": val},
        train_top1=0.99,
    )


def test_select_layer_uses_validation_never_test():
    reports = {"block2": _report(val=0.80, test=0.95), "block3": _report(val=0.85, test=0.70)}
    assert select_layer(reports) == "block3"
    assert best_validation_top1(reports["block2"]) == pytest.approx(0.80)


def test_select_layer_ties_go_to_the_first_listed():
    reports = {"block2": _report(val=0.8, test=0.7), "block3": _report(val=0.8, test=0.9)}
    assert select_layer(reports) == "block2"


def test_without_a_grid_the_training_accuracy_decides():
    reports = {
        "a": dict(_report(0, 0), val_top1={}, train_top1=0.6),
        "b": dict(_report(0, 0), val_top1={}, train_top1=0.7),
    }
    assert select_layer(reports) == "b"


def test_summary_and_table_list_every_layer():
    reports = {"block2": _report(val=0.80, test=0.95), "block3": _report(val=0.85, test=0.70)}
    summary = summarise_layers(reports)
    assert summary["block2"] == dict(
        top1=0.95, top5=1.0, knn_top1=0.5, val_top1=0.80, feature_dim=4
    )
    report = dict(
        reports["block3"],
        layer="block3",
        layers=summary,
        objective="simclr",
        encoder="convnet",
        checkpoint_step=3,
        dataset="d",
    )
    table = format_report(report)
    assert "block3" in table and "block2 (val top-1 0.8000)" in table
