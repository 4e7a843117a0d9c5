"""evaluate_workdir on the streamed path: report keys, raw-pixel skip, float16, process 0."""

import json
import os

import jax
import numpy as np
import pytest

from ssljax.data import input_pipeline
from ssljax.evaluation import checkpoint_eval
from ssljax.evaluation.checkpoint_eval import (
    EVAL_DEFAULTS,
    evaluate_features,
    evaluate_workdir,
    format_report,
    raw_pixel_skip_reason,
)

STEP = 7


@pytest.fixture
def fake_checkpoint(monkeypatch, make_tiny_config, tiny_fashion_mnist):
    """Makes ``restore_for_eval`` return the tiny config's initial state as step 7, so the
    evaluation runs without pretraining."""
    from ssljax.training import loop

    def install(**eval_overrides):
        config = make_tiny_config(tiny_fashion_mnist)
        for key, value in eval_overrides.items():
            config.eval[key] = value
        setup = loop.build_setup(config)
        state = jax.device_get(loop.initial_state(config, setup))
        monkeypatch.setattr(
            loop, "restore_for_eval", lambda workdir, step=None: (config, setup, state, STEP)
        )
        return config

    return install


def test_default_report_keys_and_unchanged_raw_pixel_numbers(
    fake_checkpoint, tmp_path, tiny_fashion_mnist, capsys
):
    config = fake_checkpoint()
    report = evaluate_workdir(str(tmp_path))
    on_disk = json.load(open(tmp_path / "linear_eval.json"))
    assert on_disk["checkpoint_step"] == STEP and on_disk["top1"] == report["top1"]
    for key in (
        "top1",
        "top5",
        "l2",
        "val_top1",
        "knn",
        "layer",
        "grid",
        "raw_pixels",
        "random_init",
        "feature_dim",
        "solver",
        "feature_dtype",
    ):
        assert key in on_disk, key
    assert "raw_pixels_skipped" not in on_disk
    assert on_disk["solver"] == "lbfgs" and on_disk["feature_dtype"] == "float32"
    assert on_disk["num_train"] == 96 and on_disk["num_test"] == 40
    # Raw pixels are computed on the host exactly as the in-memory path did: same numbers.
    train_images, train_labels = input_pipeline.load_split_arrays(
        "fashion_mnist", "train", data_dir=tiny_fashion_mnist
    )
    test_images, test_labels = input_pipeline.load_split_arrays(
        "fashion_mnist", "test", data_dir=tiny_fashion_mnist
    )
    flat = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255.0  # noqa: E731
    before = evaluate_features(
        flat(train_images),
        train_labels,
        flat(test_images),
        test_labels,
        num_classes=10,
        eval_cfg=config.eval,
    )
    assert on_disk["raw_pixels"] == json.loads(json.dumps(before))
    assert on_disk["raw_pixels"]["top1"] >= 0.9  # the generated classes are bars
    assert "[linear_eval] raw pixels: top1" in capsys.readouterr().out


def test_float16_raw_pixel_skip_and_only_process_0_writes(
    fake_checkpoint, tmp_path, monkeypatch, capsys
):
    fake_checkpoint(feature_dtype="float16", max_raw_pixel_bytes=96 * 784 * 2 - 1)
    monkeypatch.setattr(checkpoint_eval, "is_main_process", lambda: False)
    report = evaluate_workdir(str(tmp_path))
    assert not os.path.exists(tmp_path / "linear_eval.json")
    assert capsys.readouterr().out == ""
    assert "raw_pixels" not in report and report["feature_dtype"] == "float16"
    reason = report["raw_pixels_skipped"]
    assert "96 x 784 float16" in reason and "eval.max_raw_pixel_bytes" in reason
    assert "\n" not in reason
    assert report["random_init"]["top1"] >= 0.0
    assert f"raw pixels (skipped: {reason})" in format_report(report)


def test_raw_pixel_skip_threshold_default():
    limit = EVAL_DEFAULTS["max_raw_pixel_bytes"]
    assert raw_pixel_skip_reason(60000, (28, 28, 1), np.float32, limit) is None
    assert raw_pixel_skip_reason(50000, (32, 32, 3), np.float32, limit) is None
    imagenet = raw_pixel_skip_reason(1281167, (224, 224, 3), np.float32, limit)
    assert imagenet.startswith("1281167 x 150528 float32 raw-pixel train features are 718.4 GiB")
    assert raw_pixel_skip_reason(10, (2, 2, 1), np.float16, 80) is None
    assert raw_pixel_skip_reason(10, (2, 2, 1), np.float16, 79) is not None
