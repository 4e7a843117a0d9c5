"""Every image method on one dataset, same encoder, same wall-clock budget; one results table.

  python experiments/compare_methods.py --dataset fashion_mnist --budget_minutes 3 \
      [--methods simclr,byol] [--workdir runs/compare_fashion_mnist] \
      [--eval_layer block4 --eval_grid 3]   # or --eval_layer all: each run's best layer

For each registered objective whose ``configs/<objective>.py`` accepts the dataset, the script
compiles its step, times a few steps on random data, sets ``total_steps`` so that pretraining
takes the budget (the schedule then completes, warmup is capped at a tenth of the steps),
pretrains in ``WORKDIR/<method>``, and runs the linear probe and kNN from the checkpoint
(``ssljax.evaluation.checkpoint_eval``). The random-encoder and raw-pixel baselines are
computed once. It writes ``WORKDIR/compare.md`` (Markdown table) and ``WORKDIR/compare.json``.
A method whose workdir already holds a finished run and its report is not rerun; one cut off
mid-run resumes from its last checkpoint with the step count it was first sized for
(``WORKDIR/<method>/compare_plan.json``). A workdir sized for another budget is an error.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from ssljax.experiments.compare_methods import (  # noqa: E402
    available_methods,
    baselines_for,
    check_budget,
    markdown_table,
    run_method,
)

_DATASET = flags.DEFINE_string(
    "dataset", "fashion_mnist", "Dataset name (configs/<method>.py:<dataset>)."
)
_BUDGET = flags.DEFINE_float("budget_minutes", 3.0, "Pretraining wall-clock budget per method.")
_METHODS = flags.DEFINE_list("methods", [], "Methods to run (default: every one with a config).")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Output directory (default runs/compare_<dataset>)."
)
_TIMING_STEPS = flags.DEFINE_integer("timing_steps", 5, "Steps timed to size the budget.")
_EVAL_LAYER = flags.DEFINE_string(
    "eval_layer",
    None,
    "Probe this layer for every method and baseline: a name, a list, or 'all' (best by validation); default: each config's eval.layer.",
)
_EVAL_GRID = flags.DEFINE_integer(
    "eval_grid", None, "Spatial pooling grid of the probed layer (default: the config's)."
)


def main(argv):
    del argv
    dataset = _DATASET.value
    workdir = _WORKDIR.value or os.path.join("runs", f"compare_{dataset}")
    budget_seconds = 60.0 * _BUDGET.value
    known = available_methods(dataset)
    methods = _METHODS.value or known
    unknown = [m for m in methods if m not in known]
    if unknown:
        print(f"error: no config for {unknown} on {dataset}; choose from {known}", file=sys.stderr)
        return 2
    os.makedirs(workdir, exist_ok=True)
    probe = {"layer": _EVAL_LAYER.value, "grid": _EVAL_GRID.value}
    baselines = baselines_for(dataset, workdir, probe)
    rows = []
    try:
        for m in known:  # methods run earlier into the same workdir keep their row
            row_path = os.path.join(workdir, m, "compare_row.json")
            if m in methods:
                rows.append(
                    run_method(
                        m,
                        dataset,
                        os.path.join(workdir, m),
                        budget_seconds,
                        _TIMING_STEPS.value,
                        probe,
                    )
                )
            elif os.path.exists(row_path):
                with open(row_path) as f:
                    row = json.load(f)
                check_budget(os.path.join(workdir, m), row.get("budget_minutes"), _BUDGET.value)
                rows.append(row)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = markdown_table(rows, baselines, dataset=dataset, budget=_BUDGET.value)
    with open(os.path.join(workdir, "compare.md"), "w") as f:
        f.write(table)
    with open(os.path.join(workdir, "compare.json"), "w") as f:
        json.dump(
            {"rows": rows, "baselines": baselines, "budget_minutes": _BUDGET.value}, f, indent=1
        )
    print(table)
    random_top1 = baselines["random encoder"]["top1"]
    below = [r["method"] for r in rows if r["top1"] <= random_top1]
    if below:
        print(f"below the random-encoder baseline ({random_top1:.4f}): {below}", flush=True)
    return 0


if __name__ == "__main__":
    app.run(main)
