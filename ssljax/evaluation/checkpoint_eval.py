"""Evaluation of a pretraining checkpoint: frozen features -> linear probe and kNN.

Reads only what pretraining wrote (checkpoint + stored config), never training internals.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

REPORT_FILE = "linear_eval.json"


def _log(message: str) -> None:
    print(f"[linear_eval] {message}", flush=True)


def feature_fn(encoder, *, layer: str, grid: int):
    """A jitted ``(variables, uint8 images [B,H,W,C]) -> features [B, D]`` for ``layer``."""
    from ssljax.models import extract_features

    def features(variables, images):
        x = images.astype(jnp.float32) / 255.0
        return extract_features(encoder, variables, x, layer=layer, grid=grid)

    return jax.jit(features)


def compute_features(fn, variables, images: np.ndarray, *, batch_size: int) -> np.ndarray:
    """Applies ``fn`` over ``images`` in fixed-size batches (last one padded), as float32."""
    n = images.shape[0]
    out = []
    for start in range(0, n, batch_size):
        chunk = images[start : start + batch_size]
        pad = batch_size - chunk.shape[0]
        if pad:
            chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
        out.append(np.asarray(fn(variables, chunk))[: batch_size - pad])
    return np.concatenate(out, axis=0).astype(np.float32)


def evaluate_features(train_x, train_y, test_x, test_y, *, num_classes: int, eval_cfg,
                      knn: bool = True) -> dict:
    """Linear probe (L2 chosen on held-out train data) and weighted kNN on given features."""
    from ssljax.evaluation import fit_linear_probe, knn_evaluate

    report = fit_linear_probe(
        train_x,
        train_y,
        test_x,
        test_y,
        num_classes=num_classes,
        l2_grid=tuple(eval_cfg.l2_grid),
        val_fraction=eval_cfg.val_fraction,
    )
    if knn:
        report["knn"] = knn_evaluate(
            train_x,
            train_y,
            test_x,
            test_y,
            num_classes=num_classes,
            k=eval_cfg.knn_k,
            temperature=eval_cfg.knn_temperature,
        )
    return report


def encoder_of(setup, params, model_state):
    """The encoder module and its variables, cut out of the objective's network."""
    from ssljax.models.network import encoder_variables

    variables = encoder_variables({"params": params, **model_state})
    return setup.eval_model.encoder, variables


def evaluate_workdir(workdir: str, *, layer: str | None = None, grid: int | None = None,
                     step: int | None = None, baselines: bool | None = None) -> dict:
    """Evaluates the checkpoint in ``workdir`` and writes ``workdir/linear_eval.json``.

    Returns the report: ``top1``, ``top5``, ``l2``, ``knn``, ``checkpoint_step``, the probed
    ``layer``/``grid``, and (with baselines) ``raw_pixels`` and ``random_init`` reports.
    """
    from ssljax.data.datasets import get_dataset_spec
    from ssljax.data.input_pipeline import load_split_arrays
    from ssljax.training.loop import initial_state, restore_for_eval

    t0 = time.perf_counter()
    config, setup, state, step = restore_for_eval(workdir, step)
    eval_cfg = config.eval
    layer = eval_cfg.layer if layer is None else layer
    grid = int(eval_cfg.grid if grid is None else grid)
    baselines = bool(eval_cfg.get("baselines", True) if baselines is None else baselines)
    spec = get_dataset_spec(config.dataset.name)
    data_dir = config.dataset.get("data_dir")
    _log(f"checkpoint step {step} of {workdir}; dataset {spec.name}; layer {layer} grid {grid}")

    train_images, train_labels = load_split_arrays(spec.name, spec.train_split, data_dir=data_dir)
    test_images, test_labels = load_split_arrays(spec.name, spec.test_split, data_dir=data_dir)
    _log(f"{len(train_images)} train / {len(test_images)} test images")

    encoder, variables = encoder_of(setup, state.params, state.model_state)
    fn = feature_fn(encoder, layer=layer, grid=grid)
    bs = int(eval_cfg.batch_size)

    def probe(vars_, name):
        t = time.perf_counter()
        tr = compute_features(fn, vars_, train_images, batch_size=bs)
        te = compute_features(fn, vars_, test_images, batch_size=bs)
        res = evaluate_features(tr, train_labels, te, test_labels,
                                num_classes=spec.num_classes, eval_cfg=eval_cfg)
        _log(f"{name}: top1 {res['top1']:.4f} knn {res['knn']['top1']:.4f} "
             f"(dim {tr.shape[1]}, {time.perf_counter() - t:.0f} s)")
        return res

    report = probe(variables, "pretrained encoder")
    report.update(
        checkpoint_step=int(step),
        dataset=spec.name,
        objective=config.objective.name,
        encoder=config.model.encoder,
        layer=layer,
        grid=grid,
    )
    if baselines:
        flat = lambda x: x.reshape(x.shape[0], -1).astype(np.float32) / 255.0  # noqa: E731
        t = time.perf_counter()
        raw = evaluate_features(flat(train_images), train_labels, flat(test_images),
                                test_labels, num_classes=spec.num_classes, eval_cfg=eval_cfg)
        _log(f"raw pixels: top1 {raw['top1']:.4f} knn {raw['knn']['top1']:.4f} "
             f"({time.perf_counter() - t:.0f} s)")
        report["raw_pixels"] = raw
        init = initial_state(config, setup)
        _, init_vars = encoder_of(setup, init.params, init.model_state)
        report["random_init"] = probe(init_vars, "random encoder")
    report["seconds"] = time.perf_counter() - t0
    write_json_atomic(os.path.join(workdir, REPORT_FILE), report)
    return report


def write_json_atomic(path: str, obj) -> None:
    """Writes JSON to ``path`` through a temporary file, so a crash leaves the old file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def format_report(report: dict) -> str:
    """A Markdown results table for a linear-eval report."""
    from ssljax.training.logging import format_table

    rows = [dict(features=f"{report['objective']} {report['encoder']} "
                          f"(step {report['checkpoint_step']}, {report['layer']})",
                 top1=report["top1"], top5=report["top5"], knn_top1=report["knn"]["top1"])]
    for key, name in (("random_init", "random-init encoder"), ("raw_pixels", "raw pixels")):
        if key in report:
            r = report[key]
            rows.append(dict(features=name, top1=r["top1"], top5=r["top5"],
                             knn_top1=r["knn"]["top1"]))
    title = f"Linear evaluation on {report['dataset']} (test split)"
    return title + "\n" + format_table(rows, ["features", "top1", "top5", "knn_top1"])
