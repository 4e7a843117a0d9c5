"""The comparison script's table: every row says which layer its probe read."""

import os

from ssljax.experiments import compare_methods as compare


def test_probed_layer_names_the_grid_of_feature_maps_only():
    assert compare.probed_layer({"layer": "block4", "grid": 3}) == "block4 3x3"
    assert compare.probed_layer({"layer": "pooled", "grid": 3}) == "pooled"
    assert compare.probed_layer({"layer": "block2"}) == "block2"


def test_steps_for_budget():
    assert compare.steps_for_budget(0.5, 120.0) == 240
    assert compare.steps_for_budget(0.7, 120.0) == 171
    assert compare.steps_for_budget(500.0, 120.0) == 1


def test_markdown_table_rows_and_baselines():
    rows = [
        dict(
            method="simclr",
            steps=240,
            images_seen=61440,
            layer="block4 3x3",
            top1=0.88591,
            knn_top1=0.8215,
            collapse_std=0.0864,
            collapse_std_ref=0.0884,
            effective_rank=21.12,
            embedding_dim=128,
        ),
        dict(
            method="rotation",
            steps=300,
            images_seen=76800,
            top1=0.9,
            knn_top1=None,
            collapse_std=None,
            collapse_std_ref=None,
            effective_rank=None,
            embedding_dim=0,
        ),
    ]
    baselines = {
        "random encoder": dict(top1=0.879, knn_top1=0.7801, layer="block4 3x3"),
        "raw pixels": dict(top1=0.8461, knn_top1=0.7913, layer="pixels"),
    }
    table = compare.markdown_table(rows, baselines, dataset="fashion_mnist", budget=2)
    lines = table.strip().splitlines()
    assert lines[2].count("|") == lines[3].count("|") == 9
    assert (
        "| simclr | 240 | 61,440 | block4 3x3 | 0.8859 | 0.8215 | 0.0864 (0.0884) | 21.1 (128) |"
        in table
    )
    assert "| rotation | 300 | 76,800 | - | 0.9000 | - | - (-) | - (0) |" in table
    assert "| *random encoder* | - | - | block4 3x3 | 0.8790 | 0.7801 | - | - |" in table
    assert all(line.count("|") == 9 for line in lines[2:])


def test_planned_steps_are_sized_once_and_kept_for_a_resumed_run(tmp_path):
    import json

    import pytest

    workdir = str(tmp_path / "byol")
    calls = []

    def size():
        calls.append(1)
        return 165, 0.726

    assert compare.planned_steps(workdir, 120.0, size) == (165, 0.726, False)
    with open(os.path.join(workdir, compare.PLAN_FILE)) as f:
        assert json.load(f) == {"budget_seconds": 120.0, "steps": 165, "seconds_per_step": 0.726}

    def fail():
        raise AssertionError("timed again")

    assert compare.planned_steps(workdir, 120.0, fail) == (165, 0.726, True)
    assert len(calls) == 1
    with pytest.raises(
        ValueError,
        match=r"sized for --budget_minutes 2, not 10; pass that "
        r"budget or another --workdir",
    ):
        compare.planned_steps(workdir, 600.0, fail)


def test_last_logged_metrics(tmp_path):
    assert compare.last_logged_metrics(str(tmp_path)) == {}
    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 50, "loss": 2.0}\n{"step": 100, "loss": 1.5}\n'
    )
    assert compare.last_logged_metrics(str(tmp_path)) == {"step": 100, "loss": 1.5}


def test_check_budget_accepts_the_same_or_an_unrecorded_budget():
    import pytest

    compare.check_budget("w", None, 10.0)
    compare.check_budget("w", 10.0, 10.0)
    with pytest.raises(
        ValueError,
        match=r"^w holds a run sized for --budget_minutes 5, not 10; "
        r"pass that budget or another --workdir$",
    ):
        compare.check_budget("w", 5.0, 10.0)
