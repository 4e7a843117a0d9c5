"""Every image method on one dataset, same encoder, same wall-clock budget: the pieces of
``experiments/compare_methods.py`` (sizing a run to the budget, pretraining and probing each
method, the baselines and the results table)."""

from __future__ import annotations

import json
import math
import os
import time

# The repository root, which holds configs/ (ssljax is installed from it with pip install -e).
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def config_path(method: str) -> str:
    """``configs/<method>.py`` in the repository."""
    return os.path.join(ROOT, "configs", f"{method}.py")


def config_datasets(method: str) -> tuple[str, ...]:
    """The datasets ``configs/<method>.py`` accepts (its ``DATASETS``), () without a file."""
    from ssljax import config_base

    path = config_path(method)
    if not os.path.exists(path):
        return ()
    return tuple(config_base.import_config_module(path).DATASETS)


def available_methods(dataset: str) -> list[str]:
    """Registered objectives whose config accepts ``dataset``, SimCLR first."""
    from ssljax import objectives

    names = [n for n in objectives.names() if dataset in config_datasets(n)]
    return sorted(names, key=lambda n: (n != "simclr", n))


def load_config(method: str, dataset: str):
    from ssljax import config_base

    return config_base.load_config(f"{config_path(method)}:{dataset}")


def steps_for_budget(seconds_per_step: float, budget_seconds: float) -> int:
    """Whole steps that fit in the budget (at least 1)."""
    return max(1, int(math.floor(budget_seconds / seconds_per_step)))


def size_run(config, budget_seconds: float, timing_steps: int) -> tuple[int, float]:
    """``(steps, seconds_per_step)`` for ``config`` on this machine (median of timed steps)."""
    import numpy as np

    from ssljax.bench import compile_step, step_times

    compiled, state, batch = compile_step(config)
    seconds = float(np.median(step_times(compiled, state, batch, timing_steps)))
    return steps_for_budget(seconds, budget_seconds), seconds


PLAN_FILE = "compare_plan.json"


def check_budget(workdir: str, recorded_minutes, budget_minutes: float) -> None:
    """One-line ValueError when ``workdir`` was run for another budget (None: not recorded,
    a row from before budgets were kept)."""
    if recorded_minutes is not None and abs(recorded_minutes - budget_minutes) > 1e-6:
        raise ValueError(
            f"{workdir} holds a run sized for --budget_minutes {recorded_minutes:g}, not "
            f"{budget_minutes:g}; pass that budget or another --workdir"
        )


def planned_steps(workdir: str, budget_seconds: float, size) -> tuple[int, float, bool]:
    """``(steps, seconds_per_step, resumed)`` for the method run in ``workdir``.

    The first call sizes the run (``size() -> (steps, seconds)``) and records it in
    ``workdir/compare_plan.json``; later calls reuse that step count, so a run cut off
    mid-way (SIGTERM, a closed terminal) resumes from its last checkpoint with the schedule
    it was sized for instead of being timed again under a different load.

    Raises:
      ValueError: ``workdir`` was sized for another budget (one line, both budgets).
    """
    path = os.path.join(workdir, PLAN_FILE)
    if os.path.exists(path):
        with open(path) as f:
            plan = json.load(f)
        check_budget(workdir, plan["budget_seconds"] / 60, budget_seconds / 60)
        return int(plan["steps"]), float(plan["seconds_per_step"]), True
    steps, seconds = size()
    os.makedirs(workdir, exist_ok=True)
    from ssljax.training.logging import write_json_atomic

    write_json_atomic(
        path,
        {"budget_seconds": budget_seconds, "steps": int(steps), "seconds_per_step": float(seconds)},
    )
    return int(steps), float(seconds), False


def fmt(value, digits=4):
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_table(rows: list[dict], baselines: dict, *, dataset: str, budget: float) -> str:
    lines = [
        f"Dataset `{dataset}`, pretraining budget {budget:g} min per method "
        "(same ConvNet encoder, batch and optimizer unless the method's config says otherwise).",
        "",
        "| method | steps | images seen | probed layer | linear top-1 | kNN top-1 "
        "| collapse std (1/sqrt(d)) | effective rank (d) |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['steps']} | {r['images_seen']:,} | {r.get('layer', '-')} "
            f"| {fmt(r['top1'])} "
            f"| {fmt(r['knn_top1'])} | {fmt(r['collapse_std'])} ({fmt(r['collapse_std_ref'])}) "
            f"| {fmt(r['effective_rank'], 1)} ({r['embedding_dim']}) |"
        )
    for name, report in baselines.items():
        lines.append(
            f"| *{name}* | - | - | {report.get('layer', '-')} | {fmt(report['top1'])} "
            f"| {fmt(report.get('knn_top1'))} "
            "| - | - |"
        )
    return "\n".join(lines) + "\n"


def run_method(
    method: str, dataset: str, workdir: str, budget_seconds: float, timing_steps: int, probe: dict
) -> dict:
    """Sizes, pretrains and evaluates one method; returns its table row."""
    from ssljax.evaluation.checkpoint_eval import evaluate_workdir
    from ssljax.training.logging import write_json_atomic
    from ssljax.training.loop import train_and_evaluate, validate_config

    config = load_config(method, dataset)
    validate_config(config)
    row_path = os.path.join(workdir, "compare_row.json")
    if os.path.exists(row_path):
        with open(row_path) as f:
            row = json.load(f)
        check_budget(workdir, row.get("budget_minutes"), budget_seconds / 60)
        print(f"[{method}] already done: linear top-1 {row['top1']:.4f}", flush=True)
        return row
    steps, seconds, resumed = planned_steps(
        workdir, budget_seconds, lambda: size_run(config, budget_seconds, timing_steps)
    )
    print(
        f"[{method}] {seconds:.3f} s/step -> {steps} steps in {budget_seconds / 60:g} min"
        + (" (resuming the sized run)" if resumed else ""),
        flush=True,
    )
    with config.unlocked():
        config.total_steps = steps
        config.optimizer.warmup_steps = min(int(config.optimizer.warmup_steps), steps // 10)
        # Four checkpoints, so an interrupted long run loses at most a quarter of its steps.
        config.checkpoint_every_steps = max(1, math.ceil(steps / 4))
        config.log_every_steps = max(1, min(int(config.log_every_steps), steps))
    t = time.perf_counter()
    result = train_and_evaluate(config, workdir, progress=False)
    train_seconds = time.perf_counter() - t
    if result["status"] != "completed":
        print(
            f"[{method}] stopped at step {result['step']} of {steps}; rerun the same command "
            "to resume it",
            flush=True,
        )
        raise SystemExit(143)
    report = evaluate_workdir(workdir, baselines=False, **probe)
    last = result["last_metrics"] or last_logged_metrics(workdir)
    row = {
        "method": method,
        "budget_minutes": budget_seconds / 60,
        "steps": result["step"],
        "images_seen": int(result["step"]) * int(config.batch_size),
        "train_seconds": round(train_seconds, 1),  # this invocation's share when resumed
        "resumed": resumed,
        "layer": probed_layer(report),
        "top1": report["top1"],
        "top5": report.get("top5"),
        "knn_top1": report.get("knn", {}).get("top1"),
        "final_loss": last.get("loss"),
        "collapse_std": last.get("collapse_std"),
        "collapse_std_ref": last.get("collapse_std_ref"),
        "effective_rank": last.get("effective_rank"),
    }
    row["embedding_dim"] = _embedding_dim(row)
    write_json_atomic(row_path, row)
    print(
        f"[{method}] linear top-1 {row['top1']:.4f}, kNN {fmt(row['knn_top1'])}, "
        f"{row['steps']} steps in {train_seconds:.0f} s",
        flush=True,
    )
    return row


def last_logged_metrics(workdir: str) -> dict:
    """The last record of ``workdir/metrics.jsonl`` (a run that had already finished)."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    return json.loads(lines[-1]) if lines else {}


def _embedding_dim(row: dict) -> int:
    """Width of the monitored embedding, from the logged ``1 / sqrt(d)`` reference."""
    ref = row.get("collapse_std_ref")
    return int(round(1.0 / ref**2)) if ref else 0


def probed_layer(report: dict) -> str:
    """``'block4 3x3'``: the layer a probe read (the chosen one with ``--eval_layer all``)."""
    grid = report.get("grid")
    return (
        f"{report['layer']} {grid}x{grid}"
        if grid and report["layer"] != "pooled"
        else report["layer"]
    )


def _flat(report: dict, grid=None) -> dict:
    """``{'top1', 'knn_top1', 'layer'}`` of a probe report."""
    layer = probed_layer(dict(report, grid=grid)) if "layer" in report else "-"
    return {"top1": report["top1"], "knn_top1": report.get("knn", {}).get("top1"), "layer": layer}


def baselines_for(dataset: str, workdir: str, probe: dict) -> dict:
    """Random-encoder and raw-pixel probes, from a zero-step SimCLR workdir."""
    from ssljax.evaluation.checkpoint_eval import evaluate_workdir
    from ssljax.training.loop import train_and_evaluate

    path = os.path.join(workdir, "baselines.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    config = load_config("simclr", dataset)
    run_dir = os.path.join(workdir, "random_init")
    # One step at zero learning rate writes a checkpoint of the initial encoder.
    with config.unlocked():
        config.total_steps = 1
        config.optimizer.base_learning_rate = 0.0
        config.optimizer.warmup_steps = 0
    train_and_evaluate(config, run_dir, progress=False)
    report = evaluate_workdir(run_dir, baselines=True, **probe)
    out = {
        "random encoder": _flat(report["random_init"], report["grid"]),
        "raw pixels": dict(_flat(report["raw_pixels"]), layer="pixels"),
    }
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    return out
