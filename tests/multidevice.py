"""The real train step on a given set of devices, shared by the 8-devices-equal-1 tests.

``steps_on_devices`` maps ``make_train_step`` with the shard_map driver over a mesh of
``devices`` and feeds it global batches, each split over the devices in order (device ``i``
gets rows ``i * n / d`` to ``(i + 1) * n / d - 1``), as ``parallel.batch_to_global`` does for
the training loop. ``run_config`` does the same for a config's setup and initial state.
"""

import jax
import numpy as np

from ssljax import parallel
from ssljax.training.loop import build_setup, initial_state
from ssljax.training.step import make_train_step, shard_map_driver


def steps_on_devices(*, objective, model, tx, config, run, init, devices, batches, schedule=None):
    """``(final state, [metrics per batch])`` of the step on ``devices`` from ``init``."""
    mesh = parallel.make_mesh(devices)
    state = parallel.replicate_on_mesh(init, mesh)
    step = shard_map_driver(
        make_train_step(
            objective=objective, model=model, tx=tx, config=config, run=run, schedule=schedule
        ),
        mesh,
    )
    history = []
    for batch in batches:
        local = {
            k: np.asarray(v).reshape((len(devices), -1) + np.shape(v)[1:]) for k, v in batch.items()
        }
        state, metrics = step(state, parallel.batch_to_global(local, mesh))
        history.append(jax.device_get(metrics))
    return jax.device_get(state), history


def run_config(config, devices, batches, facts=None):
    """``steps_on_devices`` for ``config``'s objective, model, optimizer and initial state
    (``facts``: the dataset facts ``build_setup`` would otherwise take from the registry)."""
    setup = build_setup(config, facts)
    return steps_on_devices(
        objective=setup.objective,
        model=setup.train_model,
        tx=setup.tx,
        config=config,
        run=setup.run,
        init=initial_state(config, setup),
        devices=devices,
        batches=batches,
    )
