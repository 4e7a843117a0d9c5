"""Disentanglement evaluation of a pretraining checkpoint on dSprites' ground-truth factors.

Reads the checkpoint and the config stored beside it (``ssljax.training.loop.restore_for_eval``,
as ``ssljax.evaluation.checkpoint_eval`` does), cuts the encoder out of the network
(``ssljax.evaluation.checkpoint_eval.encoder_of``) and uses its output as the representation:
the posterior means for the latent-variable models of ``ssljax.objectives.latent`` (any other
encoder's pooled features otherwise). Every metric of ``ssljax.evaluation.disentanglement``
(BetaVAE, FactorVAE, MIG, DCI, SAP, Modularity/Explicitness, IRS and the logistic-regression /
gradient-boosting downstream tasks) runs on ``ssljax.data.dsprites.DSprites`` with the suite's
defaults (disentanglement_lib's sample counts) unless ``num_train``/``num_test`` lower them;
each metric gets a fresh ``RandomState(random_seed)`` as in disentanglement_lib.

Writes ``DIR/disentanglement.json`` (atomically) and, for models with a decoder, the figures
``DIR/reconstructions.png`` (images and reconstructions from the posterior means),
``DIR/traversals.png`` (one row per latent, each varied over its 2%-98% range across images
while the others stay at one image's code; rows sorted by KL) and ``DIR/embedding.png`` (a 2-D
PCA, or t-SNE, of the representation of random images, one panel per factor, coloured by the
factor's value; :mod:`ssljax.evaluation.disentanglement.figures`). The JSON also holds latent
statistics: mean KL to N(0, I) per latent, active units (Burda et al. 2016: latents whose
posterior mean varies across images with variance > 0.01) and the reconstruction log-loss and
pixel error rate.
"""

from __future__ import annotations

import math
import os
import time
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from ssljax.evaluation.disentanglement import suite
from ssljax.evaluation.disentanglement.figures import (
    EMBEDDINGS,
    embed_2d,
    save_embedding,
    save_reconstructions,
    save_traversals,
    traversal_grid,
)

REPORT_FILE = "disentanglement.json"
FIGURE_FILES = ("reconstructions.png", "traversals.png", "embedding.png")
ACTIVE_UNIT_THRESHOLD = 0.01

# Headline score of each metric: (metric, key, column name).
SUMMARY_KEYS = (
    ("beta_vae", "eval_accuracy", "beta_vae"),
    ("factor_vae", "eval_accuracy", "factor_vae"),
    ("mig", "discrete_mig", "mig"),
    ("dci", "disentanglement", "dci_disentanglement"),
    ("dci", "completeness", "dci_completeness"),
    ("dci", "informativeness_test", "dci_informativeness"),
    ("sap", "SAP_score", "sap"),
    ("modularity_explicitness", "modularity_score", "modularity"),
    ("modularity_explicitness", "explicitness_score_test", "explicitness"),
    ("irs", "IRS", "irs"),
)


def _log(message: str) -> None:
    """Progress lines, printed by process 0 only."""
    import jax

    if jax.process_index() == 0:
        print(f"[disentanglement] {message}", flush=True)


def batched_fn(fn: Callable, *, batch_size: int = 512) -> Callable[[np.ndarray], np.ndarray]:
    """``fn`` (jitted, array -> array) applied in fixed-size chunks, the last one zero-padded,
    so it compiles once whatever sizes the metrics ask for."""

    def run(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        out = []
        for start in range(0, len(x), batch_size):
            chunk = x[start : start + batch_size]
            pad = batch_size - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
            out.append(np.asarray(fn(chunk))[: batch_size - pad])
        return np.concatenate(out, axis=0) if out else np.zeros((0,), np.float32)

    return run


def representation_fn(encoder, variables, *, batch_size: int = 512) -> Callable:
    """Observations ``[n, 64, 64, 1]`` in [0, 1] -> the encoder's output ``[n, d]`` (float64)."""
    import jax

    fn = jax.jit(lambda x: encoder.apply(variables, x, train=False))
    run = batched_fn(fn, batch_size=batch_size)
    return lambda x: run(x).astype(np.float64)


def sample_overrides(
    num_train: Optional[int] = None, num_test: Optional[int] = None
) -> dict[str, dict]:
    """Per-metric overrides of the suite's sample counts.

    ``num_train`` replaces every metric's training (and FactorVAE's variance-estimate) count;
    the downstream tasks keep their sizes up to it (or ``(num_train,)`` when none is that
    small). ``num_test`` replaces every test/eval count. None keeps the defaults.
    """
    for name, value in (("num_train", num_train), ("num_test", num_test)):
        if value is not None and int(value) < 1:
            raise ValueError(f"{name}={value} is invalid; valid: an int >= 1")
    overrides: dict[str, dict] = {}
    for metric, defaults in suite.DEFAULTS.items():
        o = {}
        if num_train is not None:
            if isinstance(defaults["num_train"], tuple):
                o["num_train"] = tuple(n for n in defaults["num_train"] if n <= num_train) or (
                    int(num_train),
                )
            else:
                o["num_train"] = int(num_train)
            if "num_variance_estimate" in defaults:
                o["num_variance_estimate"] = int(num_train)
        if num_test is not None:
            for key in ("num_test", "num_eval"):
                if key in defaults:
                    o[key] = int(num_test)
        if o:
            overrides[metric] = o
    return overrides


def summary_scores(results: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Headline numbers (``SUMMARY_KEYS``, downstream accuracies at the largest training size,
    statistical efficiency) of an ``evaluate_all``-style result."""
    out = {}
    for metric, key, column in SUMMARY_KEYS:
        if metric in results and key in results[metric]:
            out[column] = float(results[metric][key])
    for metric, column in (
        ("downstream_logistic_regression", "lr"),
        ("downstream_gradient_boosting", "gbt"),
    ):
        scores = results.get(metric)
        if not scores:
            continue
        sizes = sorted(int(k.split(":")[0]) for k in scores if k.endswith(":mean_test_accuracy"))
        if sizes:
            out[f"{column}{sizes[-1]}_accuracy"] = float(scores[f"{sizes[-1]}:mean_test_accuracy"])
        if "statistical_efficiency" in scores:
            out[f"{column}_efficiency"] = float(scores["statistical_efficiency"])
    return out


def to_jsonable(obj):
    """Numpy scalars/arrays and tuples -> plain JSON types (non-finite floats -> None)."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj


def latent_statistics(mean: np.ndarray, log_var: np.ndarray) -> dict:
    """KL to N(0, I) per latent (averaged over images), active units, posterior std."""
    kl = 0.5 * (mean**2 + np.exp(log_var) - log_var - 1.0)
    variance_of_means = np.var(mean, axis=0)
    return {
        "kl_per_latent": kl.mean(axis=0),
        "kl": float(kl.sum(axis=1).mean()),
        "variance_of_means": variance_of_means,
        "mean_posterior_std": np.exp(0.5 * log_var).mean(axis=0),
        "active_units": int(np.sum(variance_of_means > ACTIVE_UNIT_THRESHOLD)),
    }


def reconstruction_errors(
    images: np.ndarray, decoded: np.ndarray, *, likelihood: str, gaussian_std: float
) -> dict:
    """``-log p(x | decode(mean))`` per image (nats) and the fraction of pixels on the wrong
    side of 0.5, for decoder outputs ``decoded`` (logits)."""
    x = images.reshape(len(images), -1).astype(np.float64)
    logits = decoded.reshape(len(decoded), -1).astype(np.float64)
    prob = 1.0 / (1.0 + np.exp(-logits))
    if likelihood == "gaussian":
        var = gaussian_std**2
        nll = 0.5 * np.sum((x - prob) ** 2 / var + np.log(2 * np.pi * var), axis=1)
    else:
        nll = np.sum(np.logaddexp(0.0, logits) - x * logits, axis=1)
    return {"nll": float(nll.mean()), "pixel_error": float(np.mean((prob > 0.5) != (x > 0.5)))}


def evaluate_workdir(
    workdir: str,
    *,
    step: Optional[int] = None,
    metrics: Optional[Sequence[str]] = None,
    num_train: Optional[int] = None,
    num_test: Optional[int] = None,
    overrides: Optional[Mapping[str, Mapping]] = None,
    random_seed: int = 0,
    figures: bool = True,
    embedding: str = "pca",
    embedding_points: int = 2000,
    statistics_points: int = 2048,
) -> dict:
    """Evaluates the checkpoint in ``workdir``; writes ``disentanglement.json`` and figures.

    Args:
      workdir: a pretraining run directory (checkpoints/ + config).
      step: checkpoint step (default: latest).
      metrics: names of ``ssljax.evaluation.disentanglement.METRICS`` (default: all).
      num_train, num_test: lower sample counts (``sample_overrides``); None: the defaults.
      overrides: ``{metric: {setting: value}}`` applied on top of those (e.g. fewer points
        for the expensive BetaVAE / FactorVAE scores only).
      random_seed: seed of every metric's RandomState and of the image samples.
      figures: write the PNG figures (models with a decoder).
      embedding: 'pca' or 't-SNE' ('tsne') for the embedding figure.
      embedding_points, statistics_points: images for the embedding / latent statistics.

    Returns:
      The report written to ``disentanglement.json``.
    """
    import jax
    from etils import epath

    from ssljax.data.dsprites import DSprites
    from ssljax.evaluation.checkpoint_eval import encoder_of
    from ssljax.training.logging import write_json_atomic
    from ssljax.training.loop import restore_for_eval

    t0 = time.perf_counter()
    is_main = jax.process_index() == 0  # every process evaluates; process 0 writes
    workdir_path = epath.Path(workdir)
    names = list(suite.METRICS) if metrics is None else list(metrics)
    for name in names:
        if name not in suite.METRICS:
            raise ValueError(
                f"unknown disentanglement metric {name!r}; valid: {', '.join(suite.METRICS)}"
            )
    if embedding not in EMBEDDINGS:
        raise ValueError(f"embedding={embedding!r} is invalid; choose one of {EMBEDDINGS}")
    merged = sample_overrides(num_train, num_test)
    for name, extra in (overrides or {}).items():
        if name not in suite.METRICS:
            raise ValueError(
                f"unknown disentanglement metric {name!r} in overrides; valid: "
                f"{', '.join(suite.METRICS)}"
            )
        merged[name] = dict(merged.get(name, {}), **extra)
    overrides = merged
    config, setup, state, step = restore_for_eval(workdir, step)
    if config.dataset.name != "dsprites":
        raise ValueError(
            f"the checkpoint in {workdir} was pretrained on "
            f"{config.dataset.name!r}; disentanglement is measured on dSprites' "
            "factors: pretrain with dataset.name='dsprites'"
        )
    data = DSprites()
    encoder, enc_vars = encoder_of(setup, state.params, state.model_state)
    represent = representation_fn(encoder, enc_vars)
    _log(
        f"checkpoint step {step} of {workdir}; objective {config.objective.name}; "
        f"metrics {','.join(names)}"
        + (
            f"; sample overrides {shown}"
            if (shown := {n: overrides[n] for n in names if n in overrides})
            else ""
        )
    )

    report: dict = {
        "workdir": os.fspath(epath.Path(workdir).absolute()),
        "checkpoint_step": int(step),
        "objective": config.objective.name,
        "dataset": config.dataset.name,
        "encoder": config.model.encoder,
        "random_seed": int(random_seed),
        "settings": {n: suite.metric_settings(n, overrides.get(n)) for n in names},
        "metrics": {},
        "metric_seconds": {},
    }
    for name in names:
        t = time.perf_counter()
        result = suite.evaluate_all(
            data,
            represent,
            random_seed=random_seed,
            metrics=[name],
            overrides={name: overrides[name]} if name in overrides else None,
        )
        report["metrics"][name] = result[name]
        report["metric_seconds"][name] = time.perf_counter() - t
        shown = {
            k: round(float(v), 4)
            for k, v in result[name].items()
            if np.ndim(v) == 0 and ":" not in k
        }
        _log(f"{name}: {shown} ({report['metric_seconds'][name]:.0f} s)")
    report["summary"] = summary_scores(report["metrics"])

    model = setup.eval_model
    variables = {"params": state.params, **state.model_state}
    rs = np.random.RandomState(random_seed)
    if hasattr(model, "encode") and hasattr(model, "decode"):
        encode = batched_fn(
            jax.jit(
                lambda x: jax.numpy.concatenate(
                    model.apply(variables, x, train=False, method="encode"), axis=-1
                )
            )
        )
        decode = batched_fn(
            jax.jit(lambda z: model.apply(variables, z, train=False, method="decode"))
        )
        factors, images = data.sample(statistics_points, rs)
        both = encode(images)
        latent_dim = both.shape[1] // 2
        mean, log_var = both[:, :latent_dim], both[:, latent_dim:]
        stats = latent_statistics(mean, log_var)
        decoded = decode(mean)
        objective = setup.objective  # every latent-variable objective has both fields
        stats["reconstruction"] = reconstruction_errors(
            images,
            decoded,
            likelihood=objective.likelihood,
            gaussian_std=float(objective.gaussian_std),
        )
        report["latents"] = stats
        report["summary"].update(
            reconstruction_nll=stats["reconstruction"]["nll"],
            pixel_error=stats["reconstruction"]["pixel_error"],
            kl=stats["kl"],
            active_units=stats["active_units"],
        )
        _log(
            f"latents: KL {stats['kl']:.2f} nats, {stats['active_units']} active units; "
            f"reconstruction -log p {stats['reconstruction']['nll']:.1f} nats, pixel error "
            f"{stats['reconstruction']['pixel_error']:.4f}"
        )
        if figures and is_main:
            n = 10
            probs = 1.0 / (1.0 + np.exp(-decoded[:n]))
            save_reconstructions(workdir_path / FIGURE_FILES[0], images[:n], probs)
            order = np.argsort(-stats["kl_per_latent"])
            labels = [f"z{d} KL {stats['kl_per_latent'][d]:.2f}" for d in order]
            grid = traversal_grid(decode, mean[0], mean, order)
            save_traversals(workdir_path / FIGURE_FILES[1], grid, labels)
            report["figures"] = [FIGURE_FILES[0], FIGURE_FILES[1]]
    elif figures and is_main:
        _log("the model has no decoder: no reconstruction or traversal figures")
    if figures and is_main:
        factors, images = data.sample(embedding_points, rs)
        points = embed_2d(represent(images), embedding, random_state=random_seed)
        save_embedding(
            workdir_path / FIGURE_FILES[2], points, factors, data.factor_names, embedding
        )
        report.setdefault("figures", []).append(FIGURE_FILES[2])
        _log(f"figures: {', '.join(report['figures'])} in {workdir}")
    report["seconds"] = time.perf_counter() - t0
    report = to_jsonable(report)
    if is_main:
        write_json_atomic(os.fspath(workdir_path / REPORT_FILE), report)
    return report


def format_report(report: dict) -> str:
    """A two-column Markdown table of the headline scores."""
    from ssljax.training.logging import format_table

    rows = [dict(score=k, value=v) for k, v in report["summary"].items()]
    title = (
        f"Disentanglement of {report['objective']} (step {report['checkpoint_step']}) on "
        f"dSprites, {report['seconds']:.0f} s"
    )
    return title + "\n" + format_table(rows, ["score", "value"])
