"""Energy-based models on 2-D toy densities: samplers of the true energy, energies learned
through the library's train step, and a Gaussian's moments recovered by score matching.

  python experiments/energy_toy.py
  python experiments/energy_toy.py --quick --json /tmp/energy_toy.json --figure /tmp/energy_toy.png

For each density (``ssljax.energy.toy``: the 8-mode Gaussian mixture on a circle and the ring)
it measures, against ``num_reference`` independent true samples:

* the *baseline*: the MMD of ``num_samples / 10`` true samples (mean over
  ``baseline_repeats`` independent draws);
* MALA and HMC run on the TRUE energy (``num_samples`` independent chains from an isotropic
  Gaussian of std ``init_std``; the final states): target, an MMD below the baseline;
* the ``energy`` objective (``ssljax.objectives.energy``) trained on ``train_examples`` true
  samples with ``ssljax.identifiability.fit.fit`` (the library's per-device step) by
  denoising score matching, sliced score matching and contrastive divergence; MALA on the
  learned energy gives its samples: target, an MMD within 2x the baseline. The learned score
  against the true one: ``mean |s_learned - s_true|^2 / mean |s_true|^2`` on true samples.

MMD: the square root of the biased (V-statistic) squared MMD (``mmd(..., unbiased=False)``),
which is the MMD between the two empirical distributions: its finite-sample floor shrinks as
``1/n``, so "below the MMD of 10x fewer true samples" says the sampler's error is smaller than
the sampling error of an exact sample 10x smaller. (The unbiased estimate has mean 0 for exact
samples at every size and cannot be compared this way.) The kernel bandwidth is
``bandwidth`` (0.2: the mixture's mode std and the ring's width, the scale of the structure),
since the median heuristic (about 2.8 here, the circle's scale) cannot tell the 8 modes from
the ring; the median-heuristic MMDs are recorded too.

Gaussian: DSM and SSM on ``N(mean, cov)``; the mean and covariance are read (a) from
``gaussian_chains`` MALA samples of the learned energy and (b) from the learned energy's
minimum (Newton's method) and the inverse of its Hessian there; DSM learns the
``sigma``-smoothed density ``N(mean, cov + sigma^2 I)``, so ``sigma^2 I`` is subtracted from
its covariances. The Gaussian's DSM uses ``gaussian_sigma = 0.2``: the smoothing is removed
exactly, and a larger ``sigma`` lowers the variance of DSM's regression target (``1/sigma^2``
per dimension); with the mixtures' 0.05 the covariance came out 6.4% off (one run), with 0.2
1.5%. Target: relative errors (``|mean - mu| / |mu|``, ``|cov - Sigma|_F / |Sigma|_F``) from
the samples within 5%.

Writes the JSON record (``--json``, default experiments/energy_toy.json) and the figure
(``--figure``, default docs/figures/energy_toy.png: rows are densities; columns true samples,
MALA and HMC on the true energy, MALA on each learned energy); existing files stop the run
before any work unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import time
from typing import Any, Mapping, Sequence

import numpy as np

DENSITIES = ("gaussian_mixture", "ring")
TRAININGS = ("denoising_score_matching", "sliced_score_matching", "contrastive_divergence")
SHORT = {
    "denoising_score_matching": "DSM",
    "sliced_score_matching": "SSM",
    "contrastive_divergence": "CD",
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes of the experiment (defaults: a few minutes on a 2-core CPU)."""

    densities: tuple[str, ...] = DENSITIES
    trainings: tuple[str, ...] = TRAININGS
    gaussian_trainings: tuple[str, ...] = ("denoising_score_matching", "sliced_score_matching")
    num_samples: int = 2000
    num_reference: int = 10000
    baseline_repeats: int = 5
    bandwidth: float = 0.2
    init_std: float = 2.0
    mala_step: float = 0.01
    mala_steps: int = 1000
    hmc_step: float = 0.05
    hmc_leapfrog: int = 10
    hmc_steps: int = 200
    train_examples: int = 20000
    steps: int = 2000
    batch_size: int = 256
    learning_rate: float = 3e-3
    hidden: int = 64
    sigma: float = 0.05
    gaussian_sigma: float = 0.2
    cd_sampler: str = "langevin"
    cd_step: float = 0.01
    cd_steps: int = 20
    cd_reg: float = 0.01
    gaussian_chains: int = 10000
    gaussian_mala_step: float = 0.05
    gaussian_mala_steps: int = 500
    seed: int = 0

    @classmethod
    def quick(cls) -> "Settings":
        """Tiny sizes (seconds): the pieces run, the numbers mean nothing."""
        return cls(
            densities=("gaussian_mixture",),
            trainings=("denoising_score_matching",),
            gaussian_trainings=("denoising_score_matching",),
            num_samples=100,
            num_reference=200,
            baseline_repeats=2,
            mala_steps=10,
            hmc_leapfrog=3,
            hmc_steps=5,
            train_examples=256,
            steps=5,
            batch_size=32,
            hidden=8,
            gaussian_chains=100,
            gaussian_mala_steps=10,
        )


# ---------------------------------------------------------------------------------------------
# Pieces.


def init_chains(key, n: int, init_std: float):
    """``n`` chain starts from the isotropic ``N(0, init_std^2 I)`` in the plane (rotation
    invariant, so symmetric modes get equal basins)."""
    import jax

    return init_std * jax.random.normal(key, (n, 2))


def sample_mmd(x, reference, bandwidth) -> float:
    """``sqrt`` of the biased squared MMD (module docstring); ``bandwidth`` None: median."""
    from ssljax.energy import toy

    return float(
        math.sqrt(max(float(toy.mmd(x, reference, bandwidth=bandwidth, unbiased=False)), 0))
    )


def mmds(x, reference, settings: Settings) -> dict:
    return {
        "mmd": sample_mmd(x, reference, settings.bandwidth),
        "mmd_median_bandwidth": sample_mmd(x, reference, None),
    }


def score_relative_mse(learned, true) -> float:
    """``mean |s_l - s_t|^2 / mean |s_t|^2`` over the rows."""
    learned, true = np.asarray(learned, np.float64), np.asarray(true, np.float64)
    return float(np.mean(np.sum((learned - true) ** 2, 1)) / np.mean(np.sum(true**2, 1)))


def objective_for(training: str, settings: Settings, *, sigma: float | None = None):
    """The ``energy`` objective of one training at the experiment's settings (DSM's noise
    ``sigma``: ``settings.sigma`` unless given)."""
    from ssljax.objectives.energy import Energy

    sigma = settings.sigma if sigma is None else sigma
    kwargs = dict(training=training, sigma=sigma, hidden=settings.hidden)
    if training == "contrastive_divergence":
        kwargs.update(
            sampler=settings.cd_sampler,
            step_size=settings.cd_step,
            num_steps=settings.cd_steps,
            reg=settings.cd_reg,
            buffer_size=max(settings.batch_size, min(10000, settings.train_examples)),
        )
    return Energy(**kwargs)


def train(density, training: str, settings: Settings, key, *, sigma=None) -> dict:
    """Fits the ``energy`` objective on true samples of ``density``; returns the fit and the
    learned energy and score functions."""
    import jax

    from ssljax.identifiability.fit import fit, synthetic_run
    from ssljax.objectives.energy import energy_fn, score_fn

    data = {"image": np.asarray(density.sample(key, settings.train_examples))}
    objective = objective_for(training, settings, sigma=sigma)
    result = fit(
        objective,
        data,
        steps=settings.steps,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        seed=settings.seed,
        max_devices=1,
    )
    run = synthetic_run(objective, data, batch_size=settings.batch_size, steps=1, seed=0)
    model = objective.build_model(run, None)
    return dict(
        result=result,
        energy=jax.jit(energy_fn(result.params, result.model_state, model=model)),
        score=jax.jit(score_fn(result.params, result.model_state, model=model)),
    )


def run_mala(key, energy, n: int, settings: Settings, *, step: float, steps: int, init_std):
    import jax

    from ssljax.energy import samplers

    x0 = init_chains(jax.random.fold_in(key, 1), n, init_std)
    x, rate = jax.jit(
        lambda k, x: samplers.mala(k, x, energy_fn=energy, step_size=step, num_steps=steps)
    )(key, x0)
    return np.asarray(x), float(rate)


def density_study(name: str, settings: Settings) -> tuple[dict, dict]:
    """Samplers of the true energy and the learned energies of one density: the record and
    the samples of each figure column."""
    import jax

    from ssljax.energy import samplers, toy

    density = toy.toy_density(name)
    root = jax.random.fold_in(jax.random.PRNGKey(settings.seed), toy.TOY_DENSITIES.index(name))
    keys = {k: jax.random.fold_in(root, i) for i, k in enumerate(("ref", "true", "base", "run"))}
    reference = density.sample(keys["ref"], settings.num_reference)
    true = density.sample(keys["true"], settings.num_samples)
    small = settings.num_samples // 10
    baselines = [
        mmds(density.sample(jax.random.fold_in(keys["base"], r), small), reference, settings)
        for r in range(settings.baseline_repeats)
    ]
    baseline = float(np.mean([b["mmd"] for b in baselines]))
    record: dict[str, Any] = {
        "params": density.params,
        "baseline": {
            "num_samples": small,
            "mmd": baseline,
            "mmd_draws": [b["mmd"] for b in baselines],
            "mmd_median_bandwidth": float(np.mean([b["mmd_median_bandwidth"] for b in baselines])),
        },
        "true_samples": dict(num_samples=settings.num_samples, **mmds(true, reference, settings)),
    }
    samples = {"true": np.asarray(true)}

    start = time.perf_counter()
    x, rate = run_mala(
        jax.random.fold_in(keys["run"], 0),
        density.energy,
        settings.num_samples,
        settings,
        step=settings.mala_step,
        steps=settings.mala_steps,
        init_std=settings.init_std,
    )
    record["mala"] = dict(
        acceptance=rate, seconds=time.perf_counter() - start, **mmds(x, reference, settings)
    )
    samples["MALA"] = x

    start = time.perf_counter()
    x0 = init_chains(jax.random.fold_in(keys["run"], 2), settings.num_samples, settings.init_std)
    x, rate = jax.jit(
        lambda k, x: samplers.hmc(
            k,
            x,
            energy_fn=density.energy,
            step_size=settings.hmc_step,
            num_leapfrog=settings.hmc_leapfrog,
            num_steps=settings.hmc_steps,
        )
    )(jax.random.fold_in(keys["run"], 3), x0)
    record["hmc"] = dict(
        acceptance=float(rate), seconds=time.perf_counter() - start, **mmds(x, reference, settings)
    )
    samples["HMC"] = np.asarray(x)
    record["samplers_below_baseline"] = bool(
        record["mala"]["mmd"] < baseline and record["hmc"]["mmd"] < baseline
    )

    record["learned"] = {}
    for i, training in enumerate(settings.trainings):
        fitted = train(density, training, settings, jax.random.fold_in(keys["run"], 10 + i))
        x, rate = run_mala(
            jax.random.fold_in(keys["run"], 20 + i),
            fitted["energy"],
            settings.num_samples,
            settings,
            step=settings.mala_step,
            steps=settings.mala_steps,
            init_std=settings.init_std,
        )
        result = fitted["result"]
        entry = dict(
            fit_seconds=result.seconds,
            final_loss=float(np.mean(result.losses[-max(1, settings.steps // 20) :])),
            mala_acceptance=rate,
            score_relative_mse=score_relative_mse(fitted["score"](true), density.score(true)),
            **mmds(x, reference, settings),
        )
        entry["within_2x_baseline"] = bool(entry["mmd"] <= 2.0 * baseline)
        record["learned"][training] = entry
        samples[f"learned {SHORT[training]}"] = x
    return record, samples


def newton_minimum(energy, x0, iterations: int = 30):
    """The minimum of a 2-D energy by Newton's method from ``x0 [d]`` and the Hessian there."""
    import jax
    import jax.numpy as jnp

    f = lambda z: energy(z[None])[0]
    grad, hess = jax.jit(jax.grad(f)), jax.jit(jax.hessian(f))
    x = jnp.asarray(x0, jnp.float32)
    for _ in range(iterations):
        x = x - jnp.linalg.solve(hess(x), grad(x))
    return np.asarray(x, np.float64), np.asarray(hess(x), np.float64)


def relative_errors(mean, cov, mu, sigma) -> dict:
    return {
        "mean": np.asarray(mean).tolist(),
        "cov": np.asarray(cov).tolist(),
        "mean_relative_error": float(np.linalg.norm(mean - mu) / np.linalg.norm(mu)),
        "cov_relative_error": float(np.linalg.norm(cov - sigma) / np.linalg.norm(sigma)),
    }


def gaussian_study(settings: Settings) -> dict:
    """Score matching on ``N(mean, cov)``: moments from long-run samples and from the
    learned energy's minimum and Hessian."""
    import jax

    from ssljax.energy import toy

    density = toy.toy_density("gaussian")
    mu = np.asarray(density.params["mean"])
    sigma = np.asarray(density.params["cov"])
    root = jax.random.fold_in(jax.random.PRNGKey(settings.seed), 0x6A55)
    true = density.sample(jax.random.fold_in(root, 1), settings.num_samples)
    record: dict[str, Any] = {"params": density.params}
    for i, training in enumerate(settings.gaussian_trainings):
        fitted = train(
            density,
            training,
            settings,
            jax.random.fold_in(root, 10 + i),
            sigma=settings.gaussian_sigma,
        )
        dsm = training == "denoising_score_matching"
        smoothing = settings.gaussian_sigma**2 if dsm else 0.0
        x, rate = run_mala(
            jax.random.fold_in(root, 20 + i),
            fitted["energy"],
            settings.gaussian_chains,
            settings,
            step=settings.gaussian_mala_step,
            steps=settings.gaussian_mala_steps,
            init_std=settings.init_std,
        )
        sample_cov = np.cov(x.T) - smoothing * np.eye(2)
        x_min, hessian = newton_minimum(fitted["energy"], np.mean(x, axis=0))
        hessian_cov = np.linalg.inv(hessian) - smoothing * np.eye(2)
        from_samples = relative_errors(np.mean(x, axis=0), sample_cov, mu, sigma)
        from_minimum = relative_errors(x_min, hessian_cov, mu, sigma)
        record[training] = {
            "fit_seconds": fitted["result"].seconds,
            "smoothing_variance_subtracted": smoothing,
            "mala_acceptance": rate,
            "score_relative_mse": score_relative_mse(fitted["score"](true), density.score(true)),
            "from_samples": from_samples,
            "from_minimum_and_hessian": from_minimum,
            "within_5_percent": bool(
                max(from_samples["mean_relative_error"], from_samples["cov_relative_error"]) <= 0.05
            ),
        }
    return record


def figure(samples: Mapping[str, Mapping[str, np.ndarray]], path: str, *, limit: float = 3.2):
    """Scatter plots: one row per density, one column per sampler (``samples[density][col]``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = list(samples)
    columns = list(samples[rows[0]])
    fig = Figure(figsize=(2.2 * len(columns), 2.3 * len(rows)), dpi=100)
    FigureCanvasAgg(fig)
    for r, density in enumerate(rows):
        for c, column in enumerate(columns):
            ax = fig.add_subplot(len(rows), len(columns), r * len(columns) + c + 1)
            x = np.asarray(samples[density][column])
            ax.scatter(x[:, 0], x[:, 1], s=1.0, alpha=0.4, color="tab:blue", linewidths=0)
            ax.set_xlim(-limit, limit)
            ax.set_ylim(-limit, limit)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(column, fontsize=9)
            if c == 0:
                ax.set_ylabel(density.replace("_", " "), fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _f(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{float(x):.{digits}f}"


def format_results(record: Mapping[str, Any]) -> str:
    """Markdown tables of the record."""
    lines = [
        "| density | baseline (n/10 true) | n true | MALA (acc.) | HMC (acc.) | "
        + " | ".join(
            f"learned {SHORT[t]} (score rel. MSE)" for t in record["settings"]["trainings"]
        )
        + " |",
        "|---" * (5 + len(record["settings"]["trainings"])) + "|",
    ]
    for name, r in record["densities"].items():
        cells = [
            name,
            _f(r["baseline"]["mmd"], 4),
            _f(r["true_samples"]["mmd"], 4),
            f"{_f(r['mala']['mmd'], 4)} ({_f(r['mala']['acceptance'], 2)})",
            f"{_f(r['hmc']['mmd'], 4)} ({_f(r['hmc']['acceptance'], 2)})",
        ]
        for t in record["settings"]["trainings"]:
            e = r["learned"].get(t)
            cells.append(
                "n/a" if e is None else f"{_f(e['mmd'], 4)} ({_f(e['score_relative_mse'], 3)})"
            )
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| Gaussian | mean rel. err. (samples) | cov rel. err. (samples) | mean rel. err. "
        "(minimum) | cov rel. err. (Hessian) | score rel. MSE |",
        "|---|---|---|---|---|---|",
    ]
    for t in record["settings"]["gaussian_trainings"]:
        g = record["gaussian"][t]
        s, m = g["from_samples"], g["from_minimum_and_hessian"]
        lines.append(
            f"| {SHORT[t]} | {_f(s['mean_relative_error'])} | {_f(s['cov_relative_error'])} | "
            f"{_f(m['mean_relative_error'])} | {_f(m['cov_relative_error'])} | "
            f"{_f(g['score_relative_mse'])} |"
        )
    return "\n".join(lines)


def run_experiment(settings: Settings) -> tuple[dict, dict]:
    """Every study: ``(record, figure samples)``."""
    start = time.perf_counter()
    record: dict[str, Any] = {"settings": dataclasses.asdict(settings), "densities": {}}
    samples = {}
    for name in settings.densities:
        record["densities"][name], samples[name] = density_study(name, settings)
    record["gaussian"] = gaussian_study(settings)
    record["seconds"] = time.perf_counter() - start
    record["machine"] = {
        "platform": platform.platform(),
        "processor": cpu_model(),
        "cpu_count": os.cpu_count(),
    }
    return record, samples


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def to_json(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): to_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_json(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if hasattr(x, "tolist"):
        return np.asarray(x).tolist()
    return x


def parse_args(argv: Sequence[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", default="experiments/energy_toy.json")
    parser.add_argument("--figure", default="docs/figures/energy_toy.png")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for path in (args.json, args.figure):
        if os.path.exists(path) and not args.overwrite:
            raise SystemExit(f"{path} exists; pass --overwrite to replace it")
    settings = Settings.quick() if args.quick else Settings()
    settings = dataclasses.replace(settings, seed=args.seed)
    record, samples = run_experiment(settings)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(to_json(record), f, indent=2)
        f.write("\n")
    figure(samples, args.figure)
    print(format_results(record))
    print(f"wrote {args.json} and {args.figure} in {record['seconds']:.0f} s", flush=True)
    return 0
