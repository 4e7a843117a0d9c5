"""BYOL / SimSiam losses and the EMA helpers against numpy references and their bounds."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.objectives import byol_loss, cosine_ema_momentum, ema_update, simsiam_loss


def numpy_byol(p, z):
    total = 0.0
    for pi, zi in zip(np.asarray(p, np.float64), np.asarray(z, np.float64)):
        a, b = pi / np.linalg.norm(pi), zi / np.linalg.norm(zi)
        total += 2.0 - 2.0 * float(a @ b)
    return total / len(p)


def numpy_simsiam(p, z):
    cos = [
        float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        for a, b in zip(np.asarray(p, np.float64), np.asarray(z, np.float64))
    ]
    return -sum(cos) / len(cos)


def _pair(seed, n=6, d=5):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=(n, d)).astype(np.float32)


def test_byol_matches_numpy_and_bounds():
    p, z = _pair(0)
    assert float(byol_loss(p, z)) == pytest.approx(numpy_byol(p, z), rel=1e-5)
    # Identical directions (any positive scale) give 0, opposite directions give the maximum 4.
    assert float(byol_loss(p, 3.0 * p)) == pytest.approx(0.0, abs=1e-6)
    assert float(byol_loss(p, -0.5 * p)) == pytest.approx(4.0, rel=1e-6)
    # Orthogonal directions: 2.
    assert float(byol_loss(jnp.eye(3), jnp.roll(jnp.eye(3), 1, axis=1))) == pytest.approx(
        2.0, abs=1e-6
    )
    value = float(byol_loss(p, z))
    assert 0.0 <= value <= 4.0


def test_simsiam_matches_numpy_and_bounds():
    p, z = _pair(1)
    assert float(simsiam_loss(p, z)) == pytest.approx(numpy_simsiam(p, z), rel=1e-5)
    assert float(simsiam_loss(p, 2.0 * p)) == pytest.approx(-1.0, abs=1e-6)
    assert float(simsiam_loss(p, -p)) == pytest.approx(1.0, abs=1e-6)
    # BYOL and SimSiam are the same quantity up to an affine map: byol = 2 + 2 * simsiam.
    assert float(byol_loss(p, z)) == pytest.approx(2.0 + 2.0 * float(simsiam_loss(p, z)), abs=1e-5)


@pytest.mark.parametrize("loss_fn", [byol_loss, simsiam_loss])
def test_target_gets_no_gradient(loss_fn):
    p, z = _pair(2)
    gp, gz = jax.grad(loss_fn, argnums=(0, 1))(jnp.asarray(p), jnp.asarray(z))
    assert np.all(np.asarray(gz) == 0.0)
    assert np.abs(np.asarray(gp)).max() > 1e-3


def test_byol_gradient_matches_finite_differences():
    # The loss of one row only depends on that row's direction; check d/dp numerically.
    p, z = _pair(3, n=2, d=3)
    p64, z64 = p.astype(np.float64), z.astype(np.float64)
    grad = np.asarray(jax.grad(byol_loss)(jnp.asarray(p), jnp.asarray(z)))
    h = 1e-4
    for i in range(2):
        for j in range(3):
            up, down = p64.copy(), p64.copy()
            up[i, j] += h
            down[i, j] -= h
            fd = (numpy_byol(up, z64) - numpy_byol(down, z64)) / (2 * h)
            assert grad[i, j] == pytest.approx(fd, abs=2e-4)


def test_cosine_ema_momentum_schedule():
    base, total = 0.996, 1000
    assert float(cosine_ema_momentum(0, total, base)) == pytest.approx(base, abs=1e-7)
    assert float(cosine_ema_momentum(total // 2, total, base)) == pytest.approx(
        (1 + base) / 2, abs=1e-7
    )
    assert float(cosine_ema_momentum(total, total, base)) == pytest.approx(1.0, abs=1e-7)
    # Clipped after the last step (deepmind-research byol schedules.cosine_decay).
    assert float(cosine_ema_momentum(3 * total, total, base)) == pytest.approx(1.0, abs=1e-7)
    # Works on a traced step and matches the closed form; monotone non-decreasing.
    steps = jnp.arange(0, total + 1, 50)
    values = np.asarray(jax.jit(jax.vmap(lambda s: cosine_ema_momentum(s, total, base)))(steps))
    expected = [
        1 - (1 - base) * (math.cos(math.pi * s / total) + 1) / 2 for s in range(0, total + 1, 50)
    ]
    np.testing.assert_allclose(values, expected, atol=1e-7)
    assert np.all(np.diff(values) >= 0)


def test_ema_update():
    target = {"w": jnp.array([1.0, 2.0]), "b": {"c": jnp.array(4.0)}}
    online = {"w": jnp.array([3.0, -2.0]), "b": {"c": jnp.array(0.0)}}
    out = ema_update(target, online, 0.75)
    np.testing.assert_allclose(out["w"], [0.75 * 1 + 0.25 * 3, 0.75 * 2 - 0.25 * 2])
    np.testing.assert_allclose(out["b"]["c"], 3.0)
    assert jax.tree.structure(out) == jax.tree.structure(target)
    # momentum 1 keeps the target, 0 copies the online network; traced momentum is fine.
    np.testing.assert_allclose(ema_update(target, online, 1.0)["w"], target["w"])
    np.testing.assert_allclose(ema_update(target, online, 0.0)["w"], online["w"])
    jitted = jax.jit(ema_update)(target, online, jnp.float32(0.75))
    np.testing.assert_allclose(jitted["w"], out["w"])
    # Leaves keep the target's dtype.
    half = ema_update({"w": jnp.ones(2, jnp.bfloat16)}, {"w": jnp.zeros(2, jnp.float32)}, 0.5)
    assert half["w"].dtype == jnp.bfloat16
