"""A small version of Locatello et al. 2019's study on dSprites: models x seeds -> metrics.

(``experiments/disentanglement_study.py`` runs :func:`main`; the training helpers live here so
``ssljax.identifiability.rotation`` can train its VAE from an installed package.)

Trains beta-VAE with beta in {1, 4, 16}, FactorVAE and beta-TCVAE (the configs
``configs/{vae,beta_vae,factor_vae,beta_tcvae}.py:dsprites``: Locatello et al.'s architecture,
batch 64, Adam 1e-4) for the same number of steps with several seeds, evaluates every
checkpoint with ``ssljax.evaluate_disentanglement`` (every disentanglement metric of the
suite with the sample counts given here; the downstream tasks only with ``--downstream``), then
prints and writes

* the metric table: mean and standard deviation over seeds per model;
* the Spearman rank correlations between the metrics over all runs (the shape of Locatello et
  al. 2019's Figure 2), and, with ``--downstream``, between the metrics and the downstream
  accuracies (their Figure 5);
* ``OUT/study.md`` and ``OUT/study.json`` (per-run scores, settings, timings).

  python experiments/disentanglement_study.py --steps 150 --seeds 0,1 \\
      --out_dir runs/disentanglement_study

(33 minutes on 2 shared CPU cores; the measured table is in docs/disentanglement_metrics.md,
"Models, the study script, and measured results".)

Training batches are rendered directly from the factor grid (``ssljax.data.dsprites``) in the
order ``python -m ssljax.train`` would read them from the TFDS split (the same
``input_pipeline.epoch_order`` permutation of image indices), which spares each run decoding
737,280 PNGs into 3 GB; the step, state, checkpoints and stored config are the library's, so
each run directory is an ordinary workdir for ``python -m ssljax.evaluate_disentanglement``.
Runs of one model share one compiled step. A workdir that already holds its final checkpoint
is not retrained (and a finished evaluation is reused), so an interrupted study resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

# name -> (config file configs/<method>.py, read with its dsprites argument; objective settings)
MODELS = {
    "beta_vae_b1": ("vae", dict(beta=1.0)),
    "beta_vae_b4": ("beta_vae", dict(beta=4.0)),
    "beta_vae_b16": ("beta_vae", dict(beta=16.0)),
    "factor_vae_g30": ("factor_vae", dict(gamma=30.0)),
    "beta_tcvae_b6": ("beta_tcvae", dict(beta=6.0)),
}
# Columns of the rank-correlation matrix (Locatello et al.'s Figure 2, plus IRS).
CORRELATION_METRICS = (
    "beta_vae",
    "factor_vae",
    "mig",
    "dci_disentanglement",
    "modularity",
    "sap",
    "irs",
)
TABLE_COLUMNS = (
    "beta_vae",
    "factor_vae",
    "mig",
    "dci_disentanglement",
    "dci_completeness",
    "sap",
    "modularity",
    "explicitness",
    "irs",
    "reconstruction_nll",
    "kl",
    "active_units",
)


def model_config(name: str, *, seed: int, steps: int):
    """The config of study model ``name`` for one seed and a budget of ``steps``."""
    from ssljax import config_base
    from ssljax.experiments.compare_methods import config_path

    method, settings = MODELS[name]
    c = config_base.load_config(config_path(method) + ":dsprites")
    for key, value in settings.items():
        c.objective[key] = value
    c.seed = int(seed)
    c.total_steps = int(steps)
    c.log_every_steps = max(1, min(50, int(steps)))
    c.checkpoint_every_steps = int(steps)
    c.keep_checkpoints = 1
    return c


def rendered_batches(seed: int, global_batch_size: int, start_step: int = 0):
    """Endless dSprites training batches rendered from the factor grid.

    Yields exactly what ``input_pipeline.train_iterator('dsprites', ...)`` yields (one host):
    ``{'image': uint8 0/255 [devices, per_device, 64, 64, 1], 'label' (shape), 'index'}``.
    """
    from ssljax.data import dsprites
    from ssljax.data.input_pipeline import batch_layout, epoch_order

    local_devices, per_device = batch_layout(global_batch_size)
    per_host = local_devices * per_device
    renderer = dsprites.Renderer()
    steps = dsprites.NUM_IMAGES // per_host
    epoch, skip = divmod(start_step, steps)
    while True:
        for indices in epoch_order(dsprites.NUM_IMAGES, steps, per_host, seed, epoch)[skip:]:
            factors = dsprites.index_to_factors(indices)
            batch = {
                "image": renderer.images_from_factors(factors) * np.uint8(255),
                "label": factors[:, 0].astype(np.int32),
                "index": indices.astype(np.int32),
            }
            yield {
                k: v.reshape((local_devices, per_device) + v.shape[1:]) for k, v in batch.items()
            }
        epoch, skip = epoch + 1, 0


def train_run(config, workdir: str, *, step_cache: dict, cache_key: str) -> dict:
    """Trains ``config`` in ``workdir`` with rendered batches; one checkpoint at the end.

    ``step_cache[cache_key]`` keeps the compiled step of a model for its other seeds (the
    step does not depend on the seed).
    """
    import jax

    from ssljax import parallel
    from ssljax.training import checkpoint as ckpt_lib
    from ssljax.training.logging import MetricWriter, to_python
    from ssljax.training.loop import build_setup, initial_state, validate_config
    from ssljax.training.step import make_train_step, shard_map_driver

    validate_config(config)
    config_dict = ckpt_lib.prepare_workdir(workdir, config)
    total = int(config.total_steps)
    checkpointer = ckpt_lib.Checkpointer(workdir, max_to_keep=1)
    try:
        if checkpointer.latest_step() == total:
            return {"status": "done before", "step": total, "seconds": 0.0}
        setup = build_setup(config)
        mesh = parallel.make_mesh()
        if cache_key not in step_cache:
            step_cache[cache_key] = shard_map_driver(
                make_train_step(
                    objective=setup.objective,
                    run=setup.run,
                    model=setup.train_model,
                    tx=setup.tx,
                    config=config,
                    schedule=setup.schedule,
                ),
                mesh,
            )
        step_fn = step_cache[cache_key]
        state = parallel.replicate_on_mesh(initial_state(config, setup), mesh)
        data = rendered_batches(int(config.seed), int(config.batch_size))
        writer = MetricWriter(workdir, tensorboard=False)
        t0 = time.perf_counter()
        last = {}
        try:
            for step in range(1, total + 1):
                batch = parallel.batch_to_global(next(data), mesh)
                state, metrics = step_fn(state, batch)
                if step % config.log_every_steps == 0 or step == total:
                    last = to_python(jax.device_get(metrics))
                    if not last.pop("finite"):
                        raise RuntimeError(
                            f"non-finite loss or gradients by step {step} in {workdir}"
                        )
                    writer.write(step, last)
        finally:
            writer.close()
        jax.block_until_ready(state)
        seconds = time.perf_counter() - t0
        checkpointer.save(total, state, config_dict)
    finally:
        checkpointer.close()
    return {"status": "trained", "step": total, "seconds": seconds, "last_metrics": last}


def spearman_matrix(rows: list[dict], names) -> list[list[float | None]]:
    """Spearman rank correlations between the columns ``names`` over ``rows``."""
    import scipy.stats

    out = []
    for a in names:
        line = []
        for b in names:
            x = np.array([r.get(a, np.nan) for r in rows], np.float64)
            y = np.array([r.get(b, np.nan) for r in rows], np.float64)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
                line.append(None)
            else:
                line.append(float(scipy.stats.spearmanr(x[ok], y[ok])[0]))
        out.append(line)
    return out


def _fmt(v, digits=3):
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def metric_table(runs: list[dict], models, columns) -> str:
    """Markdown table: one row per model, ``mean +- std`` over its seeds per column."""
    lines = ["| model | runs | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for model in models:
        mine = [r["summary"] for r in runs if r["model"] == model]
        cells = []
        for col in columns:
            vals = np.array([s[col] for s in mine if s.get(col) is not None], np.float64)
            if len(vals) == 0:
                cells.append("n/a")
            else:
                digits = 1 if col in ("reconstruction_nll", "kl", "active_units") else 3
                std = vals.std(ddof=1) if len(vals) > 1 else 0.0
                cells.append(f"{vals.mean():.{digits}f} ± {std:.{digits}f}")
        lines.append(f"| {model} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def correlation_table(matrix, row_names, col_names) -> str:
    lines = ["| | " + " | ".join(col_names) + " |", "|---|" + "---|" * len(col_names)]
    for name, row in zip(row_names, matrix):
        lines.append(
            f"| {name} | "
            + " | ".join("n/a" if v is None else f"{100 * v:.0f}" for v in row)
            + " |"
        )
    return "\n".join(lines)


def downstream_columns(runs: list[dict]) -> list[str]:
    keys = set()
    for r in runs:
        keys.update(k for k in r["summary"] if k.startswith(("lr", "gbt")))
    return sorted(keys)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated subset of {list(MODELS)}"
    )
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds")
    parser.add_argument("--steps", type=int, default=150, help="training steps per run")
    parser.add_argument(
        "--num_train",
        type=int,
        default=1000,
        help="training points of MIG, DCI, SAP, Modularity/Explicitness, IRS "
        "(suite default: 10000)",
    )
    parser.add_argument(
        "--num_test",
        type=int,
        default=500,
        help="test points of those metrics (suite default: 5000)",
    )
    parser.add_argument(
        "--dci_num_train",
        type=int,
        default=300,
        help="DCI's training points (gradient-boosted trees are the slow part)",
    )
    parser.add_argument(
        "--score_num_train",
        type=int,
        default=100,
        help="BetaVAE / FactorVAE score training points (each averages 64 "
        "image pairs / images; suite default 10000, eval points half)",
    )
    parser.add_argument(
        "--downstream",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also run the downstream tasks (LR and GBT, 10/100/... samples)",
    )
    parser.add_argument(
        "--figures",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write figures for the first seed of every model",
    )
    parser.add_argument("--out_dir", default="runs/disentanglement_study")
    args = parser.parse_args(argv)

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad:
        parser.error(f"unknown model {bad[0]!r}; choose from {list(MODELS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.steps < 1 or not seeds:
        parser.error("--steps must be >= 1 and --seeds non-empty")

    from ssljax.evaluation.disentanglement import METRICS
    from ssljax.evaluation.disentanglement.checkpoint_eval import REPORT_FILE, evaluate_workdir

    metric_names = [m for m in METRICS if args.downstream or not m.startswith("downstream")]
    score_eval = max(1, args.score_num_train // 2)
    overrides = {
        "beta_vae": dict(num_train=args.score_num_train, num_eval=score_eval),
        "factor_vae": dict(
            num_train=args.score_num_train,
            num_eval=score_eval,
            num_variance_estimate=max(args.num_train, 500),
        ),
        "dci": dict(num_train=args.dci_num_train, num_test=max(1, args.dci_num_train // 2)),
    }

    os.makedirs(args.out_dir, exist_ok=True)
    t_start = time.perf_counter()
    runs, step_cache = [], {}
    for model in models:
        for seed in seeds:
            workdir = os.path.join(args.out_dir, f"{model}_seed{seed}")
            config = model_config(model, seed=seed, steps=args.steps)
            t = time.perf_counter()
            train = train_run(config, workdir, step_cache=step_cache, cache_key=model)
            train_wall = time.perf_counter() - t
            print(
                f"[study] {model} seed {seed}: {train['status']} {args.steps} steps in "
                f"{train_wall:.0f} s (loop {train['seconds']:.0f} s)",
                flush=True,
            )
            report_path = os.path.join(workdir, REPORT_FILE)
            t = time.perf_counter()
            report = None
            if os.path.exists(report_path):
                with open(report_path) as f:
                    report = json.load(f)
                used = report.get("settings", {})
                wanted = (
                    report.get("checkpoint_step") == args.steps
                    and sorted(used) == sorted(metric_names)
                    and used.get("mig", {}).get("num_train") == args.num_train
                    and used.get("dci", {}).get("num_train") == args.dci_num_train
                    and used.get("beta_vae", {}).get("num_train") == args.score_num_train
                )
                report = report if wanted else None
            if report is None:
                report = evaluate_workdir(
                    workdir,
                    metrics=metric_names,
                    num_train=args.num_train,
                    num_test=args.num_test,
                    overrides=overrides,
                    random_seed=0,
                    figures=args.figures and seed == seeds[0],
                )
            eval_wall = time.perf_counter() - t
            print(
                f"[study] {model} seed {seed}: evaluated in {eval_wall:.0f} s: "
                + ", ".join(f"{k} {v:.3f}" for k, v in report["summary"].items() if v is not None),
                flush=True,
            )
            runs.append(
                dict(
                    model=model,
                    seed=seed,
                    workdir=workdir,
                    summary=report["summary"],
                    train_seconds=train_wall,
                    eval_seconds=eval_wall,
                    last_train_metrics=train.get("last_metrics", {}),
                )
            )
    total_seconds = time.perf_counter() - t_start

    columns = [c for c in TABLE_COLUMNS if any(c in r["summary"] for r in runs)]
    table = metric_table(runs, models, columns)
    corr_names = [c for c in CORRELATION_METRICS if any(c in r["summary"] for r in runs)]
    summaries = [r["summary"] for r in runs]
    corr = spearman_matrix(summaries, corr_names)
    down = downstream_columns(runs)
    down_corr = [[spearman_matrix(summaries, [m, d])[0][1] for d in down] for m in corr_names]
    settings = dict(
        models={m: MODELS[m][1] for m in models},
        seeds=seeds,
        steps=args.steps,
        batch_size=64,
        metrics=metric_names,
        metric_num_train=args.num_train,
        metric_num_test=args.num_test,
        metric_overrides=overrides,
    )
    md = [
        f"Disentanglement study on dSprites: {len(models)} models x {len(seeds)} seeds, "
        f"{args.steps} steps of batch 64 each (Adam 1e-4); metrics with {args.num_train} train "
        f"/ {args.num_test} test points (DCI {args.dci_num_train} / "
        f"{max(1, args.dci_num_train // 2)}, BetaVAE and FactorVAE scores "
        f"{args.score_num_train} / {score_eval} points); {total_seconds / 60:.1f} min in total "
        f"(training {sum(r['train_seconds'] for r in runs) / 60:.1f} min, evaluation "
        f"{sum(r['eval_seconds'] for r in runs) / 60:.1f} min).",
        "",
        "Mean ± standard deviation over seeds:",
        "",
        table,
        "",
        f"Spearman rank correlation (x100) between metrics over the {len(runs)} runs:",
        "",
        correlation_table(corr, corr_names, corr_names),
    ]
    if down:
        md += [
            "",
            "Spearman rank correlation (x100) between metrics and downstream accuracy:",
            "",
            correlation_table(down_corr, corr_names, down),
        ]
    text = "\n".join(md)
    print(text, flush=True)
    with open(os.path.join(args.out_dir, "study.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out_dir, "study.json"), "w") as f:
        json.dump(
            dict(
                settings=settings,
                runs=runs,
                columns=columns,
                rank_correlation=dict(names=corr_names, matrix=corr),
                downstream_correlation=dict(rows=corr_names, columns=down, matrix=down_corr),
                total_seconds=total_seconds,
            ),
            f,
            indent=2,
            default=float,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
