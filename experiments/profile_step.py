"""Where a pretraining step's time goes, and what the training loop adds around it.

  python experiments/profile_step.py --config configs/simclr.py:fashion_mnist [--repeats 15]

Times, on one device, each part of the objective's step compiled on its own, on the
dataset's real images:

* ``views``: the augmentations (``objective.make_views``);
* ``forward``: the network and the loss on fixed views;
* ``forward_backward``: the same with the gradient (encoder, projector, loss);
* ``optimizer``: the optimizer update and ``apply_updates`` on fixed gradients;
* ``step``: the whole compiled train step (all of the above plus BatchNorm statistics,
  collapse monitors and metric reductions);

then the training loop's own parts around the compiled step, as
``ssljax.training.loop.train_and_evaluate`` runs them: ``next(data)`` (the host batch),
``batch_to_global`` (host to device), the step call until its metrics are ready, and
``device_get`` of the metrics. Each figure is the median of ``--repeats`` calls after a
warm-up (best in brackets). Prints a table and one JSON line (``--out FILE`` writes it).
"""

from __future__ import annotations

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", "configs/simclr.py:fashion_mnist", "Config.")
_REPEATS = flags.DEFINE_integer("repeats", 15, "Timed calls per part (after one warm-up).")
_OUT = flags.DEFINE_string("out", None, "Also write the JSON line to this file.")


def timed(fn, repeats: int) -> dict:
    """Median and best wall seconds of ``fn()`` (which must block until its result is
    ready) over ``repeats`` calls after one warm-up call."""
    import numpy as np

    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"median_s": float(np.median(times)), "best_s": float(np.min(times))}


def component_times(config, repeats: int) -> dict:
    import jax
    import optax

    from ssljax import bench
    from ssljax.data.datasets import spec_from_config
    from ssljax.data.input_pipeline import dataset_facts, train_iterator
    from ssljax.objectives.base import LossContext
    from ssljax.training.loop import build_setup, initial_state

    setup = build_setup(config, dataset_facts(config))
    objective, run = setup.objective, setup.run
    model = objective.build_model(run, None)
    state = initial_state(config, setup)
    data = train_iterator(
        spec_from_config(config.dataset),
        global_batch_size=config.batch_size,
        seed=config.seed,
        data_dir=config.dataset.get("data_dir"),
        num_devices=1,
    )
    host = next(data)
    images = jax.device_put(host["image"][0])
    batch = {k: jax.device_put(v[0]) for k, v in host.items()}
    rng = jax.random.PRNGKey(0)

    make_views = jax.jit(lambda key, x: objective.make_views(key, x, run))
    views = make_views(rng, images)

    def loss(params, views):
        ctx = LossContext(model=model, state=state.extra, batch=batch, axis_name=None, run=run)
        return objective.loss(params, state.model_state, views, rng, ctx)[0]

    forward = jax.jit(loss)
    forward_backward = jax.jit(jax.value_and_grad(loss))
    grads = forward_backward(state.params, views)[1]

    @jax.jit
    def update(grads, opt_state, params):
        updates, opt_state = setup.tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def ready(x):
        return jax.block_until_ready(x)

    parts = {
        "views": timed(lambda: ready(make_views(rng, images)), repeats),
        "forward": timed(lambda: ready(forward(state.params, views)), repeats),
        "forward_backward": timed(lambda: ready(forward_backward(state.params, views)), repeats),
        "optimizer": timed(lambda: ready(update(grads, state.opt_state, state.params)), repeats),
    }
    compiled, step_state, step_batch = bench.compile_step(config)
    times, step_state, _ = bench.timed_calls(compiled, step_state, step_batch, repeats)
    parts["step"] = {"median_s": float(sorted(times)[len(times) // 2]), "best_s": min(times)}
    return parts, compiled, step_state, data


def loop_times(compiled, state, data, repeats: int) -> dict:
    """The loop's parts around the compiled step (``train_and_evaluate``'s order)."""
    import jax
    import numpy as np

    from ssljax import parallel
    from ssljax.training.logging import to_python

    mesh = parallel.make_mesh()
    parts = {"next_batch": [], "batch_to_global": [], "step_until_ready": [], "device_get": []}
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        host = next(data)
        t1 = time.perf_counter()
        batch = parallel.batch_to_global(host, mesh)
        jax.block_until_ready(batch)
        t2 = time.perf_counter()
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        t3 = time.perf_counter()
        to_python(jax.device_get(metrics))
        t4 = time.perf_counter()
        if i:  # the first call is the warm-up
            for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                parts[key].append(dt)
    return {
        k: {"median_s": float(np.median(v)), "best_s": float(np.min(v))} for k, v in parts.items()
    }


def table(record: dict) -> str:
    step = record["components"]["step"]["median_s"]
    lines = ["| part | median ms | best ms | share of the step |", "|---|---:|---:|---:|"]
    for group in ("components", "loop"):
        for name, t in record[group].items():
            share = f"{t['median_s'] / step:.0%}" if group == "components" else "-"
            lines.append(
                f"| {group}: {name} | {1e3 * t['median_s']:.1f} | {1e3 * t['best_s']:.1f} | {share} |"
            )
    return "\n".join(lines)


def main(argv):
    del argv
    import jax

    config = _CONFIG.value
    if jax.device_count() != 1:
        raise ValueError(f"run on one device (found {jax.device_count()}); unset XLA_FLAGS")
    components, compiled, state, data = component_times(config, _REPEATS.value)
    record = {
        "config": config.objective.name,
        "batch_size": int(config.batch_size),
        "components": components,
        "loop": loop_times(compiled, state, data, _REPEATS.value),
    }
    print(table(record))
    line = json.dumps(record)
    print(line)
    if _OUT.value:
        with open(_OUT.value, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    app.run(main)
