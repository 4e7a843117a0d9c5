"""Compile and time one pretraining step of a config on random data (benchmarks, budgets)."""

from __future__ import annotations

import time

import jax
import numpy as np


def compile_step(config):
    """The compiled per-device step of ``config`` under the shard_map driver.

    Returns ``(compiled, state, batch)``: a replicated step-0 state and a random uint8 batch
    (with labels and example indices) laid out on the device mesh.
    """
    from ssljax import parallel
    from ssljax.training.loop import build_setup, initial_state
    from ssljax.training.step import make_train_step, shard_map_driver

    setup = build_setup(config)
    mesh = parallel.make_mesh()
    n_dev = jax.device_count()
    per_dev = parallel.check_global_batch(config.batch_size)
    state = parallel.replicate_on_mesh(initial_state(config, setup), mesh)
    rng = np.random.default_rng(0)
    host_batch = {
        "image": rng.integers(0, 256, (n_dev, per_dev) + setup.image_shape, dtype=np.uint8),
        "label": np.zeros((n_dev, per_dev), np.int32),
        "index": np.arange(n_dev * per_dev, dtype=np.int32).reshape(n_dev, per_dev),
    }
    batch = parallel.batch_to_global(host_batch, mesh)
    step = shard_map_driver(
        make_train_step(objective=setup.objective, model=setup.train_model, tx=setup.tx,
                        config=config, schedule=setup.schedule),
        mesh,
    )
    return step.lower(state, batch).compile(), state, batch


def step_times(compiled, state, batch, steps: int) -> list[float]:
    """Wall seconds of ``steps`` calls after one warm-up call (the state is advanced)."""
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t)
    return times


def compiled_flops(compiled) -> float:
    """FLOPs of one call of a compiled function, from XLA's cost analysis."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost.get("flops", float("nan")))
