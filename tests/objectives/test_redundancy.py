"""Barlow Twins and VICReg: numpy references of the authors' code, invariances, multi-device."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from ssljax.objectives import barlow_twins_loss, vicreg_loss
from tests.tolerances import assert_close, f32_sum_tol


def numpy_barlow(z1, z2, lambd, eps=1e-5):
    """facebookresearch/barlowtwins main.py: BatchNorm1d(affine=False) then c = z1n.T z2n / N."""
    z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
    n, d = z1.shape

    def bn(z):
        out = np.empty_like(z)
        for j in range(d):
            col = z[:, j]
            mean = col.sum() / n
            var = ((col - mean) ** 2).sum() / n  # biased, as BatchNorm normalises in training
            out[:, j] = (col - mean) / np.sqrt(var + eps)
        return out

    a, b = bn(z1), bn(z2)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c_ij = sum(a[k, i] * b[k, j] for k in range(n)) / n
            loss += (c_ij - 1.0) ** 2 if i == j else lambd * c_ij**2
    return loss


def numpy_vicreg(x, y, sim=25.0, std=25.0, cov=1.0, eps=1e-4):
    """facebookresearch/vicreg main_vicreg.py, VICReg.forward, with explicit loops."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n, d = x.shape
    repr_loss = sum((x[k, j] - y[k, j]) ** 2 for k in range(n) for j in range(d)) / (n * d)

    def terms(v):
        v = v - v.mean(axis=0)
        std_v = np.array([np.sqrt((v[:, j] ** 2).sum() / (n - 1) + eps) for j in range(d)])
        var_term = np.mean(np.maximum(0.0, 1.0 - std_v))
        cov_term = 0.0
        for i in range(d):
            for j in range(d):
                if i != j:
                    cov_term += ((v[:, i] * v[:, j]).sum() / (n - 1)) ** 2
        return var_term, cov_term / d

    vx, cx = terms(x)
    vy, cy = terms(y)
    std_loss = vx / 2 + vy / 2
    cov_loss = cx + cy
    return sim * repr_loss + std * std_loss + cov * cov_loss, repr_loss, std_loss, cov_loss


def _views(seed, n=16, d=4):
    rng = np.random.default_rng(seed)
    z1 = rng.normal(size=(n, d)) * np.array([1.0, 0.3, 2.0, 0.7])[:d] + 0.5
    z2 = z1 + 0.5 * rng.normal(size=(n, d))
    return z1.astype(np.float32), z2.astype(np.float32)


def _hadamard_columns():
    # Columns of the order-4 Hadamard matrix except the constant one: zero mean, unit biased
    # variance, mutually orthogonal, i.e. perfectly standardised and decorrelated.
    return np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], np.float32)


def test_barlow_twins_matches_numpy_reference():
    z1, z2 = _views(0)
    for lambd in (0.0051, 0.5):
        expected = numpy_barlow(z1, z2, lambd)
        assert float(barlow_twins_loss(z1, z2, lambd=lambd)) == pytest.approx(expected, rel=1e-5)


def test_barlow_twins_zero_for_decorrelated_identical_views():
    h = _hadamard_columns()
    assert float(barlow_twins_loss(h, h)) == pytest.approx(0.0, abs=1e-8)
    # eps only: c_ii = 1 / (1 + eps), so the loss is D * (eps / (1 + eps))^2.
    assert float(barlow_twins_loss(h, h, eps=0.1)) == pytest.approx(3 * (0.1 / 1.1) ** 2, rel=1e-5)
    # Anti-correlated views put every diagonal entry at -1: loss = D * 4.
    assert float(barlow_twins_loss(h, -h)) == pytest.approx(12.0, rel=1e-4)


def test_barlow_twins_lambda_scaling_and_invariances():
    z1, z2 = _views(1)
    l0 = float(barlow_twins_loss(z1, z2, lambd=0.0))
    l1 = float(barlow_twins_loss(z1, z2, lambd=0.1))
    l2 = float(barlow_twins_loss(z1, z2, lambd=0.2))
    # loss = on_diag + lambd * off_diag, linear in lambd with a positive slope.
    assert l2 - l1 == pytest.approx(l1 - l0, rel=1e-4)
    assert l1 > l0
    # Batch permutation, view swap (c -> c.T), per-dimension affine maps with positive scale.
    base = float(barlow_twins_loss(z1, z2))
    perm = np.random.default_rng(1).permutation(16)
    assert float(barlow_twins_loss(z1[perm], z2[perm])) == pytest.approx(base, rel=1e-5)
    assert float(barlow_twins_loss(z2, z1)) == pytest.approx(base, rel=1e-5)
    scale = np.array([3.0, 0.5, 2.0, 10.0], np.float32)
    assert float(barlow_twins_loss(z1 * scale - 4.0, z2 * scale + 1.0)) == pytest.approx(
        base, rel=1e-3
    )


def test_vicreg_terms_match_numpy_reference():
    z1, z2 = _views(2)
    loss, metrics = vicreg_loss(z1, z2)
    ref, inv, var, cov = numpy_vicreg(z1, z2)
    assert float(metrics["invariance"]) == pytest.approx(inv, rel=1e-5)
    assert float(metrics["variance"]) == pytest.approx(var, rel=1e-5)
    assert float(metrics["covariance"]) == pytest.approx(cov, rel=1e-5)
    assert float(loss) == pytest.approx(ref, rel=1e-5)
    # Coefficients weight the terms linearly.
    loss2, _ = vicreg_loss(z1, z2, sim_coeff=1.0, std_coeff=2.0, cov_coeff=3.0)
    assert float(loss2) == pytest.approx(inv + 2 * var + 3 * cov, rel=1e-5)


def test_vicreg_terms_in_isolation():
    # Collapse to a constant: no invariance or covariance, std = sqrt(eps) = 0.01 in every
    # dimension, so variance = 1 - 0.01 and loss = 25 * 0.99.
    zeros = jnp.zeros((8, 3))
    loss, m = vicreg_loss(zeros, zeros)
    assert float(m["invariance"]) == 0.0 and float(m["covariance"]) == 0.0
    assert float(m["variance"]) == pytest.approx(0.99, rel=1e-6)
    assert float(loss) == pytest.approx(25 * 0.99, rel=1e-6)
    # Decorrelated columns with std > 1 (unbiased): only the invariance term can be non-zero.
    h = 2.0 * _hadamard_columns()
    _, m = vicreg_loss(h, h)
    assert float(m["variance"]) == 0.0
    assert float(m["covariance"]) == pytest.approx(0.0, abs=1e-10)
    assert float(m["invariance"]) == 0.0
    _, m = vicreg_loss(h, h + 0.5)
    assert float(m["invariance"]) == pytest.approx(0.25, rel=1e-6)
    assert float(m["covariance"]) == pytest.approx(0.0, abs=1e-10)


def _sharded(fn, n_args):
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    return jax.jit(
        jax.shard_map(
            fn,
            mesh=mesh,
            in_specs=(P("batch"),) * n_args,
            out_specs=(P(), P("batch")),
            check_vma=False,
        )
    )


def test_barlow_twins_multi_device_equals_single_device():
    n_dev = jax.device_count()
    assert n_dev == 8
    z1, z2 = (jnp.asarray(v) for v in _views(3))
    ref, ref_grads = jax.value_and_grad(lambda a, b: barlow_twins_loss(a, b), argnums=(0, 1))(
        z1, z2
    )

    def per_device(a, b):
        loss, grads = jax.value_and_grad(
            lambda x, y: barlow_twins_loss(x, y, axis_name="batch"), argnums=(0, 1)
        )(a, b)
        # Same convention as the simclr test: the device mean of the loss is the global loss and
        # the per-device gradients divided by the device count are the global gradients.
        return jax.lax.pmean(loss, "batch"), jax.tree.map(lambda g: g / n_dev, grads)

    loss, grads = _sharded(per_device, 2)(z1, z2)
    # Reordered chain over the batch of 16: mean, variance, cross-correlation, then the sum
    # over the 4 x 4 matrix; standardised values are O(1).
    tol = f32_sum_tol(3 * 16 + 4 * 4)
    assert_close(loss, ref, rtol=tol)
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, rtol=tol)


def test_vicreg_multi_device_equals_single_device():
    n_dev = jax.device_count()
    z1, z2 = (jnp.asarray(v) for v in _views(4))

    def loss_fn(a, b, axis_name=None):
        loss, metrics = vicreg_loss(a, b, axis_name=axis_name)
        return loss, metrics

    (ref, ref_m), ref_grads = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(z1, z2)

    def per_device(a, b):
        (loss, metrics), grads = jax.value_and_grad(
            lambda x, y: loss_fn(x, y, "batch"), argnums=(0, 1), has_aux=True
        )(a, b)
        return (jax.lax.pmean((loss, metrics), "batch"), jax.tree.map(lambda g: g / n_dev, grads))

    (loss, metrics), grads = _sharded(per_device, 2)(z1, z2)
    # Reordered chain over the batch of 16: mean, variance, covariance, then the sum over the
    # 4 x 4 matrix; the terms are of the size of the loss.
    tol = f32_sum_tol(3 * 16 + 4 * 4)
    assert_close(loss, ref, rtol=tol)
    for key in ("invariance", "variance", "covariance"):
        assert_close(metrics[key], ref_m[key], rtol=0, atol=tol * abs(float(ref)))
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, rtol=tol)
