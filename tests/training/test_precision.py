"""Compute precision: bfloat16 against float32 on one step, and the dtypes the step accepts.

Tolerances follow from bfloat16's unit roundoff 2**-8 (8 significant bits): every layer rounds
its output to bfloat16 (products are accumulated in float32), and to first order the relative
errors of a chain of roundings add (``tests.tolerances.bf16_rtol``). Parameters, gradients and
optimizer state stay float32 in both runs.
"""

import jax
import numpy as np
import pytest

from ssljax import parallel
from ssljax.training.loop import build_setup, initial_state
from ssljax.training.step import COMPUTE_DTYPES, check_dtype, make_train_step, shard_map_driver
from tests.tolerances import assert_close, assert_trees_close, bf16_rtol, update_difference

TEMPERATURE = 0.5
# bfloat16 roundings on the path from the input to the projection of the tiny network: the
# input cast, each convolution's output, each normalisation's three (subtract the mean, scale,
# add the offset), the pool, each dense layer's two (product, bias).
CAST, CONV, NORM, POOL, DENSE = 1, 1, 3, 1, 2
DEPTH_BATCH_NORM = CAST + 2 * (CONV + NORM) + POOL + DENSE + NORM + DENSE  # 17
DEPTH_LAYER_NORM = CAST + 2 * (CONV + NORM) + POOL + 2 * DENSE  # 14: no BatchNorm in the head


def sgd_config(make_tiny_config, dtype, *, layer_norm=False):
    """Plain SGD without momentum: the update is -lr times the gradient."""
    c = make_tiny_config()
    c.dtype = dtype
    c.objective.temperature = TEMPERATURE
    c.optimizer.name, c.optimizer.lr_scaling = "sgd", "none"
    c.optimizer.base_learning_rate, c.optimizer.warmup_steps = 0.1, 0
    c.optimizer.weight_decay, c.optimizer.momentum = 0.0, 0.0
    if layer_norm:
        c.model.encoder_kwargs.norm = "layer"
        c.model.projector.use_bn = False
    return c


def one_step(config, params_from, batch):
    """``(start state, state after one step, metrics)`` on 8 devices, from the float32
    config's initial state (parameters are float32 whatever the compute dtype)."""
    setup = build_setup(config)
    mesh = parallel.make_mesh()
    init = initial_state(params_from, build_setup(params_from))
    start = jax.device_get(init)
    step = shard_map_driver(
        make_train_step(
            objective=setup.objective,
            run=setup.run,
            model=setup.train_model,
            tx=setup.tx,
            config=config,
        ),
        mesh,
    )
    local = {k: v.reshape((8, -1) + v.shape[1:]) for k, v in batch.items()}
    state, metrics = step(
        parallel.replicate_on_mesh(init, mesh), parallel.batch_to_global(local, mesh)
    )
    return start, jax.device_get(state), jax.device_get(metrics)


def batch_of(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
        "label": rng.integers(0, 10, (n,)).astype(np.int32),
    }


def test_bfloat16_forward_and_step_match_float32(make_tiny_config):
    """The tiny SimCLR network (BatchNorm) in bfloat16 against float32, same batch and keys.

    Stated tolerances, with rho = DEPTH * 2**-8 = 17 * 2**-8 = 6.6% (``bf16_rtol(17)``):
    * projections (the forward pass) within rho of float32, relative to their size;
    * BatchNorm running statistics after the step (means of rounded layer outputs) within rho;
    * the loss within 4 rho / tau = 0.53 (tau = 0.5) absolute: a relative error rho of the
      projections moves each cosine by at most 2 rho, each logit by 2 rho / tau, and the
      log-sum-exp minus the positive logit by at most twice that.
    The update is not compared here: BatchNorm's backward pass subtracts the mean and the
    normalised-activation part of the incoming gradient, and at initialisation the small
    residual carries 10-40% bfloat16 error (measured); see the LayerNorm test below.
    """
    f32 = sgd_config(make_tiny_config, "float32")
    bf16 = sgd_config(make_tiny_config, "bfloat16")
    batch = batch_of()
    start, s32, m32 = one_step(f32, f32, batch)
    _, s16, m16 = one_step(bf16, f32, batch)
    rho = bf16_rtol(DEPTH_BATCH_NORM)

    x = np.asarray(batch["image"], np.float32) / 255.0
    variables = {"params": start.params, **start.model_state}
    projection = {}
    for name, config in (("float32", f32), ("bfloat16", bf16)):
        out, _ = build_setup(config).eval_model.apply(
            variables, x, train=True, mutable=["batch_stats"]
        )
        projection[name] = np.asarray(out["projection"], np.float32)
    assert_close(projection["bfloat16"], projection["float32"], rtol=rho)
    assert not np.array_equal(projection["bfloat16"], projection["float32"])  # really bf16

    assert bool(m16["finite"])
    assert_close(m16["loss"], m32["loss"], rtol=0, atol=4 * rho / TEMPERATURE)
    assert_trees_close(s16.model_state, s32.model_state, rtol=rho)
    assert jax.tree.map(lambda p: p.dtype, s16.params) == jax.tree.map(
        lambda p: p.dtype, s32.params
    )


def test_bfloat16_update_without_batch_norm_matches_float32(make_tiny_config):
    """LayerNorm encoder and projector without BatchNorm: the gradient's backward pass rounds
    the same DEPTH = 14 times once more, so the update (SGD: -lr x gradient) is within
    ``bf16_rtol(14, amplification=2)`` = 2 * 14 * 2**-8 = 11% of float32's, relative L2 over
    all parameters (measured: 3%). A missing pmean or a lost sign differs by O(1)."""
    f32 = sgd_config(make_tiny_config, "float32", layer_norm=True)
    bf16 = sgd_config(make_tiny_config, "bfloat16", layer_norm=True)
    batch = batch_of(seed=1)
    start, s32, m32 = one_step(f32, f32, batch)
    _, s16, m16 = one_step(bf16, f32, batch)
    assert bool(m16["finite"])
    assert_close(
        m16["loss"], m32["loss"], rtol=0, atol=4 * bf16_rtol(DEPTH_LAYER_NORM) / TEMPERATURE
    )
    assert update_difference(s16.params, s32.params, start.params) <= bf16_rtol(
        DEPTH_LAYER_NORM, amplification=2
    )


@pytest.mark.parametrize("name", ["float16", "float64", "half"])
def test_other_dtypes_are_one_line_errors(make_tiny_config, name):
    """float16 is refused rather than trained without loss scaling (its 5 exponent bits
    underflow small gradients); unknown names fail the same way."""
    assert COMPUTE_DTYPES == ("bfloat16", "float32")
    config = make_tiny_config()
    assert check_dtype(config) == "float32"
    config.dtype = name
    message = rf"^dtype='{name}' is not supported; choose one of \('bfloat16', 'float32'\)$"
    with pytest.raises(ValueError, match=message):
        check_dtype(config)
    setup = build_setup(make_tiny_config())
    with pytest.raises(ValueError, match=message):
        make_train_step(
            objective=setup.objective,
            run=setup.run,
            model=setup.train_model,
            tx=setup.tx,
            config=config,
        )
