"""Pretrain -> checkpoint -> linear eval, through the library and through the CLIs."""

import json
import os
import subprocess
import sys

import tensorflow_datasets as tfds

from ssljax.evaluation.checkpoint_eval import evaluate_workdir, format_report
from ssljax.training.loop import train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def check_report(report, workdir, step):
    on_disk = json.load(open(os.path.join(workdir, "linear_eval.json")))
    assert on_disk["checkpoint_step"] == report["checkpoint_step"] == step
    for key in ("top1", "top5"):
        assert 0.0 <= on_disk[key] <= 1.0
        assert 0.0 <= on_disk["raw_pixels"][key] <= 1.0
        assert 0.0 <= on_disk["random_init"][key] <= 1.0
    assert on_disk["top5"] >= on_disk["top1"]
    assert "top1" in on_disk["knn"] and on_disk["knn"]["k"] >= 1
    return on_disk


def test_mock_cifar10_pretrain_then_linear_eval(tmp_path, make_tiny_config):
    config = make_tiny_config(str(tmp_path / "tfds"))
    config.dataset.name = "cifar10"
    config.total_steps = 3
    with tfds.testing.mock_data(num_examples=48):
        result = train_and_evaluate(config, str(tmp_path / "run"), progress=False)
        assert result["status"] == "completed" and result["step"] == 3
        report = evaluate_workdir(str(tmp_path / "run"))
    on_disk = check_report(report, str(tmp_path / "run"), 3)
    assert on_disk["dataset"] == "cifar10" and on_disk["feature_dim"] == 16
    assert on_disk["raw_pixels"]["feature_dim"] == 32 * 32 * 3
    assert "random-init encoder" in format_report(report)


def test_cli_pretrain_then_linear_eval_on_generated_fashion_mnist(tiny_fashion_mnist, tmp_path):
    workdir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=ROOT, SSLJAX_NO_DOWNLOAD="1")
    overrides = [
        f"--config.dataset.data_dir={tiny_fashion_mnist}",
        "--config.batch_size=16",
        "--config.total_steps=4",
        "--config.model.encoder_kwargs.widths=(8,16)",
        "--config.model.encoder_kwargs.strides=(2,2)",
        "--config.model.projector.hidden_dims=(16,)",
        "--config.model.projector.output_dim=8",
        "--config.eval.batch_size=32",
        "--config.eval.knn_k=5",
    ]
    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssljax.train",
            "--config=configs/simclr.py:fashion_mnist",
            f"--workdir={workdir}",
            *overrides,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert "completed at step 4" in train.stdout
    assert "4/4" in train.stderr  # the progress bar's final line
    evaluate = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssljax.linear_eval",
            f"--workdir={workdir}",
            "--layer=block1,pooled",
            "--grid=2",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    assert "| features | top1 | top5 | knn_top1 |" in evaluate.stdout
    report = check_report(json.load(open(workdir / "linear_eval.json")), str(workdir), 4)
    # Both layers probed; the reported one is the better by validation top-1, and the
    # random encoder made the same choice among the same layers.
    from ssljax.evaluation.checkpoint_eval import select_layer

    assert set(report["layers"]) == {"block1", "pooled"}
    assert report["layers"]["block1"]["feature_dim"] == 2 * 2 * 8
    assert report["layers"]["pooled"]["feature_dim"] == 16
    val = {k: dict(val_top1={"x": v["val_top1"]}) for k, v in report["layers"].items()}
    assert report["layer"] == select_layer(val)
    assert report["top1"] == report["layers"][report["layer"]]["top1"]
    assert report["random_init"]["layer"] in ("block1", "pooled")
    # The generated classes are bars at class-dependent rows: raw pixels separate them.
    assert report["raw_pixels"]["top1"] >= 0.9
