"""Peak memory and wall time of linear evaluation on Fashion-MNIST and on a 10x larger split.

  python experiments/benchmark_linear_eval.py [--workdir runs/fmnist] [--scale 10]
      [--layer pooled --grid 1] [--out_dir /tmp/ssljax_linear_eval_bench]
      [--max_probe_bytes 33554432 --probe_chunk_bytes 16777216] [--feature_dtype float16]

Two evaluations of the same encoder (a freshly initialised encoder of
``configs/simclr.py:fashion_mnist`` at step 0, or the latest checkpoint of ``--workdir``),
each through ``evaluate_workdir`` in its own process:

* ``fashion_mnist``: the real split, 60,000 train / 10,000 test images.
* ``xSCALE``: the train split made ``--scale`` times larger (the real train images shifted
  by -2..2 pixels and mirrored: 10 variants, the first the originals), the same 10,000 test
  images. It is a regular TFDS dataset (the offline Fashion-MNIST builder pointed at
  generated idx files), read in the same streamed pass.

Each child reports its peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``:
JAX's host buffers are not Python objects, so ``tracemalloc`` would not see them) at the end
of feature extraction and at the end of the evaluation, and the bytes of the features it
kept. The parent prints both runs and their differences: with a streamed pass the extra
memory of the larger run is its extra features (and the probe's working copies of them),
never its images. The full-batch L-BFGS probe works on about three float32 copies of the
train features (the features, their standardised copy and the fitting rows); with a small
``--max_probe_bytes`` both runs use the streamed probe and kNN instead, whose working
memory is one chunk.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RESULT_PREFIX = "BENCHMARK_RESULT "


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int:
    """This process's resident set size now, from /proc (0 where there is none)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tiled_train_split(images, labels, scale: int):
    """``scale`` variants of every train image (shifts of -2..2 pixels, each also mirrored;
    the first variant is the original), as ``(images [scale * N, 28, 28], labels)``."""
    import numpy as np

    variants = [(shift, flip) for flip in (False, True) for shift in (0, 1, -1, 2, -2)]
    if not 1 <= scale <= len(variants):
        raise ValueError(f"--scale must be in [1, {len(variants)}], got {scale}")
    out = np.empty((scale * len(images), 28, 28), np.uint8)
    for i, (shift, flip) in enumerate(variants[:scale]):
        part = np.zeros_like(images)
        if shift >= 0:
            part[:, :, shift:] = images[:, :, : 28 - shift]
        else:
            part[:, :, :shift] = images[:, :, -shift:]
        out[i * len(images) : (i + 1) * len(images)] = part[:, :, ::-1] if flip else part
    return out, np.tile(labels, scale)


def prepare_data(out_dir: str, scale: int) -> dict:
    """Source idx files and prepared TFDS data dirs of both runs: ``{run: (source, data)}``."""
    from ssljax.data import fashion_mnist, input_pipeline

    real_source = fashion_mnist.resolve_source_dir()
    runs = {"fashion_mnist": (real_source, os.path.join(out_dir, "tfds_real"))}
    big_source = os.path.join(out_dir, f"source_x{scale}")
    runs[f"x{scale}"] = (big_source, os.path.join(out_dir, f"tfds_x{scale}"))
    if not fashion_mnist.source_files_present(big_source):
        train = fashion_mnist.load_split(real_source, "train")
        test = fashion_mnist.load_split(real_source, "test")
        images, labels = tiled_train_split(train[0][..., 0], train[1], scale)
        fashion_mnist.write_source_files(big_source, {"train": (images, labels), "test": test})
        del images, labels, train, test
    for source, data_dir in runs.values():
        os.environ[fashion_mnist.SOURCE_DIR_ENV_VAR] = source
        t = time.perf_counter()
        input_pipeline.get_builder("fashion_mnist", data_dir=data_dir)
        print(f"data {data_dir} ready ({time.perf_counter() - t:.0f} s)", flush=True)
    return runs


def write_workdirs(out_dir: str, runs: dict, workdir: str | None) -> dict:
    """One workdir per run holding the same encoder state, each reading its own data_dir."""
    import jax

    from ssljax.training import checkpoint as ckpt_lib
    from ssljax.training import loop

    if workdir is None:
        from ssljax import config_base

        config = config_base.load_config(
            os.path.join(ROOT, "configs", "simclr.py") + ":fashion_mnist"
        )
        setup = loop.build_setup(config)
        state, step = jax.device_get(loop.initial_state(config, setup)), 0
    else:
        config, setup, state, step = loop.restore_for_eval(workdir)
    workdirs = {}
    for run, (_, data_dir) in runs.items():
        path = os.path.join(out_dir, f"workdir_{run}")
        if not ckpt_lib.has_checkpoints(path):
            run_config = config.copy_and_resolve_references()
            run_config.dataset.data_dir = data_dir
            ckpt_lib.prepare_workdir(path, run_config)
            checkpointer = ckpt_lib.Checkpointer(path)
            checkpointer.save(int(step), state, ckpt_lib.config_to_dict(run_config))
            checkpointer.close()
        workdirs[run] = path
    return workdirs


def child(args) -> None:
    """One evaluation; prints a ``BENCHMARK_RESULT {json}`` line."""
    import numpy as np

    from ssljax.evaluation import checkpoint_eval

    start_rss = current_rss_bytes()
    phases = {}
    original = checkpoint_eval.split_features

    def measured(name, split, *a, **kw):
        t = time.perf_counter()
        features, labels = original(name, split, *a, **kw)
        phases[split] = dict(
            seconds=time.perf_counter() - t,
            feature_bytes=int(sum(v.nbytes for v in features.values())),
            label_bytes=int(labels.nbytes),
            rows=int(len(labels)),
            peak_rss=peak_rss_bytes(),
        )
        return features, labels

    checkpoint_eval.split_features = measured
    overrides = json.loads(args.eval_overrides)
    if overrides:
        from ssljax.training import loop

        restore = loop.restore_for_eval

        def restore_with_overrides(*a, **kw):
            config, setup, state, step = restore(*a, **kw)
            for key, value in overrides.items():
                config.eval[key] = value
            return config, setup, state, step

        loop.restore_for_eval = restore_with_overrides
    t = time.perf_counter()
    report = checkpoint_eval.evaluate_workdir(
        args.child, layer=args.layer, grid=args.grid, baselines=args.baselines
    )
    seconds = time.perf_counter() - t
    result = dict(
        seconds=seconds,
        start_rss=start_rss,
        peak_rss=peak_rss_bytes(),
        phases=phases,
        feature_bytes=sum(p["feature_bytes"] for p in phases.values()),
        top1=report["top1"],
        knn_top1=report["knn"]["top1"],
        solver=report["solver"],
        feature_dim=report["feature_dim"],
        num_train=report["num_train"],
        num_test=report["num_test"],
        dtype=str(np.dtype(report["feature_dtype"])),
    )
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_child(workdir: str, source: str, args) -> dict:
    """Runs one evaluation in a fresh process and returns its result."""
    env = dict(os.environ, SSLJAX_FASHION_MNIST_DIR=source, SSLJAX_NO_DOWNLOAD="1", PYTHONPATH=ROOT)
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        workdir,
        "--layer",
        args.layer,
        "--grid",
        str(args.grid),
        "--eval_overrides",
        eval_overrides(args),
    ]
    cmd += ["--baselines"] if args.baselines else []
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("[linear_eval]"):
            print("   ", line, flush=True)
    if proc.returncode:
        raise SystemExit(f"evaluation of {workdir} failed:\n{proc.stderr[-3000:]}")
    line = [x for x in proc.stdout.splitlines() if x.startswith(RESULT_PREFIX)][-1]
    return json.loads(line[len(RESULT_PREFIX) :])


def eval_overrides(args) -> str:
    """The ``eval.*`` settings given on the command line, as JSON for the child."""
    values = dict(
        max_probe_bytes=args.max_probe_bytes,
        feature_dtype=args.feature_dtype,
        probe_chunk_bytes=args.probe_chunk_bytes,
    )
    return json.dumps({k: v for k, v in values.items() if v is not None})


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def table(results: dict) -> str:
    """A Markdown table of the runs and the difference of the last one to the first."""
    lines = [
        "| run | train / test images | features kept | wall time | peak RSS after "
        "extraction | peak RSS | top-1 | kNN top-1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run, r in results.items():
        extraction = max(p["peak_rss"] for p in r["phases"].values())
        lines.append(
            f"| {run} | {r['num_train']:,} / {r['num_test']:,} | "
            f"{mib(r['feature_bytes'])} | {r['seconds']:.0f} s | {mib(extraction)} | "
            f"{mib(r['peak_rss'])} | {r['top1']:.4f} | {r['knn_top1']:.4f} |"
        )
    (a_name, a), (b_name, b) = list(results.items())[0], list(results.items())[-1]
    extraction = lambda r: max(p["peak_rss"] for p in r["phases"].values())  # noqa: E731
    lines.append(
        f"| {b_name} - {a_name} | {b['num_train'] - a['num_train']:+,} images | "
        f"{mib(b['feature_bytes'] - a['feature_bytes'])} | {b['seconds'] - a['seconds']:+.0f} s | "
        f"{mib(extraction(b) - extraction(a))} | {mib(b['peak_rss'] - a['peak_rss'])} | | |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir",
        default=None,
        help="evaluate this run's latest checkpoint (default: a fresh encoder)",
    )
    parser.add_argument(
        "--out_dir",
        default="/tmp/ssljax_linear_eval_bench",
        help="generated data, prepared TFDS dirs and the two workdirs",
    )
    parser.add_argument("--scale", type=int, default=10, help="train split size factor")
    parser.add_argument("--layer", default="pooled")
    parser.add_argument("--grid", type=int, default=1)
    parser.add_argument(
        "--baselines", action="store_true", help="also probe raw pixels and the random encoder"
    )
    parser.add_argument(
        "--max_probe_bytes",
        type=int,
        default=None,
        help="eval.max_probe_bytes for both runs (small: the streamed probe)",
    )
    parser.add_argument(
        "--probe_chunk_bytes",
        type=int,
        default=None,
        help="eval.probe_chunk_bytes for both runs (streamed probe and kNN)",
    )
    parser.add_argument(
        "--feature_dtype",
        default=None,
        choices=("float32", "float16"),
        help="eval.feature_dtype for both runs",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--eval_overrides", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    os.makedirs(args.out_dir, exist_ok=True)
    runs = prepare_data(args.out_dir, args.scale)
    workdirs = write_workdirs(args.out_dir, runs, args.workdir)
    results = {}
    for run, (source, _) in runs.items():
        print(f"{run}: evaluating {workdirs[run]}", flush=True)
        results[run] = run_child(workdirs[run], source, args)
    print(json.dumps(results, indent=1))
    print(table(results))
    a, b = list(results.values())[0], list(results.values())[-1]
    print(
        f"\npeak RSS grew by {mib(b['peak_rss'] - a['peak_rss'])} for "
        f"{b['num_train'] - a['num_train']:,} more train images, whose "
        f"{b['dtype']} features are {mib(b['feature_bytes'] - a['feature_bytes'])} "
        f"(their images, as uint8, would be "
        f"{mib((b['num_train'] - a['num_train']) * 28 * 28)})."
    )


if __name__ == "__main__":
    main()
