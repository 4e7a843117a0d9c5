"""The latent-variable objectives: ELBO terms against closed forms and float64 numpy, Monte-Carlo
checks of the KL, the total-correlation estimators, and the records through the generic step
(8 devices == 1 device)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from configs import methods as method_configs
from configs import vae_dsprites
from ssljax import objectives, parallel
from ssljax.objectives import latent
from ssljax.training.loop import build_setup, initial_state, validate_config
from ssljax.training.step import make_train_step, shard_map_driver
from tests.tolerances import assert_close, assert_updates_close, f32_steps_rtol


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
    got = latent.bernoulli_log_likelihood(jnp.asarray(x, jnp.float32),
                                          jnp.asarray(logits, jnp.float32))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # Saturated logits stay finite (no log(0)).
    big = latent.bernoulli_log_likelihood(jnp.zeros((1, 2)), jnp.array([[200.0, -200.0]]))
    np.testing.assert_allclose(big, [-200.0], rtol=1e-6)


def test_gaussian_log_likelihood_matches_scipy():
    rng = np.random.default_rng(4)
    x, mean = rng.random((2, 5, 5, 1)), rng.random((2, 5, 5, 1))
    std = 0.7
    want = scipy.stats.norm.logpdf(x, mean, std).sum(axis=(1, 2, 3))
    got = latent.gaussian_log_likelihood(jnp.asarray(x, jnp.float32),
                                         jnp.asarray(mean, jnp.float32), 2 * math.log(std))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # The 'gaussian' likelihood with variance 1/2 is minus the summed squared error + const.
    logits = rng.normal(size=x.shape)
    ll = latent.reconstruction_log_likelihood(jnp.asarray(x, jnp.float32),
                                              jnp.asarray(logits, jnp.float32),
                                              likelihood="gaussian")
    sq = np.sum((x - 1 / (1 + np.exp(-logits))) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(ll, -sq - 0.5 * x[0].size * math.log(math.pi), rtol=1e-5)
    with pytest.raises(ValueError, match="likelihood='poisson' is invalid"):
        latent.reconstruction_log_likelihood(x, logits, likelihood="poisson")


# ---------------------------------------------------------------------------
# Monte Carlo
# ---------------------------------------------------------------------------


def test_monte_carlo_kl_agrees_with_closed_form():
    """E_q[log q(z) - log p(z)] from reparameterised samples vs the closed forms."""
    mq = jnp.array([[0.5, -1.0, 2.0]])
    lq = jnp.array([[-1.0, 0.3, 0.0]])
    mp = jnp.array([[0.0, 0.5, 1.0]])
    lp = jnp.array([[0.2, -0.5, 0.4]])
    n = 200_000
    z = latent.reparameterize(jax.random.PRNGKey(0), jnp.broadcast_to(mq, (n, 3)),
                              jnp.broadcast_to(lq, (n, 3)))
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
    g_mean, g_lv = jax.grad(lambda m, v: jnp.sum(latent.reparameterize(rng, m, v)),
                            argnums=(0, 1))(mean, log_var)
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
        jnp.asarray(z, jnp.float32), jnp.asarray(mean, jnp.float32),
        jnp.asarray(log_var, jnp.float32), dataset_size=100)
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
# Records through the generic step
# ---------------------------------------------------------------------------


# Longest reduction of a step: the Bernoulli log-likelihood over the 16 images' 64 x 64 pixels
# (tolerances: tests/tolerances.py).
N_TERMS = 16 * 64 * 64


def tiny_latent_config(name):
    """Locatello et al.'s layout shrunk to compile fast: 64x64 images, two stride-4 layers
    each way, 3 latents."""
    c = vae_dsprites.dsprites_base()
    c.batch_size = 16
    c.model.encoder_kwargs.widths = (4, 4)
    c.model.encoder_kwargs.kernel_sizes = (4, 4)
    c.model.encoder_kwargs.strides = (4, 4)
    c.model.encoder_kwargs.hidden = 16
    c.model.encoder_kwargs.latent_dim = 3
    c.model.vae_decoder.hidden = 16
    c.model.vae_decoder.start_shape = (4, 4, 4)
    c.model.vae_decoder.widths = (4,)
    c.model.vae_decoder.stride = 4
    c.model.conv_batch_chunk = 0
    c.optimizer.base_learning_rate = 1e-3
    setters = {
        "vae": lambda: method_configs.vae(c, beta=2.0),
        "factor_vae": lambda: method_configs.factor_vae(c, gamma=5.0, disc_hidden=(16, 16)),
        "beta_tcvae": lambda: method_configs.beta_tcvae(c, beta=6.0),
    }
    return setters[name]()


def dsprites_like_batch(n=16, seed=0):
    from ssljax.data import dsprites

    idx = np.random.default_rng(seed).integers(0, dsprites.NUM_IMAGES, n)
    return {"image": dsprites.render_images(idx) * np.uint8(255),
            "label": np.zeros((n,), np.int32), "index": np.arange(n, dtype=np.int32)}


def run_step(config, devices, batch, init, steps=1):
    setup = build_setup(config)
    mesh = parallel.make_mesh(devices)
    state = parallel.replicate_on_mesh(init, mesh)
    step = shard_map_driver(make_train_step(objective=setup.objective, model=setup.train_model,
                                            tx=setup.tx, config=config), mesh)
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
            config = tiny_latent_config(name)
            validate_config(config)
            batch = dsprites_like_batch()
            init = jax.device_get(initial_state(config, build_setup(config)))
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
            assert_close(a["total_correlation"], b["total_correlation"], rtol=first_pass,
                         atol=first_pass)
    assert_updates_close(s8.params, s1.params, init.params, rtol=f32_steps_rtol(N_TERMS, 1))
    assert_updates_close(s8.extra, s1.extra, init.extra, rtol=f32_steps_rtol(N_TERMS, 1))
    changed = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(init.params),
                                                     jax.tree.leaves(s8.params))]
    assert all(changed)  # every parameter (encoder, decoder) receives a gradient
    assert not np.array_equal(init.extra["noise_key"], s8.extra["noise_key"])
    if name == "factor_vae":
        # The discriminator stepped in the same update; a new permutation key for next time.
        moved = [not np.allclose(a, b) for a, b in zip(
            jax.tree.leaves(init.extra["disc_params"]), jax.tree.leaves(s8.extra["disc_params"]))]
        assert all(moved)
        assert not np.array_equal(init.extra["permutation_key"], s8.extra["permutation_key"])


def test_vae_loss_is_reconstruction_plus_beta_kl(runs):
    _, _, _, (m,), _, _ = runs("vae")
    assert float(m["loss"]) == pytest.approx(float(m["reconstruction"] + 2.0 * m["kl"]), rel=1e-5)
    assert float(m["elbo"]) == pytest.approx(-float(m["reconstruction"] + m["kl"]), rel=1e-5)
    # Bernoulli reconstruction of 64x64 binary images: about 4096 log 2 nats at the start.
    assert 1000 < float(m["reconstruction"]) < 4096


def test_every_latent_objective_is_registered():
    for name in ("autoencoder", "denoising_ae", "vae", "beta_vae", "factor_vae", "beta_tcvae"):
        assert objectives.get(name).name == name
    assert objectives.get("factor_vae").update_extra is not None


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.objective.__setitem__("likelihood", "poisson"), "likelihood='poisson'"),
    (lambda c: c.objective.__setitem__("beta", -1.0), "objective.beta=-1.0 is invalid"),
    (lambda c: c.model.__setitem__("encoder", "convnet"), "needs a Gaussian encoder"),
    (lambda c: c.model.vae_decoder.__setitem__("start_shape", (2, 2, 4)),
     r"decodes \(32, 32\) images"),
])
def test_bad_settings_fail_with_one_line(edit, message):
    config = tiny_latent_config("vae")
    edit(config)
    with pytest.raises(ValueError, match=message) as err:
        validate_config(config)
    assert "\n" not in str(err.value)


def test_factor_vae_and_denoising_settings_are_checked():
    config = tiny_latent_config("factor_vae")
    config.objective.disc_beta1 = 1.0
    with pytest.raises(ValueError, match="disc_beta1=1.0 is invalid"):
        validate_config(config)
    config = tiny_latent_config("vae")
    method_configs.denoising_ae(config, drop_prob=1.5)
    with pytest.raises(ValueError, match="drop_prob=1.5 is invalid"):
        validate_config(config)


def test_autoencoders_decode_the_mean_of_the_corrupted_input():
    """AE: loss = -log p(x | decode(mean(x))); DAE: the same from the masked input, clean target."""
    config = tiny_latent_config("vae")
    method_configs.denoising_ae(config, drop_prob=0.5)
    setup = build_setup(config)
    model = setup.eval_model
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 1)), train=False)["params"]
    images = jnp.asarray(dsprites_like_batch(4)["image"])

    def losses(params):
        rng = jax.random.PRNGKey(1)
        noisy, clean = latent.corrupted_views(rng, images, config)
        dae, _ = objectives.get("denoising_ae").loss(params, {}, (noisy, clean), rng,
                                                      model=model, config=config)
        ae, _ = objectives.get("autoencoder").loss(params, {}, (clean,), rng, model=model,
                                                   config=config)
        def by_hand(x_in):
            mean, _ = model.apply({"params": params}, x_in, train=False, method="encode")
            logits = model.apply({"params": params}, mean, train=False, method="decode")
            return -jnp.mean(latent.bernoulli_log_likelihood(clean, logits))
        return dae, ae, by_hand(noisy), by_hand(clean), noisy, clean

    dae, ae, dae_hand, ae_hand, noisy, clean = jax.jit(losses)(params)
    np.testing.assert_allclose(ae, ae_hand, rtol=1e-5)
    np.testing.assert_allclose(dae, dae_hand, rtol=1e-5)
    np.testing.assert_array_equal(clean, images / 255.0)
    kept = float(noisy.sum() / clean.sum())
    assert 0.35 < kept < 0.65 and bool(jnp.all(noisy <= clean))  # masking only removes pixels
