"""Collapse monitors: hand-checkable values, bounds, and the global batch under shard_map."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from ssljax.evaluation.collapse import collapse_monitors, effective_rank, normalized_std
from tests.tolerances import assert_close, f32_sum_tol


def test_collapsed_embeddings_have_zero_std_and_rank_one():
    z = jnp.tile(jnp.array([[1.0, 2.0, 3.0]]), (16, 1))
    # The mean of 16 equal unit-vector components is exact only in some summation orders.
    assert float(normalized_std(z)) == pytest.approx(0.0, abs=f32_sum_tol(16))
    # A constant batch has zero covariance: no direction carries variance.
    z = z + jnp.arange(16.0)[:, None] * jnp.array([[1.0, 0.0, 0.0]])
    assert float(effective_rank(z)) == pytest.approx(1.0, rel=1e-5)


def test_normalized_std_matches_numpy():
    z = np.random.default_rng(0).normal(size=(50, 6))
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    want = np.mean(np.std(u, axis=0))
    assert float(normalized_std(jnp.asarray(z, jnp.float32))) == pytest.approx(want, rel=1e-5)


def test_sphere_uniform_std_is_about_one_over_sqrt_d():
    d = 64
    z = jax.random.normal(jax.random.PRNGKey(0), (20000, d))
    m = collapse_monitors(z)
    assert float(m["collapse_std"]) == pytest.approx(1 / np.sqrt(d), rel=0.02)
    assert float(m["collapse_std_ref"]) == pytest.approx(1 / np.sqrt(d))


def test_effective_rank_of_an_isotropic_k_dim_subspace_is_k():
    # Rows +-e_i for i < k: covariance (1/k) on k axes, zero elsewhere -> erank exactly k.
    k, d = 5, 12
    rows = np.concatenate([np.eye(d)[:k], -np.eye(d)[:k]])
    assert float(effective_rank(jnp.asarray(rows, jnp.float32))) == pytest.approx(k, rel=1e-5)


def test_effective_rank_matches_the_entropy_formula():
    z = np.random.default_rng(1).normal(size=(40, 5)) * np.array([3.0, 1.0, 0.5, 0.2, 0.1])
    c = np.cov(z, rowvar=False, bias=True)
    p = np.linalg.eigvalsh(c)
    p = p / p.sum()
    want = np.exp(-np.sum(p * np.log(p)))
    got = float(effective_rank(jnp.asarray(z, jnp.float32)))
    assert got == pytest.approx(want, rel=1e-4)
    assert 1.0 <= got <= 5.0


def test_monitors_see_the_global_batch_under_shard_map():
    z = jax.random.normal(jax.random.PRNGKey(2), (32, 6)) * jnp.arange(1.0, 7.0)
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    sharded = jax.jit(
        jax.shard_map(
            lambda x: collapse_monitors(x, "batch"),
            mesh=mesh,
            in_specs=P("batch"),
            out_specs=P(),
            check_vma=False,
        )
    )(z)
    single = collapse_monitors(z)
    # Reordered chain: means and the 6 x 6 covariance over the 32 rows, norms over d=6, then
    # the eigenvalues' entropy (6 terms): relative to the monitors' own size.
    for key in single:
        assert_close(sharded[key], single[key], rtol=f32_sum_tol(2 * 32 + 6 + 6))
