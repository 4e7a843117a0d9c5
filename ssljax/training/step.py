"""One generic train step, written per device, and the two drivers that map it.

``make_train_step`` returns ``step(state, batch) -> (state, metrics)`` for ONE device: it makes
the objective's views on device, differentiates the objective's pure loss, averages gradients
with ``jax.lax.pmean`` over the named axis, applies the optax update, then lets the objective
update its own state (EMA target, queue, memory bank) and logs collapse monitors of the
embedding the loss reports. Cross-device terms
(gathered negatives, cross-replica BatchNorm) use the same axis name inside the loss/model.

Drivers:
  ``shard_map_driver``: ``jax.jit(jax.shard_map(step))`` over a 1-D mesh (default).
  ``pmap_driver``: ``jax.pmap(step, axis_name=...)``, for users who pmap themselves.
Both run the very same per-device function and give the same results (tested).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, PartitionSpec as P

from ssljax.evaluation.collapse import collapse_monitors
from ssljax.parallel import AXIS
from ssljax.training.state import TrainState


def all_finite(tree) -> jax.Array:
    """True when every leaf of ``tree`` is finite."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def step_rng(state_rng: jax.Array, step: jax.Array, axis_name: str | None) -> jax.Array:
    """The key for this step on this device: ``fold_in(fold_in(rng, step), device_index)``."""
    rng = jax.random.fold_in(state_rng, step)
    if axis_name is not None:
        rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
    return rng


def make_train_step(
    *,
    objective,
    model,
    tx: optax.GradientTransformation,
    config,
    schedule: Callable | None = None,
    axis_name: str | None = AXIS,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """Builds the per-device train step for ``objective`` (a registry record).

    The returned function takes the replicated ``state`` and this device's ``batch``
    (``{'image': uint8 [n, H, W, C], ...}``) and returns the new state and metrics averaged
    over devices, including ``finite`` (False when the loss or a gradient was not finite;
    the state is then returned unchanged so the last good state survives).
    """

    def loss_fn(params, state, views, rng, batch):
        return objective.loss(
            params,
            state.model_state,
            views,
            rng,
            model=model,
            config=config,
            axis_name=axis_name,
            extra=state.extra,
            batch=batch,
        )

    def step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        rng = step_rng(state.rng, state.step, axis_name)
        view_rng, loss_rng = jax.random.split(rng)
        views = objective.make_views(view_rng, batch["image"], config)
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, (metrics, model_state, outputs)), grads = grad_fn(
            state.params, state, views, loss_rng, batch
        )
        outputs = jax.lax.stop_gradient(outputs)
        if "embedding" in outputs:
            metrics = dict(metrics, **collapse_monitors(outputs["embedding"], axis_name))
        if axis_name is not None:
            grads = jax.lax.pmean(grads, axis_name)
            metrics = jax.lax.pmean(metrics, axis_name)
            model_state = jax.lax.pmean(model_state, axis_name)
            loss = jax.lax.pmean(loss, axis_name)
        finite = jnp.logical_and(jnp.isfinite(loss), all_finite(grads))
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        extra = state.extra
        if objective.update_extra is not None:
            extra = objective.update_extra(
                state.extra,
                outputs,
                params=params,
                model_state=model_state,
                step=state.step,
                config=config,
                axis_name=axis_name,
            )
        new_state = state.replace(
            step=state.step + 1,
            params=params,
            model_state=model_state,
            opt_state=opt_state,
            extra=extra,
        )
        new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
        metrics = dict(metrics, finite=finite, grad_norm=optax.global_norm(grads))
        if schedule is not None:
            metrics["learning_rate"] = schedule(state.step)
        return new_state, metrics

    return step


def shard_map_driver(step: Callable, mesh: Mesh, axis_name: str = AXIS) -> Callable:
    """Jits ``step`` mapped over ``mesh``: replicated state in/out, batch split on axis 0.

    ``check_vma=False`` keeps the per-device (pmap) semantics: gradients of the replicated
    parameters stay per device until the explicit ``pmean`` in the step.
    """
    mapped = jax.shard_map(
        step,
        mesh=mesh,
        in_specs=(P(), P(axis_name)),
        out_specs=(P(), P()),
        check_vma=False,
    )
    return jax.jit(mapped, donate_argnums=(0,))


def pmap_driver(step: Callable, axis_name: str = AXIS) -> Callable:
    """``jax.pmap`` of ``step``: state replicated per device, batch ``[devices, n, ...]``."""
    return jax.pmap(step, axis_name=axis_name, donate_argnums=(0,))
