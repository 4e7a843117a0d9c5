"""Reconstruction losses against numpy / hand values, views, hyperparameters, and the whole step.

The inpainting step with an adversarial term (the discriminator a parameter group trained by
the run's one optimizer in the same step) gives the same loss and parameters on 8 devices as on
1; one gradient gives the generator the main loss's gradient and the discriminator its own
loss's, and the discriminator's update equals one Adam step on an independently computed
gradient.
"""

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from ssljax import config_base, objectives, parallel
from ssljax.data.datasets import facts_from_spec, get_dataset_spec
from ssljax.objectives import LossContext, UpdateContext
from ssljax.objectives import reconstruction as R
from ssljax.objectives.registry import STORED_NAMES
from ssljax.training.loop import build_setup, initial_state
from ssljax.training.step import make_train_step, shard_map_driver
from ssljax.views import corruptions
from tests.tolerances import (
    assert_close,
    assert_trees_close,
    assert_updates_close,
    f32_reorder_rtol,
    f32_steps_rtol,
)

RNG = np.random.default_rng(0)
FASHION = facts_from_spec(get_dataset_spec("fashion_mnist"))
CIFAR = facts_from_spec(get_dataset_spec("cifar10"))
RECONSTRUCTION = ("inpainting", "colorization", "denoising_autoencoder")


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
        np.mean(w * (x - r) ** 2),
        rtol=1e-5,
    )
    np.testing.assert_allclose(R.denoising_loss(x, r), np.mean((x - r) ** 2), rtol=1e-5)


def test_adversarial_losses_by_hand():
    real, fake = jnp.array([0.0, 2.0]), jnp.array([-1.0, 1.0])
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    want_d = (
        -(math.log(sig(0)) + math.log(sig(2))) / 2
        - (math.log(1 - sig(-1)) + math.log(1 - sig(1))) / 2
    )
    np.testing.assert_allclose(R.discriminator_loss(real, fake), want_d, rtol=1e-6)
    want_g = -(math.log(sig(-1)) + math.log(sig(1))) / 2
    np.testing.assert_allclose(R.generator_adversarial_loss(fake), want_g, rtol=1e-6)
    want_sat = (math.log(1 - sig(-1)) + math.log(1 - sig(1))) / 2
    np.testing.assert_allclose(
        R.generator_adversarial_loss(fake, saturating=True), want_sat, rtol=1e-6
    )


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
    np.testing.assert_allclose(
        R.colorization_regression_loss(pred, ab), np.mean((pred - ab / 100) ** 2), rtol=1e-5
    )


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
    np.testing.assert_allclose(
        R.rebalance_weights(jnp.asarray(prior), centers, lam=1.0), 1.0, rtol=1e-5
    )
    # Without smoothing and mixing the weights are 1 / (Q p).
    np.testing.assert_allclose(
        R.rebalance_weights(jnp.asarray(prior), centers, lam=0.0, sigma=0.0),
        1 / (q * prior),
        rtol=1e-4,
    )


def test_corruption_weights_are_the_denoising_loss_weights():
    c = (RNG.uniform(size=(2, 4, 4, 1)) < 0.5).astype(np.float32)
    x = RNG.uniform(size=(2, 4, 4, 3)).astype(np.float32)
    r = RNG.uniform(size=(2, 4, 4, 3)).astype(np.float32)
    w = R.corruption_weights(c, corrupted_weight=2.0, clean_weight=0.5)
    np.testing.assert_array_equal(w, np.where(c > 0, 2.0, 0.5))
    np.testing.assert_allclose(
        np.mean(w * (x - r) ** 2),
        R.denoising_loss(x, r, c, corrupted_weight=2.0, clean_weight=0.5),
        rtol=1e-6,
    )


# ---------------------------------------------------------------------------
# Configs and views
# ---------------------------------------------------------------------------


def reconstruction_config(make_identity_config, objective, *, dataset="fashion_mnist"):
    """The tiny identity-augmentation config with a one-stage decoder of block2 instead of the
    projector, and AdamW at 1e-2."""
    c = make_identity_config()
    c.dataset.name = dataset
    c.objective = ml_collections.ConfigDict(objective)
    c.model.decoder = ml_collections.ConfigDict(dict(widths=(4,), feature_layer="block2"))
    del c.model["projector"]
    return config_base.adamw(c, 1e-2, weight_decay=0.0, warmup_steps=0)


def inpainting_config(make_identity_config, **overrides):
    objective = dict(
        name="inpainting",
        mask="central",
        fill_value=0.25,
        lambda_rec=0.9,
        lambda_adv=0.1,
        disc_widths=(4,),
        disc_learning_rate=1e-2,
    )
    return reconstruction_config(make_identity_config, dict(objective, **overrides))


def colorization_config(make_identity_config, **overrides):
    objective = dict(name="colorization", prior_momentum=0.5)
    return reconstruction_config(
        make_identity_config, dict(objective, **overrides), dataset="cifar10"
    )


def denoising_config(make_identity_config, **overrides):
    objective = dict(
        name="denoising_autoencoder", noise="masking", drop_prob=0.5, corrupted_weight=2.0
    )
    return reconstruction_config(make_identity_config, dict(objective, **overrides))


def test_views(make_identity_config):
    images = jnp.asarray(RNG.integers(0, 256, (2, 28, 28, 1)), jnp.uint8)
    setup = build_setup(inpainting_config(make_identity_config, hole_size=10), FASHION)
    inputs, x, masks = setup.objective.make_views(jax.random.PRNGKey(0), images, setup.run)
    hidden = np.asarray(masks[..., 0]).astype(bool)
    assert hidden.sum() == 2 * 100 and hidden[:, 9:19, 9:19].all()
    np.testing.assert_allclose(np.asarray(x), np.asarray(images) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(inputs)[~hidden], np.asarray(x)[~hidden])
    np.testing.assert_allclose(np.asarray(inputs)[hidden], 0.25)

    rgb = jnp.asarray(RNG.integers(0, 256, (2, 32, 32, 3)), jnp.uint8)
    setup = build_setup(colorization_config(make_identity_config, target_stride=2), CIFAR)
    grey, ab = setup.objective.make_views(jax.random.PRNGKey(0), rgb, setup.run)
    lab = corruptions.rgb_to_lab(rgb / 255.0)
    grey_lab = corruptions.rgb_to_lab(grey)
    np.testing.assert_allclose(grey[..., 0], grey[..., 2], atol=1e-6)  # R = G = B
    np.testing.assert_allclose(grey_lab[..., 0], lab[..., 0], atol=0.02)  # same lightness
    np.testing.assert_allclose(grey_lab[..., 1:], 0.0, atol=0.02)
    np.testing.assert_allclose(ab, corruptions.downsample_mean(lab[..., 1:], 2), atol=1e-4)

    setup = build_setup(denoising_config(make_identity_config), FASHION)
    noisy, clean, dropped = setup.objective.make_views(jax.random.PRNGKey(0), images, setup.run)
    dropped = np.asarray(dropped[..., 0]).astype(bool)
    np.testing.assert_array_equal(np.asarray(noisy)[dropped], 0.0)
    np.testing.assert_array_equal(np.asarray(noisy)[~dropped], np.asarray(clean)[~dropped])
    assert 0.4 < dropped.mean() < 0.6


# ---------------------------------------------------------------------------
# Hyperparameters and checks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, key, value, message",
    [
        (
            inpainting_config,
            "mask",
            "square",
            r"unknown objective.mask 'square'; choose one of \['central', 'random_block', "
            r"'random_region'\]",
        ),
        (
            inpainting_config,
            "hole_size",
            28,
            r"objective.hole_size=28 is invalid for 28x28 images; valid: 1..27",
        ),
        (
            inpainting_config,
            "lambda_adv",
            -1.0,
            r"objective.lambda_rec=0.9 and objective.lambda_adv=-1.0 are invalid",
        ),
        (
            inpainting_config,
            "fill_value",
            (0.1, 0.2),
            r"objective.fill_value=\(0.1, 0.2\) is invalid for 1-channel images; valid: one number "
            r"or 1",
        ),
        (
            inpainting_config,
            "disc_learning_rate",
            0.0,
            r"objective.disc_learning_rate=0 is invalid; valid: 0.0 < disc_learning_rate",
        ),
        (
            denoising_config,
            "noise",
            "salt",
            r"unknown objective.noise 'salt'; choose one of \['gaussian', 'masking'\]",
        ),
        (
            denoising_config,
            "drop_prob",
            1.5,
            r"objective.drop_prob=1.5 is invalid; valid: 0.0 < drop_prob < 1.0",
        ),
        (
            denoising_config,
            "likelihood",
            "gaussian",
            r"objective.likelihood='gaussian' is invalid with model.encoder='convnet' \(a feature map "
            r"decoded by squared error\); valid: a Gaussian encoder \['vae_conv'\], or the default "
            r"'bernoulli'",
        ),
    ],
)
def test_bad_settings_fail_with_one_line(make_identity_config, make, key, value, message):
    config = make(make_identity_config)
    with config.objective.ignore_type():
        config.objective[key] = value
    with pytest.raises(ValueError, match=message) as err:
        build_setup(config, FASHION)
    assert "\n" not in str(err.value)


def test_random_blocks_and_colorization_settings_are_checked(make_identity_config):
    config = inpainting_config(make_identity_config, mask="random_block", block_size=40)
    with pytest.raises(
        ValueError,
        match=r"objective.block_size=40 is invalid for 28x28 "
        r"images; valid: 1..28",
    ):
        build_setup(config, FASHION)
    for overrides, message in (
        (
            dict(ab_loss="hinge"),
            r"unknown objective.ab_loss 'hinge'; choose one of \['classification', "
            r"'regression'\]",
        ),
        (
            dict(target_stride=3),
            r"objective.target_stride=3 is invalid; valid: an int >= 1 dividing the 32x32 "
            r"image size",
        ),
        (dict(soft_neighbors=0), r"objective.soft_neighbors=0 is invalid"),
        (
            dict(prior_momentum=1.0),
            r"objective.prior_momentum=1 is invalid; valid: 0.0 <= prior_momentum < 1.0",
        ),
    ):
        with pytest.raises(ValueError, match=message):
            build_setup(colorization_config(make_identity_config, **overrides), CIFAR)


def test_bad_decoder_layer_and_grayscale_colorization_fail_with_one_line(make_identity_config):
    config = inpainting_config(make_identity_config)
    config.model.decoder.feature_layer = "block4"
    with pytest.raises(
        ValueError,
        match=r"model.decoder.feature_layer='block4' is invalid; "
        r"choose one of the encoder's feature maps "
        r"\['block1', 'block2'\]",
    ):
        build_setup(config, FASHION)
    config = colorization_config(make_identity_config)
    with pytest.raises(
        ValueError,
        match=r"^objective 'colorization' needs RGB images, but "
        r"dataset 'fashion_mnist' is grayscale",
    ):
        build_setup(config, FASHION)


def test_objectives_are_registered_with_the_config_setters_defaults():
    assert [type(objectives.get(n)()) for n in RECONSTRUCTION] == [
        objectives.Inpainting,
        objectives.Colorization,
        objectives.DenoisingAutoencoder,
    ]
    assert objectives.Inpainting().lambda_adv == 0.001  # with a discriminator by default
    dae = objectives.DenoisingAutoencoder()
    assert (dae.noise, dae.likelihood, dae.gaussian_std) == (
        "gaussian",
        "bernoulli",
        math.sqrt(0.5),
    )


@pytest.mark.parametrize("name", RECONSTRUCTION)
def test_unknown_key_names_the_valid_ones(name):
    valid = ", ".join(objectives.get(name).hyperparameter_names())
    with pytest.raises(ValueError) as err:
        objectives.build({"name": name, "nosie": "gaussian"})
    assert str(err.value) == (
        f"unknown key objective.nosie for objective {name!r}; valid keys: {valid}"
    )


@pytest.mark.parametrize("name", RECONSTRUCTION)
def test_old_configs_objectives_load_with_the_same_values(name):
    """Every objective the configs stored before the typed objectives loads with its class and
    the same values (colorization's stored ``loss`` is its ``ab_loss``; the dSprites
    'denoising_ae' is the 'denoising_autoencoder' of a Gaussian encoder)."""
    old = json.load(open(Path(__file__).parents[1] / "data" / "configs_before_redesign.json"))
    stored = [
        c["objective"]
        for c in old.values()
        if STORED_NAMES.get(c["objective"]["name"], c["objective"]["name"]) == name
    ]
    assert stored
    cls = objectives.get(name)
    renamed = dict(getattr(cls, "RENAMED_KEYS", {}), name="name")
    for objective in stored:
        built = objectives.build(objective)
        assert type(built) is cls
        values = dict(built.hyperparameters(), name=objective["name"])
        for key, value in objective.items():
            want = tuple(value) if isinstance(value, list) else value
            assert values[renamed.get(key, key)] == want, key


def test_colorization_reads_the_stored_loss_key_as_ab_loss():
    assert objectives.build(
        {"name": "colorization", "loss": "regression"}
    ) == objectives.Colorization(ab_loss="regression")
    with pytest.raises(
        ValueError,
        match=r"^objective.loss is the stored name of "
        r"objective.ab_loss; give only objective.ab_loss$",
    ):
        objectives.build({"name": "colorization", "loss": "regression", "ab_loss": "regression"})


# ---------------------------------------------------------------------------
# Inpainting's discriminator: a parameter group
# ---------------------------------------------------------------------------


def run(config, devices, batch):
    setup = build_setup(config, FASHION)
    mesh = parallel.make_mesh(devices)
    state = parallel.replicate_on_mesh(initial_state(config, setup), mesh)
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
    local = {k: v.reshape((len(devices), -1) + v.shape[1:]) for k, v in batch.items()}
    state, metrics = step(state, parallel.batch_to_global(local, mesh))
    return jax.device_get(state), jax.device_get(metrics)


def inpainting_by_hand(setup, params, model_state, views):
    """Inpainting's two losses from the pure terms: ``main(network params)`` with the
    discriminator fixed, and ``disc(discriminator params)`` on the real images and the
    initial network's inpainted images."""
    inputs, x, masks = views
    disc = setup.objective.discriminator()
    net_params = {k: v for k, v in params.items() if k != "discriminator"}

    def inpainted(p):
        out, _ = setup.eval_model.apply(
            {"params": p, **model_state}, inputs, train=True, mutable=list(model_state)
        )
        return out["reconstruction"], masks * out["reconstruction"] + (1 - masks) * x

    def main(p):
        recon, fake = inpainted(p)
        adv = R.generator_adversarial_loss(disc.apply({"params": params["discriminator"]}, fake))
        return 0.9 * R.masked_l2_loss(x, recon, masks) + 0.1 * adv

    fake = inpainted(net_params)[1]

    def disc_loss(p):
        return R.discriminator_loss(disc.apply({"params": p}, x), disc.apply({"params": p}, fake))

    return main, disc_loss, net_params


def test_inpainting_gradient_splits_by_parameter_group(make_identity_config):
    """The generator gets the main loss's gradient alone, the discriminator its own loss's."""
    config = inpainting_config(make_identity_config)
    setup = build_setup(config, FASHION)
    state = initial_state(config, setup)
    images = jnp.asarray(RNG.integers(0, 256, (8, 28, 28, 1)), jnp.uint8)
    views = setup.objective.make_views(jax.random.PRNGKey(0), images, setup.run)
    ctx = LossContext(
        model=setup.eval_model, state=state.extra, batch={}, axis_name=None, run=setup.run
    )
    (total, aux), grads = jax.jit(
        jax.value_and_grad(
            lambda p: setup.objective.loss(p, state.model_state, views, jax.random.PRNGKey(1), ctx),
            has_aux=True,
        )
    )(state.params)
    main, disc_loss, net_params = inpainting_by_hand(setup, state.params, state.model_state, views)
    main, disc_loss = jax.jit(main), jax.jit(disc_loss)  # compiled: eager ops are slow here
    rtol = f32_reorder_rtol(8 * 28 * 28)
    assert_close(aux.metrics["loss"], main(net_params), rtol=rtol)
    assert_close(aux.metrics["disc_loss"], disc_loss(state.params["discriminator"]), rtol=rtol)
    assert_close(total, aux.metrics["loss"] + aux.metrics["disc_loss"], rtol=1e-6)
    assert_trees_close(
        {k: v for k, v in grads.items() if k != "discriminator"},
        jax.grad(main)(net_params),
        rtol=rtol,
    )
    # The logits' bias gradient is a difference of mean sigmoids of O(1): its rounding scales
    # with 1, not with the (small) difference.
    assert_trees_close(
        grads["discriminator"],
        jax.grad(disc_loss)(state.params["discriminator"]),
        rtol=rtol,
        atol=rtol,
    )
    # Without the adversarial term there is no discriminator at all.
    plain = objectives.Inpainting(lambda_adv=0.0)
    assert plain.param_groups(setup.run) == {}


def test_inpainting_step_with_discriminator_is_the_same_on_8_devices_as_on_1(make_identity_config):
    config = inpainting_config(make_identity_config)
    images = RNG.integers(0, 256, (16, 28, 28, 1), dtype=np.uint8)
    batch = {"image": images, "label": np.zeros(16, np.int32), "index": np.arange(16)}
    s8, m8 = run(config, jax.devices(), batch)
    s1, m1 = run(config, jax.devices()[:1], batch)
    setup = build_setup(config, FASHION)
    init = jax.device_get(initial_state(config, setup))
    # Longest reduction: BatchNorm statistics over the 16 images' 28 x 28 positions.
    first_pass, one_step = f32_steps_rtol(16 * 28 * 28, 0), f32_steps_rtol(16 * 28 * 28, 1)
    assert bool(m8["finite"]) and bool(m1["finite"])
    for key in ("loss", "rec_loss", "adv_loss", "disc_loss"):
        assert_close(m8[key], m1[key], rtol=first_pass)
    np.testing.assert_allclose(m1["loss"], 0.9 * m1["rec_loss"] + 0.1 * m1["adv_loss"], rtol=1e-5)
    assert_updates_close(s8.params, s1.params, init.params, rtol=one_step)
    assert init.extra == {} and "discriminator" in init.params

    # The discriminator took one Adam step on the gradient of its loss on the real images
    # and the initial network's inpainted images (the views do not depend on the key).
    views = setup.objective.make_views(jax.random.PRNGKey(0), jnp.asarray(images), setup.run)
    _, disc_loss, _ = inpainting_by_hand(setup, init.params, init.model_state, views)
    start = init.params["discriminator"]
    value, grads = jax.value_and_grad(disc_loss)(start)
    assert_close(m1["disc_loss"], value, rtol=first_pass)  # jitted step vs eager ops
    tx = optax.adam(1e-2, b1=0.5)
    updates, _ = tx.update(grads, tx.init(start))
    want = optax.apply_updates(start, updates)
    assert_updates_close(s1.params["discriminator"], want, start, rtol=one_step)
    changed = jax.tree.map(
        lambda a, b: float(np.abs(a - b).max()), s1.params["discriminator"], start
    )
    assert min(jax.tree.leaves(changed)) > 1e-3


# ---------------------------------------------------------------------------
# Colorization's state and the feature-map denoising autoencoder
# ---------------------------------------------------------------------------


def test_colorization_and_denoising_trace_and_update_their_state(make_identity_config):
    """Shapes through each objective's views -> loss -> update_state; the bin-prior update."""
    for config, facts, shape, metric in (
        (colorization_config(make_identity_config), CIFAR, (4, 32, 32, 3), "bin_accuracy"),
        (denoising_config(make_identity_config), FASHION, (4, 28, 28, 1), "mse"),
    ):
        setup = build_setup(config, facts)
        state = jax.eval_shape(lambda: initial_state(config, setup))  # noqa: B023
        obj = setup.objective

        def step(state, images, obj=obj, setup=setup):
            views = obj.make_views(jax.random.PRNGKey(0), images, setup.run)
            ctx = LossContext(
                model=setup.eval_model, state=state.extra, batch={}, axis_name=None, run=setup.run
            )
            loss, aux = obj.loss(state.params, state.model_state, views, jax.random.PRNGKey(1), ctx)
            extra = obj.update_state(
                state.extra,
                aux.outputs,
                UpdateContext(
                    params=state.params,
                    model_state=state.model_state,
                    step=0,
                    axis_name=None,
                    run=setup.run,
                ),
            )
            return loss, aux.metrics, aux.outputs, extra

        loss, metrics, outputs, extra = jax.eval_shape(
            step, state, jax.ShapeDtypeStruct(shape, jnp.uint8)
        )
        assert loss.shape == () and outputs.embedding.shape == (4, 16)
        assert jax.tree.map(jnp.shape, extra) == jax.tree.map(jnp.shape, state.extra)
        assert metric in metrics
    assert isinstance(state.extra, dict) and not state.extra  # the denoising AE has no state

    # update_state: the running bin distribution moves to the batch histogram by 1 - momentum.
    obj = objectives.Colorization(prior_momentum=0.5)
    ab = corruptions.rgb_to_lab(jnp.asarray(RNG.uniform(size=(2, 8, 8, 3)), jnp.float32))[..., 1:]
    centers = corruptions.ab_bin_centers()
    q = len(centers)
    bins = corruptions.encode_ab_hard(ab, centers)
    hist = R.ab_histogram(bins, q)
    np.testing.assert_allclose(hist, np.bincount(np.asarray(bins).ravel(), minlength=q) / 128)
    prior = obj.init_state(None, None, None)
    assert isinstance(prior, R.ColorizationState)
    new = obj.update_state(
        prior,
        R.ColorizationOutputs(ab_histogram=hist),
        UpdateContext(params=None, model_state=None, step=0, axis_name=None, run=None),
    )
    np.testing.assert_allclose(new.ab_prior, 0.5 / q + 0.5 * np.asarray(hist), rtol=1e-6)
    # Regression, or classification without rebalancing, keeps no state.
    assert objectives.Colorization(ab_loss="regression").init_state(None, None, None) is None
    assert objectives.Colorization(class_rebalance=False).init_state(None, None, None) is None


def test_feature_map_denoising_loss_is_the_weighted_squared_error(make_identity_config):
    config = denoising_config(make_identity_config, clean_weight=0.5)
    setup = build_setup(config, FASHION)
    state = initial_state(config, setup)
    images = jnp.asarray(RNG.integers(0, 256, (4, 28, 28, 1)), jnp.uint8)
    views = setup.objective.make_views(jax.random.PRNGKey(3), images, setup.run)
    ctx = LossContext(
        model=setup.eval_model, state=state.extra, batch={}, axis_name=None, run=setup.run
    )
    loss, aux = setup.objective.loss(state.params, state.model_state, views, None, ctx)
    out, _ = setup.eval_model.apply(
        {"params": state.params, **state.model_state}, views[0], train=True, mutable=["batch_stats"]
    )
    noisy, clean, corrupted = (np.asarray(v, np.float64) for v in views)
    w = np.where(corrupted > 0, 2.0, 0.5)
    want = np.mean(w * (clean - np.asarray(out["reconstruction"], np.float64)) ** 2)
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    assert aux.outputs.embedding.shape == (4, 16) and float(aux.metrics["loss"]) == float(loss)
