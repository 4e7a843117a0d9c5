"""Kozachenko–Leonenko entropy and AlignMaxEnt: numpy references, known entropies, multi-device."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from ssljax.objectives import align_maxent_loss, knn_entropy
from tests.tolerances import assert_close, f32_sum_tol


def numpy_kl_entropy(x):
    """k = 1 Kozachenko–Leonenko estimate with explicit loops, in float64.

    psi(N) - psi(1) is the harmonic number H_{N-1}; V_d = pi^(d/2) / Gamma(d/2 + 1).
    """
    x = np.asarray(x, np.float64)
    n, d = x.shape
    sum_log_rho = 0.0
    for i in range(n):
        rho = min(
            math.sqrt(sum((x[i, k] - x[j, k]) ** 2 for k in range(d))) for j in range(n) if j != i
        )
        sum_log_rho += math.log(rho)
    harmonic = sum(1.0 / k for k in range(1, n))
    log_vd = 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1)
    return harmonic + log_vd + d * sum_log_rho / n


def numpy_align_maxent(g1, g2, weight):
    g1, g2 = np.asarray(g1, np.float64), np.asarray(g2, np.float64)
    alignment = sum(float(np.sum((a - b) ** 2)) for a, b in zip(g1, g2)) / len(g1)
    entropy = 0.5 * (numpy_kl_entropy(g1) + numpy_kl_entropy(g2))
    return alignment - weight * entropy, alignment, entropy


def test_knn_entropy_matches_numpy_reference():
    rng = np.random.default_rng(0)
    for d in (1, 3):
        x = rng.uniform(size=(9, d)).astype(np.float32)
        assert float(knn_entropy(x)) == pytest.approx(numpy_kl_entropy(x), abs=1e-5)
    # Hand value: two points at distance r in 1-d: H = psi(2) - psi(1) + log 2 + log r.
    x = jnp.array([[0.0], [0.25]])
    assert float(knn_entropy(x)) == pytest.approx(1.0 + math.log(2) + math.log(0.25), abs=1e-6)


def test_knn_entropy_translation_and_scaling():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    base = float(knn_entropy(x))
    # Entropy is translation invariant and H(a x) = H(x) + d log a; so is the estimator.
    assert float(knn_entropy(x + 5.0)) == pytest.approx(base, abs=1e-4)
    assert float(knn_entropy(2.0 * x)) == pytest.approx(base + 3 * math.log(2.0), abs=1e-4)
    assert float(knn_entropy(x[::-1])) == pytest.approx(base, abs=1e-5)


def test_knn_entropy_close_to_true_entropy():
    rng = np.random.default_rng(2)
    estimate = jax.jit(knn_entropy)
    n, d = 4000, 2
    # Uniform on the unit square: H = 0.
    uniform = rng.uniform(size=(n, d)).astype(np.float32)
    assert float(estimate(uniform)) == pytest.approx(0.0, abs=0.06)
    # Isotropic Gaussian N(0, s^2 I): H = d/2 log(2 pi e s^2).
    s = 0.3
    gauss = (s * rng.normal(size=(n, d))).astype(np.float32)
    assert float(estimate(gauss)) == pytest.approx(
        0.5 * d * math.log(2 * math.pi * math.e * s * s), abs=0.06
    )


def test_knn_entropy_gradient_finite_with_duplicates():
    x = jnp.array([[0.1, 0.2], [0.1, 0.2], [0.7, 0.4], [0.3, 0.9]])
    value, grad = jax.value_and_grad(knn_entropy)(x)
    assert np.isfinite(float(value))
    assert np.all(np.isfinite(np.asarray(grad)))
    # Spreading points apart raises the estimate: the gradient pushes the isolated point away
    # from its neighbour.
    rng = np.random.default_rng(3)
    y = jnp.asarray(rng.uniform(size=(6, 2)), jnp.float32)
    g = jax.grad(knn_entropy)(y)
    stepped = float(knn_entropy(y + 1e-3 * g))
    assert stepped > float(knn_entropy(y))


def test_knn_entropy_gradient_matches_finite_differences():
    # Both the point and its neighbour move log rho: the gradient must include both terms.
    rng = np.random.default_rng(6)
    x = rng.uniform(size=(6, 2))
    grad = np.asarray(jax.grad(knn_entropy)(jnp.asarray(x, jnp.float32)))
    h = 1e-6
    for i in range(6):
        for k in range(2):
            up, down = x.copy(), x.copy()
            up[i, k] += h
            down[i, k] -= h
            fd = (numpy_kl_entropy(up) - numpy_kl_entropy(down)) / (2 * h)
            assert grad[i, k] == pytest.approx(fd, rel=1e-3, abs=1e-3)


def test_align_maxent_matches_numpy():
    rng = np.random.default_rng(4)
    g1 = rng.uniform(size=(10, 3)).astype(np.float32)
    g2 = np.clip(g1 + 0.05 * rng.normal(size=(10, 3)), 0.01, 0.99).astype(np.float32)
    for weight in (1.0, 0.3):
        loss, metrics = align_maxent_loss(g1, g2, entropy_weight=weight)
        ref, ref_align, ref_entropy = numpy_align_maxent(g1, g2, weight)
        assert float(metrics["alignment"]) == pytest.approx(ref_align, rel=1e-5)
        assert float(metrics["entropy"]) == pytest.approx(ref_entropy, abs=1e-5)
        assert float(loss) == pytest.approx(ref, abs=1e-5)
    # Identical views: zero alignment, loss = -H.
    loss, metrics = align_maxent_loss(g1, g1)
    assert float(metrics["alignment"]) == 0.0
    assert float(loss) == pytest.approx(-float(knn_entropy(g1)), abs=1e-6)


def _sharded(fn, out_specs):
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    return jax.jit(
        jax.shard_map(
            fn, mesh=mesh, in_specs=(P("batch"), P("batch")), out_specs=out_specs, check_vma=False
        )
    )


def test_knn_entropy_and_align_maxent_multi_device_equal_single_device():
    n_dev = jax.device_count()
    assert n_dev == 8
    rng = np.random.default_rng(5)
    g1 = jnp.asarray(rng.uniform(size=(16, 3)), jnp.float32)
    g2 = jnp.asarray(
        np.clip(np.asarray(g1) + 0.1 * rng.normal(size=(16, 3)), 0.01, 0.99), jnp.float32
    )

    def fn(a, b, axis_name=None):
        loss, metrics = align_maxent_loss(a, b, entropy_weight=0.7, axis_name=axis_name)
        return loss, (metrics, knn_entropy(a, axis_name=axis_name))

    (ref, (ref_m, ref_h)), ref_grads = jax.value_and_grad(fn, argnums=(0, 1), has_aux=True)(g1, g2)

    def per_device(a, b):
        (loss, aux), grads = jax.value_and_grad(
            lambda x, y: fn(x, y, "batch"), argnums=(0, 1), has_aux=True
        )(a, b)
        return jax.lax.pmean((loss, aux), "batch"), jax.tree.map(lambda g: g / n_dev, grads)

    (loss, (metrics, h)), grads = _sharded(per_device, (P(), P("batch")))(g1, g2)
    # Reordered chain: squared distances over d=3, the nearest neighbour among 16, the mean of
    # 16 log-distances; log-distances of points in the unit cube are O(log 16) in size, and
    # near-zero values (the entropy) are compared at that scale.
    tol = f32_sum_tol(3 + 16 + 16, magnitude=math.log(16))
    assert_close(h, ref_h, rtol=0, atol=tol)
    assert_close(loss, ref, rtol=0, atol=tol)
    for key in ("alignment", "entropy"):
        assert_close(metrics[key], ref_m[key], rtol=0, atol=tol)
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, rtol=tol)
