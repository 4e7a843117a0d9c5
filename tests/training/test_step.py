"""The generic per-device step: 8 devices == 1 device, shard_map == pmap, loud failures."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax import parallel
from ssljax.training.loop import build_setup, initial_state
from ssljax.training.step import make_train_step, pmap_driver, shard_map_driver
from tests.tolerances import assert_close, assert_updates_close, f32_steps_rtol

# Longest reduction of a step of the tiny config: BatchNorm statistics of block1 over the
# global batch's 16 x 28 x 28 positions (tolerances: tests/tolerances.py).
N_TERMS = 16 * 28 * 28


def host_batch(n_dev, per_dev, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (n_dev, per_dev, 28, 28, 1), dtype=np.uint8),
        "label": rng.integers(0, 10, (n_dev, per_dev)).astype(np.int32),
    }


def run_steps(config, devices, batches):
    setup = build_setup(config)
    mesh = parallel.make_mesh(devices)
    state = parallel.replicate_on_mesh(initial_state(config, setup), mesh)
    step = shard_map_driver(
        make_train_step(
            objective=setup.objective,
            run=setup.run,
            model=setup.train_model,
            tx=setup.tx,
            config=config,
            schedule=setup.schedule,
        ),
        mesh,
    )
    losses = []
    for b in batches:
        # Regroup the same global batch for this device count.
        flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in b.items()}
        local = {k: v.reshape((len(devices), -1) + v.shape[1:]) for k, v in flat.items()}
        state, metrics = step(state, parallel.batch_to_global(local, mesh))
        losses.append(float(metrics["loss"]))
    return jax.device_get(state), losses


def assert_trees_close(a, b, rtol=2e-4, atol=2e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def test_eight_devices_equal_one_device(make_identity_config):
    config = make_identity_config()
    batches = [host_batch(8, 2, seed=s) for s in range(3)]
    state8, losses8 = run_steps(config, jax.devices(), batches)
    state1, losses1 = run_steps(config, jax.devices()[:1], batches)
    state0 = jax.device_get(initial_state(config, build_setup(config)))
    # The last loss follows 2 updates; the state follows 3.
    assert_close(losses8, losses1, rtol=f32_steps_rtol(N_TERMS, steps=2))
    assert_updates_close(
        state8.params, state1.params, state0.params, rtol=f32_steps_rtol(N_TERMS, steps=3)
    )
    # Cross-replica BatchNorm: running statistics equal those of the full batch.
    assert_updates_close(
        state8.model_state,
        state1.model_state,
        state0.model_state,
        rtol=f32_steps_rtol(N_TERMS, steps=3),
    )
    assert int(state8.step) == int(state1.step) == 3


def test_without_cross_replica_bn_statistics_differ(make_identity_config):
    """Control for the test above: per-device BatchNorm gives different running stats."""
    config = make_identity_config()
    setup = build_setup(config)
    local_model = setup.objective.build_model(setup.run, None)  # no axis name: local stats
    setup_local = dataclasses.replace(setup, train_model=local_model)
    mesh = parallel.make_mesh()
    state = parallel.replicate_on_mesh(initial_state(config, setup), mesh)
    b = host_batch(8, 2)
    outs = []
    for s in (setup, setup_local):
        step = shard_map_driver(
            make_train_step(
                objective=s.objective, run=s.run, model=s.train_model, tx=s.tx, config=config
            ),
            mesh,
        )
        new_state, _ = step(jax.tree.map(jnp.copy, state), parallel.batch_to_global(b, mesh))
        outs.append(jax.device_get(new_state.model_state))
    # pmean of per-device variances != variance of the whole batch.
    diffs = [
        np.max(np.abs(x - y)) for x, y in zip(jax.tree.leaves(outs[0]), jax.tree.leaves(outs[1]))
    ]
    assert max(diffs) > 1e-4


def test_pmap_driver_equals_shard_map_driver(make_tiny_config):
    config = make_tiny_config()  # real augmentations: same per-device keys in both drivers
    setup = build_setup(config)
    per_device = make_train_step(
        objective=setup.objective,
        run=setup.run,
        model=setup.train_model,
        tx=setup.tx,
        config=config,
    )
    state0 = initial_state(config, setup)
    start = jax.device_get(state0)
    batches = [host_batch(8, 2, seed=s) for s in range(2)]

    mesh = parallel.make_mesh()
    sm = shard_map_driver(per_device, mesh)
    s_sm = parallel.replicate_on_mesh(state0, mesh)
    pm = pmap_driver(per_device)
    s_pm = parallel.replicate_for_pmap(state0)
    losses = []
    for b in batches:
        s_sm, m_sm = sm(s_sm, parallel.batch_to_global(b, mesh))
        s_pm, m_pm = pm(s_pm, b)
        losses.append((float(m_sm["loss"]), float(m_pm["loss"][0])))
    # Same per-device programs, compiled differently: fusion may reorder reductions.
    assert_close(*zip(*losses), rtol=f32_steps_rtol(N_TERMS, steps=1))
    assert_updates_close(
        jax.device_get(s_sm.params),
        parallel.unreplicate(jax.device_get(s_pm.params)),
        start.params,
        rtol=f32_steps_rtol(N_TERMS, steps=2),
    )


def test_non_finite_loss_keeps_state_and_is_reported(make_tiny_config):
    config = make_tiny_config()
    setup = build_setup(config)

    class NanLoss(type(setup.objective)):
        def loss(self, params, model_state, views, rng, ctx):
            loss, aux = super().loss(params, model_state, views, rng, ctx)
            return loss * jnp.nan, aux.replace(metrics=dict(aux.metrics, loss=loss * jnp.nan))

    bad = NanLoss(**dataclasses.asdict(setup.objective))
    mesh = parallel.make_mesh()
    state = parallel.replicate_on_mesh(initial_state(config, setup), mesh)
    before = jax.device_get(state)
    step = shard_map_driver(
        make_train_step(
            objective=bad, model=setup.train_model, tx=setup.tx, config=config, run=setup.run
        ),
        mesh,
    )
    new_state, metrics = step(state, parallel.batch_to_global(host_batch(8, 2), mesh))
    assert not bool(metrics["finite"])
    after = jax.device_get(new_state)
    assert int(after.step) == int(before.step)
    assert_trees_close(after.params, before.params, rtol=0, atol=0)


def test_batch_not_divisible_is_a_clear_error():
    with pytest.raises(ValueError, match=r"batch_size=12 is not divisible by the 8 devices.*8.*16"):
        parallel.check_global_batch(12, 8)
    assert parallel.check_global_batch(32, 8) == 4
