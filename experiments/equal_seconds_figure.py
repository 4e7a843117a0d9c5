"""Accuracy against pretraining seconds: ssljax's demo recipe against lightly's tutorial SimCLR
on the same machine, network and probe (``experiments/equal_seconds.md``).

  python experiments/equal_seconds_figure.py [--out docs/figures/equal_seconds.png] [--overwrite]

Reads the measured points: ssljax's runs from ``experiments/equal_seconds.json`` (seconds,
steps, linear top-1 and the command of each) and lightly's from the JSON records that
``experiments/lightly_simclr.py`` wrote (each run's final probe and its mid-run snapshots).
Prints the table it draws and the gap at the demo's seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def lightly_points(paths: list[str]) -> list[tuple[float, float, int]]:
    """``(seconds, top1, steps)`` of every probe in lightly's run records, by seconds."""
    points = []
    for path in paths:
        with open(path) as f:
            run = json.load(f)
        points.append((float(run["seconds"]), float(run["top1"]), int(run["steps"])))
        for probe in run.get("probes", []):
            if float(probe["probe_at"]) < float(run["seconds"]):
                points.append((float(probe["probe_at"]), float(probe["top1"]), probe["steps"]))
    return sorted(set(points))


def ssljax_series(record: dict) -> dict[str, list[tuple[float, float, int]]]:
    """``{views: [(seconds, top1, steps), ...]}`` from the record, by seconds."""
    series: dict[str, list] = {}
    for row in record["ssljax"]:
        series.setdefault(row["views"], []).append(
            (float(row["seconds"]), float(row["top1"]), int(row["steps"]))
        )
    return {k: sorted(v) for k, v in series.items()}


def draw(series: dict, peer: list, record: dict, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for (views, points), marker in zip(series.items(), ("o", "s", "^")):
        xs, ys, _ = zip(*points)
        ax.plot(xs, ys, marker=marker, label=f"ssljax, {views}")
    xs, ys, _ = zip(*peer)
    ax.plot(
        xs,
        ys,
        marker="D",
        color="0.4",
        label="lightly 1.6.0 tutorial SimCLR, 28x28 views (50 s, 156 s: mid-run snapshots)",
    )
    ax.axvline(100, color="0.8", ls=":", zorder=0)
    ax.set_xlabel("pretraining seconds")
    ax.set_ylabel("linear top-1, Fashion-MNIST test")
    ax.set_title(f"Equal seconds: {record['machine']}", fontsize=8)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", default=os.path.join(HERE, "equal_seconds.json"))
    parser.add_argument("--out", default="docs/figures/equal_seconds.png", help="PNG to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    path = args.out
    if os.path.exists(path) and not args.overwrite:
        parser.error(f"--out {path} exists; pass --overwrite to replace it")
    with open(args.record) as f:
        record = json.load(f)
    root = os.path.dirname(HERE)
    peer = lightly_points([os.path.join(root, p) for p in record["lightly"]])
    series = ssljax_series(record)
    for views, points in series.items():
        for seconds, top1, steps in points:
            print(f"ssljax {views}: {steps} steps, {seconds:.0f} s, {top1:.4f}")
    for seconds, top1, steps in peer:
        print(f"lightly: {steps} steps, {seconds:.0f} s, {top1:.4f}")
    at_100 = [top1 for seconds, top1, _ in peer if seconds == 100.0]
    demo = [top1 for points in series.values() for seconds, top1, _ in points if seconds == 100]
    if at_100 and demo:
        print(
            f"at 100 s: ssljax {demo[0]:.4f} - lightly {at_100[0]:.4f} = "
            f"{100 * (demo[0] - at_100[0]):+.2f} points"
        )
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    print(draw(series, peer, record, path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
