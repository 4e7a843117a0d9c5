"""The comparison script's table: every row says which layer its probe read."""

import importlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
compare = importlib.import_module("compare_methods")


def test_probed_layer_names_the_grid_of_feature_maps_only():
    assert compare.probed_layer({"layer": "block4", "grid": 3}) == "block4 3x3"
    assert compare.probed_layer({"layer": "pooled", "grid": 3}) == "pooled"
    assert compare.probed_layer({"layer": "block2"}) == "block2"


def test_steps_for_budget():
    assert compare.steps_for_budget(0.5, 120.0) == 240
    assert compare.steps_for_budget(0.7, 120.0) == 171
    assert compare.steps_for_budget(500.0, 120.0) == 1


def test_markdown_table_rows_and_baselines():
    rows = [dict(method="simclr", steps=240, images_seen=61440, layer="block4 3x3", top1=0.88591,
                 knn_top1=0.8215, collapse_std=0.0864, collapse_std_ref=0.0884,
                 effective_rank=21.12, embedding_dim=128),
            dict(method="rotation", steps=300, images_seen=76800, top1=0.9, knn_top1=None,
                 collapse_std=None, collapse_std_ref=None, effective_rank=None, embedding_dim=0)]
    baselines = {"random encoder": dict(top1=0.879, knn_top1=0.7801, layer="block4 3x3"),
                 "raw pixels": dict(top1=0.8461, knn_top1=0.7913, layer="pixels")}
    table = compare.markdown_table(rows, baselines, dataset="fashion_mnist", budget=2)
    lines = table.strip().splitlines()
    assert lines[2].count("|") == lines[3].count("|") == 9
    assert "| simclr | 240 | 61,440 | block4 3x3 | 0.8859 | 0.8215 | 0.0864 (0.0884) | 21.1 (128) |" in table
    assert "| rotation | 300 | 76,800 | - | 0.9000 | - | - (-) | - (0) |" in table
    assert "| *random encoder* | - | - | block4 3x3 | 0.8790 | 0.7801 | - | - |" in table
    assert all(line.count("|") == 9 for line in lines[2:])
