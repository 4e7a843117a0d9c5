"""Evaluation of a pretraining checkpoint: frozen features -> linear probe and kNN.

Reads only what pretraining wrote (checkpoint + stored config), never training internals.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from ssljax.training.logging import write_json_atomic

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


def resolve_layers(spec: str, available: list[str]) -> list[str]:
    """The layers to probe: ``'all'``, one sown name, or a comma-separated list of names.

    Raises:
      ValueError: a name the encoder does not sow (the message lists the ones it does).
    """
    names = list(available) if spec.strip() == "all" else [n.strip() for n in spec.split(",")]
    names = [n for n in names if n]
    bad = [n for n in names if n not in available]
    if bad or not names:
        raise ValueError(
            f"unknown layer {(bad or [spec])[0]!r}; the encoder sows {available} "
            "(or pass 'all', or a comma-separated list)"
        )
    return names


def best_validation_top1(report: dict) -> float:
    """The probe's best validation top-1 over its l2 grid (its training top-1 with no grid)."""
    values = list(report.get("val_top1", {}).values())
    return float(max(values)) if values else float(report["train_top1"])


def select_layer(reports: dict[str, dict]) -> str:
    """The layer whose probe has the best *validation* top-1 (held out from the train split;
    the test split never chooses). Ties go to the layer listed first."""
    names = list(reports)
    return max(names, key=lambda n: (best_validation_top1(reports[n]), -names.index(n)))


def summarise_layers(reports: dict[str, dict]) -> dict[str, dict]:
    """Per-layer summary kept in the JSON report when several layers are probed."""
    return {
        name: dict(top1=r["top1"], top5=r["top5"], knn_top1=r["knn"]["top1"],
                   val_top1=best_validation_top1(r), feature_dim=r["feature_dim"])
        for name, r in reports.items()
    }


def evaluate_workdir(workdir: str, *, layer: str | None = None, grid: int | None = None,
                     step: int | None = None, baselines: bool | None = None) -> dict:
    """Evaluates the checkpoint in ``workdir`` and writes ``workdir/linear_eval.json``.

    ``layer`` is one sown layer (``'block3'``), a comma-separated list, or ``'all'`` (every
    layer the encoder sows). With several layers each is probed, and the reported one is
    the best by validation top-1 (``select_layer``): the best layer is often not the last
    (Kolesnikov et al. 2019, iGPT). The random-encoder baseline gets the same choice.

    Returns the report: ``top1``, ``top5``, ``l2``, ``knn``, ``checkpoint_step``, the probed
    ``layer``/``grid``, ``layers`` (per-layer summary, several layers only), and (with
    baselines) ``raw_pixels`` and ``random_init`` reports.
    """
    from ssljax.data.datasets import get_dataset_spec
    from ssljax.data.input_pipeline import load_split_arrays
    from ssljax.models import encoder_layer_names
    from ssljax.training.loop import initial_state, restore_for_eval

    t0 = time.perf_counter()
    config, setup, state, step = restore_for_eval(workdir, step)
    eval_cfg = config.eval
    layer = eval_cfg.layer if layer is None else layer
    grid = int(eval_cfg.grid if grid is None else grid)
    baselines = bool(eval_cfg.get("baselines", True) if baselines is None else baselines)
    spec = get_dataset_spec(config.dataset.name)
    data_dir = config.dataset.get("data_dir")

    encoder, variables = encoder_of(setup, state.params, state.model_state)
    sample = jax.ShapeDtypeStruct((1, *spec.image_shape), jnp.float32)
    layers = resolve_layers(layer, encoder_layer_names(encoder, variables, sample))
    _log(f"checkpoint step {step} of {workdir}; dataset {spec.name}; "
         f"layer {','.join(layers)} grid {grid}")

    train_images, train_labels = load_split_arrays(spec.name, spec.train_split, data_dir=data_dir)
    test_images, test_labels = load_split_arrays(spec.name, spec.test_split, data_dir=data_dir)
    _log(f"{len(train_images)} train / {len(test_images)} test images")
    bs = int(eval_cfg.batch_size)

    def probe(vars_, name):
        reports = {}
        for layer_name in layers:
            t = time.perf_counter()
            fn = feature_fn(encoder, layer=layer_name, grid=grid)
            tr = compute_features(fn, vars_, train_images, batch_size=bs)
            te = compute_features(fn, vars_, test_images, batch_size=bs)
            res = evaluate_features(tr, train_labels, te, test_labels,
                                    num_classes=spec.num_classes, eval_cfg=eval_cfg)
            _log(f"{name} {layer_name}: top1 {res['top1']:.4f} knn {res['knn']['top1']:.4f} "
                 f"val {best_validation_top1(res):.4f} (dim {tr.shape[1]}, "
                 f"{time.perf_counter() - t:.0f} s)")
            reports[layer_name] = res
        best = select_layer(reports)
        report = dict(reports[best], layer=best)
        if len(layers) > 1:
            report["layers"] = summarise_layers(reports)
            _log(f"{name}: best layer by validation top-1 is {best}")
        return report

    report = probe(variables, "pretrained encoder")
    report.update(
        checkpoint_step=int(step),
        dataset=spec.name,
        objective=config.objective.name,
        encoder=config.model.encoder,
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


def format_report(report: dict) -> str:
    """A Markdown results table for a linear-eval report."""
    from ssljax.training.logging import format_table

    rows = [dict(features=f"{report['objective']} {report['encoder']} "
                          f"(step {report['checkpoint_step']}, {report['layer']})",
                 top1=report["top1"], top5=report["top5"], knn_top1=report["knn"]["top1"])]
    for name, r in report.get("layers", {}).items():
        if name != report["layer"]:
            rows.append(dict(features=f"  {name} (val top-1 {r['val_top1']:.4f})",
                             top1=r["top1"], top5=r["top5"], knn_top1=r["knn_top1"]))
    for key, name in (("random_init", "random-init encoder"), ("raw_pixels", "raw pixels")):
        if key in report:
            r = report[key]
            label = f"{name} ({r['layer']})" if "layer" in r else name
            rows.append(dict(features=label, top1=r["top1"], top5=r["top5"],
                             knn_top1=r["knn"]["top1"]))
    title = f"Linear evaluation on {report['dataset']} (test split)"
    return title + "\n" + format_table(rows, ["features", "top1", "top5", "knn_top1"])
