"""BiGAN / ALI: the pure losses against hand values and NumPy, the prior's global-batch draws,
hyperparameter errors, the gradient split between the players, and the whole step on 8
devices against 1."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import ssljax.objectives.bigan as B  # registers 'bigan' (until ssljax.objectives imports it)
from ssljax import config_base, objectives
from ssljax.data.datasets import facts_from_spec, get_dataset_spec
from ssljax.objectives import LossContext
from ssljax.training.loop import abstract_state, build_setup, initial_state, validate_config
from tests.multidevice import run_config
from tests.tolerances import (
    assert_close,
    assert_trees_close,
    assert_updates_close,
    f32_reorder_rtol,
    f32_steps_rtol,
    f32_sum_tol,
)

RNG = np.random.default_rng(0)
FASHION = facts_from_spec(get_dataset_spec("fashion_mnist"))
# Longest reduction of a step: BatchNorm statistics over the 16 images' 28 x 28 positions.
N_TERMS = 16 * 28 * 28


def np_log_sigmoid(x):
    x = np.asarray(x, np.float64)
    return -np.logaddexp(0.0, -x)


# ---------------------------------------------------------------------------
# Pure losses
# ---------------------------------------------------------------------------


def test_losses_at_zero_logits_are_two_log_two():
    zeros = jnp.zeros((5,))
    for fn in (B.bigan_discriminator_loss, B.bigan_generator_loss):
        np.testing.assert_allclose(fn(zeros, zeros), 2 * math.log(2), rtol=1e-6)
    # Hinge: D pays 1 + 1, E/G pay 0 - 0.
    np.testing.assert_allclose(B.bigan_discriminator_loss(zeros, zeros, kind="hinge"), 2.0)
    np.testing.assert_allclose(B.bigan_generator_loss(zeros, zeros, kind="hinge"), 0.0)


def test_losses_equal_log_sigmoid_forms_in_numpy():
    real = RNG.normal(scale=3.0, size=7).astype(np.float32)
    fake = RNG.normal(scale=3.0, size=5).astype(np.float32)  # batches may differ in size
    d_want = -np.mean(np_log_sigmoid(real)) - np.mean(np_log_sigmoid(-fake))
    g_want = -np.mean(np_log_sigmoid(-real)) - np.mean(np_log_sigmoid(fake))
    tol = f32_sum_tol(7, 3.0, ulps=4)
    np.testing.assert_allclose(B.bigan_discriminator_loss(real, fake), d_want, atol=tol)
    np.testing.assert_allclose(B.bigan_generator_loss(real, fake), g_want, atol=tol)
    # Hand values: s_real = 2, s_fake = -1 (one example each).
    r, f = jnp.array([2.0]), jnp.array([-1.0])
    d_hand = math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))
    g_hand = math.log(1 + math.exp(2)) + math.log(1 + math.exp(1))
    np.testing.assert_allclose(B.bigan_discriminator_loss(r, f), d_hand, rtol=1e-6)
    np.testing.assert_allclose(B.bigan_generator_loss(r, f), g_hand, rtol=1e-6)
    # Hinge: relu(1 - 2) + relu(1 - 1) = 0; E/G: 2 - (-1) = 3.
    np.testing.assert_allclose(B.bigan_discriminator_loss(r, f, kind="hinge"), 0.0)
    np.testing.assert_allclose(B.bigan_generator_loss(r, f, kind="hinge"), 3.0)
    np.testing.assert_allclose(
        B.bigan_discriminator_loss(real, fake, kind="hinge"),
        np.mean(np.maximum(0, 1 - real)) + np.mean(np.maximum(0, 1 + fake)),
        atol=f32_sum_tol(7, 4.0),
    )


def test_unary_totals_are_sums_over_the_three_scores():
    real = {k: RNG.normal(size=6).astype(np.float32) for k in B.SCORE_KEYS}
    fake = {k: RNG.normal(size=6).astype(np.float32) for k in B.SCORE_KEYS}
    for kind in B.GAN_LOSSES:
        d = sum(B.bigan_discriminator_loss(real[k], fake[k], kind=kind) for k in B.SCORE_KEYS)
        g = sum(B.bigan_generator_loss(real[k], fake[k], kind=kind) for k in B.SCORE_KEYS)
        np.testing.assert_allclose(B.total_discriminator_loss(real, fake, kind=kind), d, rtol=1e-6)
        np.testing.assert_allclose(B.total_generator_loss(real, fake, kind=kind), g, rtol=1e-6)
    joint_only = ({"joint": real["joint"]}, {"joint": fake["joint"]})
    np.testing.assert_allclose(
        B.total_discriminator_loss(*joint_only),
        B.bigan_discriminator_loss(real["joint"], fake["joint"]),
        rtol=1e-7,
    )
    with pytest.raises(ValueError, match="score keys") as err:
        B.total_generator_loss(real, {"joint": fake["joint"]})
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="'softmax'") as err:
        B.bigan_generator_loss(real["x"], fake["x"], kind="softmax")
    assert "\n" not in str(err.value)


def test_cycle_loss_is_the_mean_squared_error():
    x = RNG.uniform(size=(3, 4, 5, 2)).astype(np.float32)
    r = RNG.uniform(size=(3, 4, 5, 2)).astype(np.float32)
    want = sum(float((a - b) ** 2) for a, b in zip(x.ravel(), r.ravel())) / x.size
    np.testing.assert_allclose(B.cycle_loss(x, r), want, rtol=1e-6)
    assert float(B.cycle_loss(x, x)) == 0.0
    with pytest.raises(AssertionError):
        B.cycle_loss(x, r[:2])


def test_prior_rows_do_not_depend_on_the_device_count():
    key = jax.random.PRNGKey(3)
    for prior in B.PRIORS:
        whole = np.asarray(B.global_prior_sample(key, 16, 5, prior, None))
        sharded = jax.pmap(
            lambda _: B.global_prior_sample(key, 2, 5, prior, "batch"),  # noqa: B023
            axis_name="batch",
        )(jnp.arange(8))
        np.testing.assert_array_equal(np.asarray(sharded).reshape(16, 5), whole)
    uniform = np.asarray(B.sample_prior(key, (4000, 2), "uniform"))
    assert uniform.min() >= -1.0 and uniform.max() <= 1.0
    # Mean 0 and variance 1/3 within 5 standard errors (8000 draws).
    assert abs(uniform.mean()) < 5 * math.sqrt(1 / 3 / 8000)
    gaussian = np.asarray(B.sample_prior(key, (4000, 2), "gaussian"))
    assert abs(gaussian.std() - 1.0) < 5 * math.sqrt(1 / (2 * 8000))


# ---------------------------------------------------------------------------
# Hyperparameters and settings
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("latent_dim", 0, "latent_dim"),
        ("prior", "laplace", "'laplace'"),
        ("gan_loss", "wasserstein", "'wasserstein'"),
        ("disc_x_widths", (8, 0), "disc_x_widths"),
        ("disc_joint_hidden", (), "disc_joint_hidden"),
        ("disc_norm", "batch", "'batch'"),
        ("disc_learning_rate", 0.0, "disc_learning_rate"),
        ("disc_beta1", 1.0, "disc_beta1"),
        ("unary", "yes", "'yes'"),
        ("cycle_weight", -1.0, "cycle_weight"),
        ("nope", 1, "unknown key objective.nope"),
    ],
)
def test_bad_hyperparameters_are_one_line(key, value, match):
    with pytest.raises(ValueError, match=match) as err:
        objectives.build({"name": "bigan", key: value})
    assert "\n" not in str(err.value)


def tiny_bigan_config(make_identity_config, **objective):
    """The tiny identity-augmentation config with BiGAN's parts instead of the projector."""
    c = make_identity_config()
    c.objective = ml_collections.ConfigDict(
        dict(
            name="bigan",
            latent_dim=4,
            disc_x_widths=(4,),
            disc_z_hidden=(8,),
            disc_joint_hidden=(8,),
            disc_learning_rate=1e-2,
            **objective,
        )
    )
    del c.model["projector"]
    c.model.generator = ml_collections.ConfigDict(
        dict(start_shape=(7, 7, 8), widths=(8, 4), upsample=(2, 2), kernel_size=3, norm="batch")
    )
    return config_base.adamw(c, 1e-2, weight_decay=0.0, warmup_steps=0)


@pytest.mark.parametrize(
    "where,value,match",
    [
        ("generator.norm", "group", "model.generator.norm='group'"),
        ("generator.upsample", (2,), "model.generator.upsample"),
        ("generator.start_shape", (7, 7), "model.generator.start_shape"),
        ("generator.depth", 3, "unknown key model.generator.depth"),
        ("patches", {"size": 14, "stride": 7}, "model.patches"),
    ],
)
def test_bad_model_settings_are_one_line(make_identity_config, where, value, match):
    c = tiny_bigan_config(make_identity_config)
    with c.unlocked(), c.ignore_type():
        if where.startswith("generator."):
            c.model.generator[where.split(".")[1]] = value
        else:
            c.model[where] = ml_collections.ConfigDict(value)
    with pytest.raises(ValueError, match=match) as err:
        build_setup(c, FASHION)
    assert "\n" not in str(err.value)


def test_config_file_validates_and_builds():
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    module = config_base.import_config_module(os.path.join(root, "configs", "bigan.py"))
    assert module.DATASETS == ("fashion_mnist",)
    for command in (
        "python -m ssljax.train --config configs/bigan.py:fashion_mnist --workdir runs/bigan",
        "python -m ssljax.linear_eval --workdir runs/bigan",
        "python experiments/generative_figures.py --workdir runs/bigan",
    ):
        assert command in module.__doc__
    config = module.get_config("fashion_mnist")
    assert config.to_dict() == module.get_config().to_dict()
    assert set(config.objective) == {"name", *B.BiGAN.hyperparameter_names()}
    assert config.optimizer.name == "adamw" and config.optimizer.b1 == 0.5  # DCGAN's Adam
    assert config.objective.cycle_weight == 100.0  # ALICE's cycle term (docs/methods.md)
    assert config.optimizer.base_learning_rate == 5e-4  # E and G; D keeps 2e-4
    assert config.objective.disc_learning_rate == 2e-4
    validate_config(config)
    setup = build_setup(config, FASHION)
    state = abstract_state(config, setup)
    assert state.params["discriminator"]["joint_logit"]["kernel"].shape == (256, 1)
    assert state.params["latent_head"]["kernel"].shape == (256, 64)
    with pytest.raises(ValueError, match="'cifar10'") as err:
        module.get_config("cifar10")
    assert "\n" not in str(err.value)


def test_views_are_the_images_in_unit_range(make_identity_config):
    setup = build_setup(tiny_bigan_config(make_identity_config), FASHION)
    images = jnp.asarray(RNG.integers(0, 256, (3, 28, 28, 1)), jnp.uint8)
    (x,) = setup.objective.make_views(jax.random.PRNGKey(0), images, setup.run)
    assert x.dtype == jnp.float32
    np.testing.assert_allclose(x, np.asarray(images, np.float32) / 255.0, rtol=1e-7)


# ---------------------------------------------------------------------------
# The gradient split and the whole step
# ---------------------------------------------------------------------------


def losses_by_hand(setup, params, model_state, x, prior_z):
    """``(eg(network params), disc(discriminator params), network params)`` from the pure
    losses, each pair scored by its own discriminator call: E/G's loss with the initial
    discriminator, the discriminator's loss on the initial network's pairs."""
    obj = setup.objective
    disc = obj.discriminator(setup.run)
    net_params = {k: v for k, v in params.items() if k != "discriminator"}

    weight = float(obj.cycle_weight)

    def pairs(p):
        out, _ = setup.eval_model.apply(
            {"params": p, **model_state},
            x,
            train=True,
            prior_z=prior_z,
            reconstruct=weight > 0,
            mutable=list(model_state),
        )
        return out["z"], out["generated"], out.get("reconstruction")

    def eg(p):
        encoded, generated, recon = pairs(p)
        d = {"params": params["discriminator"]}
        real, fake = disc.apply(d, x, encoded), disc.apply(d, generated, prior_z)
        loss = B.total_generator_loss(real, fake, kind=obj.gan_loss)
        if weight > 0:  # ALICE's cycle term, by hand: the mean squared error of G(E(x))
            loss = loss + weight * jnp.mean((x - recon) ** 2)
        return loss

    encoded0, generated0, _ = pairs(net_params)

    def disc_loss(d):
        real = disc.apply({"params": d}, x, encoded0)
        fake = disc.apply({"params": d}, generated0, prior_z)
        return B.total_discriminator_loss(real, fake, kind=obj.gan_loss)

    return eg, disc_loss, net_params


@pytest.mark.parametrize(
    "objective",
    [
        dict(),
        dict(unary=True, gan_loss="hinge", prior="uniform", disc_norm="layer"),
        dict(cycle_weight=3.0),
    ],
)
def test_gradient_splits_between_the_players(make_identity_config, objective):
    """The one scalar's gradient: E and G get the gradient of their loss alone, D of its."""
    config = tiny_bigan_config(make_identity_config, **objective)
    setup = build_setup(config, FASHION)
    state = initial_state(config, setup)
    images = jnp.asarray(RNG.integers(0, 256, (8, 28, 28, 1)), jnp.uint8)
    (x,) = setup.objective.make_views(jax.random.PRNGKey(0), images, setup.run)
    shared = jax.random.PRNGKey(5)
    ctx = LossContext(
        model=setup.eval_model,
        state=state.extra,
        batch={},
        axis_name=None,
        run=setup.run,
        shared_rng=shared,
    )
    (total, aux), grads = jax.jit(
        jax.value_and_grad(
            lambda p: setup.objective.loss(p, state.model_state, (x,), jax.random.PRNGKey(1), ctx),
            has_aux=True,
        )
    )(state.params)
    prior_z = B.sample_prior(shared, (8, 4), setup.objective.prior)
    eg, disc_loss, net_params = losses_by_hand(setup, state.params, state.model_state, x, prior_z)
    eg_value, eg_grads = jax.jit(jax.value_and_grad(eg))(net_params)
    d_value, d_grads = jax.jit(jax.value_and_grad(disc_loss))(state.params["discriminator"])
    rtol = f32_reorder_rtol(8 * 28 * 28)
    assert_close(aux.metrics["loss"], eg_value, rtol=rtol)
    assert_close(aux.metrics["disc_loss"], d_value, rtol=rtol)
    assert_close(total, aux.metrics["loss"] + aux.metrics["disc_loss"], rtol=1e-6)
    assert set(grads) == set(state.params) >= {"encoder", "latent_head", "generator"}
    # Output biases' gradients are differences of O(1) mean sigmoids: rounding scales with 1.
    assert_trees_close(
        {k: v for k, v in grads.items() if k != "discriminator"}, eg_grads, rtol=rtol, atol=rtol
    )
    assert_trees_close(grads["discriminator"], d_grads, rtol=rtol, atol=rtol)
    # Both players get a gradient (the split does not zero either side).
    for part in ("encoder", "generator", "discriminator"):
        assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads[part])) > 1e-4
    if objective.get("unary"):
        assert {"x_logit", "z_logit"} <= set(state.params["discriminator"])
    if objective.get("cycle_weight"):
        # E/G's loss above includes the cycle term by hand; D's gradient, checked against its
        # loss alone, shows the term does not reach D.
        assert float(aux.metrics["cycle_loss"]) > 0
    assert aux.outputs.embedding.shape == (8, 16)  # the encoder's pooled features


def run(config, devices, batch):
    state, (metrics,) = run_config(config, devices, [batch], FASHION)
    return state, metrics


@pytest.mark.parametrize("objective", [dict(unary=True), dict(cycle_weight=2.0)])
def test_step_is_the_same_on_8_devices_as_on_1(make_identity_config, objective):
    config = tiny_bigan_config(make_identity_config, **objective)
    images = RNG.integers(0, 256, (16, 28, 28, 1), dtype=np.uint8)
    batch = {"image": images, "label": np.zeros(16, np.int32), "index": np.arange(16)}
    s8, m8 = run(config, jax.devices(), batch)
    s1, m1 = run(config, jax.devices()[:1], batch)
    init = jax.device_get(initial_state(config, build_setup(config, FASHION)))
    first_pass, one_step = f32_steps_rtol(N_TERMS, 0), f32_steps_rtol(N_TERMS, 1)
    assert bool(m8["finite"]) and bool(m1["finite"])
    for key in ("loss", "disc_loss", "collapse_std", "effective_rank"):
        assert_close(m8[key], m1[key], rtol=first_pass, atol=first_pass)
    for key in ("disc_real_accuracy", "disc_fake_accuracy"):
        assert m8[key] == m1[key]
    assert_updates_close(s8.params, s1.params, init.params, rtol=one_step)
    # BatchNorm running statistics of encoder and generator come from the global batch.
    assert_updates_close(s8.model_state, s1.model_state, init.model_state, rtol=one_step)
    assert init.extra == {} and int(s8.step) == 1
    # Every player moved.
    for part in ("encoder", "latent_head", "generator", "discriminator"):
        moved = jax.tree.map(
            lambda a, b: float(np.abs(a - b).max()), s1.params[part], init.params[part]
        )
        assert max(jax.tree.leaves(moved)) > 1e-3, part
