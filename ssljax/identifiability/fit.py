"""Trains an ``Objective`` on in-memory arrays through the library's train step.

The identifiability studies learn small encoders on synthetic data that lives in host memory
(sources mixed by ``ssljax.identifiability.mixing``). They use the same per-device step as
image pretraining (``ssljax.training.step.make_train_step`` under ``jax.pmap`` with the
``batch`` axis), so an objective written for them follows the one ``Objective`` contract:

* ``batch['image']`` holds float observations ``[n, ...]`` (not images), and any other array
  passed in ``data`` (segment labels, the second view of a pair, ...) arrives beside it under
  its own key, sliced with the same example indices; ``batch['index']`` holds the indices;
* ``build_model(run, axis_name)`` returns a Flax module called as ``model(x, train=...)``,
  initialised on zeros of one example of ``data['image']``;
* ``make_views(rng, observations, run)`` and ``loss(...)`` as for images; the loss reports
  itself as ``metrics['loss']``, which ``fit`` records per step.

Batches are drawn without replacement within an epoch, from a permutation seeded by
``(seed, epoch)``, and split over the local devices that divide the batch.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Mapping

import flax.jax_utils
import jax
import ml_collections
import numpy as np
import optax

from ssljax.objectives.base import DatasetFacts, Objective, Run
from ssljax.parallel import AXIS
from ssljax.training.state import TrainState, create_train_state
from ssljax.training.step import make_train_step, pmap_driver


@dataclasses.dataclass(frozen=True)
class FitResult:
    """A trained objective: its parameters and state, and the per-step loss."""

    params: Any
    model_state: Any
    extra: Any
    losses: np.ndarray
    seconds: float
    num_devices: int


def _num_devices(batch_size: int, limit: int | None) -> int:
    available = jax.local_device_count() if limit is None else min(limit, jax.local_device_count())
    return max(d for d in range(1, available + 1) if batch_size % d == 0)


def check_data(data: Mapping[str, np.ndarray]) -> int:
    """The number of examples in ``data``; one-line errors for a missing ``'image'`` or
    arrays of different lengths."""
    if "image" not in data:
        raise ValueError(f"data needs an 'image' array (the observations); got keys {sorted(data)}")
    counts = {k: int(np.shape(v)[0]) for k, v in data.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"data arrays have different sample counts: {counts}")
    return counts["image"]


def synthetic_run(objective: Objective, data, *, batch_size: int, steps: int, seed: int) -> Run:
    """The ``Run`` of a synthetic-data fit (``facts.image_shape`` is one example's shape)."""
    n = check_data(data)
    labels = data.get("label")
    facts = DatasetFacts(
        name="synthetic",
        image_shape=tuple(int(d) for d in np.shape(data["image"])[1:]),
        num_examples=n,
        num_classes=int(np.max(labels)) + 1 if labels is not None else 0,
    )
    run = Run(facts=facts, batch_size=int(batch_size), total_steps=int(steps), seed=int(seed))
    objective.check(run)
    return run


def fit(
    objective: Objective,
    data: Mapping[str, np.ndarray],
    *,
    steps: int,
    batch_size: int,
    learning_rate: float = 1e-3,
    seed: int = 0,
    weight_decay: float = 0.0,
    max_devices: int | None = None,
    log_every: int = 0,
    tx: optax.GradientTransformation | None = None,
    sync_every: int = 50,
) -> FitResult:
    """Trains ``objective`` for ``steps`` steps of ``batch_size`` examples of ``data``.

    The optimiser is Adam(W) with a cosine decay from ``learning_rate`` unless ``tx`` is
    given. ``log_every > 0`` prints the mean loss of every ``log_every`` steps. The host reads
    the per-step loss and finiteness every ``sync_every`` steps (a non-finite step raises
    then, naming the step), so that it prepares batches while the device computes.

    Raises:
      ValueError: arrays of different sample counts, a batch larger than the data, or
        settings the objective's ``check`` refuses (one line each).
    """
    n = check_data(data)
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps={steps!r} is invalid; valid: an integer >= 1")
    if int(sync_every) != sync_every or sync_every < 1:
        raise ValueError(f"sync_every={sync_every!r} is invalid; valid: an integer >= 1")
    if int(batch_size) != batch_size or not 1 <= batch_size <= n:
        raise ValueError(f"batch_size={batch_size!r} is invalid; valid: 1 <= batch_size <= {n}")
    run = synthetic_run(objective, data, batch_size=batch_size, steps=steps, seed=seed)
    if tx is None:
        schedule = optax.cosine_decay_schedule(learning_rate, steps)
        tx = optax.adamw(schedule, weight_decay=weight_decay)
    from ssljax.training.optimizers import with_param_groups

    tx = with_param_groups(tx, objective.param_groups(run))
    devices = _num_devices(batch_size, max_devices)
    state = create_train_state(
        objective.build_model(run, None),
        tx,
        jax.random.PRNGKey(seed),
        objective.sample_shape(run),
        groups=objective.param_groups(run),
    )
    extra = objective.init_state(state.params, state.model_state, run)
    if extra is not None:
        state = state.replace(extra=extra)
    config = ml_collections.ConfigDict({"dtype": "float32", "accumulate_steps": 1})
    step = make_train_step(
        objective=objective,
        model=objective.build_model(run, AXIS),
        tx=tx,
        config=config,
        run=run,
        axis_name=AXIS,
    )
    p_step = pmap_driver(step)
    state = flax.jax_utils.replicate(state, jax.local_devices()[:devices])
    arrays = {k: np.asarray(v) for k, v in data.items()}
    per_epoch = n // batch_size
    losses = np.zeros(steps, np.float32)
    start = time.perf_counter()
    order = None
    pending: list[tuple[int, Any]] = []  # (step, device metrics) not yet read on the host

    def drain():
        # Reading metrics waits for the device; doing it every ``sync_every`` steps lets the
        # host build the next batches while the device runs the queued steps.
        for j, m in pending:
            if not bool(m["finite"][0]):
                raise FloatingPointError(f"the loss or a gradient was not finite at step {j}")
            losses[j] = float(m["loss"][0]) if "loss" in m else np.nan
        pending.clear()

    for i in range(steps):
        epoch, position = divmod(i, per_epoch)
        if position == 0:
            order = np.random.default_rng([seed, epoch]).permutation(n)
        idx = order[position * batch_size : (position + 1) * batch_size]
        batch = {k: v[idx] for k, v in arrays.items()}
        batch["index"] = idx.astype(np.int32)
        batch = jax.tree.map(lambda a: a.reshape((devices, -1) + a.shape[1:]), batch)
        state, metrics = p_step(state, batch)
        pending.append((i, {k: metrics[k] for k in ("finite", "loss") if k in metrics}))
        if (i + 1) % sync_every == 0 or (log_every and (i + 1) % log_every == 0):
            drain()
        if log_every and (i + 1) % log_every == 0:
            window = losses[i + 1 - log_every : i + 1]
            print(f"step {i + 1}/{steps}: loss {np.mean(window):.4f}", flush=True)
    drain()
    # The first device's copy (``flax.jax_utils.unreplicate`` keeps a leading axis of 1 when
    # the state was replicated over one of several devices).
    state: TrainState = jax.tree.map(lambda a: a[0], state)
    return FitResult(
        params=state.params,
        model_state=state.model_state,
        extra=state.extra,
        losses=losses,
        seconds=time.perf_counter() - start,
        num_devices=devices,
    )
