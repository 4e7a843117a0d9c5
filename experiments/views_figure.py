"""Views as the papers make them, in one figure: a photo, its Inception windows over the whole
image, the views cut from them, and the windows' distribution.

  python experiments/views_figure.py [--out docs/figures/host_views.png] [--samples 4000]
      [--seed 0] [--overwrite]

The photo is scikit-learn's ``china.jpg`` (640 x 427, an ImageNet-sized photograph shipped
with scikit-learn). The crops are a training run's host views with multi-crop: 2 global
crops of 224 (area 0.08-1, aspect 3/4-4/3) and 6 local crops of 96 (area 0.05-0.14), cut by
``ssljax.data.host_views.example_views`` from one decode of the JPEG with the seeds
``view_seeds`` gives example 0 of an epoch. The panels:

* the photo with the 8 windows; the central 427 x 427 square (the shorter side's square of
  the earlier resize-then-centre-crop path, which no view could leave) is outlined;
* the 2 global and 6 local views;
* histograms of the global windows' area fraction and log aspect ratio over ``--samples``
  windows on each of four image shapes (landscape, portrait, square, wide), against the
  specified ranges;
* how often each pixel of the photo lies in a global window: the corners and the sides
  outside the central square are in views too.

Writes ``--out`` (not overwritten unless ``--overwrite``) and prints the window statistics.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402

import numpy as np  # noqa: E402

GLOBAL = dict(count=2, size=224, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
LOCAL = dict(count=6, size=96, scale=(0.05, 0.14), ratio=(3 / 4, 4 / 3))
SHAPES = ((375, 500), (500, 375), (400, 400), (300, 600))  # (height, width)


def photo() -> np.ndarray:
    """``uint8 [427, 640, 3]``: scikit-learn's sample photograph."""
    from sklearn.datasets import load_sample_image

    return np.asarray(load_sample_image("china.jpg"), np.uint8)


def host_views():
    from ssljax.data.host_views import CropSpec, HostViews

    return HostViews((CropSpec(**GLOBAL), CropSpec(**LOCAL)))


def example_windows_and_views(image: np.ndarray, seed: int) -> tuple[np.ndarray, dict]:
    """The windows ``int [8, 4]`` (top, left, h, w; global first) and the views of example
    0 of epoch 0 for training seed ``seed``, from the image's JPEG bytes."""
    import tensorflow as tf

    from ssljax.data import host_views as H

    views = host_views()
    encoded = tf.io.encode_jpeg(image, quality=95)
    seeds = H.view_seeds(H.crop_seed(seed, 0), 0, views.num_views)
    shape = tf.shape(tf.io.decode_jpeg(encoded))
    windows, first = [], 0
    for spec in views.crops:
        for i in range(spec.count):
            window = H.crop_window(shape, seeds[first + i], scale=spec.scale, ratio=spec.ratio)
            windows.append([int(v) for v in window])
        first += spec.count
    out = H.example_views(encoded, seeds, views, channels=3)
    return np.asarray(windows), {k: np.asarray(v) for k, v in out.items()}


def sample_windows(shape_hw: tuple[int, int], num: int, seed: int) -> np.ndarray:
    """``int [num, 4]`` global windows (top, left, h, w) of an image of ``shape_hw``, one per
    stateless seed."""
    import tensorflow as tf

    from ssljax.data import host_views as H

    shape = tf.constant([shape_hw[0], shape_hw[1], 3], tf.int32)
    base = tf.constant(H.crop_seed(seed, 1), tf.int64)

    def window(position):
        seeds = H.view_seeds(base, position, 1)
        return tf.stack(
            H.crop_window(shape, seeds[0], scale=GLOBAL["scale"], ratio=GLOBAL["ratio"])
        )

    ds = tf.data.Dataset.range(num).map(window, num_parallel_calls=tf.data.AUTOTUNE)
    return np.concatenate([b for b in ds.batch(1024).as_numpy_iterator()])


def window_stats(windows: np.ndarray, shape_hw: tuple[int, int]) -> dict:
    """Area fractions, log aspect ratios (log w/h), and the share inside the specified ranges
    (with a rounding margin of one pixel per side)."""
    h, w = windows[:, 2].astype(float), windows[:, 3].astype(float)
    area = h * w / (shape_hw[0] * shape_hw[1])
    log_ratio = np.log(w / h)
    lo, hi = GLOBAL["scale"]
    rlo, rhi = np.log(GLOBAL["ratio"][0]), np.log(GLOBAL["ratio"][1])
    slack = 2.0 / min(h.min(), w.min())
    inside = (area >= lo * (1 - slack)) & (area <= hi) & (log_ratio >= rlo - slack)
    inside &= log_ratio <= rhi + slack
    return {"area": area, "log_ratio": log_ratio, "inside": float(np.mean(inside))}


def coverage(windows: np.ndarray, shape_hw: tuple[int, int]) -> np.ndarray:
    """``float [H, W]``: the share of ``windows`` each pixel lies in."""
    counts = np.zeros((shape_hw[0] + 1, shape_hw[1] + 1))
    for top, left, h, w in windows:  # 2-D prefix sums of the windows' indicator functions
        counts[top, left] += 1
        counts[top, left + w] -= 1
        counts[top + h, left] -= 1
        counts[top + h, left + w] += 1
    return np.cumsum(np.cumsum(counts, 0), 1)[:-1, :-1] / len(windows)


def draw(image, windows, views, stats, cover, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(15, 8.2))
    grid = fig.add_gridspec(2, 12, height_ratios=[1.0, 0.9], hspace=0.35, wspace=0.6)
    height, width = image.shape[:2]
    side = min(height, width)

    def central_square():
        corner = ((width - side) / 2, (height - side) / 2)
        return patches.Rectangle(corner, side, side, fill=False, ec="white", ls=":", lw=1.5)

    ax = fig.add_subplot(grid[0, :5])
    ax.imshow(image)
    ax.add_patch(central_square())
    colours = ["#e41a1c", "#377eb8"] + ["#ffd92f"] * 6
    for k, (top, left, h, w) in enumerate(windows):
        ax.add_patch(
            patches.Rectangle(
                (left, top),
                w,
                h,
                fill=False,
                ec=colours[k],
                lw=2.2 if k < 2 else 1.3,
                ls="-" if k < 2 else "--",
            )
        )
    ax.set_title(
        "windows over the whole JPEG: 2 global (solid), 6 local (dashed);\n"
        "dotted: the central square, the old path's limit",
        fontsize=9,
    )
    ax.axis("off")

    for k in range(2):
        a = fig.add_subplot(grid[0, 5 + 2 * k : 7 + 2 * k])
        a.imshow(views["image"][k])
        a.set_title(f"global view {k + 1}, 224 px", fontsize=9, color=colours[k])
        a.axis("off")
    local = views["local_image"]
    tiles = np.concatenate(
        [np.concatenate(list(local[r * 2 : r * 2 + 2]), axis=1) for r in range(3)], axis=0
    )
    a = fig.add_subplot(grid[0, 9:12])
    a.imshow(tiles)
    a.set_title("6 local views, 96 px", fontsize=9)
    a.axis("off")

    area_ax = fig.add_subplot(grid[1, :4])
    ratio_ax = fig.add_subplot(grid[1, 4:8])
    for (h, w), s in stats.items():
        label = f"{w}x{h}: {100 * s['inside']:.1f}% in range"
        area_ax.hist(s["area"], bins=40, range=(0, 1), histtype="step", density=True, label=label)
        ratio_ax.hist(s["log_ratio"], bins=40, range=(-0.4, 0.4), histtype="step", density=True)
    lo, hi = GLOBAL["scale"]
    area_ax.axvspan(lo, hi, color="0.9", zorder=0)
    area_ax.set_xlabel("area fraction (specified: 0.08-1, shaded)")
    area_ax.set_ylabel("density")
    area_ax.legend(fontsize=7, loc="upper right")
    r0, r1 = np.log(GLOBAL["ratio"][0]), np.log(GLOBAL["ratio"][1])
    ratio_ax.axvspan(r0, r1, color="0.9", zorder=0)
    ratio_ax.set_xlabel("log(w / h) (specified: log 3/4 to log 4/3)")
    count = len(next(iter(stats.values()))["area"])
    area_ax.set_title(f"global windows, {count} per image shape", fontsize=9)
    ratio_ax.set_title("aspect ratio", fontsize=9)

    cov_ax = fig.add_subplot(grid[1, 8:12])
    shown = cov_ax.imshow(cover, cmap="magma", vmin=0, vmax=1)
    cov_ax.add_patch(central_square())
    fig.colorbar(shown, ax=cov_ax, fraction=0.03)
    outside = 1 - side / width
    cov_ax.set_title(
        f"share of global windows covering each pixel;\n{100 * outside:.0f}% of this photo lies "
        "outside the central square",
        fontsize=9,
    )
    cov_ax.axis("off")
    fig.suptitle(
        "ssljax host views (Inception crops of the whole image, one decode per image)", fontsize=11
    )
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/figures/host_views.png", help="PNG to write")
    parser.add_argument("--samples", type=int, default=4000, help="windows per image shape")
    parser.add_argument("--seed", type=int, default=0, help="training seed of the crops shown")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    path = args.out
    if os.path.exists(path) and not args.overwrite:
        parser.error(f"--out {path} exists; pass --overwrite to replace it")
    if args.samples < 10:
        parser.error(f"--samples={args.samples} is invalid; valid: >= 10")
    image = photo()
    windows, views = example_windows_and_views(image, args.seed)
    stats = {}
    for shape in SHAPES:
        stats[shape] = window_stats(sample_windows(shape, args.samples, args.seed), shape)
        s = stats[shape]
        print(
            f"{shape[1]}x{shape[0]}: area mean {s['area'].mean():.3f} (min {s['area'].min():.3f},"
            f" max {s['area'].max():.3f}); log ratio mean {s['log_ratio'].mean():+.3f}; "
            f"{100 * s['inside']:.1f}% in the specified ranges"
        )
    cover = coverage(sample_windows(image.shape[:2], args.samples, args.seed), image.shape[:2])
    side = min(image.shape[:2])
    margin = (image.shape[1] - side) // 2
    outside = np.concatenate([cover[:, :margin], cover[:, margin + side :]], axis=1)
    print(
        f"photo {image.shape[1]}x{image.shape[0]}: a pixel outside the central square lies in "
        f"{100 * outside.mean():.1f}% of global windows (inside: "
        f"{100 * cover[:, margin : margin + side].mean():.1f}%)"
    )
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    print(draw(image, windows, views, stats, cover, path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
