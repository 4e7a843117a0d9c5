"""BatchNorm behaviour: train vs eval, running averages, cross-replica statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from ssljax.models import ConvNet, MLPHead
from tests.tolerances import assert_close, f32_reorder_rtol, f32_sum_tol

NUM_DEVICES = 8
PER_DEVICE = 2
# Cross-replica statistics are a pmean of per-device sums: a reordered reduction over the
# 16 x 8 x 8 positions of the ConvNet's first layer (the head's 16 rows are fewer).
RTOL = f32_reorder_rtol(NUM_DEVICES * PER_DEVICE * 8 * 8)


def _small_convnet(axis_name):
    return ConvNet(widths=(4, 8), strides=(1, 2), axis_name=axis_name)


def _small_head(axis_name):
    return MLPHead(hidden_dims=(16,), output_dim=8, bn_on_output=True, axis_name=axis_name)


# Each case: (module factory, global input shape). Inputs are far from
# zero-mean/unit-variance and differ per device so that per-device and global
# statistics disagree.
CASES = {
    "convnet": (_small_convnet, (NUM_DEVICES * PER_DEVICE, 8, 8, 1)),
    "mlp_head": (_small_head, (NUM_DEVICES * PER_DEVICE, 12)),
}


def _global_batch(shape):
    x = jax.random.normal(jax.random.key(1), shape)
    shift = jnp.repeat(jnp.arange(NUM_DEVICES, dtype=jnp.float32), PER_DEVICE)
    return x * 2.0 + shift.reshape((-1,) + (1,) * (len(shape) - 1))


def _train_step(module):
    def step(variables, x):
        return module.apply(variables, x, train=True, mutable=["batch_stats"])

    return step


def _shard_mapped(module, variables, x):
    mesh = Mesh(np.array(jax.devices()[:NUM_DEVICES]), ("batch",))
    fn = jax.shard_map(
        _train_step(module),
        mesh=mesh,
        in_specs=(P(), P("batch")),
        out_specs=(P("batch"), P()),
        check_vma=False,
    )
    return jax.jit(fn)(variables, x)


def _pmapped(module, variables, x):
    fn = jax.pmap(_train_step(module), axis_name="batch", in_axes=(None, 0))
    y, state = fn(variables, x.reshape((NUM_DEVICES, PER_DEVICE) + x.shape[1:]))
    # Cross-replica statistics must be identical on every device.
    jax.tree.map(lambda s: assert_close(s, np.broadcast_to(s[0], s.shape), rtol=RTOL), state)
    return y.reshape(x.shape[:1] + y.shape[2:]), jax.tree.map(lambda s: s[0], state)


def _reference(case):
    """Variables (initialised outside any mapping) and the single-device global-batch result."""
    factory, shape = CASES[case]
    x = _global_batch(shape)
    variables = factory("batch").init(jax.random.key(0), x[:PER_DEVICE], train=False)
    expected = jax.jit(_train_step(factory(None)))(variables, x)
    return factory, x, variables, expected


@pytest.fixture(scope="module", params=sorted(CASES))
def reference(request):
    return _reference(request.param)


def _assert_trees_close(a, b):
    jax.tree.map(lambda u, v: assert_close(u, v, rtol=RTOL), a, b)


def test_shard_map_cross_replica_matches_global_batch(reference):
    factory, x, variables, (y_ref, state_ref) = reference
    y, state = _shard_mapped(factory("batch"), variables, x)
    assert_close(y, y_ref, rtol=RTOL)
    _assert_trees_close(state, state_ref)


def test_pmap_cross_replica_matches_global_batch(reference):
    factory, x, variables, (y_ref, state_ref) = reference
    y, state = _pmapped(factory("batch"), variables, x)
    assert_close(y, y_ref, rtol=RTOL)
    _assert_trees_close(state, state_ref)


def test_per_device_statistics_differ_without_axis_name(reference):
    factory, x, variables, (y_ref, state_ref) = reference
    y, state = _shard_mapped(factory(None), variables, x)
    assert not np.allclose(y, y_ref, rtol=1e-3, atol=1e-3)
    stats_ref = jax.tree.leaves(state_ref)
    assert any(
        not np.allclose(a, b, rtol=1e-3, atol=1e-3)
        for a, b in zip(jax.tree.leaves(state), stats_ref)
    )


def test_eval_uses_running_averages_not_batch_statistics():
    module = _small_convnet(None)
    x = _global_batch(CASES["convnet"][1])
    variables = module.init(jax.random.key(0), x, train=False)
    y_train, _ = module.apply(variables, x, train=True, mutable=["batch_stats"])
    y_eval = module.apply(variables, x, train=False)
    assert not np.allclose(y_train, y_eval, rtol=1e-3, atol=1e-3)
    # Eval outputs are per-example: they do not depend on the rest of the batch.
    # Batch 2 against 16 may reorder conv1 (9 terms), conv2 (9 x 4) and the pool over 4 x 4.
    assert_close(
        module.apply(variables, x[:2], train=False), y_eval[:2], rtol=f32_sum_tol(9 + 9 * 4 + 4 * 4)
    )
    y_train_sub, _ = module.apply(variables, x[:2], train=True, mutable=["batch_stats"])
    assert not np.allclose(y_train_sub, y_train[:2], rtol=1e-3, atol=1e-3)


def test_running_average_update_and_eval_formula():
    """One train step moves running stats by momentum 0.9; eval normalises with them."""
    head = MLPHead(hidden_dims=(6,), output_dim=3)
    x = jax.random.normal(jax.random.key(2), (10, 5)) + 4.0
    variables = head.init(jax.random.key(0), x, train=False)
    _, state = head.apply(variables, x, train=True, mutable=["batch_stats"])

    pre = x @ variables["params"]["hidden1"]["kernel"]  # Dense without bias, [10, 6]
    stats = state["batch_stats"]["hidden1_bn"]
    np.testing.assert_allclose(stats["mean"], 0.1 * pre.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * pre.var(0), rtol=1e-5, atol=1e-5)

    # Eval with fresh stats (mean 0, var 1, gamma 1, beta 0): BN(h) = h / sqrt(1 + eps).
    params = variables["params"]
    hidden = jax.nn.relu(pre / np.sqrt(1.0 + 1e-5))
    expected = hidden @ params["output"]["kernel"] + params["output"]["bias"]
    np.testing.assert_allclose(
        head.apply(variables, x, train=False), expected, rtol=1e-5, atol=1e-5
    )
