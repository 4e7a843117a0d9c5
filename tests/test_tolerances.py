"""The tolerance helpers (tests/tolerances.py) bound what they claim and still see bugs."""

import jax.numpy as jnp
import numpy as np
import pytest

from tests.tolerances import (
    BF16_EPS,
    F32_EPS,
    assert_updates_close,
    bf16_rtol,
    f32_reorder_rtol,
    f32_steps_rtol,
    f32_sum_tol,
    update_difference,
)


def test_reordered_float32_sums_stay_within_the_worst_case_bound():
    rng = np.random.default_rng(0)
    for n in (7, 100, 4096):
        x = rng.normal(size=n).astype(np.float32) * rng.uniform(0.1, 10, n).astype(np.float32)
        exact = float(np.sum(x.astype(np.float64)))
        sums = []
        for _ in range(20):
            acc = np.float32(0)
            for v in rng.permutation(x):  # sequential float32 sum in a random order
                acc = np.float32(acc + v)
            sums.append(float(acc))
        sums.append(float(jnp.sum(jnp.asarray(x))))  # XLA's own order
        bound = f32_sum_tol(n, magnitude=float(np.sum(np.abs(x))))
        assert max(abs(s - exact) for s in sums) <= bound / 2  # each order within (n-1) u
        assert max(sums) - min(sums) <= bound


def test_values_and_monotonicity():
    assert F32_EPS == 2.0**-23 and BF16_EPS == 2.0**-8
    assert f32_sum_tol(10, 2.0) == pytest.approx(20 * F32_EPS)
    assert f32_reorder_rtol(10_000, safety=1.0) == pytest.approx(100 * F32_EPS)
    assert f32_reorder_rtol(10_000) < f32_sum_tol(10_000)  # the random walk is tighter
    assert f32_steps_rtol(100, 0) == f32_reorder_rtol(100)
    assert f32_steps_rtol(100, 3, growth=2.0, cancellation=1.0) == pytest.approx(
        7 * f32_reorder_rtol(100)
    )
    assert bf16_rtol(4, amplification=2.0) == pytest.approx(8 * BF16_EPS)
    with pytest.raises(ValueError, match="n_terms=0"):
        f32_sum_tol(0)
    with pytest.raises(ValueError, match="growth=0.5"):
        f32_steps_rtol(10, 1, growth=0.5)


def test_update_comparison_sees_a_scaled_update_but_not_rounding():
    rng = np.random.default_rng(1)
    start = {"w": rng.normal(size=(20, 5)).astype(np.float32), "b": np.zeros(5, np.float32)}
    update = {"w": 1e-3 * rng.normal(size=(20, 5)), "b": 1e-2 * rng.normal(size=5)}
    good = {k: (start[k] + update[k]).astype(np.float32) for k in start}
    noisy = {
        k: (good[k] + 1e-6 * np.abs(update[k]).max() * rng.normal(size=good[k].shape)).astype(
            np.float32
        )
        for k in good
    }
    assert_updates_close(noisy, good, start, rtol=1e-4)
    doubled = {k: (start[k] + 2 * update[k]).astype(np.float32) for k in start}
    with pytest.raises(AssertionError, match="update of"):
        assert_updates_close(doubled, good, start, rtol=1e-2)
    assert update_difference(doubled, good, start) == pytest.approx(1.0, rel=1e-3)
