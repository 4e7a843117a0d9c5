"""Reconstruction losses against numpy / hand values, views, configs, and the whole step.

The inpainting step with an adversarial term (discriminator trained in the same step, state in
``TrainState.extra``) gives the same loss, parameters and discriminator on 8 devices as on 1,
and the discriminator's update equals one Adam step on an independently computed gradient.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import methods as method_configs
from ssljax import objectives, parallel
from ssljax.data import corruptions
from ssljax.objectives import reconstruction as R
from ssljax.training.loop import build_setup, initial_state, validate_config
from ssljax.training.step import make_train_step, shard_map_driver
from tests.tolerances import assert_close, assert_updates_close, f32_steps_rtol

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------------------
# Pure losses
# ---------------------------------------------------------------------------


def test_masked_l2_equals_numpy_and_ignores_visible_pixels():
    x = RNG.uniform(size=(3, 5, 6, 2)).astype(np.float32)
    f = RNG.uniform(size=(3, 5, 6, 2)).astype(np.float32)
    m = (RNG.uniform(size=(3, 5, 6, 1)) < 0.4).astype(np.float32)
    m[2] = 0.0  # an empty mask contributes 0
    per_image = []
    for b in range(3):
        hidden = m[b, ..., 0].astype(bool)
        sq = (x[b][hidden] - f[b][hidden]) ** 2
        per_image.append(sq.sum() / max(sq.size, 1))
    got = R.masked_l2_loss(jnp.asarray(x), jnp.asarray(f), jnp.asarray(m))
    np.testing.assert_allclose(got, np.mean(per_image), rtol=1e-5)
    # Whatever the network outputs on visible pixels does not matter.
    f2 = np.where(m > 0, f, RNG.uniform(size=f.shape)).astype(np.float32)
    np.testing.assert_allclose(R.masked_l2_loss(x, f2, m), got, rtol=1e-6)
    # Hand value: one hidden pixel of 2 channels, errors 0.5 and 0.1 -> (0.25 + 0.01) / 2.
    xs, fs, ms = np.zeros((1, 2, 2, 2)), np.zeros((1, 2, 2, 2)), np.zeros((1, 2, 2, 1))
    fs[0, 1, 0] = (0.5, 0.1)
    fs[0, 0, 0] = (9.0, 9.0)  # visible
    ms[0, 1, 0] = 1
    np.testing.assert_allclose(R.masked_l2_loss(xs, fs, ms), 0.13, rtol=1e-6)


def test_denoising_loss_weights_corrupted_values():
    x = RNG.uniform(size=(2, 4, 4, 3)).astype(np.float32)
    r = RNG.uniform(size=(2, 4, 4, 3)).astype(np.float32)
    c = (RNG.uniform(size=(2, 4, 4, 1)) < 0.5).astype(np.float32)
    w = np.where(c > 0, 2.0, 0.5)
    np.testing.assert_allclose(
        R.denoising_loss(x, r, c, corrupted_weight=2.0, clean_weight=0.5),
        np.mean(w * (x - r) ** 2), rtol=1e-5)
    np.testing.assert_allclose(R.denoising_loss(x, r), np.mean((x - r) ** 2), rtol=1e-5)


def test_adversarial_losses_by_hand():
    real, fake = jnp.array([0.0, 2.0]), jnp.array([-1.0, 1.0])
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    want_d = (-(math.log(sig(0)) + math.log(sig(2))) / 2
              - (math.log(1 - sig(-1)) + math.log(1 - sig(1))) / 2)
    np.testing.assert_allclose(R.discriminator_loss(real, fake), want_d, rtol=1e-6)
    want_g = -(math.log(sig(-1)) + math.log(sig(1))) / 2
    np.testing.assert_allclose(R.generator_adversarial_loss(fake), want_g, rtol=1e-6)
    want_sat = (math.log(1 - sig(-1)) + math.log(1 - sig(1))) / 2
    np.testing.assert_allclose(R.generator_adversarial_loss(fake, saturating=True), want_sat,
                               rtol=1e-6)


def test_colorization_losses_equal_numpy():
    logits = RNG.normal(size=(2, 3, 3, 7)).astype(np.float32)
    z = RNG.uniform(size=(2, 3, 3, 7)).astype(np.float32)
    z /= z.sum(-1, keepdims=True)
    v = RNG.uniform(0.5, 2.0, size=(2, 3, 3)).astype(np.float32)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    want = np.mean(v * -(z * logp).sum(-1))
    np.testing.assert_allclose(R.colorization_classification_loss(logits, z, v), want, rtol=1e-5)
    ab = RNG.normal(0, 30, size=(2, 3, 3, 2)).astype(np.float32)
    pred = RNG.normal(size=(2, 3, 3, 2)).astype(np.float32)
    np.testing.assert_allclose(R.colorization_regression_loss(pred, ab),
                               np.mean((pred - ab / 100) ** 2), rtol=1e-5)


def test_rebalance_weights():
    centers = corruptions.ab_bin_centers()
    q = len(centers)
    prior = RNG.dirichlet(np.ones(q)).astype(np.float32)
    # Numpy: Gaussian smoothing (each bin's mass spread over bins), then the mixture inverse.
    d2 = ((centers[:, None] - centers[None]) ** 2).sum(-1).astype(np.float64)
    k = np.exp(-d2 / 50)
    p = prior @ (k / k.sum(1, keepdims=True))
    w = 1 / (0.5 * p + 0.5 / q)
    w /= (p * w).sum()
    got = np.asarray(R.rebalance_weights(jnp.asarray(prior), centers, lam=0.5, sigma=5.0))
    np.testing.assert_allclose(got, w, rtol=1e-4)
    np.testing.assert_allclose((p * got).sum(), 1.0, rtol=1e-5)  # E_p~[w] = 1
    np.testing.assert_allclose(R.rebalance_weights(jnp.asarray(prior), centers, lam=1.0), 1.0,
                               rtol=1e-5)
    # Without smoothing and mixing the weights are 1 / (Q p).
    np.testing.assert_allclose(R.rebalance_weights(jnp.asarray(prior), centers, lam=0.0,
                                                   sigma=0.0), 1 / (q * prior), rtol=1e-4)


# ---------------------------------------------------------------------------
# Configs and views
# ---------------------------------------------------------------------------


def inpainting_config(make_identity_config, **overrides):
    c = make_identity_config()
    c.optimizer.warmup_steps = 0
    settings = dict(mask="central", fill_value=0.25, lambda_rec=0.9, lambda_adv=0.1,
                    disc_widths=(4,), disc_learning_rate=1e-2, learning_rate=1e-2)
    settings.update(overrides)
    return method_configs.inpainting(c, method_configs.decoder((4,), feature_layer="block2"),
                                     **settings)


def colorization_config(make_identity_config):
    c = make_identity_config()
    c.dataset.name = "cifar10"
    c.optimizer.warmup_steps = 0
    return method_configs.colorization(c, method_configs.decoder((4,), feature_layer="block2"),
                                       learning_rate=1e-2, prior_momentum=0.5)


def denoising_config(make_identity_config, **overrides):
    c = make_identity_config()
    settings = dict(noise="masking", drop_prob=0.5, corrupted_weight=2.0)
    settings.update(overrides)
    return method_configs.denoising_autoencoder(
        c, method_configs.decoder((4,), feature_layer="block2"), **settings)


def test_views(make_identity_config):
    images = jnp.asarray(RNG.integers(0, 256, (2, 28, 28, 1)), jnp.uint8)
    config = inpainting_config(make_identity_config, hole_size=10)
    inputs, x, masks = R.inpainting_views(jax.random.PRNGKey(0), images, config)
    hidden = np.asarray(masks[..., 0]).astype(bool)
    assert hidden.sum() == 2 * 100 and hidden[:, 9:19, 9:19].all()
    np.testing.assert_allclose(np.asarray(x), np.asarray(images) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(inputs)[~hidden], np.asarray(x)[~hidden])
    np.testing.assert_allclose(np.asarray(inputs)[hidden], 0.25)

    rgb = jnp.asarray(RNG.integers(0, 256, (2, 32, 32, 3)), jnp.uint8)
    config = colorization_config(make_identity_config)
    config.objective.target_stride = 2
    grey, ab = R.colorization_views(jax.random.PRNGKey(0), rgb, config)
    lab = corruptions.rgb_to_lab(rgb / 255.0)
    grey_lab = corruptions.rgb_to_lab(grey)
    np.testing.assert_allclose(grey[..., 0], grey[..., 2], atol=1e-6)  # R = G = B
    np.testing.assert_allclose(grey_lab[..., 0], lab[..., 0], atol=0.02)  # same lightness
    np.testing.assert_allclose(grey_lab[..., 1:], 0.0, atol=0.02)
    np.testing.assert_allclose(ab, corruptions.downsample_mean(lab[..., 1:], 2), atol=1e-4)

    config = denoising_config(make_identity_config)
    noisy, clean, dropped = R.denoising_views(jax.random.PRNGKey(0), images, config)
    dropped = np.asarray(dropped[..., 0]).astype(bool)
    np.testing.assert_array_equal(np.asarray(noisy)[dropped], 0.0)
    np.testing.assert_array_equal(np.asarray(noisy)[~dropped], np.asarray(clean)[~dropped])
    assert 0.4 < dropped.mean() < 0.6


@pytest.mark.parametrize("key, value, message", [
    ("mask", "square", r"objective.mask='square' is invalid; choose one of \('central', "
                       r"'random_block', 'random_region'\)"),
    ("hole_size", 28, r"objective.hole_size=28 is invalid for 28x28 images; valid: 1..27"),
    ("lambda_adv", -1.0, r"objective.lambda_rec=0.9 and objective.lambda_adv=-1.0 are invalid"),
])
def test_bad_inpainting_settings_fail_with_one_line(make_identity_config, key, value, message):
    config = inpainting_config(make_identity_config)
    config.objective[key] = value
    with pytest.raises(ValueError, match=message):
        validate_config(config)


def test_bad_decoder_layer_and_grayscale_colorization_fail_with_one_line(make_identity_config):
    config = inpainting_config(make_identity_config)
    config.model.decoder.feature_layer = "block4"
    with pytest.raises(ValueError, match=r"model.decoder.feature_layer='block4' is invalid; "
                                         r"choose one of the encoder's feature maps "
                                         r"\['block1', 'block2'\]"):
        validate_config(config)
    config = colorization_config(make_identity_config)
    config.dataset.name = "fashion_mnist"
    with pytest.raises(ValueError, match=r"^objective 'colorization' needs RGB images, but "
                                         r"dataset 'fashion_mnist' is grayscale"):
        validate_config(config)


def test_records_are_registered():
    for name in ("inpainting", "colorization", "denoising_autoencoder"):
        assert objectives.get(name).name == name


# ---------------------------------------------------------------------------
# The whole step: 8 devices == 1 device
# ---------------------------------------------------------------------------


def run(config, devices, batch):
    setup = build_setup(config)
    mesh = parallel.make_mesh(devices)
    state = parallel.replicate_on_mesh(initial_state(config, setup), mesh)
    step = shard_map_driver(
        make_train_step(objective=setup.objective, model=setup.train_model, tx=setup.tx,
                        config=config),
        mesh,
    )
    local = {k: v.reshape((len(devices), -1) + v.shape[1:]) for k, v in batch.items()}
    state, metrics = step(state, parallel.batch_to_global(local, mesh))
    return jax.device_get(state), jax.device_get(metrics)


def test_inpainting_step_with_discriminator_is_the_same_on_8_devices_as_on_1(
        make_identity_config):
    config = inpainting_config(make_identity_config)
    validate_config(config)
    images = RNG.integers(0, 256, (16, 28, 28, 1), dtype=np.uint8)
    batch = {"image": images, "label": np.zeros(16, np.int32), "index": np.arange(16)}
    s8, m8 = run(config, jax.devices(), batch)
    s1, m1 = run(config, jax.devices()[:1], batch)
    setup = build_setup(config)
    init = jax.device_get(initial_state(config, setup))
    # Longest reduction: BatchNorm statistics over the 16 images' 28 x 28 positions.
    first_pass, one_step = f32_steps_rtol(16 * 28 * 28, 0), f32_steps_rtol(16 * 28 * 28, 1)
    assert bool(m8["finite"]) and bool(m1["finite"])
    for key in ("loss", "rec_loss", "adv_loss", "disc_loss"):
        assert_close(m8[key], m1[key], rtol=first_pass)
    np.testing.assert_allclose(m1["loss"], 0.9 * m1["rec_loss"] + 0.1 * m1["adv_loss"],
                               rtol=1e-5)
    assert_updates_close(s8.params, s1.params, init.params, rtol=one_step)
    assert_updates_close(s8.extra, s1.extra, init.extra, rtol=one_step)

    # The discriminator took one Adam step on the gradient of its loss on the real images
    # and the initial network's inpainted images.
    inputs, x, masks = R.inpainting_views(jax.random.PRNGKey(0), jnp.asarray(images), config)
    out, _ = setup.eval_model.apply({"params": init.params, **init.model_state}, inputs,
                                    train=True, mutable=["batch_stats"])
    fake = masks * out["reconstruction"] + (1 - masks) * x
    disc = R.build_discriminator(config)

    def disc_loss(p):
        return R.discriminator_loss(disc.apply({"params": p}, x), disc.apply({"params": p}, fake))

    value, grads = jax.value_and_grad(disc_loss)(init.extra["disc_params"])
    assert_close(m1["disc_loss"], value, rtol=first_pass)  # jitted step vs eager ops
    tx = optax.adam(1e-2, b1=0.5)
    updates, _ = tx.update(grads, tx.init(init.extra["disc_params"]))
    want = optax.apply_updates(init.extra["disc_params"], updates)
    assert_updates_close(s1.extra["disc_params"], want, init.extra["disc_params"], rtol=one_step)
    changed = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), s1.extra["disc_params"],
                           init.extra["disc_params"])
    assert min(jax.tree.leaves(changed)) > 1e-3


def test_colorization_and_denoising_records_trace_and_update_their_state(make_identity_config):
    """Shapes through each record's views -> loss -> update_extra; the bin-prior update value."""
    for config, shape, metric in (
            (colorization_config(make_identity_config), (4, 32, 32, 3), "bin_accuracy"),
            (denoising_config(make_identity_config), (4, 28, 28, 1), "mse")):
        validate_config(config)
        setup = build_setup(config)
        state = jax.eval_shape(lambda: initial_state(config, setup))  # noqa: B023
        obj = setup.objective

        def step(state, images, obj=obj, setup=setup, config=config):
            views = obj.make_views(jax.random.PRNGKey(0), images, config)
            loss, (metrics, _, outputs) = obj.loss(
                state.params, state.model_state, views, jax.random.PRNGKey(1),
                model=setup.eval_model, config=config, axis_name=None, extra=state.extra,
                batch={})
            extra = state.extra
            if obj.update_extra is not None:
                extra = obj.update_extra(extra, outputs, params=state.params,
                                         model_state=state.model_state, step=0, config=config,
                                         axis_name=None)
            return loss, metrics, outputs, extra

        loss, metrics, outputs, extra = jax.eval_shape(
            step, state, jax.ShapeDtypeStruct(shape, jnp.uint8))
        assert loss.shape == () and outputs["embedding"].shape == (4, 16)
        assert jax.tree.map(jnp.shape, extra) == jax.tree.map(jnp.shape, state.extra)
        assert metric in metrics

    # update_extra: the running bin distribution moves to the batch histogram by 1 - momentum.
    config = colorization_config(make_identity_config)
    ab = corruptions.rgb_to_lab(jnp.asarray(RNG.uniform(size=(2, 8, 8, 3)), jnp.float32))[..., 1:]
    centers = corruptions.ab_bin_centers()
    q = len(centers)
    bins = corruptions.encode_ab_hard(ab, centers)
    hist = R.ab_histogram(bins, q)
    np.testing.assert_allclose(hist, np.bincount(np.asarray(bins).ravel(), minlength=q) / 128)
    prior = R.init_colorization_extra(None, None, config)["ab_prior"]
    new = R.update_colorization_extra({"ab_prior": prior}, {"ab_histogram": hist}, params=None,
                                      model_state=None, step=0, config=config, axis_name=None)
    np.testing.assert_allclose(new["ab_prior"], 0.5 / q + 0.5 * np.asarray(hist), rtol=1e-6)
