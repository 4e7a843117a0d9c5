"""How the critic's initial scale decides whether exp-based MI bounds survive cubic data.

  python experiments/mi_critic_scale.py [--bound nwj] [--levels 2,4] [--steps 4000] \
      [--variants lecun:2,torch:2,torch:3] [--seeds 0,1] [--transform cubic]

Trains one separable critic (``ssljax.models.critics.SeparableCritic``, 256 hidden units,
32-d embedding) per variant ``init_scheme:layers`` and seed with Adam 5e-4 on fresh batches of
64 (the setting of ``experiments/mi_bounds.py``), through the given MI levels, and prints for
each run: the largest |score| at step 0 and over the run, the first step whose estimate is
not finite or exceeds 1e3 nats in magnitude (-1: none), and the mean of the last half of the
estimates. The findings are in ``docs/mutual_information.md`` ("Why the first cubic runs
diverged"); each run takes seconds on a CPU.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

_BOUND = flags.DEFINE_enum(
    "bound", "nwj", ["nwj", "tuba", "dv", "js", "infonce", "smile"], "Bound to train and report."
)
_LEVELS = flags.DEFINE_list("levels", ["2", "4"], "True MI of each level (nats).")
_STEPS = flags.DEFINE_integer("steps", 4000, "Steps per level.")
_VARIANTS = flags.DEFINE_list(
    "variants", ["lecun:2", "torch:2", "torch:3"], "init_scheme:hidden_layers of the critic towers."
)
_SEEDS = flags.DEFINE_list("seeds", ["0", "1"], "PRNG seeds.")
_TRANSFORM = flags.DEFINE_enum("transform", "cubic", ["cubic", "gaussian"], "Data variant.")


def run(
    bound: str, init_scheme: str, layers: int, *, levels, steps: int, seed: int, cubic: bool
) -> dict:
    """Trains one critic through ``levels``; returns the run's summary numbers."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from ssljax.models.critics import SeparableCritic
    from ssljax.objectives import mutual_information as mi

    batch, dim = 64, 20
    critic = SeparableCritic(hidden_dim=256, embed_dim=32, layers=layers, init_scheme=init_scheme)
    bounds = {
        "nwj": mi.nwj_bound,
        "tuba": mi.tuba_bound,
        "dv": mi.dv_bound,
        "js": mi.js_bound,
        "infonce": mi.infonce_bound,
        "smile": lambda s: mi.smile_bound(s, 5.0),
    }
    bound_fn = bounds[bound]
    x0 = jnp.zeros((batch, dim), jnp.float32)
    params = critic.init(jax.random.PRNGKey(seed), x0, x0)
    tx = optax.adam(5e-4)

    def step(carry, inputs):
        p, opt_state = carry
        key, rho = inputs
        x, y = mi.sample_correlated_gaussian(key, batch, dim, rho, cubic=cubic)

        def loss_fn(q):
            scores = critic.apply(q, x, y)
            value = bound_fn(scores)
            return -value, (value, jnp.max(jnp.abs(scores)))

        grads, (value, largest) = jax.grad(loss_fn, has_aux=True)(p)
        updates, opt_state = tx.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), (value, largest)

    rhos = jnp.repeat(jnp.asarray([mi.rho_for_mi(v, dim) for v in levels], jnp.float32), steps)
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(levels) * steps)
    _, (values, largest) = jax.jit(lambda c, xs: jax.lax.scan(step, c, xs))(
        (params, tx.init(params)), (keys, rhos)
    )
    values, largest = np.asarray(values, np.float64), np.asarray(largest, np.float64)
    bad = np.flatnonzero(~np.isfinite(values) | (np.abs(values) > 1e3))
    tail = values[len(values) // 2 :]
    with np.errstate(invalid="ignore"):
        return {
            "max_score_step0": float(largest[0]),
            "max_score": float(np.nanmax(largest)),
            "first_bad_step": int(bad[0]) if len(bad) else -1,
            "tail_mean": float(np.nanmean(tail)) if np.isfinite(tail).any() else float("nan"),
        }


def main(argv):
    del argv
    levels = [float(v) for v in _LEVELS.value]
    print(
        f"{_BOUND.value} on {_TRANSFORM.value} data, levels {levels} nats, "
        f"{_STEPS.value} steps each",
        flush=True,
    )
    for variant in _VARIANTS.value:
        init_scheme, _, layers = variant.partition(":")
        for seed in _SEEDS.value:
            r = run(
                _BOUND.value,
                init_scheme,
                int(layers or 2),
                levels=levels,
                steps=_STEPS.value,
                seed=int(seed),
                cubic=_TRANSFORM.value == "cubic",
            )
            print(
                f"init {init_scheme:5s} layers {layers} seed {seed}: max |score| step 0 "
                f"{r['max_score_step0']:.1f}, over the run {r['max_score']:.3g}; first "
                f"non-finite or >1e3 estimate at step {r['first_bad_step']}; "
                f"mean of the last half {r['tail_mean']:.3g}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    app.run(main)
