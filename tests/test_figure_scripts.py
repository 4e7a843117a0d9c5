"""experiments/views_figure.py and experiments/equal_seconds_figure.py: the window statistics
and pixel coverage against direct computations, the views against the library's, the
measured points read back from their records, and both scripts writing their PNGs without
overwriting."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name: str):
    key = f"{name}_under_test"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            key, os.path.join(ROOT, "experiments", f"{name}.py")
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module  # AutoGraph looks functions' modules up here
        spec.loader.exec_module(module)
    return sys.modules[key]


views_figure = _load("views_figure")
equal_seconds_figure = _load("equal_seconds_figure")


def test_coverage_counts_each_pixel_by_hand():
    windows = np.array([[0, 0, 2, 3], [1, 1, 2, 2], [3, 3, 1, 1]])
    got = views_figure.coverage(windows, (4, 5))
    want = np.zeros((4, 5))
    for top, left, h, w in windows:
        want[top : top + h, left : left + w] += 1
    np.testing.assert_array_equal(got, want / 3)


def test_window_stats_and_the_sampled_windows_follow_the_ranges():
    shape = (300, 400)
    windows = views_figure.sample_windows(shape, 400, seed=0)
    assert windows.shape == (400, 4)
    assert (windows[:, :2] >= 0).all()
    assert (windows[:, 0] + windows[:, 2] <= shape[0]).all()
    assert (windows[:, 1] + windows[:, 3] <= shape[1]).all()
    stats = views_figure.window_stats(windows, shape)
    np.testing.assert_allclose(
        stats["area"], windows[:, 2] * windows[:, 3] / (300 * 400), rtol=1e-12
    )
    np.testing.assert_allclose(stats["log_ratio"], np.log(windows[:, 3] / windows[:, 2]))
    assert stats["inside"] > 0.99
    assert len({tuple(w) for w in windows}) > 390  # independent windows, not one repeated
    # A window outside the ranges is counted as such.
    bad = np.array([[0, 0, 300, 100]])  # aspect 1/3
    assert views_figure.window_stats(bad, shape)["inside"] == 0.0


def test_example_views_are_the_librarys():
    import tensorflow as tf

    from ssljax.data import host_views as H

    image = np.random.default_rng(0).integers(0, 256, (120, 160, 3), np.uint8)
    windows, views = views_figure.example_windows_and_views(image, seed=3)
    assert windows.shape == (8, 4)
    assert views["image"].shape == (2, 224, 224, 3)
    assert views["local_image"].shape == (6, 96, 96, 3)
    spec = views_figure.host_views()
    seeds = H.view_seeds(H.crop_seed(3, 0), 0, spec.num_views)
    encoded = tf.io.encode_jpeg(image, quality=95)
    want = H.example_views(encoded, seeds, spec, channels=3)
    np.testing.assert_array_equal(views["image"], want["image"])
    np.testing.assert_array_equal(views["local_image"], want["local_image"])


def test_equal_seconds_points_come_from_the_records(tmp_path):
    run = {
        "seconds": 100.0,
        "steps": 272,
        "top1": 0.8965,
        "probes": [{"probe_at": 50.0, "steps": 136, "top1": 0.8924}],
    }
    path = tmp_path / "peer.json"
    path.write_text(json.dumps(run))
    assert equal_seconds_figure.lightly_points([str(path)]) == [
        (50.0, 0.8924, 136),
        (100.0, 0.8965, 272),
    ]
    with open(os.path.join(ROOT, "experiments", "equal_seconds.json")) as f:
        record = json.load(f)
    series = equal_seconds_figure.ssljax_series(record)
    demo = dict((s, t) for s, t, _ in series["12x12 views (the demo)"])
    assert demo[100.0] == 0.9088  # the README's demo figure
    for peer in record["lightly"]:
        assert os.path.exists(os.path.join(ROOT, peer))


@pytest.mark.parametrize(
    "script,args",
    [
        ("equal_seconds_figure.py", []),
        ("views_figure.py", ["--samples=20"]),
    ],
)
def test_scripts_write_their_figure_and_keep_an_existing_one(tmp_path, script, args):
    out = tmp_path / "figure.png"
    command = [sys.executable, os.path.join(ROOT, "experiments", script), f"--out={out}", *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode != 0 and "--overwrite" in again.stderr
