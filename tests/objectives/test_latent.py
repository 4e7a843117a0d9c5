"""The latent-variable objectives: ELBO terms against closed forms and float64 numpy, Monte-Carlo
checks of the KL, the total-correlation estimators, and the objectives through the generic step
(8 devices == 1 device); FactorVAE's discriminator as a parameter group."""

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
import scipy.stats

from ssljax import config_base, objectives, parallel
from ssljax.data.datasets import facts_from_spec, get_dataset_spec
from ssljax.objectives import LossContext, latent
from ssljax.training.loop import build_setup, initial_state
from ssljax.training.step import make_train_step, shard_map_driver, shared_step_rng
from tests.tolerances import (
    assert_close,
    assert_trees_close,
    assert_updates_close,
    f32_reorder_rtol,
    f32_steps_rtol,
)


def _gaussians(seed, shape):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape), rng.normal(scale=0.7, size=shape)


# ---------------------------------------------------------------------------
# Closed forms
# ---------------------------------------------------------------------------


def test_kl_of_two_diagonal_gaussians_matches_numpy_formula():
    mq, lq = _gaussians(0, (5, 4))
    mp, lp = _gaussians(1, (5, 4))
    # KL(q||p) per dimension, float64, written from the densities' variances.
    vq, vp = np.exp(lq), np.exp(lp)
    want = np.sum(0.5 * (np.log(vp / vq) + (vq + (mq - mp) ** 2) / vp - 1.0), axis=-1)
    got = latent.gaussian_kl(*(jnp.asarray(a, jnp.float32) for a in (mq, lq, mp, lp)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(got) >= 0)
    np.testing.assert_allclose(latent.gaussian_kl(mq, lq, mq, lq), 0.0, atol=1e-6)


def test_kl_to_standard_normal_matches_formula_and_general_kl():
    m, lv = _gaussians(2, (6, 10))
    want = 0.5 * np.sum(m**2 + np.exp(lv) - lv - 1.0, axis=-1)
    got = latent.gaussian_kl_standard(jnp.asarray(m, jnp.float32), jnp.asarray(lv, jnp.float32))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    general = latent.gaussian_kl(m, lv, np.zeros_like(m), np.zeros_like(lv))
    np.testing.assert_allclose(got, general, rtol=1e-5)
    assert float(latent.gaussian_kl_standard(jnp.zeros((1, 3)), jnp.zeros((1, 3)))[0]) == 0.0


def test_bernoulli_log_likelihood_matches_numpy():
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=4.0, size=(3, 8, 8, 1))
    x = (rng.random((3, 8, 8, 1)) < 0.3).astype(np.float64)
    x[0] = rng.random((8, 8, 1))  # fractional targets: minus the cross entropy
    p = 1.0 / (1.0 + np.exp(-logits))
    want = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=(1, 2, 3))
    got = latent.bernoulli_log_likelihood(
        jnp.asarray(x, jnp.float32), jnp.asarray(logits, jnp.float32)
    )
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # Saturated logits stay finite (no log(0)).
    big = latent.bernoulli_log_likelihood(jnp.zeros((1, 2)), jnp.array([[200.0, -200.0]]))
    np.testing.assert_allclose(big, [-200.0], rtol=1e-6)


def test_gaussian_log_likelihood_matches_scipy():
    rng = np.random.default_rng(4)
    x, mean = rng.random((2, 5, 5, 1)), rng.random((2, 5, 5, 1))
    std = 0.7
    want = scipy.stats.norm.logpdf(x, mean, std).sum(axis=(1, 2, 3))
    got = latent.gaussian_log_likelihood(
        jnp.asarray(x, jnp.float32), jnp.asarray(mean, jnp.float32), 2 * math.log(std)
    )
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # The 'gaussian' likelihood with variance 1/2 is minus the summed squared error + const.
    logits = rng.normal(size=x.shape)
    ll = latent.reconstruction_log_likelihood(
        jnp.asarray(x, jnp.float32), jnp.asarray(logits, jnp.float32), likelihood="gaussian"
    )
    sq = np.sum((x - 1 / (1 + np.exp(-logits))) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(ll, -sq - 0.5 * x[0].size * math.log(math.pi), rtol=1e-5)
    with pytest.raises(ValueError, match="likelihood='poisson' is invalid"):
        latent.reconstruction_log_likelihood(x, logits, likelihood="poisson")


# ---------------------------------------------------------------------------
# Monte Carlo
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("likelihood", latent.LIKELIHOODS)
def test_weighted_log_likelihood_with_unit_weights_is_the_log_likelihood(likelihood):
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.uniform(size=(3, 4, 5, 2)), jnp.float32)
    decoded = jnp.asarray(rng.normal(size=(3, 4, 5, 2)), jnp.float32)
    kwargs = dict(likelihood=likelihood, gaussian_std=0.3)
    want = latent.reconstruction_log_likelihood(x, decoded, **kwargs)
    np.testing.assert_allclose(
        latent.weighted_log_likelihood(x, decoded, 1.0, **kwargs), want, rtol=1e-6
    )
    w = jnp.asarray(rng.uniform(size=(3, 4, 5, 1)), jnp.float32)
    terms = np.asarray(latent.log_likelihood_terms(x, decoded, **kwargs))
    np.testing.assert_allclose(
        latent.weighted_log_likelihood(x, decoded, w, **kwargs),
        (np.asarray(w) * terms).sum(axis=(1, 2, 3)),
        rtol=1e-5,
    )


def test_monte_carlo_kl_agrees_with_closed_form():
    """E_q[log q(z) - log p(z)] from reparameterised samples vs the closed forms."""
    mq = jnp.array([[0.5, -1.0, 2.0]])
    lq = jnp.array([[-1.0, 0.3, 0.0]])
    mp = jnp.array([[0.0, 0.5, 1.0]])
    lp = jnp.array([[0.2, -0.5, 0.4]])
    n = 200_000
    z = latent.reparameterize(
        jax.random.PRNGKey(0), jnp.broadcast_to(mq, (n, 3)), jnp.broadcast_to(lq, (n, 3))
    )
    np.testing.assert_allclose(z.mean(0), mq[0], atol=0.01)
    np.testing.assert_allclose(z.std(0), jnp.exp(0.5 * lq[0]), rtol=0.01)
    log_q = latent.gaussian_log_density(z, mq, lq).sum(-1)
    mc_std = float(jnp.mean(log_q - latent.gaussian_log_density(z, 0.0, 0.0).sum(-1)))
    mc_p = float(jnp.mean(log_q - latent.gaussian_log_density(z, mp, lp).sum(-1)))
    assert mc_std == pytest.approx(float(latent.gaussian_kl_standard(mq, lq)[0]), abs=0.02)
    assert mc_p == pytest.approx(float(latent.gaussian_kl(mq, lq, mp, lp)[0]), abs=0.02)


def test_reparameterize_is_differentiable_in_mean_and_log_var():
    mean, log_var = jnp.array([[1.0, -2.0]]), jnp.array([[0.0, math.log(4.0)]])
    rng = jax.random.PRNGKey(1)
    eps = jax.random.normal(rng, (1, 2))
    g_mean, g_lv = jax.grad(lambda m, v: jnp.sum(latent.reparameterize(rng, m, v)), argnums=(0, 1))(
        mean, log_var
    )
    np.testing.assert_allclose(g_mean, 1.0)
    np.testing.assert_allclose(g_lv, 0.5 * jnp.exp(0.5 * log_var) * eps, rtol=1e-6)


# ---------------------------------------------------------------------------
# Total correlation
# ---------------------------------------------------------------------------


def test_permute_dims_keeps_every_marginal_and_breaks_the_joint():
    z = jnp.asarray(np.random.default_rng(5).normal(size=(64, 6)), jnp.float32)
    zp = latent.permute_dims(jax.random.PRNGKey(0), z)
    np.testing.assert_array_equal(np.sort(zp, axis=0), np.sort(z, axis=0))
    # Each column has its own permutation: rows are no longer rows of z.
    rows = {tuple(r) for r in np.asarray(z)}
    assert sum(tuple(r) in rows for r in np.asarray(zp)) < 5
    # Fully dependent columns (z2 = z1) become independent after permutation.
    a = jnp.asarray(np.random.default_rng(6).normal(size=(2048, 1)), jnp.float32)
    zp = np.asarray(latent.permute_dims(jax.random.PRNGKey(1), jnp.concatenate([a, a], 1)))
    assert abs(np.corrcoef(zp.T)[0, 1]) < 0.08


def test_minibatch_log_densities_match_brute_force():
    rng = np.random.default_rng(7)
    mean, log_var = rng.normal(size=(5, 3)), rng.normal(scale=0.3, size=(5, 3))
    z = rng.normal(size=(4, 3))
    log_qz, log_qzd = latent.minibatch_log_densities(
        jnp.asarray(z, jnp.float32),
        jnp.asarray(mean, jnp.float32),
        jnp.asarray(log_var, jnp.float32),
        dataset_size=100,
    )
    std = np.exp(0.5 * log_var)
    dens = scipy.stats.norm.pdf(z[:, None, :], mean[None], std[None])  # [4, 5, 3]
    want_qz = np.log(dens.prod(-1).sum(1) / (5 * 100))
    want_qzd = np.log(dens.sum(1) / (5 * 100))
    np.testing.assert_allclose(log_qz, want_qz, rtol=1e-5)
    np.testing.assert_allclose(log_qzd, want_qzd, rtol=1e-5)


def _posterior_batch(seed, mean_cov, std, m=512):
    rng = np.random.default_rng(seed)
    d = len(mean_cov)
    means = rng.multivariate_normal(np.zeros(d), mean_cov, size=m)
    z = means + std * rng.normal(size=means.shape)
    log_var = np.full_like(means, 2 * math.log(std))
    return tuple(jnp.asarray(a, jnp.float32) for a in (z, means, log_var))


def test_tc_estimate_near_zero_for_independent_and_positive_for_correlated_latents():
    z, mean, log_var = _posterior_batch(0, np.eye(3), 0.5)
    assert abs(float(latent.total_correlation(z, mean, log_var))) < 0.05
    # Aggregate posterior ~ N(0, C + 0.09 I) with correlation 0.95 / 1.09: TC = -log(1-r^2)/2.
    z, mean, log_var = _posterior_batch(1, np.array([[1.0, 0.95], [0.95, 1.0]]), 0.3)
    r = 0.95 / 1.09
    tc = float(latent.total_correlation(z, mean, log_var))
    assert tc == pytest.approx(-0.5 * math.log(1 - r**2), abs=0.15)
    # Chen et al.'s log(N M) constant shifts the estimate by (D - 1) log N, nothing else.
    shifted = float(latent.total_correlation(z, mean, log_var, dataset_size=737280))
    assert shifted - tc == pytest.approx(math.log(737280), rel=1e-4)


def test_kl_decomposition_sums_to_the_sampled_kl():
    z, mean, log_var = _posterior_batch(2, np.array([[1.0, 0.6], [0.6, 1.0]]), 0.4)
    parts = {k: float(v) for k, v in latent.kl_decomposition(z, mean, log_var).items()}
    total = parts["mutual_info"] + parts["total_correlation"] + parts["dimwise_kl"]
    assert total == pytest.approx(parts["sampled_kl"], abs=1e-3)
    closed = float(jnp.mean(latent.gaussian_kl_standard(mean, log_var)))
    assert parts["sampled_kl"] == pytest.approx(closed, abs=0.15)
    # Index-code MI is at most log M for the minibatch estimate.
    assert 0 < parts["mutual_info"] <= math.log(512) + 1e-4


def test_factor_vae_density_ratio_and_discriminator_loss():
    logits = jnp.array([[2.0, 0.0], [0.0, 1.0]])
    assert float(latent.density_ratio_tc(logits)) == pytest.approx(0.5)
    perm = jnp.array([[0.0, 3.0], [1.0, 1.0]])
    ls = lambda a: a - np.log(np.exp(a).sum(-1, keepdims=True))  # noqa: E731
    want = -0.5 * ls(np.asarray(logits))[:, 0].mean() - 0.5 * ls(np.asarray(perm))[:, 1].mean()
    assert float(latent.tc_discriminator_loss(logits, perm)) == pytest.approx(want, rel=1e-6)


# ---------------------------------------------------------------------------
# Objectives through the generic step
# ---------------------------------------------------------------------------


# Longest reduction of a step: the Bernoulli log-likelihood over the 16 images' 64 x 64 pixels
# (tolerances: tests/tolerances.py).
N_TERMS = 16 * 64 * 64
FACTS = facts_from_spec(get_dataset_spec("dsprites"))
LATENT = ("autoencoder", "vae", "beta_vae", "factor_vae", "beta_tcvae")
# Per objective: the keys that differ from its defaults in the tiny runs.
TINY = {
    "vae": dict(beta=2.0),
    "factor_vae": dict(gamma=5.0, disc_hidden=(16, 16)),
    "beta_tcvae": {},
}


def tiny_latent_config(name, **objective):
    """Locatello et al.'s layout shrunk to compile fast: 64x64 images, two stride-4 layers
    each way, 3 latents."""
    c = config_base.dsprites_locatello(config_base.base_config())
    c.batch_size = 16
    c.model.encoder_kwargs.update(
        dict(widths=(4, 4), kernel_sizes=(4, 4), strides=(4, 4), hidden=16, latent_dim=3)
    )
    c.model.vae_decoder.update(dict(hidden=16, start_shape=(4, 4, 4), widths=(4,), stride=4))
    c.model.conv_batch_chunk = 0
    c.optimizer.base_learning_rate = 1e-3
    c.objective = ml_collections.ConfigDict(dict(name=name, **objective))
    return c


def dsprites_like_batch(n=16, seed=0):
    from ssljax.data import dsprites

    idx = np.random.default_rng(seed).integers(0, dsprites.NUM_IMAGES, n)
    return {
        "image": dsprites.render_images(idx) * np.uint8(255),
        "label": np.zeros((n,), np.int32),
        "index": np.arange(n, dtype=np.int32),
    }


def run_step(config, devices, batch, init, steps=1):
    setup = build_setup(config, FACTS)
    mesh = parallel.make_mesh(devices)
    state = parallel.replicate_on_mesh(init, mesh)
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
    history = []
    for _ in range(steps):
        state, metrics = step(state, parallel.batch_to_global(local, mesh))
        history.append(jax.device_get(metrics))
    return jax.device_get(state), history


@pytest.fixture(scope="module")
def runs():
    """``{name: (state8, metrics8, state1, metrics1, config, initial state)}``, once per name."""
    cache = {}

    def get(name):
        if name not in cache:
            config = tiny_latent_config(name, **TINY[name])
            batch = dsprites_like_batch()
            init = jax.device_get(initial_state(config, build_setup(config, FACTS)))
            s8, m8 = run_step(config, jax.devices(), batch, init)
            s1, m1 = run_step(config, jax.devices()[:1], batch, init)
            cache[name] = (s8, m8, s1, m1, config, init)
        return cache[name]

    return get


@pytest.mark.parametrize("name", ["vae", "factor_vae", "beta_tcvae"])
def test_eight_devices_equal_one_device(runs, name):
    s8, m8, s1, m1, config, init = runs(name)
    first_pass = f32_steps_rtol(N_TERMS, steps=0)
    for a, b in zip(m8, m1):
        assert bool(a["finite"]) and bool(b["finite"])
        for key in ("loss", "reconstruction", "kl"):
            assert_close(a[key], b[key], rtol=first_pass)
        if name != "vae":
            # A difference of log-densities of O(1) terms: its rounding scales with 1.
            assert_close(
                a["total_correlation"], b["total_correlation"], rtol=first_pass, atol=first_pass
            )
    assert_updates_close(s8.params, s1.params, init.params, rtol=f32_steps_rtol(N_TERMS, 1))
    changed = [
        not np.allclose(a, b)
        for a, b in zip(jax.tree.leaves(init.params), jax.tree.leaves(s8.params))
    ]
    # Every parameter (encoder, decoder and FactorVAE's discriminator) receives a gradient.
    assert all(changed)
    # The keys come from the step (LossContext.shared_rng): no objective state at all.
    assert init.extra == {} and s8.extra == {}
    assert ("discriminator" in init.params) == (name == "factor_vae")


def test_vae_loss_is_reconstruction_plus_beta_kl(runs):
    _, _, _, (m,), _, _ = runs("vae")
    assert float(m["loss"]) == pytest.approx(float(m["reconstruction"] + 2.0 * m["kl"]), rel=1e-5)
    assert float(m["elbo"]) == pytest.approx(-float(m["reconstruction"] + m["kl"]), rel=1e-5)
    # Bernoulli reconstruction of 64x64 binary images: about 4096 log 2 nats at the start.
    assert 1000 < float(m["reconstruction"]) < 4096


def loss_context(setup, shared_rng):
    return LossContext(
        model=setup.eval_model,
        state=None,
        batch={},
        axis_name=None,
        run=setup.run,
        shared_rng=shared_rng,
    )


def factor_vae_by_hand(setup, params, x, shared_rng):
    """FactorVAE's two losses from the pure terms: ``main(vae params)`` with the
    discriminator fixed, and ``disc(discriminator params)`` on the latents and their
    dimension-permuted copies."""
    model, obj = setup.eval_model, setup.objective
    disc = obj.discriminator()
    noise_key, permutation_key = jax.random.split(shared_rng)
    vae_params = {k: v for k, v in params.items() if k != "discriminator"}

    def sample(p):
        mean, log_var = model.apply({"params": p}, x, train=False, method="encode")
        z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(noise_key, mean.shape)
        return mean, log_var, z

    def main(p):
        mean, log_var, z = sample(p)
        logits = model.apply({"params": p}, z, train=False, method="decode")
        rec = -latent.bernoulli_log_likelihood(x, logits)
        kl = latent.gaussian_kl_standard(mean, log_var)
        tc = latent.density_ratio_tc(disc.apply({"params": params["discriminator"]}, z))
        return jnp.mean(rec + kl) + obj.gamma * tc

    z = sample(vae_params)[2]
    z_perm = latent.permute_dims(permutation_key, z)

    def disc_loss(p):
        return latent.tc_discriminator_loss(
            disc.apply({"params": p}, z), disc.apply({"params": p}, z_perm)
        )

    return main, disc_loss, vae_params


def test_factor_vae_gradient_splits_by_parameter_group():
    """One gradient of the objective's loss: the VAE gets the main loss's gradient alone (the
    discriminator's loss sees the latents under stop_gradient), the discriminator its own
    loss's gradient alone (the main loss sees its parameters under stop_gradient)."""
    config = tiny_latent_config("factor_vae", **TINY["factor_vae"])
    setup = build_setup(config, FACTS)
    params = initial_state(config, setup).params
    (x,) = setup.objective.make_views(None, jnp.asarray(dsprites_like_batch(8)["image"]), setup.run)
    shared_rng = jax.random.PRNGKey(7)
    ctx = loss_context(setup, shared_rng)
    (total, aux), grads = jax.jit(
        jax.value_and_grad(
            lambda p: setup.objective.loss(p, {}, (x,), jax.random.PRNGKey(0), ctx), has_aux=True
        )
    )(params)
    main, disc_loss, vae_params = factor_vae_by_hand(setup, params, x, shared_rng)
    main, disc_loss = jax.jit(main), jax.jit(disc_loss)  # compiled: eager ops are slow here
    rtol = f32_reorder_rtol(8 * 64 * 64)
    assert_close(aux.metrics["loss"], main(vae_params), rtol=rtol)
    assert_close(aux.metrics["disc_loss"], disc_loss(params["discriminator"]), rtol=rtol)
    assert_close(total, aux.metrics["loss"] + aux.metrics["disc_loss"], rtol=1e-6)
    assert_trees_close(
        {k: v for k, v in grads.items() if k != "discriminator"},
        jax.grad(main)(vae_params),
        rtol=rtol,
    )
    # The logits' bias gradient is a difference of mean softmax probabilities of O(1): its
    # rounding scales with 1, not with the (small) difference.
    assert_trees_close(
        grads["discriminator"], jax.grad(disc_loss)(params["discriminator"]), rtol=rtol, atol=rtol
    )


def test_factor_vae_step_moves_the_discriminator_by_one_adam_step(runs):
    """The run's one optimizer (multi_transform) gives the discriminator one step of its own
    Adam(1e-4, 0.5, 0.9) on its loss's gradient, computed here independently."""
    s8, _, s1, (m1,), config, init = runs("factor_vae")
    setup = build_setup(config, FACTS)
    (x,) = setup.objective.make_views(None, jnp.asarray(dsprites_like_batch()["image"]), setup.run)
    _, disc_loss, _ = factor_vae_by_hand(
        setup, init.params, x, shared_step_rng(init.rng, jnp.asarray(0))
    )
    start = init.params["discriminator"]
    value, grads = jax.value_and_grad(disc_loss)(start)
    one_step = f32_steps_rtol(N_TERMS, 1)
    assert_close(m1["disc_loss"], value, rtol=f32_steps_rtol(N_TERMS, 0))
    tx = optax.adam(1e-4, b1=0.5, b2=0.9)
    updates, _ = tx.update(grads, tx.init(start))
    want = optax.apply_updates(start, updates)
    assert_updates_close(s1.params["discriminator"], want, start, rtol=one_step)
    assert_updates_close(s8.params["discriminator"], want, start, rtol=one_step)


def test_latent_noise_comes_from_the_shared_key():
    """The loss ignores the per-device key: the latent noise is drawn from ctx.shared_rng."""
    config = tiny_latent_config("vae")
    setup = build_setup(config, FACTS)
    params = initial_state(config, setup).params
    views = setup.objective.make_views(
        None, jnp.asarray(dsprites_like_batch(4)["image"]), setup.run
    )

    def loss(rng, shared_rng):
        return setup.objective.loss(params, {}, views, rng, loss_context(setup, shared_rng))[0]

    a = loss(jax.random.PRNGKey(0), jax.random.PRNGKey(5))
    assert float(loss(jax.random.PRNGKey(1), jax.random.PRNGKey(5))) == float(a)
    assert float(loss(jax.random.PRNGKey(0), jax.random.PRNGKey(6))) != float(a)
    with pytest.raises(ValueError, match="objective 'vae' needs LossContext.shared_rng"):
        loss(jax.random.PRNGKey(0), None)


# ---------------------------------------------------------------------------
# Hyperparameters and checks
# ---------------------------------------------------------------------------


def test_every_latent_objective_is_registered():
    for name in LATENT:
        assert objectives.get(name).name == name
    assert objectives.get("beta_vae").hyperparameter_names() == [
        "likelihood",
        "gaussian_std",
        "beta",
    ]
    with pytest.raises(ValueError, match="unknown objective 'denoising_ae'"):
        objectives.get("denoising_ae")  # merged into denoising_autoencoder


def test_defaults_are_the_config_setters():
    assert objectives.FactorVAE().gamma == 30.0
    assert objectives.BetaTCVAE().beta == 6.0
    assert objectives.VAE().beta == objectives.BetaVAE().beta == 1.0
    assert objectives.FactorVAE().disc_hidden == (1000,) * 6
    assert objectives.Autoencoder().gaussian_std == math.sqrt(0.5)


@pytest.mark.parametrize("name", LATENT)
def test_unknown_key_names_the_valid_ones(name):
    valid = ", ".join(objectives.get(name).hyperparameter_names())
    with pytest.raises(ValueError) as err:
        objectives.build({"name": name, "bta": 4.0})
    assert str(err.value) == (
        f"unknown key objective.bta for objective {name!r}; valid keys: {valid}"
    )


@pytest.mark.parametrize("name", LATENT)
def test_old_configs_objectives_load_with_the_same_values(name):
    """Every objective the configs stored before the typed objectives loads with its class and
    the same values."""
    old = json.load(open(Path(__file__).parents[1] / "data" / "configs_before_redesign.json"))
    stored = [c["objective"] for c in old.values() if c["objective"]["name"] == name]
    assert stored
    for objective in stored:
        built = objectives.build(objective)
        assert type(built) is objectives.get(name)
        values = built.hyperparameters()
        for key, value in objective.items():
            assert values[key] == (tuple(value) if isinstance(value, list) else value), key


@pytest.mark.parametrize(
    "name, edit, message",
    [
        (
            "vae",
            lambda c: c.objective.__setitem__("likelihood", "poisson"),
            r"unknown objective.likelihood 'poisson'; choose one of \['bernoulli', 'gaussian'\]",
        ),
        (
            "vae",
            lambda c: c.objective.__setitem__("beta", -1.0),
            r"objective.beta=-1 is invalid; valid: 0.0 <= beta",
        ),
        (
            "beta_tcvae",
            lambda c: c.objective.__setitem__("gaussian_std", 0.0),
            r"objective.gaussian_std=0 is invalid; valid: 0.0 < gaussian_std",
        ),
        (
            "factor_vae",
            lambda c: c.objective.__setitem__("disc_beta1", 1.0),
            r"objective.disc_beta1=1 is invalid; valid: 0.0 <= disc_beta1 < 1.0",
        ),
        (
            "factor_vae",
            lambda c: c.objective.__setitem__("disc_hidden", (16, 0)),
            r"objective.disc_hidden=0 is invalid; valid: an integer >= 1",
        ),
        (
            "factor_vae",
            lambda c: c.__setitem__("batch_size", 1),
            r"batch_size=1 is invalid for factor_vae; valid: >= 2",
        ),
        (
            "vae",
            lambda c: c.model.__setitem__("encoder", "convnet"),
            r"objective 'vae' needs a Gaussian encoder; model.encoder='convnet' is invalid; choose "
            r"one of \['vae_conv'\]",
        ),
        (
            "autoencoder",
            lambda c: c.model.vae_decoder.__setitem__("start_shape", (2, 2, 4)),
            r"decodes \(32, 32\) images, but the 'dsprites' views are \(64, 64\)",
        ),
    ],
)
def test_bad_settings_fail_with_one_line(name, edit, message):
    config = tiny_latent_config(name)
    with config.ignore_type():
        edit(config)
    with pytest.raises(ValueError, match=message) as err:
        build_setup(config, FACTS)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------
# The autoencoders (denoising: the latent-code network of 'denoising_autoencoder')
# ---------------------------------------------------------------------------


def stored_denoising_ae_config():
    """The stored dSprites config of the retired 'denoising_ae' (now built as
    'denoising_autoencoder'), shrunk like the others."""
    old = json.load(open(Path(__file__).parents[1] / "data" / "configs_before_redesign.json"))
    return tiny_latent_config(**old["denoising_ae_dsprites"]["objective"])


def test_autoencoders_decode_the_mean_of_the_corrupted_input():
    """AE: loss = -log p(x | decode(mean(x))); DAE (the stored 'denoising_ae' settings, masking
    noise): the same from the masked input with the clean target, on the same network."""
    config = stored_denoising_ae_config()
    config.objective.drop_prob = 0.5
    setup = build_setup(config, FACTS)
    from ssljax.models.vae import VAENetwork

    assert type(setup.objective) is objectives.DenoisingAutoencoder
    assert isinstance(setup.eval_model, VAENetwork)
    model = setup.eval_model
    ae = objectives.Autoencoder()
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 1)), train=False)["params"]
    images = jnp.asarray(dsprites_like_batch(4)["image"])

    def losses(params):
        rng = jax.random.PRNGKey(1)
        ctx = loss_context(setup, None)
        noisy, clean, corrupted = setup.objective.make_views(rng, images, setup.run)
        dae, _ = setup.objective.loss(params, {}, (noisy, clean, corrupted), rng, ctx)
        plain, _ = ae.loss(params, {}, (clean,), rng, ctx)

        def by_hand(x_in):
            mean, _ = model.apply({"params": params}, x_in, train=False, method="encode")
            logits = model.apply({"params": params}, mean, train=False, method="decode")
            return -jnp.mean(latent.bernoulli_log_likelihood(clean, logits))

        return dae, plain, by_hand(noisy), by_hand(clean), noisy, clean, corrupted

    dae, plain, dae_hand, ae_hand, noisy, clean, corrupted = jax.jit(losses)(params)
    np.testing.assert_allclose(plain, ae_hand, rtol=1e-5)
    np.testing.assert_allclose(dae, dae_hand, rtol=1e-5)
    np.testing.assert_array_equal(clean, images / 255.0)
    kept = float(noisy.sum() / clean.sum())
    assert 0.35 < kept < 0.65 and bool(jnp.all(noisy <= clean))  # masking only removes pixels
    np.testing.assert_array_equal(noisy, clean * (1 - corrupted))


def test_latent_denoising_weights_corrupted_and_clean_pixels():
    """Emphasised denoising on the latent code: each pixel's -log p term weighted by
    ``corrupted_weight`` where the noise hit it, else ``clean_weight``."""
    config = stored_denoising_ae_config()
    config.objective.update(dict(corrupted_weight=2.0, clean_weight=0.5, likelihood="gaussian"))
    setup = build_setup(config, FACTS)
    model = setup.eval_model
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 1)), train=False)["params"]
    images = jnp.asarray(dsprites_like_batch(4)["image"])
    views = setup.objective.make_views(jax.random.PRNGKey(2), images, setup.run)
    got, aux = setup.objective.loss(params, {}, views, None, loss_context(setup, None))
    _, clean, corrupted = (np.asarray(v, np.float64) for v in views)
    mean, _ = model.apply({"params": params}, views[0], train=False, method="encode")
    decoded = np.asarray(
        model.apply({"params": params}, mean, train=False, method="decode"), np.float64
    )
    mu = 1 / (1 + np.exp(-decoded))
    nll = -scipy.stats.norm.logpdf(clean, mu, math.sqrt(0.5))
    w = np.where(corrupted > 0, 2.0, 0.5)
    np.testing.assert_allclose(got, np.mean(np.sum(w * nll, axis=(1, 2, 3))), rtol=1e-5)
    assert float(aux.metrics["reconstruction"]) == float(got)
