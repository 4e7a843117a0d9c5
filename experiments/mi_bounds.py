"""Poole et al. 2019, Fig. 2 and 3: MI estimators on correlated Gaussians, a staircase of true MI.

  python experiments/mi_bounds.py [--out_dir runs/mi_bounds] [--steps_per_level 4000] \
      [--critics separable,concat] [--transforms gaussian,cubic] [--estimators InfoNCE,NWJ]

Data: ``x ~ N(0, I_20)``, ``y = rho x + sqrt(1 - rho^2) eps`` with ``rho`` set so that the true
MI ``-(d/2) log(1 - rho^2)`` climbs the staircase 2, 4, 6, 8, 10 nats, ``steps_per_level``
steps each (4000 in the paper), and the cubic variant ``y -> y^3`` of Song & Ermon 2020
(same MI). Every
estimator trains its own critic with Adam (lr 5e-4) on fresh batches of 64, one run through
all levels, with a separable critic ``g(x)^T h(y)`` (3 x 256 ReLU, 32-d embedding) and a
concatenation critic ``MLP([x; y])`` (3 x 256 ReLU) evaluated on all 64^2 pairs. TUBA and the
interpolated bound learn a baseline ``log a(x)`` (the same MLP shape, 1 output); JS trains
with the JS objective and reports NWJ; MINE is DV with the moving-average gradient.
Layers start as PyTorch's ``nn.Linear`` default (``--init_scheme torch``: uniform in
``+-1/sqrt(fan_in)``), which Song & Ermon's reference code for the cubic case gets; with Flax's
LeCun-normal default (``--init_scheme lecun``) a separable critic starts with scores near 30
on ``y^3`` and the ``exp(f)`` bounds (NWJ, TUBA, MINE, JS) overflow from the first step.

Efficiency: one ``jax.jit`` per critic trains a whole level with ``lax.scan``; each scan step
advances every estimator on the same batch (all start from the same critic), ``vmap``-ed over
the Gaussian and cubic variants. Estimators are not vmapped over: their bounds are different
functions, and a vmapped ``lax.switch`` evaluates every branch for every member (measured
7x slower per run on this CPU than one bound per run).

Outputs in ``out_dir``: ``mi_bounds.png`` (every estimator's per-step estimate, light, and its
100-step moving average, dark, against the true staircase and ``log 64``), ``mi_bounds.md``
and ``mi_bounds.json`` (bias, variance and MSE per estimator and level, over the last
``eval_fraction`` of each level's steps, after the critic has adapted to the new level).
Results per critic are kept in ``results_<critic>.npz``; the figure and tables cover every
critic found there, so critics can be run separately (e.g. with different step counts, which
the tables then state).
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

_OUT = flags.DEFINE_string("out_dir", "runs/mi_bounds", "Output directory.")
_STEPS = flags.DEFINE_integer("steps_per_level", 4000, "Training steps per MI level (paper: 4000).")
_LEVELS = flags.DEFINE_list("levels", ["2", "4", "6", "8", "10"], "True MI of each level (nats).")
_CRITICS = flags.DEFINE_list("critics", ["separable", "concat"], "Critics to train.")
_TRANSFORMS = flags.DEFINE_list("transforms", ["gaussian", "cubic"], "Data variants.")
_ESTIMATORS = flags.DEFINE_list("estimators", [], "Estimators (default: all).")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Samples per step (K).")
_DIM = flags.DEFINE_integer("dim", 20, "Dimension of x and y.")
_LR = flags.DEFINE_float("learning_rate", 5e-4, "Adam learning rate.")
_HIDDEN = flags.DEFINE_integer("hidden_dim", 256, "Critic hidden width.")
_EMBED = flags.DEFINE_integer("embed_dim", 32, "Separable critic embedding.")
_LAYERS = flags.DEFINE_integer(
    "layers",
    3,
    "Critic hidden layers (3: the PyTorch reference code of the cubic benchmark, whose mlp(layers=2) has an input layer and 2 more hidden layers; Poole et al.'s TensorFlow code has 2).",
)
_INIT = flags.DEFINE_enum(
    "init_scheme",
    "torch",
    ["torch", "lecun"],
    "Critic and baseline initialisation (ssljax.models.critics.dense_initializers): 'torch' as the cubic benchmark's reference code, 'lecun' is Flax's default.",
)
_EVAL_FRACTION = flags.DEFINE_float("eval_fraction", 0.5, "Last fraction of each level scored.")
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed (critic init and data).")
_PLOT_ONLY = flags.DEFINE_bool("plot_only", False, "Only redraw figure and tables from results.")

# name -> (bound, settings). Order = plotting order.
ESTIMATORS = {
    "InfoNCE": ("infonce", {}),
    "NWJ": ("nwj", {}),
    "TUBA": ("tuba", {}),
    "DV": ("dv", {}),
    "MINE": ("mine", {"momentum": 0.9}),
    "JS": ("js", {}),
    "alpha=0.01": ("interpolated", {"alpha": 0.01}),
    "SMILE (tau=5)": ("smile", {"clip": 5.0}),
}
USES_BASELINE = ("tuba", "interpolated")
SMOOTHING = 100


def bound_value(bound: str, settings: dict, scores, log_baseline, mine_state):
    """``(estimate, new_mine_state)`` of one bound; differentiable in scores and baseline."""
    from ssljax.objectives import mutual_information as mi

    if bound == "mine":
        return mi.mine_bound(scores, mine_state, momentum=settings["momentum"])
    fns = {
        "infonce": lambda: mi.infonce_bound(scores),
        "nwj": lambda: mi.nwj_bound(scores),
        "tuba": lambda: mi.tuba_bound(scores, log_baseline),
        "dv": lambda: mi.dv_bound(scores),
        "js": lambda: mi.js_bound(scores),
        "interpolated": lambda: mi.interpolated_bound(scores, log_baseline, settings["alpha"]),
        "smile": lambda: mi.smile_bound(scores, settings["clip"]),
    }
    return fns[bound](), mine_state


def build_critic(name: str):
    from ssljax.models.critics import build_critic as build

    return build(
        name,
        hidden_dim=_HIDDEN.value,
        embed_dim=_EMBED.value,
        layers=_LAYERS.value,
        init_scheme=_INIT.value,
    )


def make_level_runner(critic, baseline, tx, names, transforms, *, steps, batch, dim):
    """A jitted ``(carry, rng, rho) -> (carry, estimates [steps, estimators, transforms])``.

    ``carry[name]`` holds estimator ``name``'s parameters, Adam and MINE states with a leading
    transform axis. One scan step advances every estimator on the same batch; each estimator
    computes only its own bound, vmapped over the transforms.
    """
    import jax
    import jax.numpy as jnp

    from ssljax.objectives import mutual_information as mi

    cubic = jnp.asarray([t == "cubic" for t in transforms])

    def member_step(bound, settings, carry, x, y, is_cubic):
        params, opt_state, mine_state = carry
        y = jnp.where(is_cubic, y**3, y)

        def loss_fn(p):
            scores = critic.apply(p["critic"], x, y)
            log_baseline = baseline.apply(p["baseline"], x)[:, 0] if bound in USES_BASELINE else 0.0
            value, new_state = bound_value(bound, settings, scores, log_baseline, mine_state)
            return -value, (value, new_state)

        grads, (value, new_state) = jax.grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = jax.tree.map(lambda a, u: a + u, params, updates)
        return (params, opt_state, new_state), value

    steppers = {
        name: jax.vmap(
            functools.partial(member_step, *ESTIMATORS[name]), in_axes=(0, None, None, 0)
        )
        for name in names
    }

    @jax.jit
    def run_level(carry, rng, rho):
        def body(c, step_rng):
            x, y = mi.sample_correlated_gaussian(step_rng, batch, dim, rho)
            new, values = {}, []
            for name in names:
                new[name], v = steppers[name](c[name], x, y, cubic)
                values.append(v)
            return new, jnp.stack(values)

        return jax.lax.scan(body, carry, jax.random.split(rng, steps))

    return run_level


def init_members(critic, baseline, tx, names, transforms: int, *, seed: int, batch: int, dim: int):
    """Identical initial critic, baseline, Adam and MINE states for every run."""
    import jax
    import jax.numpy as jnp

    from ssljax.objectives import mutual_information as mi

    kc, kb = jax.random.split(jax.random.PRNGKey(seed))
    x = jnp.zeros((batch, dim), jnp.float32)
    params = {"critic": critic.init(kc, x, x), "baseline": baseline.init(kb, x)}
    one = (params, tx.init(params), mi.mine_init_state())
    stacked = jax.tree.map(lambda a: jnp.broadcast_to(a, (transforms,) + jnp.shape(a)), one)
    return {name: stacked for name in names}


def train_critic(critic_name: str, names, transforms, levels, *, steps: int, on_level=None) -> dict:
    """Trains every (estimator, transform) with one critic type through the staircase.

    ``on_level(result)``, if given, receives the result so far after every level (so a long
    run that is cut off keeps its finished levels).
    """
    import jax
    import numpy as np
    import optax

    from ssljax.models.critics import MLP
    from ssljax.objectives import mutual_information as mi

    batch, dim = _BATCH.value, _DIM.value
    critic = build_critic(critic_name)
    baseline = MLP(_HIDDEN.value, 1, _LAYERS.value, init_scheme=_INIT.value)
    tx = optax.adam(_LR.value)
    members = len(names) * len(transforms)
    carry = init_members(
        critic, baseline, tx, names, len(transforms), seed=_SEED.value, batch=batch, dim=dim
    )
    run_level = make_level_runner(
        critic, baseline, tx, names, transforms, steps=steps, batch=batch, dim=dim
    )
    data_rng = jax.random.fold_in(jax.random.PRNGKey(_SEED.value), 1)
    estimates, seconds = [], []
    for i, level in enumerate(levels):
        t = time.perf_counter()
        rho = mi.rho_for_mi(level, dim)
        carry, est = run_level(carry, jax.random.fold_in(data_rng, i), rho)
        est = np.asarray(jax.device_get(est))  # [steps, estimators, transforms]
        seconds.append(time.perf_counter() - t)
        estimates.append(est)
        print(
            f"[{critic_name}] level {level:g} nats: {seconds[-1]:.1f} s "
            f"({'compile + ' if i == 0 else ''}{steps} steps x {members} runs)",
            flush=True,
        )
        result = {
            "estimates": np.stack(estimates),  # [levels, steps, estimators, transforms]
            "seconds": np.asarray(seconds),
        }
        if on_level is not None:
            on_level(result)
    return result


def summarize(est, levels, *, eval_fraction: float) -> dict:
    """Bias, variance and MSE of each level's last ``eval_fraction`` of step estimates.

    ``est [levels, steps, ...]``; returns arrays ``[levels, ...]``. ``MSE = bias^2 + var``
    (population variance over the scored steps).
    """
    import numpy as np

    steps = est.shape[1]
    start = steps - max(1, int(round(eval_fraction * steps)))
    window = est[:, start:]
    truth = np.asarray(levels, np.float64).reshape((-1, 1) + (1,) * (est.ndim - 2))
    bias = window.mean(axis=1) - truth[:, 0]
    var = window.var(axis=1)
    mse = ((window - truth) ** 2).mean(axis=1)
    return {"bias": bias, "variance": var, "mse": mse}


def load_results(out_dir: str):
    """``{critic: (estimates, meta)}`` for every ``results_<critic>.npz`` in ``out_dir``."""
    import numpy as np

    found = {}
    for critic in ("separable", "concat", "bilinear"):
        path = os.path.join(out_dir, f"results_{critic}.npz")
        if os.path.exists(path):
            data = np.load(path)
            meta = json.loads(str(data["meta"]))
            found[critic] = (data["estimates"], meta)
    return found


def moving_average(x, window: int):
    import numpy as np

    window = max(1, min(window, len(x)))
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, x[0]), x])
    return np.convolve(padded, kernel, mode="valid")


def plot(results: dict, path: str) -> None:
    """One panel per (critic, transform) row and estimator column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [(c, t) for c, (_, meta) in results.items() for t in meta["transforms"]]
    names = list(next(iter(results.values()))[1]["estimators"])
    fig, axes = plt.subplots(
        len(rows),
        len(names),
        figsize=(2.3 * len(names), 2.2 * len(rows)),
        sharey=True,
        squeeze=False,
    )
    for r, (critic, transform) in enumerate(rows):
        est, meta = results[critic]
        t_index = meta["transforms"].index(transform)
        levels, steps = meta["levels"], meta["steps_per_level"]
        truth = np.repeat(np.asarray(levels, float), steps)
        for c, name in enumerate(names):
            ax = axes[r, c]
            if name in meta["estimators"]:
                series = est[:, :, meta["estimators"].index(name), t_index].reshape(-1)
                ax.plot(series, color="C0", alpha=0.25, lw=0.5)
                ax.plot(moving_average(series, SMOOTHING * steps // 4000 or 1), color="C0", lw=1.2)
            ax.plot(truth, color="k", lw=1.0)
            ax.axhline(math.log(meta["batch_size"]), color="k", ls="--", lw=0.8)
            ax.set_ylim(-1, 14)
            if r == 0:
                ax.set_title(name, fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{critic}\n{transform}\nMI (nats)", fontsize=8)
            ax.set_xticks([])
    fig.suptitle(
        "MI estimates (light: per step, dark: moving average) vs true MI (black); dashed: log K",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def num(value: float, signed: bool = False) -> str:
    """Two decimals, or two significant digits in exponent form beyond 1000 (diverged runs)."""
    if abs(value) >= 1000:
        return f"{value:+.1e}" if signed else f"{value:.1e}"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def tables(results: dict, eval_fraction: float) -> tuple[str, dict]:
    """Markdown tables (bias / variance / MSE per estimator and level) and their JSON."""
    lines, blob = [], {}
    for critic, (est, meta) in results.items():
        stats = summarize(est, meta["levels"], eval_fraction=eval_fraction)
        for t_index, transform in enumerate(meta["transforms"]):
            key = f"{critic}/{transform}"
            blob[key] = {
                "steps_per_level": meta["steps_per_level"],
                "batch_size": meta["batch_size"],
                "levels": meta["levels"],
                "estimators": {},
            }
            lines += [
                f"**{critic} critic, {transform}** ({meta['steps_per_level']} steps per level, "
                f"{meta.get('init_scheme', 'lecun')} init, "
                f"last {eval_fraction:.0%} scored; cells: bias / variance / MSE in nats)",
                "",
                "| estimator | " + " | ".join(f"{lv:g} nats" for lv in meta["levels"]) + " |",
                "|---|" + "---:|" * len(meta["levels"]),
            ]
            for e_index, name in enumerate(meta["estimators"]):
                b = stats["bias"][:, e_index, t_index]
                v = stats["variance"][:, e_index, t_index]
                m = stats["mse"][:, e_index, t_index]
                cells = [
                    f"{num(bi, True)} / {num(vi)} / {num(mi_)}" for bi, vi, mi_ in zip(b, v, m)
                ]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
                blob[key]["estimators"][name] = {
                    "bias": b.tolist(),
                    "variance": v.tolist(),
                    "mse": m.tolist(),
                }
            lines.append("")
    return "\n".join(lines), blob


def main(argv):
    del argv
    import numpy as np

    out_dir = _OUT.value
    os.makedirs(out_dir, exist_ok=True)
    names = _ESTIMATORS.value or list(ESTIMATORS)
    unknown = [n for n in names if n not in ESTIMATORS]
    bad_critics = [c for c in _CRITICS.value if c not in ("separable", "concat", "bilinear")]
    bad_transforms = [t for t in _TRANSFORMS.value if t not in ("gaussian", "cubic")]
    if unknown or bad_critics or bad_transforms or _STEPS.value < 1:
        print(
            f"error: estimators {unknown} / critics {bad_critics} / transforms "
            f"{bad_transforms} / steps_per_level {_STEPS.value} invalid; choose from "
            f"{list(ESTIMATORS)}, ['separable', 'concat', 'bilinear'], ['gaussian', 'cubic'], "
            ">= 1",
            file=sys.stderr,
        )
        return 2
    levels = [float(v) for v in _LEVELS.value]
    if not _PLOT_ONLY.value:
        for critic in _CRITICS.value:
            t = time.perf_counter()

            def save(res, critic=critic, t=t):
                done = levels[: len(res["seconds"])]
                meta = {
                    "critic": critic,
                    "estimators": names,
                    "transforms": _TRANSFORMS.value,
                    "levels": done,
                    "steps_per_level": _STEPS.value,
                    "batch_size": _BATCH.value,
                    "dim": _DIM.value,
                    "learning_rate": _LR.value,
                    "hidden_dim": _HIDDEN.value,
                    "embed_dim": _EMBED.value,
                    "layers": _LAYERS.value,
                    "seed": _SEED.value,
                    "init_scheme": _INIT.value,
                    "level_seconds": res["seconds"].round(1).tolist(),
                    "total_seconds": round(time.perf_counter() - t, 1),
                }
                np.savez_compressed(
                    os.path.join(out_dir, f"results_{critic}.npz"),
                    estimates=res["estimates"],
                    meta=json.dumps(meta),
                )

            # ``save`` has written the file after the last level already.
            train_critic(
                critic, names, _TRANSFORMS.value, levels, steps=_STEPS.value, on_level=save
            )
            print(f"[{critic}] done in {time.perf_counter() - t:.0f} s", flush=True)
    results = load_results(out_dir)
    if not results:
        print(f"error: no results_<critic>.npz in {out_dir}", file=sys.stderr)
        return 2
    plot(results, os.path.join(out_dir, "mi_bounds.png"))
    md, blob = tables(results, _EVAL_FRACTION.value)
    with open(os.path.join(out_dir, "mi_bounds.md"), "w") as f:
        f.write(md)
    with open(os.path.join(out_dir, "mi_bounds.json"), "w") as f:
        json.dump(blob, f, indent=1)
    print(md)
    print(f"wrote {out_dir}/mi_bounds.png, mi_bounds.md, mi_bounds.json")
    return 0


if __name__ == "__main__":
    app.run(main)
