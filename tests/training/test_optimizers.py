"""Optimizer construction: weight-decay masks, learning-rate scaling, schedules, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.training.loop import build_setup, initial_state
from ssljax.training.optimizers import (
    build_optimizer,
    decay_mask,
    learning_rate_schedule,
    peak_learning_rate,
)


def test_peak_learning_rate_rules():
    assert peak_learning_rate(0.3, 4096, "linear") == pytest.approx(4.8)  # SimCLR ImageNet
    assert peak_learning_rate(0.075, 4096, "sqrt") == pytest.approx(0.075 * 64)
    assert peak_learning_rate(0.1, 999, "none") == 0.1
    with pytest.raises(ValueError, match=r"unknown optimizer.lr_scaling 'cubic'.*linear"):
        peak_learning_rate(0.1, 256, "cubic")


def test_warmup_cosine_schedule(make_tiny_config):
    c = make_tiny_config()
    c.batch_size, c.total_steps, c.optimizer.warmup_steps = 512, 100, 10
    c.optimizer.base_learning_rate, c.optimizer.lr_scaling = 0.3, "linear"
    sched = learning_rate_schedule(c)
    peak = 0.3 * 512 / 256
    assert float(sched(0)) == pytest.approx(0.0)
    assert float(sched(5)) == pytest.approx(peak / 2, rel=1e-5)
    assert float(sched(10)) == pytest.approx(peak, rel=1e-5)
    mid = 10 + 45
    assert float(sched(mid)) == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * 0.5)), rel=1e-4)
    assert float(sched(100)) == pytest.approx(0.0, abs=1e-7)


def test_decay_mask_excludes_biases_and_norms(make_tiny_config):
    c = make_tiny_config()
    state = initial_state(c, build_setup(c))
    flat = jax.tree_util.tree_flatten_with_path(decay_mask(state.params))[0]
    names = {jax.tree_util.keystr(path): bool(v) for path, v in flat}
    assert any(v for k, v in names.items() if "kernel" in k)
    assert not any(v for k, v in names.items() if "bias" in k or "scale" in k)
    assert all(v for k, v in names.items() if "kernel" in k)


@pytest.mark.parametrize("name", ["lars", "lamb", "adamw", "sgd"])
def test_weight_decay_only_touches_kernels(make_tiny_config, name):
    c = make_tiny_config()
    c.optimizer.name, c.optimizer.weight_decay = name, 0.5
    c.optimizer.warmup_steps = 0
    tx, _ = build_optimizer(c)
    params = {
        "dense": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones((2,))},
        "bn": {"scale": jnp.ones((2,))},
    }
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero, tx.init(params), params)
    # With zero gradients only decayed parameters move.
    assert float(jnp.abs(updates["dense"]["kernel"]).sum()) > 0
    assert float(jnp.abs(updates["dense"]["bias"]).sum()) == 0
    assert float(jnp.abs(updates["bn"]["scale"]).sum()) == 0


def test_unknown_optimizer(make_tiny_config):
    c = make_tiny_config()
    c.optimizer.name = "adagrad"
    with pytest.raises(ValueError, match=r"unknown optimizer.name 'adagrad'; choose one of .*lars"):
        build_optimizer(c)


@pytest.mark.parametrize("name", ["lars", "sgd"])
def test_lr_multipliers_scale_only_the_named_part(make_tiny_config, name):
    c = make_tiny_config()
    c.optimizer.name, c.optimizer.warmup_steps, c.optimizer.weight_decay = name, 0, 1e-4
    params = {
        "encoder": {"kernel": jnp.full((3, 2), 0.5)},
        "predictor": {"kernel": jnp.full((2, 2), -0.3), "bias": jnp.ones((2,))},
    }
    grads = jax.tree.map(
        lambda p: jnp.arange(p.size, dtype=jnp.float32).reshape(p.shape) + 1, params
    )
    plain, _ = build_optimizer(c)
    base, _ = plain.update(grads, plain.init(params), params)
    c.optimizer.lr_multipliers.predictor = 10.0
    tx, _ = build_optimizer(c)
    scaled, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(scaled["encoder"]["kernel"], base["encoder"]["kernel"])
    for key in ("kernel", "bias"):
        np.testing.assert_allclose(
            scaled["predictor"][key], 10.0 * base["predictor"][key], rtol=1e-6
        )
    assert float(jnp.abs(base["predictor"]["kernel"]).sum()) > 0


def test_lr_multipliers_errors(make_tiny_config):
    c = make_tiny_config()
    c.optimizer.lr_multipliers.predictor = 0.0
    with pytest.raises(ValueError, match=r"lr_multipliers\['predictor'\]=0.0 must be a number > 0"):
        build_optimizer(c)
    c.optimizer.lr_multipliers.predictor = 2.0
    tx, _ = build_optimizer(c)
    with pytest.raises(
        ValueError,
        match=r"names 'predictor', which the model does not have; "
        r"its top-level parameters are \['encoder'\]",
    ):
        tx.init({"encoder": {"kernel": jnp.ones((2, 2))}})


def test_adamw_b1_is_the_first_moment_decay(make_tiny_config):
    """Two steps with gradients g1, g2 and no weight decay: Adam's bias-corrected first
    moment after step 2 is (b1 (1 - b1) g1 + (1 - b1) g2) / (1 - b1^2), by hand."""
    c = make_tiny_config()
    c.optimizer.name, c.optimizer.weight_decay, c.optimizer.warmup_steps = "adamw", 0.0, 0
    c.optimizer.lr_scaling, c.optimizer.base_learning_rate, c.total_steps = "none", 1.0, 10**6
    params = {"w": jnp.zeros((2,))}
    g1, g2 = jnp.array([1.0, -2.0]), jnp.array([3.0, 0.5])
    for b1 in (0.9, 0.5):
        c.optimizer.b1 = b1
        tx, sched = build_optimizer(c)
        state = tx.init(params)
        _, state = tx.update({"w": g1}, state, params)
        updates, _ = tx.update({"w": g2}, state, params)
        m = (b1 * (1 - b1) * g1 + (1 - b1) * g2) / (1 - b1**2)
        v = (0.999 * 0.001 * g1**2 + 0.001 * g2**2) / (1 - 0.999**2)
        expected = -float(sched(1)) * m / (jnp.sqrt(v) + 1e-8)
        # optax's bias correction 1 - b2^t cancels in float32: relative error about
        # eps / (1 - b2^2), doubled for the square root's inputs and the division.
        rtol = 4 * float(np.finfo(np.float32).eps) / (1 - 0.999**2)
        np.testing.assert_allclose(updates["w"], expected, rtol=rtol)
    c.optimizer.b1 = 1.0
    with pytest.raises(ValueError, match=r"optimizer.b1=1.0 is invalid; valid: 0 <= b1 < 1"):
        build_optimizer(c)
