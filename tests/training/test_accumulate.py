"""Gradient accumulation (``config.accumulate_steps``): k micro-batches, one update.

* k = 1 is the plain step, bit for bit (against a copy of the step before accumulation).
* A method whose loss is a mean of per-example terms (MoCo without BatchNorm: queue negatives
  only, LayerNorm encoder, identity augmentations) gives the same update, queue and key encoder
  with k = 4 micro-batches as with the whole batch, within float32 reordering error.
* In-batch negatives (SimCLR) see only a micro-batch: k > 1 is a different loss (documented).
* BatchNorm running statistics thread through the micro-batches in order.
"""

from typing import ClassVar

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from ssljax import parallel
from ssljax.evaluation.collapse import collapse_monitors
from ssljax.objectives import LossContext, Outputs, UpdateContext
from ssljax.objectives.simclr import apply_to_views
from ssljax.training.loop import build_setup, initial_state, validate_config
from ssljax.training.step import (
    all_finite,
    check_accumulate_steps,
    make_train_step,
    merge_micro_outputs,
    shard_map_driver,
    shared_step_rng,
    step_rng,
)
from tests.tolerances import (
    assert_close,
    assert_trees_close,
    assert_updates_close,
    f32_reorder_rtol,
    f32_steps_rtol,
    update_difference,
)

# Longest reduction of a step: kernel gradients over the global batch's 16 x 28 x 28 positions.
N_TERMS = 16 * 28 * 28


def plain_train_step(*, objective, model, tx, config, run, schedule=None, axis_name=parallel.AXIS):
    """The per-device step as it was before gradient accumulation (the k = 1 reference)."""
    del config

    def loss_fn(params, state, views, rng, batch):
        ctx = LossContext(
            model=model,
            state=state.extra,
            batch=batch,
            axis_name=axis_name,
            run=run,
            shared_rng=shared_step_rng(state.rng, state.step),
        )
        return objective.loss(params, state.model_state, views, rng, ctx)

    def step(state, batch):
        rng = step_rng(state.rng, state.step, axis_name)
        view_rng, loss_rng = jax.random.split(rng)
        views = objective.make_views(view_rng, batch["image"], run)
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, aux), grads = grad_fn(state.params, state, views, loss_rng, batch)
        metrics, model_state = aux.metrics, aux.model_state
        outputs = jax.lax.stop_gradient(aux.outputs)
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


def global_batches(count, n=16, seed=0):
    rng = np.random.default_rng(seed)
    return [
        {
            "image": rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
            "label": rng.integers(0, 10, (n,)).astype(np.int32),
            "index": np.arange(n, dtype=np.int32),
        }
        for _ in range(count)
    ]


def run(config, devices, batches, make_step=make_train_step):
    """``(initial state, final state, metrics per step)`` on ``devices``."""
    setup = build_setup(config)
    mesh = parallel.make_mesh(devices)
    init = initial_state(config, setup)
    start = jax.device_get(init)
    state = parallel.replicate_on_mesh(init, mesh)
    step = shard_map_driver(
        make_step(
            objective=setup.objective,
            model=setup.train_model,
            tx=setup.tx,
            config=config,
            run=setup.run,
            schedule=setup.schedule,
        ),
        mesh,
    )
    history = []
    for b in batches:
        local = {k: v.reshape((len(devices), -1) + v.shape[1:]) for k, v in b.items()}
        state, metrics = step(state, parallel.batch_to_global(local, mesh))
        history.append(jax.device_get(metrics))
    return start, jax.device_get(state), history


def layer_norm_sgd(c, accumulate_steps):
    """No batch statistics anywhere (LayerNorm encoder, projector without BatchNorm) and plain
    SGD, whose update is proportional to the gradient (LARS would hide its scale)."""
    c.accumulate_steps = accumulate_steps
    c.model.encoder_kwargs.norm = "layer"
    c.model.projector.use_bn = False
    c.optimizer.name, c.optimizer.lr_scaling = "sgd", "none"
    c.optimizer.base_learning_rate, c.optimizer.warmup_steps = 0.1, 0
    c.optimizer.weight_decay, c.optimizer.momentum = 0.0, 0.9
    return c


def test_one_micro_batch_is_the_plain_step_bit_for_bit(make_tiny_config):
    """k = 1 (the default) runs exactly the step it replaced: BatchNorm, real augmentations,
    8 devices, two steps; every state leaf and metric is identical."""
    config = make_tiny_config()
    assert config.accumulate_steps == 1
    batches = [{k: v for k, v in b.items() if k != "index"} for b in global_batches(2)]
    _, new, new_metrics = run(config, jax.devices(), batches)
    _, old, old_metrics = run(config, jax.devices(), batches, make_step=plain_train_step)
    for x, y in zip(jax.tree.leaves(new), jax.tree.leaves(old)):
        np.testing.assert_array_equal(x, y)
    for a, b in zip(new_metrics, old_metrics):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_micro_batches_of_a_per_example_loss_equal_one_large_batch(make_identity_config):
    """MoCo without BatchNorm: each query meets its own key and the queue, so the loss is a mean
    of per-example terms. k = 4 micro-batches of 2 per device (2 devices) give the update of
    the whole 8 per device, and the queue receives the same 16 keys per step in batch order.

    Tolerance: float32 reordering of the gradient sums (16 x 28 x 28 terms per kernel
    gradient) after two steps, ``f32_steps_rtol``; forgetting to average the micro-batch
    gradients (x4), or enqueueing keys out of order, differs by O(1)."""

    def config(k):
        c = make_identity_config()
        c.objective = ml_collections.ConfigDict(dict(name="moco", queue_size=64, ema_momentum=0.9))
        return layer_norm_sgd(c, k)

    # The run below uses 2 devices: 16 / 2 = 8 per device, 4 micro-batches of 2. (On all 8
    # devices, 2 per device would not split into 4, which validate_config refuses.)
    with pytest.raises(ValueError, match="accumulate_steps=4 does not divide"):
        validate_config(config(4))
    check_accumulate_steps(config(4), num_devices=2)
    check_accumulate_steps(config(4), num_devices=2)
    batches = global_batches(2)
    start, big, big_m = run(config(1), jax.devices()[:2], batches)
    _, acc, acc_m = run(config(4), jax.devices()[:2], batches)
    for updates_before, (a, b) in enumerate(zip(acc_m, big_m)):
        for key in ("loss", "contrastive_accuracy", "collapse_std"):
            assert_close(a[key], b[key], rtol=f32_steps_rtol(N_TERMS, updates_before))
    rtol = f32_steps_rtol(N_TERMS, steps=2)
    assert_updates_close(acc.params, big.params, start.params, rtol=rtol)
    assert_updates_close(acc.extra, big.extra, start.extra, rtol=rtol)  # queue, key encoder
    assert int(acc.extra.queue_ptr) == 32 and int(acc.step) == 2
    assert update_difference(acc.params, big.params, start.params) < rtol


def test_in_batch_negatives_see_only_a_micro_batch(make_identity_config):
    """SimCLR takes its negatives from the (gathered) batch: with k = 4 each anchor has 7
    candidates instead of 31, a different loss and update. This is expected, not a bug:
    accumulation is exact only for means of per-example terms."""
    config = lambda k: layer_norm_sgd(make_identity_config(), k)  # noqa: E731
    batches = global_batches(1)
    start, big, (big_m,) = run(config(1), jax.devices()[:2], batches)
    _, acc, (acc_m,) = run(config(4), jax.devices()[:2], batches)
    assert float(acc_m["loss"]) < float(big_m["loss"]) - 0.5  # log 7 vs log 31 candidates
    assert update_difference(acc.params, big.params, start.params) > 100 * f32_steps_rtol(
        N_TERMS, steps=1
    )


def test_batch_norm_statistics_thread_through_the_micro_batches(make_identity_config):
    """BatchNorm (the tiny SimCLR network): with k = 2 the running statistics take one update
    per micro-batch, in order, each with that micro-batch's statistics."""
    config = make_identity_config()
    config.accumulate_steps = 2
    setup = build_setup(config)
    batch = global_batches(1)[0]
    start, state, _ = run(config, jax.devices()[:1], [batch])
    model_state = start.model_state
    for half in (batch["image"][:8], batch["image"][8:]):
        views = setup.objective.make_views(jax.random.PRNGKey(0), half, setup.run)  # identity
        _, model_state = apply_to_views(start.params, model_state, views, model=setup.eval_model)
    assert_trees_close(state.model_state, model_state, rtol=f32_reorder_rtol(2 * 8 * 28 * 28))


def test_merge_concatenates_per_example_outputs_and_averages_the_rest():
    k, m = 3, 2
    embedding = jnp.arange(k * m * 4, dtype=jnp.float32).reshape(k, m, 4)
    merged = merge_micro_outputs(
        MergeOutputs(
            embedding=embedding,
            indices=jnp.arange(k * m).reshape(k, m),
            target_state={"mean": jnp.array([[0.0, 3.0], [3.0, 6.0], [6.0, 9.0]])},
            count=jnp.array([1, 2, 3]),
        )
    )
    np.testing.assert_array_equal(merged.embedding, embedding.reshape(k * m, 4))
    np.testing.assert_array_equal(merged.indices, np.arange(k * m))
    np.testing.assert_array_equal(merged.target_state["mean"], [3.0, 6.0])
    assert int(merged.count) == 3  # non-float: the last micro-batch's value


@flax.struct.dataclass
class MergeOutputs(Outputs):
    indices: jax.Array = None
    target_state: dict = None
    count: jax.Array = None
    PER_EXAMPLE: ClassVar[tuple[str, ...]] = ("embedding", "indices")


def test_bad_accumulate_steps_are_one_line_errors(make_tiny_config):
    config = make_tiny_config()  # batch 16: 2 per device on 8 devices
    config.accumulate_steps = 3
    with pytest.raises(
        ValueError,
        match=r"^accumulate_steps=3 does not divide the per-device "
        r"batch 2 \(batch_size=16 on 8 devices\); choose one of "
        r"\[1, 2\]$",
    ):
        check_accumulate_steps(config, num_devices=8)
    config.accumulate_steps = 2
    assert check_accumulate_steps(config, num_devices=8) == 1
    assert check_accumulate_steps(config, num_devices=1) == 8
    for bad in (0, -2, True, 2.0, "2"):
        with pytest.raises(ValueError, match=r"^accumulate_steps=.* must be a positive integer"):
            check_accumulate_steps(
                ml_collections.ConfigDict(dict(batch_size=16, accumulate_steps=bad)), num_devices=8
            )
    # A step built for another device count fails when traced, naming both numbers.
    config.accumulate_steps = 4
    setup = build_setup(config)
    step = make_train_step(
        objective=setup.objective,
        run=setup.run,
        model=setup.eval_model,
        tx=setup.tx,
        config=config,
        axis_name=None,
    )
    batch = {"image": jax.ShapeDtypeStruct((6, 28, 28, 1), jnp.uint8)}
    with pytest.raises(
        ValueError,
        match=r"accumulate_steps=4 does not divide the per-device "
        r"batch 6",
    ):
        jax.eval_shape(step, initial_state(config, setup), batch)
