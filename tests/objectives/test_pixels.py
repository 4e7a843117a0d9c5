"""Tests for ``ssljax.objectives.pixels``: iGPT's autoregressive and masked pixel losses."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from ssljax import objectives
from ssljax.objectives import pixels
from ssljax.objectives.base import DatasetFacts, Run
from ssljax.objectives.pixels import (
    PixelAutoregressive,
    PixelMasked,
    apply_mask,
    bert_mask,
    masked_pixel_loss,
    next_pixel_loss,
    pixel_accuracy,
    shift_right,
)
from tests.tolerances import f32_sum_tol

TINY = dict(width=16, depth=2, num_heads=2, mlp_ratio=2)


def numpy_cross_entropy(logits: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """``[B, T]`` float64 ``logsumexp(logits) - logits[token]``."""
    x = logits.astype(np.float64)
    top = x.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(x - top).sum(axis=-1)) + top[..., 0]
    return lse - np.take_along_axis(x, tokens[..., None], axis=-1)[..., 0]


def random_logits(seed: int, shape=(3, 7, 5)):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=shape).astype(np.float32)
    tokens = rng.integers(0, shape[-1], shape[:-1])
    return logits, tokens


def loss_tol(logits: np.ndarray, terms: int) -> float:
    """A log-sum-exp over K logits, then a mean of ``terms`` cross entropies (a few ulps
    for exp/log), at the magnitude of the logits."""
    return f32_sum_tol(logits.shape[-1] + terms, float(np.abs(logits).max()) + 1.0, ulps=4)


# ---------------------------------------------------------------------------------------------
# Pure functions.


def test_next_pixel_loss_matches_numpy():
    logits, tokens = random_logits(0)
    expected = numpy_cross_entropy(logits, tokens).mean()
    got = float(next_pixel_loss(jnp.asarray(logits), jnp.asarray(tokens)))
    assert abs(got - expected) <= loss_tol(logits, tokens.size)


def test_next_pixel_loss_hand_value_and_uniform_bound():
    # Uniform logits: log K nats = log2 K bits per token, whatever the tokens.
    tokens = jnp.array([[0, 3, 1]])
    assert float(next_pixel_loss(jnp.zeros((1, 3, 8)), tokens)) == pytest.approx(math.log(8))
    # One token, logits (0, log 3): p(token 1) = 3/4.
    logits = jnp.array([[[0.0, math.log(3.0)]]])
    assert float(next_pixel_loss(logits, jnp.array([[1]]))) == pytest.approx(-math.log(0.75))


def test_masked_pixel_loss_matches_numpy():
    logits, tokens = random_logits(1, (4, 9, 6))
    mask = np.random.default_rng(2).random(tokens.shape) < 0.3
    ce = numpy_cross_entropy(logits, tokens)
    expected = (ce * mask).sum() / mask.sum()
    got = float(masked_pixel_loss(jnp.asarray(logits), jnp.asarray(tokens), jnp.asarray(mask)))
    assert abs(got - expected) <= loss_tol(logits, int(mask.sum()))


def test_masked_loss_ignores_unmasked_positions():
    logits, tokens = random_logits(3, (2, 8, 4))
    mask = np.zeros(tokens.shape, bool)
    mask[0, [1, 5]] = mask[1, 2] = True
    other = np.where(mask[..., None], logits, np.float32(1e3) * logits)  # only unmasked change
    a = masked_pixel_loss(jnp.asarray(logits), jnp.asarray(tokens), jnp.asarray(mask))
    b = masked_pixel_loss(jnp.asarray(other), jnp.asarray(tokens), jnp.asarray(mask))
    assert float(a) == float(b)
    grad = jax.grad(masked_pixel_loss)(jnp.asarray(logits), jnp.asarray(tokens), jnp.asarray(mask))
    assert np.all(np.asarray(grad)[~mask] == 0.0) and np.all(np.asarray(grad)[mask] != 0.0)


def test_masked_loss_without_masked_positions_is_zero_with_finite_gradient():
    logits, tokens = random_logits(4)
    mask = jnp.zeros(tokens.shape, bool)
    loss, grad = jax.value_and_grad(masked_pixel_loss)(jnp.asarray(logits), tokens, mask)
    assert float(loss) == 0.0 and np.all(np.asarray(grad) == 0.0)


def test_masked_loss_over_devices_is_the_global_mean():
    """Devices with different masked counts: the mean over devices of the per-device loss
    (what the train step's pmean computes) is sum(masked CE) / (number masked) globally."""
    logits, tokens = random_logits(5, (2, 3, 10, 4))  # [devices, B, T, K]
    mask = np.zeros(tokens.shape, bool)
    mask[0, 0, :2] = True  # 2 masked on device 0
    mask[1, :, 3:9] = True  # 18 masked on device 1
    expected = (numpy_cross_entropy(logits, tokens) * mask).sum() / mask.sum()

    def per_device(lg, tk, mk):
        return jax.lax.pmean(masked_pixel_loss(lg, tk, mk, axis_name="i"), "i")

    got = jax.pmap(per_device, axis_name="i", devices=jax.local_devices()[:2])(logits, tokens, mask)
    assert abs(float(got[0]) - expected) <= loss_tol(logits, int(mask.sum()))
    # Averaging per-device ratios instead would be wrong by far more.
    naive = np.mean([(numpy_cross_entropy(logits, tokens)[d] * mask[d]).sum() / mask[d].sum()
                     for d in range(2)])  # fmt: skip
    assert abs(naive - expected) > 100 * loss_tol(logits, int(mask.sum()))


def test_pixel_accuracy_hand_checked():
    logits = jnp.array([[[2.0, 1.0], [0.0, 3.0], [5.0, 0.0], [0.0, 1.0]]])
    tokens = jnp.array([[0, 1, 1, 0]])  # right, right, wrong, wrong
    assert float(pixel_accuracy(logits, tokens)) == 0.5
    mask = jnp.array([[True, False, True, False]])  # right, wrong
    assert float(pixel_accuracy(logits, tokens, mask)) == 0.5
    assert float(pixel_accuracy(logits, tokens, jnp.array([[True, True, False, False]]))) == 1.0


def test_shift_right_puts_the_start_token_first():
    tokens = jnp.array([[4, 5, 6], [1, 2, 3]])
    np.testing.assert_array_equal(shift_right(tokens, 9), [[9, 4, 5], [9, 1, 2]])


def test_bert_mask_rate_within_a_binomial_bound():
    """The masked share of n positions has standard deviation sqrt(p (1 - p) / n); five of
    them bound it (a correct sampler fails with probability below 1e-6)."""
    rate, shape = 0.15, (512, 196)
    n = shape[0] * shape[1]
    for seed in range(3):
        mask = np.asarray(bert_mask(jax.random.PRNGKey(seed), shape, rate))
        assert mask.dtype == bool and mask.shape == shape
        assert abs(mask.mean() - rate) <= 5 * math.sqrt(rate * (1 - rate) / n)
    # Positions are masked independently: each position's rate over the batch is the same
    # (196 positions of 512 draws each; the extreme ones within 5 standard deviations).
    per_position = mask.mean(axis=0)
    assert np.abs(per_position - rate).max() <= 5 * math.sqrt(rate * (1 - rate) / shape[0])


def test_apply_mask_replaces_masked_tokens_with_the_mask_token_only():
    tokens = jnp.array([[0, 1, 2, 3, 4]])
    mask = jnp.array([[False, True, False, True, True]])
    np.testing.assert_array_equal(apply_mask(tokens, mask, 8), [[0, 8, 2, 8, 8]])


# ---------------------------------------------------------------------------------------------
# Objectives.


def make_run(image_shape=(8, 8, 1), *, encoder="pixel_transformer", **encoder_kwargs):
    model = ml_collections.ConfigDict(
        dict(encoder=encoder, encoder_kwargs=dict(TINY, **encoder_kwargs))
    )
    facts = DatasetFacts("synthetic", tuple(image_shape), 64, 10)
    return Run(facts=facts, batch_size=16, total_steps=20, model=model)


def test_registered_with_their_hyperparameters():
    assert {"pixel_autoregressive", "pixel_masked"} <= set(objectives.names())
    assert objectives.get("pixel_autoregressive") is PixelAutoregressive
    assert objectives.resolved({"name": "pixel_autoregressive"}) == dict(
        name="pixel_autoregressive", num_levels=8, downsample=2
    )
    assert objectives.resolved({"name": "pixel_masked"}) == dict(
        name="pixel_masked", num_levels=8, downsample=2, mask_rate=0.15
    )


def test_models_are_causal_and_bidirectional_and_views_are_tokens():
    run = make_run()
    ar, bert = PixelAutoregressive(), PixelMasked(mask_rate=0.5)
    assert ar.build_model(run, None).encoder.causal is True
    assert bert.build_model(run, None).encoder.causal is False
    assert bert.build_model(run, "batch").encoder.width == TINY["width"]
    images = jax.random.randint(jax.random.PRNGKey(0), (2, 8, 8, 1), 0, 256).astype(jnp.uint8)
    tokens = pixels.image_tokens(images, num_levels=8, downsample=2)
    (ar_tokens,) = ar.make_views(jax.random.PRNGKey(1), images, run)
    np.testing.assert_array_equal(ar_tokens, tokens)
    (targets,) = bert.make_views(jax.random.PRNGKey(1), images, run)
    np.testing.assert_array_equal(targets, tokens)
    inputs, mask = bert.masked_inputs(jax.random.PRNGKey(1), targets)
    np.testing.assert_array_equal(inputs, np.where(mask, 8, tokens))
    assert mask.shape == (2, 16) and 0 < int(mask.sum()) < 32


@pytest.mark.parametrize(
    "cls,kwargs,match",
    [
        (PixelAutoregressive, dict(num_levels=1), r"objective.num_levels=1 is invalid; valid"),
        (PixelAutoregressive, dict(num_levels=300), r"num_levels=300 .*valid: an integer in"),
        (PixelMasked, dict(downsample=0), r"objective.downsample=0 is invalid; valid"),
        (PixelMasked, dict(mask_rate=0.0), r"objective.mask_rate=0 is invalid; valid: 0.0 <"),
        (PixelMasked, dict(mask_rate=1.5), r"objective.mask_rate=1.5 is invalid; valid"),
        (PixelAutoregressive, dict(mask_rate=0.1), r"unknown key objective.mask_rate .*valid"),
    ],
)
def test_bad_hyperparameters_are_one_line_errors(cls, kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        cls.from_config(kwargs)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "objective,run,match",
    [
        (PixelMasked(), make_run((8, 8, 3)), r"has 3 channels; valid: 1-channel"),
        (PixelMasked(downsample=3), make_run(), r"downsample=3 does not divide .* 8x8 .*\[1, 2"),
        (PixelAutoregressive(), make_run(encoder="convnet"), r"got 'convnet'; valid"),
        (PixelAutoregressive(), make_run(num_levels=4), r"num_levels is set by objective"),
        (PixelAutoregressive(), make_run(heads=2), r"encoder_kwargs.heads .*valid keys: width"),
    ],
)
def test_settings_the_objective_cannot_run_are_one_line_errors(objective, run, match):
    with pytest.raises(ValueError, match=match) as err:
        objective.check(run)
    assert "\n" not in str(err.value)


def structured_images(n: int, seed: int) -> np.ndarray:
    """8x8 images whose 8 grey levels are each used equally often (so a predictor without
    context cannot beat log 8 nats), but are predictable from context: one random level pair
    per image, and one random bit per column shared by all rows."""
    rng = np.random.default_rng(seed)
    pair = rng.integers(0, 4, (n, 1, 1, 1))
    column = rng.integers(0, 2, (n, 1, 8, 1))
    return ((2 * pair + column + 0.5) / 8 * np.ones((n, 8, 8, 1))).astype(np.float32)


@pytest.mark.parametrize(
    "objective", [PixelAutoregressive(downsample=1), PixelMasked(downsample=1, mask_rate=0.25)]
)
def test_objectives_learn_pixels_from_context_in_the_train_step(objective):
    """A few steps of the library's per-device train step (``make_train_step``, the function
    both ``fit`` and the training loop map over devices), jitted on one device: cheaper than
    ``fit`` (no pmap replication; and ``fit``'s run has no model config, so it would train
    the default-size encoder) or the loop (no TFDS, checkpoints or evaluation). The loss
    starts at log 8 (uniform logits) and must fall well below log 8, which no predictor
    ignoring the context reaches on these images."""
    from ssljax.training.state import create_train_state
    from ssljax.training.step import make_train_step

    run = make_run()
    objective.check(run)
    tx = optax.adam(1e-2)
    model = objective.build_model(run, None)
    state = jax.jit(lambda key: create_train_state(model, tx, key, (1, 8, 8, 1)))(
        jax.random.PRNGKey(0)
    )
    config = ml_collections.ConfigDict(dict(dtype="float32", accumulate_steps=1))
    step = jax.jit(
        make_train_step(
            objective=objective,
            model=model,
            tx=tx,
            config=config,
            run=run,
            axis_name=None,
        )
    )
    losses = []
    for i in range(25):
        state, metrics = step(state, {"image": jnp.asarray(structured_images(16, i))})
        assert bool(metrics["finite"])
        losses.append(float(metrics["loss"]))
    assert abs(losses[0] - math.log(8)) < 0.1
    assert np.mean(losses[-5:]) < 0.8 * math.log(8), losses
    assert float(metrics["bits_per_dim"]) == pytest.approx(losses[-1] / math.log(2), rel=1e-6)
    assert 0.0 <= float(metrics["pixel_accuracy"]) <= 1.0
    # The encoder is cut out under 'encoder' and probed at a middle layer, as linear_eval does.
    from ssljax.models import extract_features
    from ssljax.models.network import encoder_variables

    encoder = model.encoder
    variables = encoder_variables({"params": state.params})
    features = jax.jit(lambda v, x: extract_features(encoder, v, x, layer="layer1"))(
        variables, jnp.asarray(structured_images(4, 99))
    )
    assert features.shape == (4, TINY["width"]) and np.all(np.isfinite(features))


@pytest.mark.parametrize("name", ["pixel_autoregressive", "pixel_masked"])
def test_eight_devices_equal_one_device(name):
    """Two steps of the real step (shard_map driver) on 8 devices and on 1, same global
    batch: the loss and the parameter updates agree to float32 rounding. The masked
    objective draws its mask for the global batch from the shared key, so each image gets
    the same mask on any number of devices."""
    from ssljax import parallel
    from ssljax.training.state import create_train_state
    from tests.multidevice import steps_on_devices
    from tests.tolerances import assert_close, assert_updates_close, f32_steps_rtol

    objective = objectives.build({"name": name, "downsample": 1})
    run = make_run()
    tx = optax.adam(1e-2)
    init = jax.device_get(
        create_train_state(
            objective.build_model(run, None), tx, jax.random.PRNGKey(0), (1, 8, 8, 1)
        )
    )
    config = ml_collections.ConfigDict(dict(dtype="float32", accumulate_steps=1))
    batches = [structured_images(16, i) for i in range(2)]

    def train(devices):
        state, history = steps_on_devices(
            objective=objective,
            model=objective.build_model(run, parallel.AXIS),
            tx=tx,
            config=config,
            run=run,
            init=init,
            devices=devices,
            batches=[{"image": images} for images in batches],
        )
        return state, [float(m["loss"]) for m in history]

    s8, l8 = train(jax.devices()[:8])
    s1, l1 = train(jax.devices()[:1])
    n_terms = 16 * 64 * TINY["width"]  # longest reduction: a kernel's gradient over tokens
    for a, b in zip(l8, l1):
        assert_close(a, b, rtol=f32_steps_rtol(n_terms, 0))
    assert_updates_close(s8.params, s1.params, init.params, rtol=f32_steps_rtol(n_terms, 2))
