"""One generic train step, written per device, and the two drivers that map it.

``make_train_step`` returns ``step(state, batch) -> (state, metrics)`` for ONE device: it makes
the objective's views on device, differentiates the objective's loss, averages gradients
with ``jax.lax.pmean`` over the named axis, applies the optax update (discriminators are
parameter groups of the same update, under the same finite check), then lets the objective
update its own state (EMA target, queue, memory bank) and logs collapse monitors of the
embedding the loss reports. The loss gets a per-device key and, in its context, a key shared
by all devices (``shared_step_rng``). Cross-device terms
(gathered negatives, cross-replica BatchNorm) use the same axis name inside the loss/model.

Gradient accumulation (``config.accumulate_steps = k``, default 1): the step still takes one
global batch and makes ONE optimizer update, but each device runs its batch as ``k``
micro-batches of ``n / k`` examples in a ``jax.lax.scan`` (memory of one micro-batch), sums
their gradients and averages them (and the metrics) before the single ``pmean``. Each
micro-batch has its own key, ``fold_in(step key, micro index)``; with ``k = 1`` the step is the
plain one, bit for bit. BatchNorm running statistics (``model_state``) thread through the
micro-batches in order (k updates per step, each with one micro-batch's statistics, as
accumulation does in other frameworks). The objective's own state (``extra``: EMA target,
queue, memory bank) is read unchanged by every micro-batch and updated once per step:
``update_state`` gets the per-example outputs (the fields an ``Outputs`` class names in
``PER_EXAMPLE``: embeddings, MoCo keys, memory-bank indices) concatenated over the
micro-batches in batch order, so a queue or bank receives the whole batch once; other
outputs (target BatchNorm state, MINE averages, histograms) are averaged over the
micro-batches. Schedules, data
position, checkpoints and logging see one step per global batch, whatever ``k``.

Only a loss that is a mean of per-example terms accumulates exactly (tested: MoCo without
BatchNorm, whose negatives come from the queue). Everything computed over the batch sees one
micro-batch, gathered over the devices: ``1 / k`` of the global batch. That covers BatchNorm
statistics, in-batch negatives (SimCLR, binary contrastive) and batch moments (Barlow Twins,
VICReg, AlignMaxEnt's entropy); such methods optimise a smaller-batch loss under accumulation.

Compute precision: ``config.dtype`` is ``'float32'`` or ``'bfloat16'`` (``COMPUTE_DTYPES``);
float16 would need loss scaling against gradient underflow and is refused (``check_dtype``).

Drivers:
  ``shard_map_driver``: ``jax.jit(jax.shard_map(step))`` over a 1-D mesh (default).
  ``pmap_driver``: ``jax.pmap(step, axis_name=...)``, for users who pmap themselves.
Both run the very same per-device function and give the same results (tested).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import chex
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from ssljax.evaluation.collapse import collapse_monitors
from ssljax.objectives.base import LossContext, Objective, Outputs, Run, UpdateContext
from ssljax.parallel import AXIS, check_global_batch
from ssljax.training.state import TrainState

COMPUTE_DTYPES = ("bfloat16", "float32")
# Tag folded into the step key for the key shared by all devices (``shared_step_rng``).
SHARED_RNG_TAG = 0x5AEED


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


def shared_step_rng(state_rng: jax.Array, step: jax.Array) -> jax.Array:
    """A key for this step that is the same on every device (noise for the global batch)."""
    return jax.random.fold_in(jax.random.fold_in(state_rng, step), SHARED_RNG_TAG)


def check_dtype(config) -> str:
    """Returns ``config.dtype`` (default float32) if it is one of ``COMPUTE_DTYPES``.

    float16 is refused: its 5 exponent bits underflow small gradients without loss scaling,
    which this step does not do; bfloat16 has float32's range.
    """
    name = config.get("dtype", "float32")
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"dtype={name!r} is not supported; choose one of {COMPUTE_DTYPES}")
    return name


def accumulate_steps(config) -> int:
    """Returns ``config.accumulate_steps`` (default 1) if it is a positive integer."""
    k = config.get("accumulate_steps", 1)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"accumulate_steps={k!r} must be a positive integer (1: no accumulation)")
    return k


def check_accumulate_steps(config, num_devices: int | None = None) -> int:
    """Checks that the per-device batch splits into ``accumulate_steps`` micro-batches.

    Returns:
      The micro-batch size per device, ``batch_size / devices / accumulate_steps``.

    Raises:
      ValueError: ``accumulate_steps`` is not a positive integer, or the per-device batch
        (``batch_size / num_devices``, all devices by default) does not divide by it.
    """
    k = accumulate_steps(config)
    per_device = check_global_batch(int(config.batch_size), num_devices)
    if per_device % k:
        devices = int(config.batch_size) // per_device
        divisors = [d for d in range(1, per_device + 1) if per_device % d == 0]
        raise ValueError(
            f"accumulate_steps={k} does not divide the per-device batch "
            f"{per_device} (batch_size={config.batch_size} on {devices} devices); "
            f"choose one of {divisors}"
        )
    return per_device // k


def split_micro_batches(batch: dict, k: int) -> dict:
    """Reshapes every ``[n, ...]`` leaf of ``batch`` to ``[k, n / k, ...]`` (micro-batches in
    order: micro-batch ``i`` holds examples ``i * n / k`` to ``(i + 1) * n / k - 1``)."""
    leaves = jax.tree.leaves(batch)
    n = leaves[0].shape[0]
    chex.assert_equal_shape_prefix(leaves, 1)
    if n % k:
        raise ValueError(f"accumulate_steps={k} does not divide the per-device batch {n}")
    return jax.tree.map(lambda x: x.reshape((k, n // k) + x.shape[1:]), batch)


def _merge_over_micro_batches(x: jax.Array) -> jax.Array:
    """``[k, ...]`` -> the mean over micro-batches (floats) or the last one (other dtypes)."""
    if jnp.issubdtype(x.dtype, jnp.inexact):
        return jnp.mean(x, axis=0).astype(x.dtype)
    return x[-1]


def merge_micro_outputs(outputs: Outputs) -> Outputs:
    """Combines the objective outputs of ``k`` micro-batches, stacked on a leading axis.

    Fields named in the outputs' ``PER_EXAMPLE`` are concatenated over the micro-batches (the
    whole batch, in order, as one step without accumulation would give them); every other
    field (running statistics computed from the same starting state, histograms) is
    averaged, or for non-float leaves the last micro-batch's value is kept.
    """
    merged = {}
    for field in dataclasses.fields(outputs):
        value = getattr(outputs, field.name)
        if field.name in outputs.PER_EXAMPLE:
            merged[field.name] = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), value)
        else:
            merged[field.name] = jax.tree.map(_merge_over_micro_batches, value)
    return outputs.replace(**merged)


def make_train_step(
    *,
    objective: Objective,
    model,
    tx: optax.GradientTransformation,
    config,
    run: Run,
    schedule: Callable | None = None,
    axis_name: str | None = AXIS,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """Builds the per-device train step for ``objective`` (a typed objective instance).

    The returned function takes the replicated ``state`` and this device's ``batch``
    (``{'image': uint8 [n, H, W, C], ...}``) and returns the new state and metrics averaged
    over devices, including ``finite`` (False when the loss or a gradient was not finite;
    the state is then returned unchanged so the last good state survives). With
    ``config.accumulate_steps = k > 1`` the batch runs as ``k`` micro-batches of ``n / k``
    whose gradients are averaged before the one update (module docstring).

    Raises:
      ValueError: an unsupported ``config.dtype`` or ``accumulate_steps`` (and, when the step
        is traced, a per-device batch that ``accumulate_steps`` does not divide).
    """
    check_dtype(config)
    k = accumulate_steps(config)

    def loss_fn(params, model_state, extra, views, rng, batch, shared_rng):
        ctx = LossContext(
            model=model,
            state=extra,
            batch=batch,
            axis_name=axis_name,
            run=run,
            shared_rng=shared_rng,
        )
        return objective.loss(params, model_state, views, rng, ctx)

    def views_and_grads(params, model_state, extra, rng, batch, shared_rng):
        """Views of ``batch`` and the loss gradient on them, before any cross-device mean."""
        view_rng, loss_rng = jax.random.split(rng)
        views = objective.make_views(view_rng, batch["image"], run)
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, aux), grads = grad_fn(params, model_state, extra, views, loss_rng, batch, shared_rng)
        return loss, aux.metrics, aux.model_state, aux.outputs, grads

    def accumulated(state, rng, shared_rng, batch):
        """``views_and_grads`` over ``k`` micro-batches: BatchNorm state threaded in order,
        gradients summed in the carry (memory of one micro-batch), then averaged."""

        def micro_step(carry, xs):
            model_state, grad_sum = carry
            index, micro = xs
            loss, metrics, new_model_state, outputs, grads = views_and_grads(
                state.params,
                model_state,
                state.extra,
                jax.random.fold_in(rng, index),
                micro,
                jax.random.fold_in(shared_rng, index),
            )
            new_model_state = jax.tree.map(
                lambda new, old: new.astype(old.dtype), new_model_state, model_state
            )
            grad_sum = jax.tree.map(jnp.add, grad_sum, grads)
            return (new_model_state, grad_sum), (loss, metrics, outputs)

        zeros = jax.tree.map(jnp.zeros_like, state.params)
        (model_state, grad_sum), (losses, metrics, outputs) = jax.lax.scan(
            micro_step, (state.model_state, zeros), (jnp.arange(k), split_micro_batches(batch, k))
        )
        grads = jax.tree.map(lambda g: g / k, grad_sum)
        metrics = jax.tree.map(_merge_over_micro_batches, metrics)
        return jnp.mean(losses), metrics, model_state, merge_micro_outputs(outputs), grads

    def step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        rng = step_rng(state.rng, state.step, axis_name)
        shared_rng = shared_step_rng(state.rng, state.step)
        if k == 1:
            loss, metrics, model_state, outputs, grads = views_and_grads(
                state.params, state.model_state, state.extra, rng, batch, shared_rng
            )
        else:
            loss, metrics, model_state, outputs, grads = accumulated(state, rng, shared_rng, batch)
        outputs = jax.lax.stop_gradient(outputs)
        if outputs.embedding is not None:
            metrics = dict(metrics, **collapse_monitors(outputs.embedding, axis_name))
        if axis_name is not None:
            grads = jax.lax.pmean(grads, axis_name)
            metrics = jax.lax.pmean(metrics, axis_name)
            model_state = jax.lax.pmean(model_state, axis_name)
            loss = jax.lax.pmean(loss, axis_name)
        finite = jnp.logical_and(jnp.isfinite(loss), all_finite(grads))
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        extra = objective.update_state(
            state.extra,
            outputs,
            UpdateContext(
                params=params,
                model_state=model_state,
                step=state.step,
                axis_name=axis_name,
                run=run,
            ),
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
