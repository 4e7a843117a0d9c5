"""NT-Xent: hand-computed values, an independent numpy reference, multi-device equality."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from ssljax import objectives, parallel
from ssljax.objectives import simclr_loss
from tests.tolerances import assert_close, f32_sum_tol


def numpy_nt_xent(z1, z2, tau):
    """Direct transcription of the NT-Xent formula with explicit loops."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n2 = z.shape[0]
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        j = (i + n) % n2
        denom = sum(math.exp(z[i] @ z[k] / tau) for k in range(n2) if k != i)
        total += -math.log(math.exp(z[i] @ z[j] / tau) / denom)
    return total / n2


def test_hand_computed_value():
    # Two orthogonal images, identical views, tau = 1: each anchor sees its positive at
    # cosine 1 and two negatives at cosine 0, so l = -log(e / (e + 2)) = log(2 + e) - 1.
    z = jnp.eye(2)
    assert float(simclr_loss(z, z, temperature=1.0)) == pytest.approx(
        math.log(2 + math.e) - 1, abs=1e-6
    )


def test_matches_numpy_reference():
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    for tau in (0.1, 0.5):
        expected = numpy_nt_xent(z1, z2, tau)
        got = float(
            simclr_loss(jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32), temperature=tau)
        )
        assert got == pytest.approx(expected, rel=1e-5)


def test_invariances():
    rng = np.random.default_rng(1)
    z1 = jnp.asarray(rng.normal(size=(8, 4)), jnp.float32)
    z2 = jnp.asarray(rng.normal(size=(8, 4)), jnp.float32)
    base = simclr_loss(z1, z2, temperature=0.3)
    # Positive rescaling of embeddings (cosine similarity), batch permutation, view swap.
    assert np.allclose(simclr_loss(3.0 * z1, 0.5 * z2, temperature=0.3), base, atol=1e-5)
    perm = rng.permutation(8)
    assert np.allclose(simclr_loss(z1[perm], z2[perm], temperature=0.3), base, atol=1e-5)
    assert np.allclose(simclr_loss(z2, z1, temperature=0.3), base, atol=1e-5)
    # Lower bound: perfectly aligned, far-apart pairs give a loss near 0 at small tau.
    eye = jnp.eye(4)
    assert float(simclr_loss(eye, eye, temperature=0.05)) < 1e-6
    # Upper bound at collapse: every similarity equal, loss = log(2N - 1).
    ones = jnp.ones((8, 4))
    assert float(simclr_loss(ones, ones, temperature=0.5)) == pytest.approx(math.log(15), rel=1e-5)


@pytest.mark.parametrize("driver", ["shard_map", "pmap"])
def test_multi_device_loss_and_grads_equal_single_device(driver):
    n_dev = jax.device_count()
    assert n_dev == 8
    rng = np.random.default_rng(2)
    z1 = jnp.asarray(rng.normal(size=(16, 6)), jnp.float32)
    z2 = jnp.asarray(rng.normal(size=(16, 6)), jnp.float32)

    def single(a, b):
        return simclr_loss(a, b, temperature=0.2)

    ref_loss, ref_grads = jax.value_and_grad(single, argnums=(0, 1))(z1, z2)

    def per_device(a, b):
        loss, grads = jax.value_and_grad(
            lambda x, y: simclr_loss(x, y, temperature=0.2, axis_name="batch"), argnums=(0, 1)
        )(a, b)
        # Each device holds the mean over its anchors: the global mean is the device mean,
        # and the gradient of the global loss w.r.t. local rows is the device-mean gradient.
        return jax.lax.pmean(loss, "batch"), jax.tree.map(lambda g: g / n_dev, grads)

    if driver == "shard_map":
        mesh = parallel.make_mesh()
        fn = jax.jit(
            jax.shard_map(
                per_device,
                mesh=mesh,
                in_specs=(P("batch"), P("batch")),
                out_specs=(P(), P("batch")),
                check_vma=False,
            )
        )
        loss, grads = fn(z1, z2)
    else:
        fn = jax.pmap(per_device, axis_name="batch")
        loss, grads = fn(z1.reshape(8, 2, 6), z2.reshape(8, 2, 6))
        loss = loss[0]
        grads = jax.tree.map(lambda g: g.reshape(16, 6), grads)
    # Reordered chain: norms and dot products over d=6, log-sum-exp over the 32 candidates,
    # mean over the 32 anchors; logits of unit vectors scale as 1 / tau = 5.
    tol = f32_sum_tol(2 * 6 + 2 * 32, magnitude=1 / 0.2)
    assert_close(loss, ref_loss, rtol=tol)
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, rtol=tol)


def test_registry():
    assert "simclr" in objectives.names()
    assert objectives.get("simclr").name == "simclr"
    with pytest.raises(ValueError, match=r"unknown objective 'simklr'.*simclr"):
        objectives.get("simklr")
