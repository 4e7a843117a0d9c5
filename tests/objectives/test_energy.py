"""The ``energy`` objective through the generic step: 8 devices equal 1 for each training,
its loss is the pure loss of the network's energies and scores, contrastive divergence's
buffer receives the global batch's negatives and its negatives carry no gradient, and bad
settings are one-line errors."""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

import ssljax.objectives.energy as energy_objective  # registers "energy"
from ssljax import config_base
from ssljax.energy import losses, samplers
from ssljax.identifiability.fit import fit, synthetic_run
from ssljax.models.network import encoder_variables
from ssljax.objectives import DatasetFacts, LossContext, Run
from ssljax.objectives.energy import TRAININGS, Energy
from ssljax.training.loop import build_setup, initial_state, validate_config
from ssljax.training.state import create_train_state
from ssljax.training.step import shared_step_rng
from tests.multidevice import run_config
from tests.tolerances import (
    assert_close,
    assert_updates_close,
    f32_reorder_rtol,
    f32_steps_rtol,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Longest reduction of a step: a conv1 kernel gradient over the 16 data and 16 negative
# images at 28 x 28 (tolerances: tests/tolerances.py).
N_TERMS = 2 * 16 * 28 * 28
TINY = {
    "denoising_score_matching": dict(sigma=0.1),
    "sliced_score_matching": dict(num_projections=2),
    "contrastive_divergence": dict(
        sampler="langevin", step_size=0.01, num_steps=3, buffer_size=40, noise_scale=0.5
    ),
}


def tiny_energy_config(make_identity_config, training, **overrides):
    """The tiny test ConvNet, with BatchNorm (inference mode must keep examples apart), or
    for sliced score matching with LayerNorm: ReLU layers with BatchNorm in inference mode
    are piecewise linear, so the energy's Hessian, SSM's trace term, would vanish and the
    loss would not depend on the projections at all."""
    c = make_identity_config()
    c.objective = ml_collections.ConfigDict(
        dict(name="energy", training=training, **{**TINY[training], **overrides})
    )
    if training == "sliced_score_matching":
        c.model.encoder_kwargs.norm = "layer"
    del c.model["projector"]
    config_base.adamw(c, 1e-3, weight_decay=0.0, warmup_steps=0)
    return c


def global_batches(count, n=16, seed=0):
    rng = np.random.default_rng(seed)
    return [
        {
            "image": rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
            "label": rng.integers(0, 10, (n,)).astype(np.int32),
            "index": np.arange(n, dtype=np.int32),
        }
        for _ in range(count)
    ]


def run(config, devices, batches):
    return run_config(config, devices, batches)


@pytest.fixture(scope="module")
def runs(make_identity_config):
    """``{training: (state8, metrics8, state1, metrics1, config, initial state, batches)}``."""
    cache = {}

    def get(training):
        if training not in cache:
            config = tiny_energy_config(make_identity_config, training)
            validate_config(config)
            batches = global_batches(1)
            s8, m8 = run(config, jax.devices(), batches)
            s1, m1 = run(config, jax.devices()[:1], batches)
            init = jax.device_get(initial_state(config, build_setup(config)))
            cache[training] = (s8, m8, s1, m1, config, init, batches)
        return cache[training]

    return get


@pytest.mark.parametrize("training", TRAININGS)
def test_eight_devices_equal_one_device(runs, training):
    s8, m8, s1, m1, _, init, _ = runs(training)
    first_pass = f32_steps_rtol(N_TERMS, steps=0)
    for a, b in zip(m8, m1):
        assert bool(a["finite"]) and bool(b["finite"])
        for key in ("loss", "collapse_std", "effective_rank"):
            assert_close(a[key], b[key], rtol=first_pass, atol=first_pass)
    assert_updates_close(s8.params, s1.params, init.params, rtol=f32_steps_rtol(N_TERMS, 1))
    if training == "contrastive_divergence":
        assert_updates_close(s8.extra, s1.extra, init.extra, rtol=f32_steps_rtol(N_TERMS, 1))
        assert int(s8.extra.pointer) == int(s1.extra.pointer) == 16
    else:
        assert s8.extra == {} and s1.extra == {}
    # Inference-mode BatchNorm: the running statistics never move.
    for a, b in zip(jax.tree.leaves(s8.model_state), jax.tree.leaves(init.model_state)):
        np.testing.assert_array_equal(a, b)
    assert int(s8.step) == 1


def test_buffer_receives_the_negatives_of_the_whole_global_batch(runs):
    s8, _, _, _, config, init, batches = runs("contrastive_divergence")
    setup = build_setup(config)
    objective = setup.objective
    x = jnp.asarray(batches[0]["image"], jnp.float32) / 255.0
    ctx = LossContext(
        model=setup.eval_model,
        state=init.extra,
        batch={},
        axis_name=None,
        run=setup.run,
        shared_rng=shared_step_rng(init.rng, init.step),
    )
    expected, _ = objective.negatives(init.params, init.model_state, x, ctx)
    # The 16 rows written on 8 devices (2 per device) are the negatives one device draws for
    # the global batch, in order; the other rows keep their initial noise.
    assert_close(s8.extra.buffer[:16], expected, rtol=f32_reorder_rtol(N_TERMS), atol=1e-6)
    np.testing.assert_array_equal(s8.extra.buffer[16:], init.extra.buffer[16:])
    assert not np.allclose(s8.extra.buffer[:16], init.extra.buffer[:16])


def test_the_replay_ring_wraps_around():
    buffer = jnp.zeros((5, 2))
    rows = jnp.arange(8.0).reshape(4, 2)
    b, p = energy_objective.replace_rows(buffer, jnp.int32(3), rows)
    np.testing.assert_array_equal(b, [[4, 5], [6, 7], [0, 0], [0, 1], [2, 3]])
    assert int(p) == 2


# ---------------------------------------------------------------------------------------------
# The loss is the pure loss of the network's energies and scores.


def setup_and_state(make_identity_config, training, **overrides):
    config = tiny_energy_config(make_identity_config, training, **overrides)
    setup = build_setup(config)
    state = initial_state(config, setup)
    x = jnp.asarray(global_batches(1, n=8)[0]["image"], jnp.float32) / 255.0
    ctx = LossContext(
        model=setup.eval_model,
        state=state.extra,
        batch={},
        axis_name=None,
        run=setup.run,
        shared_rng=jax.random.PRNGKey(3),
    )
    return setup, state, x, ctx


def network_energy(setup, state, params=None):
    params = state.params if params is None else params
    return lambda z: setup.eval_model.apply(
        {"params": params, **state.model_state}, z, train=False
    )["energy"]


def example_normal(shared_rng, n, shape):
    """Each example's noise from ``fold_in(shared_rng, i)`` (the objective's convention)."""
    keys = [jax.random.split(jax.random.fold_in(shared_rng, i), 1)[0] for i in range(n)]
    return jnp.stack([jax.random.normal(k, shape) for k in keys])


def test_dsm_loss_is_the_pure_loss_of_the_network_score(make_identity_config):
    setup, state, x, ctx = setup_and_state(make_identity_config, "denoising_score_matching")
    loss, aux = setup.objective.loss(state.params, state.model_state, (x,), None, ctx)
    sigma = setup.objective.sigma
    noisy = x + sigma * example_normal(ctx.shared_rng, 8, x.shape[1:])
    score = -jax.grad(lambda z: jnp.sum(network_energy(setup, state)(z)))(noisy)
    expected = losses.denoising_score_matching_loss(score, noisy, x, sigma, weighting="sigma2")
    assert_close(loss, expected, rtol=f32_reorder_rtol(8 * 28 * 28))
    assert aux.outputs.embedding.shape == (8, 16) and aux.outputs.negatives is None
    assert set(aux.metrics) == {"loss", "energy", "score_norm"}


def test_ssm_loss_is_the_pure_loss_of_the_network_score(make_identity_config):
    setup, state, x, ctx = setup_and_state(make_identity_config, "sliced_score_matching")
    loss, _ = setup.objective.loss(state.params, state.model_state, (x,), None, ctx)
    v = jnp.swapaxes(example_normal(ctx.shared_rng, 8, (2,) + x.shape[1:]), 0, 1)
    energy = network_energy(setup, state)
    score = lambda z: -jax.grad(lambda y: jnp.sum(energy(y)))(z)
    expected = losses.sliced_score_matching_loss(score, x, v, variance_reduction=True)
    assert_close(loss, expected, rtol=f32_reorder_rtol(8 * 28 * 28))


def cd_inputs(make_identity_config, **overrides):
    setup, state, x, ctx = setup_and_state(
        make_identity_config, "contrastive_divergence", **overrides
    )
    negatives, _ = setup.objective.negatives(state.params, state.model_state, x, ctx)
    return setup, state, x, ctx, negatives


def test_cd_loss_is_the_pure_loss_of_the_network_energies(make_identity_config):
    setup, state, x, ctx, negatives = cd_inputs(make_identity_config)
    loss, aux = setup.objective.loss(state.params, state.model_state, (x,), None, ctx)
    energy = network_energy(setup, state)
    expected = losses.contrastive_divergence_loss(energy(x), energy(negatives), reg=1.0)
    assert_close(loss, expected, rtol=f32_reorder_rtol(16 * 28 * 28))
    np.testing.assert_array_equal(aux.outputs.negatives, negatives)
    assert float(negatives.min()) >= 0.0 and float(negatives.max()) <= 1.0


def test_cd_negatives_carry_no_gradient_to_the_parameters(make_identity_config):
    # Long Langevin steps, so that the negatives depend strongly on the parameters.
    sampler = "langevin"
    setup, state, x, ctx, negatives = cd_inputs(make_identity_config, step_size=2.0)
    objective = setup.objective

    def objective_loss(params):
        return objective.loss(params, state.model_state, (x,), None, ctx)[0]

    def constant_negatives_loss(params):
        energy = network_energy(setup, state, params)
        return losses.contrastive_divergence_loss(energy(x), energy(negatives), reg=1.0)

    def differentiated_chains_loss(params):
        # The same chains with the parameters NOT under stop_gradient: what the objective
        # would compute without it (a different gradient, so the test can fail).
        frozen = objective
        energy = network_energy(setup, state, params)
        keys = energy_objective.example_keys(ctx.shared_rng, x.shape[0], None, 4)
        pick = jax.vmap(lambda k: jax.random.randint(k, (), 0, frozen.buffer_size))(keys[0])
        restart = jax.vmap(lambda k: jax.random.uniform(k, ()))(keys[1]) < frozen.reinit_prob
        noise = jax.vmap(lambda k: jax.random.uniform(k, x.shape[1:]))(keys[2])
        x0 = jnp.where(restart[:, None, None, None], noise, ctx.state.buffer[pick])
        x_neg, _ = samplers.sample(
            sampler,
            keys[3],
            x0,
            energy_fn=energy,
            step_size=frozen.step_size,
            num_steps=frozen.num_steps,
            num_leapfrog=frozen.num_leapfrog,
            noise_scale=frozen.noise_scale,
        )
        x_neg = jnp.clip(x_neg, 0.0, 1.0)
        return losses.contrastive_divergence_loss(energy(x), energy(x_neg), reg=1.0)

    g_objective = jax.grad(objective_loss)(state.params)
    g_constant = jax.grad(constant_negatives_loss)(state.params)
    g_leaky = jax.grad(differentiated_chains_loss)(state.params)
    rtol = f32_reorder_rtol(N_TERMS)
    for a, b in zip(jax.tree.leaves(g_objective), jax.tree.leaves(g_constant)):
        assert_close(a, b, rtol=rtol, atol=1e-7)
    # Differentiating through the chains changes the gradient by far more than rounding.
    diff = max(
        float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-12))
        for a, b in zip(jax.tree.leaves(g_leaky), jax.tree.leaves(g_constant))
    )
    assert diff > 100 * rtol


# ---------------------------------------------------------------------------------------------
# The network, vectors, configs and bad settings.


def test_the_encoder_is_cut_out_for_evaluation(make_identity_config):
    setup, state, x, _ = setup_and_state(make_identity_config, "denoising_score_matching")
    out = setup.eval_model.apply({"params": state.params, **state.model_state}, x, train=False)
    assert set(out) == {"features", "energy"} and out["energy"].shape == (8,)
    variables = encoder_variables({"params": state.params, **state.model_state})
    alone = setup.eval_model.encoder.apply(variables, x, train=False)
    np.testing.assert_array_equal(alone, out["features"])
    assert set(state.params) == {"encoder", "energy_head"}


# Sliced score matching's device equality is checked through the image step above.
@pytest.mark.parametrize("training", ["denoising_score_matching", "contrastive_divergence"])
def test_vectors_train_through_fit_and_eight_devices_equal_one(training):
    rng = np.random.default_rng(0)
    data = {"image": rng.normal(size=(64, 2)).astype(np.float32)}
    objective = Energy(training=training, hidden=16, num_steps=3, buffer_size=32)
    a = fit(objective, data, steps=2, batch_size=16, max_devices=8, sync_every=1)
    b = fit(objective, data, steps=2, batch_size=16, max_devices=1, sync_every=1)
    assert a.num_devices == 8 and b.num_devices == 1
    assert np.all(np.isfinite(a.losses))
    run_ = synthetic_run(objective, data, batch_size=16, steps=2, seed=0)
    start = create_train_state(  # fit's initial parameters (same model, key and shape)
        objective.build_model(run_, None),
        optax.adam(1e-3),
        jax.random.PRNGKey(0),
        objective.sample_shape(run_),
    ).params
    # Two Adam steps on a 16-example batch (reductions of at most 16 x 16 terms).
    assert_updates_close(a.params, b.params, start, rtol=f32_steps_rtol(16 * 16, 2))
    if training == "contrastive_divergence":
        assert a.extra.buffer.shape == (32, 2) and int(a.extra.pointer) == 0  # 2 x 16 rows
        assert_close(a.extra.buffer, b.extra.buffer, rtol=f32_steps_rtol(16 * 16, 2))


def test_the_config_file_validates_and_builds():
    config = config_base.load_config(os.path.join(ROOT, "configs", "energy.py:fashion_mnist"))
    validate_config(config)
    setup = build_setup(config)
    assert setup.objective.training == "denoising_score_matching"
    assert config.model.encoder_kwargs.norm == "layer"
    module = open(os.path.join(ROOT, "configs", "energy.py")).read()
    assert "python -m ssljax.train --config configs/energy.py:fashion_mnist --workdir" in module
    with pytest.raises(ValueError, match=r"^energy.py: unknown dataset 'cifar10'; valid: "):
        config_base.load_config(os.path.join(ROOT, "configs", "energy.py:cifar10"))


def facts(shape):
    return DatasetFacts(name="toy", image_shape=shape, num_examples=100, num_classes=0)


@pytest.mark.parametrize(
    "settings,message",
    [
        (
            dict(training="mle"),
            "unknown objective.training 'mle'; choose one of ['denoising_score_matching', "
            "'sliced_score_matching', 'contrastive_divergence']",
        ),
        (
            dict(sampler="gibbs"),
            "unknown objective.sampler 'gibbs'; choose one of ['langevin', 'mala', 'hmc']",
        ),
        (dict(sigma=0.0), "objective.sigma=0 is invalid; valid: 0 < sigma"),
        (dict(step_size=-0.1), "objective.step_size=-0.1 is invalid; valid: 0 < step_size"),
        (dict(num_steps=0), "objective.num_steps=0 is invalid; valid: an integer >= 1"),
        (dict(num_leapfrog=1.5), "objective.num_leapfrog=1.5 is invalid; valid: an integer >= 1"),
        (
            dict(reinit_prob=1.5),
            "objective.reinit_prob=1.5 is invalid; valid: 0 <= reinit_prob <= 1",
        ),
        (dict(reg=-1.0), "objective.reg=-1 is invalid; valid: 0 <= reg"),
        (dict(noise_scale=-0.5), "objective.noise_scale=-0.5 is invalid; valid: 0 <= noise_scale"),
        (
            dict(dsm_weighting="lambda"),
            "unknown objective.dsm_weighting 'lambda'; choose one of ['none', 'sigma2']",
        ),
        (dict(hidden=0), "objective.hidden=0 is invalid; valid: an integer >= 1"),
        (dict(temperature=0.1), "unknown key objective.temperature for objective 'energy'"),
    ],
)
def test_bad_settings_are_one_line(settings, message):
    with pytest.raises(ValueError) as err:
        Energy.from_config(dict(name="energy", **settings))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_check_refuses_runs_it_cannot_do():
    cd = Energy(training="contrastive_divergence", buffer_size=10**8)
    image_run = Run(facts=facts((28, 28, 1)), batch_size=16, total_steps=1, model={})
    bytes_needed = 10**8 * 28 * 28 * 4
    cases = [
        (
            cd,
            image_run,
            f"objective.buffer_size=100000000 needs {bytes_needed} bytes for toy; valid: at "
            f"most {energy_objective.MAX_BUFFER_BYTES} bytes",
        ),
        (
            Energy(training="contrastive_divergence", buffer_size=8),
            image_run,
            "objective.buffer_size=8 is smaller than the global batch_size=16",
        ),
        (
            Energy(),
            Run(facts=facts((5, 5)), batch_size=16, total_steps=1),
            "objective 'energy' trains on images [H, W, C] or vectors [D]; toy has examples "
            "of shape (5, 5)",
        ),
        (
            Energy(),
            Run(facts=facts((28, 28, 1)), batch_size=16, total_steps=1),
            "objective 'energy' on images needs config.model (its encoder)",
        ),
    ]
    for objective, run_, message in cases:
        with pytest.raises(ValueError) as err:
            objective.check(run_)
        assert str(err.value).startswith(message) and "\n" not in str(err.value)
    Energy(training="contrastive_divergence", buffer_size=16).check(image_run)  # fits
