"""experiments/benchmark_input.py at tiny sizes: the synthetic ImageNet-like JPEGs, the
image-folder layout, the timer, the core pinning, the derived figures' arithmetic and one
end-to-end run whose JSON is checked key by key (speeds are not asserted)."""

import importlib.util
import io
import json
import os
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ssljax.data.datasets import spec_from_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load():
    name = "benchmark_input_under_test"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(ROOT, "experiments", "benchmark_input.py")
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # AutoGraph looks functions' modules up here
        spec.loader.exec_module(module)
    return sys.modules[name]


bench = _load()


@pytest.fixture(scope="module")
def twenty_jpegs():
    """One full cycle of the 20 ImageNet shapes."""
    return bench.synthetic_jpegs(20, seed=0)


def test_shape_list_has_imagenets_mean_size():
    shapes = np.array(bench.IMAGENET_SHAPES, float)
    width, height = shapes.mean(axis=0)
    # ImageNet's mean image is about 400 x 350 pixels.
    assert abs(width - 400) / 400 < 0.01 and abs(height - 350) / 350 < 0.01
    assert bench.image_shapes(45) == [bench.IMAGENET_SHAPES[i % 20] for i in range(45)]
    with pytest.raises(ValueError, match="num_images=0"):
        bench.image_shapes(0)


def test_synthetic_jpegs_are_valid_natural_looking_and_imagenet_sized(twenty_jpegs):
    jpegs, shapes = twenty_jpegs
    assert shapes == list(bench.IMAGENET_SHAPES)
    for data, (width, height) in zip(jpegs, shapes):
        image = Image.open(io.BytesIO(data))
        assert image.format == "JPEG" and image.size == (width, height)
        pixels = tf.io.decode_jpeg(data, channels=3).numpy()
        assert pixels.shape == (height, width, 3)
        # Not flat colour: texture over the whole range, and neighbouring pixels correlate
        # (smooth fields with edges), as in photographs.
        grey = pixels.astype(float).mean(axis=2)
        assert grey.std() > 15
        corr = np.corrcoef(grey[:, :-1].ravel(), grey[:, 1:].ravel())[0, 1]
        assert 0.5 < corr < 0.999
    stats = bench.jpeg_stats(jpegs, shapes)
    assert stats["count"] == 20
    assert stats["mean_bytes"] == pytest.approx(np.mean([len(b) for b in jpegs]))
    assert 50e3 <= stats["mean_bytes"] <= 110e3
    assert (stats["mean_width"], stats["mean_height"]) == pytest.approx(
        tuple(np.mean(bench.IMAGENET_SHAPES, axis=0))
    )
    # Deterministic from the seed; another seed gives other images.
    assert bench.synthetic_jpegs(2, seed=0)[0] == jpegs[:2]
    assert bench.synthetic_jpegs(2, seed=1)[0] != jpegs[:2]


def test_folder_layout_is_an_image_folder_with_repeats(tmp_path):
    jpegs, _ = bench.synthetic_jpegs(3)
    root = bench.write_folder(str(tmp_path / "folder"), jpegs, files=7, num_classes=2)
    for i in range(7):
        path = bench.folder_file(root, i, 2)
        assert path == os.path.join(root, "train", f"{i % 2:02d}", f"{i:06d}.jpg")
        with open(path, "rb") as f:
            assert f.read() == jpegs[i % 3]
    spec = spec_from_config({"name": "image_folder", "data_dir": root, "image_size": 224})
    assert spec.pretrain_examples == 7 and spec.num_classes == 2
    with pytest.raises(ValueError, match="exists"):
        bench.write_folder(root, jpegs, num_classes=2)
    with pytest.raises(ValueError, match="files=2 is invalid"):
        bench.write_folder(str(tmp_path / "other"), jpegs, files=2)


def test_timed_rates_counts_units_per_second():
    def step():
        time.sleep(0.01)
        return 3

    rates, counts = bench.timed_rates(step, seconds=0.05, repeats=2, warmup=1)
    # Every step takes at least 10 ms: at most 300 units/s, and a window closes once 50 ms
    # have passed, so after at most 5 steps.
    assert len(rates) == 2 and all(0 < r <= 300 for r in rates)
    assert all(1 <= c <= 5 for c in counts)


def test_epoch_starts_marks_windows_holding_an_epochs_first_batch():
    # Windows [3, 5), [5, 9), [9, 12) with 4 batches per epoch: batches 4 and 8 open epochs.
    assert bench.epoch_starts(3, [2, 4, 3], 4) == [True, True, False]
    assert bench.epoch_starts(0, [1, 1], 10) == [True, False]
    assert bench.epoch_starts(1, [7], 8) == [False]
    assert bench.epoch_starts(1, [8], 8) == [True]
    # The headline rate leaves out windows with a restart, unless every window has one.
    summary = bench._rate_summary([10.0, 1.0, 30.0], 2, "views", [False, True, False])
    assert summary["views_per_s"] == 20.0 and summary["views_per_s_per_core"] == 10.0
    assert bench._rate_summary([4.0, 2.0], 1, "views", [True, True])["views_per_s"] == 3.0
    with pytest.raises(ValueError, match="steps_per_epoch=0 is invalid"):
        bench.epoch_starts(0, [1], 0)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_pinned_cores_pins_every_thread_and_restores():
    before = os.sched_getaffinity(0)
    with bench.pinned_cores(1) as cores:
        assert len(cores) == 1
        assert os.sched_getaffinity(0) == set(cores)
    assert os.sched_getaffinity(0) == before
    with pytest.raises(ValueError, match="workers=.* is invalid"):
        with bench.pinned_cores(len(before) + 1):
            pass


def test_derived_figures_are_the_arithmetic():
    derived = bench.derived_figures(700.0, 1400.0, 500.0, workers=2, reference_images_per_s=2470)
    assert derived["reference_views_per_s"] == 4940
    assert derived["b_over_c_per_core"] == pytest.approx((1400 / 2) / (500 / 2))  # 2.8
    assert derived["b_over_c_meets_target"] is True
    assert derived["b_views_over_a_images"] == pytest.approx(2.0)
    assert derived["b_over_a_meets_target"] is True
    cores = derived["cores_per_accelerator"]
    assert cores["b"] == pytest.approx(4940 / 700)
    assert cores["c"] == pytest.approx(4940 / 250)
    assert cores["a"] == pytest.approx(2470 / 350)
    assert any("4940 / 700.00 = 7.1" in line for line in derived["arithmetic"])
    # A skipped part leaves its figures out.
    partial = bench.derived_figures(700.0, 600.0, None, workers=1)
    assert partial["b_over_c_per_core"] is None and "c" not in partial["cores_per_accelerator"]
    assert partial["b_views_over_a_images"] == pytest.approx(600 / 700)
    assert partial["b_over_a_meets_target"] is False


def test_bad_arguments_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="--skip='x' is invalid; valid: b, c, stages"):
        bench.parse_args(["--skip", "x"])
    with pytest.raises(ValueError, match="--epoch_images=10 is invalid"):
        bench.parse_args(["--num_images", "16", "--batch_size", "8", "--epoch_images", "10"])
    existing = tmp_path / "r.json"
    existing.write_text("{}")
    with pytest.raises(ValueError, match="exists"):
        bench.parse_args(["--out", str(existing)])


def test_end_to_end_json_has_the_documented_keys_and_consistent_figures(tmp_path, capsys):
    out, png = tmp_path / "results.json", tmp_path / "input.png"
    argv = ["--num_images", "16", "--epoch_images", "32", "--batch_size", "8"]
    argv += ["--workers", "1", "--seconds", "0.2", "--repeats", "1", "--skip", "c"]
    results = bench.main(argv + ["--out", str(out), "--plot", str(png)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == json.loads(
        json.dumps(results)
    )
    assert set(results) == {
        "machine",
        "config",
        "images",
        "a_limit",
        "b_ssljax",
        "c_torchvision",
        "stages",
        "derived",
    }
    assert results["images"]["count"] == 16 and results["images"]["mean_bytes"] > 0
    assert results["config"]["workers"] == 1 and results["config"]["epoch_images"] == 32
    a, b = results["a_limit"], results["b_ssljax"]
    assert a["images_per_s"] > 0 and a["images_per_s_per_core"] == a["images_per_s"]
    assert a["epoch_restart_in_window"] == [False]
    assert results["c_torchvision"] == {"skipped": "--skip c"}
    if bench.ssljax_missing() is None:
        assert b["views_per_s"] > 0 and b["views_per_s_per_core"] == b["views_per_s"]
        assert b["images_per_s"] == pytest.approx(b["views_per_s"] / 2)
        assert b["batch_shape"] == [1, 8, 2, 224, 224, 3]
        assert b["steps_per_epoch"] == 32 // 8
        assert len(b["epoch_restart_in_window"]) == len(b["rates"]) == 1
        assert b["first_batch_s"] > 0
    else:
        assert "skipped" in b
    stages = results["stages"]
    assert tuple(stages["ms_per_image"]) == bench.STAGES
    assert stages["decoded_pixels_match"] is True
    assert stages["decoded_pixels"] == sum(w * h for w, h in bench.image_shapes(16))
    assert stages["bytes_per_batch"] == 8 * 2 * 224 * 224 * 3
    cumulative = stages["cumulative_ms_per_image"]
    per_image = stages["ms_per_image"]
    assert per_image["resize"] == pytest.approx(
        cumulative["resize"] - cumulative["windows_and_cuts"]
    )
    assert per_image["decode"] == pytest.approx(cumulative["decode"])
    assert per_image["batch"] == pytest.approx(cumulative["batch"] - cumulative["resize"])
    assert per_image["batch"] > 0 and per_image["device_put"] > 0  # timed alone
    # The derived figures are the arithmetic on the measured rates.
    expected = bench.derived_figures(
        a["images_per_s"], b.get("views_per_s"), None, workers=1, reference_images_per_s=2470
    )
    assert results["derived"] == expected
    assert results["derived"]["cores_per_accelerator"]["a"] == pytest.approx(
        2470 / a["images_per_s"]
    )
    if "views_per_s" in b:
        assert results["derived"]["cores_per_accelerator"]["b"] == pytest.approx(
            4940 / b["views_per_s"]
        )
    assert png.stat().st_size > 0
    # The figure can be redrawn from the saved JSON alone.
    again = tmp_path / "again.png"
    bench.main(["--from_json", str(out), "--plot", str(again)])
    assert again.stat().st_size > 0


def test_peer_runs_in_its_own_process_or_says_why_not(tmp_path):
    jpegs, _ = bench.synthetic_jpegs(8)
    root = bench.write_folder(str(tmp_path / "folder"), jpegs)
    paths = [bench.folder_file(root, i) for i in range(8)]
    peer = bench.measure_peer_process(
        paths, root, batch_size=4, epoch_images=8, workers=1, seconds=0.1, repeats=1
    )
    if bench.torch_missing() is not None:
        assert "not installed" in peer["skipped"]
        return
    assert peer["views_per_s"] > 0 and peer["views_per_s_per_core"] == peer["views_per_s"]
    assert peer["images_per_s"] == pytest.approx(peer["views_per_s"] / 2)
    assert peer["steps_per_epoch"] == 2 and "RandomResizedCrop(224" in peer["included"]


def test_opencv_backend_is_measured_and_recorded(tmp_path):
    """``--host_resize_backend opencv`` runs (b) through OpenCV's resize and records it."""
    assert bench.ssljax_missing() is None
    argv = ["--num_images", "16", "--epoch_images", "32", "--batch_size", "8", "--workers", "1"]
    argv += ["--seconds", "0.2", "--repeats", "1", "--skip", "c,stages"]
    argv += ["--host_resize", "bilinear", "--host_resize_backend", "opencv"]
    results = bench.main(argv + ["--out", str(tmp_path / "r.json")])
    assert results["config"]["host_resize"] == "bilinear"
    assert results["config"]["host_resize_backend"] == "opencv"
    b = results["b_ssljax"]
    assert b["views_per_s"] > 0 and b["batch_shape"] == [1, 8, 2, 224, 224, 3]
    assert "bilinear resize (opencv)" in b["included"]
