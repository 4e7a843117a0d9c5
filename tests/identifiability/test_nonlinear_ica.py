"""Nonlinear ICA with segments: the generative process, TCL and the iVAE."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from ssljax.identifiability import fit as fit_lib
from ssljax.identifiability import mixing
from ssljax.identifiability import nonlinear_ica as nica
from ssljax.identifiability.metrics import mean_correlation_coefficient
from ssljax.objectives.base import DatasetFacts, LossContext, Run

EPS32 = float(np.finfo(np.float32).eps)


# ---------------------------------------------------------------------------------------
# Generative process
# ---------------------------------------------------------------------------------------


def test_dataset_observations_invert_to_its_sources():
    data, m = nica.tcl_dataset(jax.random.PRNGKey(3), 4, 50, 3, 3, with_mixing=True)
    assert data["image"].shape == data["source"].shape == (200, 3)
    np.testing.assert_array_equal(data["segment"], np.repeat(np.arange(4), 50))
    back = mixing.invert_mixing(m, data["image"])
    # As in the mixing test: a few float32 ulps per layer times the condition number (<= 4 D).
    scale = float(np.max(np.abs(data["source"])))
    np.testing.assert_allclose(back, data["source"], atol=50 * 3 * 12 * EPS32 * scale)


@pytest.mark.parametrize("density, fourth_moment", [("laplace", 6.0), ("gaussian", 3.0)])
def test_segment_conditionals_have_the_drawn_scales_and_means(density, fourth_moment):
    n_seg, per, dim, lo, hi = 12, 2000, 3, 0.5, 3.0
    s, u, scale, mean = nica.segmented_sources(
        jax.random.PRNGKey(0),
        n_segments=n_seg,
        points_per_segment=per,
        dim=dim,
        density=density,
        scale_range=(lo, hi),
        mean_range=2.0,
        return_parameters=True,
    )
    assert s.shape == (n_seg * per, dim) and scale.shape == mean.shape == (n_seg, dim)
    # Balanced, contiguous segments.
    np.testing.assert_array_equal(np.bincount(u), np.full(n_seg, per))
    assert np.all(np.diff(u) >= 0)
    assert np.all((scale >= lo * (1 - 1e-6)) & (scale <= hi * (1 + 1e-6)))
    assert np.all(np.abs(mean) <= 2.0)
    cells = s.reshape(n_seg, per, dim)
    # Sample mean: standard error scale / sqrt(n); sample variance / scale^2: standard error
    # sqrt((m4 - 1) / n) with m4 the standardised fourth moment. 6 standard errors over 36
    # cells: a miss has probability below 1e-7 under the normal approximation.
    mean_err = np.abs(cells.mean(axis=1) - mean) / (scale / math.sqrt(per))
    assert np.max(mean_err) < 6.0, np.max(mean_err)
    ratio = cells.var(axis=1) / scale**2
    var_err = np.abs(ratio - 1.0) / math.sqrt((fourth_moment - 1.0) / per)
    assert np.max(var_err) < 6.0, np.max(var_err)
    # The standardised draws follow the named unit-variance density.
    e = ((cells - mean[:, None]) / scale[:, None]).ravel()
    ref = stats.laplace(scale=1 / math.sqrt(2)) if density == "laplace" else stats.norm()
    assert stats.kstest(e, ref.cdf).pvalue > 1e-3


def test_log_scales_are_uniform_on_the_log_range():
    _, _, scale, mean = nica.segmented_sources(
        jax.random.PRNGKey(1),
        n_segments=500,
        points_per_segment=1,
        dim=4,
        scale_range=(0.1, 1.0),
        return_parameters=True,
    )
    np.testing.assert_array_equal(mean, 0.0)
    u01 = (np.log(scale).ravel() - math.log(0.1)) / (math.log(1.0) - math.log(0.1))
    assert stats.kstest(u01, "uniform").pvalue > 1e-3


def test_bad_input_is_one_line():
    key = jax.random.PRNGKey(0)
    cases = [
        (
            lambda: nica.segmented_sources(
                key, n_segments=2, points_per_segment=3, dim=2, density="cauchy"
            ),
            r"density='cauchy' is unknown; valid: laplace, gaussian",
        ),
        (
            lambda: nica.segmented_sources(key, n_segments=0, points_per_segment=3, dim=2),
            r"n_segments=0 is invalid; valid: an integer >= 1",
        ),
        (lambda: nica.tcl_dataset(key, -2, 3, 2, 1), r"n_segments=-2 is invalid"),
        (
            lambda: nica.segmented_sources(
                key, n_segments=2, points_per_segment=3, dim=2, scale_range=(0.0, 1.0)
            ),
            r"scale_range=\(0.0, 1.0\) is invalid",
        ),
        (
            lambda: nica.TCL(feature_nonlinearity="tanh"),
            r"feature_nonlinearity 'tanh'; choose one of \['abs', 'square'\]",
        ),
        (
            lambda: nica.TCL(activation="relu"),
            r"activation 'relu'; choose one of \['maxout', 'leaky_relu', 'xtanh'\]",
        ),
        (lambda: nica.TCL(num_segments=0), r"objective.num_segments=0 is invalid"),
        (lambda: nica.IVAE(num_segments=0), r"objective.num_segments=0 is invalid"),
        (lambda: nica.IVAE(prior="cauchy"), r"prior 'cauchy'; choose one of"),
        (lambda: nica.tcl_study(segments=(0,), depths=(1,)), r"n_segments=0 is invalid"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            call()
        assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------
# TCL
# ---------------------------------------------------------------------------------------


def test_tcl_network_shapes():
    objective = nica.TCL(num_segments=6, hidden_dims=(8, 8), maxout_k=3)
    model = objective.network(4)
    x = jax.random.normal(jax.random.PRNGKey(0), (7, 4))
    params = jax.jit(model.init)(jax.random.PRNGKey(1), x[:1])["params"]
    out = jax.jit(model.apply)({"params": params}, x)
    assert out["features"].shape == (7, 4) and out["logits"].shape == (7, 6)
    assert bool(jnp.all(out["features"] >= 0))  # abs() features
    # Maxout: 3 affine pieces under each of the 8 units.
    assert params["features"]["hidden1"]["kernel"].shape == (4, 24)
    assert params["features"]["hidden2"]["kernel"].shape == (8, 24)
    assert params["classifier"]["kernel"].shape == (4, 6)
    np.testing.assert_allclose(nica.tcl_features(objective, params, x), out["features"])


@pytest.fixture(scope="module")
def tcl_linear_fit():
    """TCL on a linear mixing (depth 1) of 3 Laplace sources in 32 segments."""
    n_seg, dim = 32, 3
    data = nica.tcl_dataset(jax.random.PRNGKey(0), n_seg, 128, dim, 1)
    x = nica.whiten(data["image"])
    objective = nica.TCL(num_segments=n_seg, hidden_dims=())
    result = fit_lib.fit(
        objective,
        {"image": x, "segment": data["segment"]},
        steps=400,
        batch_size=256,
        learning_rate=1e-2,
        max_devices=2,
    )
    return objective, result, x, data


def test_tcl_cross_entropy_falls_below_chance(tcl_linear_fit):
    objective, result, _, _ = tcl_linear_fit
    chance = math.log(objective.num_segments)
    # The last 40 batches of 256: the mean cross-entropy has a standard error near
    # 1 / sqrt(40 * 256) ~ 0.01, so 0.2 below chance is far outside noise.
    assert float(np.mean(result.losses[-40:])) < chance - 0.2
    assert np.all(np.isfinite(result.losses))


def test_tcl_features_recover_abs_sources_on_a_linear_mixing(tcl_linear_fit):
    objective, result, x, data = tcl_linear_fit
    target = np.abs(data["source"])
    trained = mean_correlation_coefficient(nica.tcl_features(objective, result.params, x), target)
    init = jax.jit(objective.network(x.shape[1]).init)(jax.random.PRNGKey(1), x[:1])["params"]
    untrained = mean_correlation_coefficient(nica.tcl_features(objective, init, x), target)
    assert trained > 0.9 and trained > untrained + 0.1, (trained, untrained)
    scores = nica.tcl_mcc(nica.tcl_features(objective, result.params, x), data["source"])
    assert scores["mcc"] == pytest.approx(trained)
    assert 0.0 <= scores["mcc_ica"] <= 1.0


# ---------------------------------------------------------------------------------------
# iVAE
# ---------------------------------------------------------------------------------------


def _hand_params(objective, data_dim, seed=0):
    """The network's parameters with every leaf replaced by fixed draws (scale 0.5)."""
    model = objective.network(data_dim)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, data_dim)))["params"]
    rng = np.random.default_rng(seed)
    return model, jax.tree.map(
        lambda p: jnp.asarray(0.5 * rng.standard_normal(p.shape), jnp.float32), params
    )


def _np_mlp(p, x, slope):
    h = x
    names = sorted(k for k in p if k.startswith("hidden"))
    for name in names:
        h = h @ np.asarray(p[name]["kernel"], np.float64) + np.asarray(p[name]["bias"])
        h = np.where(h >= 0, h, slope * h)
    return h @ np.asarray(p["output"]["kernel"], np.float64) + np.asarray(p["output"]["bias"])


@pytest.mark.parametrize("prior", ["gaussian", "laplace"])
def test_ivae_negative_elbo_matches_an_independent_computation(prior):
    objective = nica.IVAE(num_segments=3, latent_dim=2, hidden_dims=(4,), prior=prior)
    model, params = _hand_params(objective, 3)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    u = np.array([0, 1, 2, 1, 0], np.int32)
    noise = rng.standard_normal((5, 2)).astype(np.float32)
    terms = jax.jit(lambda p, *a: objective.elbo_terms(model, p, *a))
    nll, kl = terms(params, jnp.asarray(x), jnp.asarray(u), jnp.asarray(noise))

    # NumPy, float64: encoder on [x, onehot(u)], decoder on the reparameterised z.
    xu = np.concatenate([x, np.eye(3)[u]], axis=1)
    mean = _np_mlp(params["encoder_mean"], xu, 0.1)
    log_var = _np_mlp(params["encoder_log_var"], xu, 0.1)
    z = mean + np.exp(0.5 * log_var) * noise
    recon = _np_mlp(params["decoder"], z, 0.1)
    nll_ref = -stats.norm.logpdf(x, recon, math.sqrt(0.01)).sum(axis=1)
    prior_log_var = np.asarray(params["prior_log_var"], np.float64)[u]
    sd_q, sd_p = np.exp(0.5 * log_var), np.exp(0.5 * prior_log_var)
    if prior == "gaussian":
        kl_ref = np.sum(np.log(sd_p / sd_q) + (sd_q**2 + mean**2) / (2 * sd_p**2) - 0.5, axis=1)
    else:
        log_q = stats.norm.logpdf(z, mean, sd_q).sum(axis=1)
        kl_ref = log_q - stats.laplace.logpdf(z, 0.0, sd_p / math.sqrt(2)).sum(axis=1)
    # float32 rounding of sums of O(100) terms (the nll has 1 / (2 * 0.01) weights).
    np.testing.assert_allclose(nll, nll_ref, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(kl, kl_ref, rtol=1e-4, atol=1e-4)


def _weighted_elbo_inputs(seed=0, n=6, d=3):
    rng = np.random.default_rng(seed)
    x, recon = rng.standard_normal((n, 4)), rng.standard_normal((n, 4))
    mean, log_var = rng.standard_normal((n, d)), 0.3 * rng.standard_normal((n, d))
    z = mean + np.exp(0.5 * log_var) * rng.standard_normal((n, d))
    prior_log_var = 0.5 * rng.standard_normal((n, d))
    return x, recon, mean, log_var, z, prior_log_var


def _weighted_elbo(weights, prior="gaussian", seed=0):
    x, recon, mean, log_var, z, prior_log_var = _weighted_elbo_inputs(seed)
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    return nica.weighted_elbo(
        f32(x),
        f32(recon),
        decoder_var=0.1,
        mean=f32(mean),
        log_var=f32(log_var),
        z=f32(z),
        prior_mean=jnp.zeros_like(f32(z)),
        prior_log_var=f32(prior_log_var),
        weights=weights,
        prior=prior,
    )


@pytest.mark.parametrize("prior", ["gaussian", "laplace"])
def test_weighted_elbo_terms_match_an_independent_computation(prior):
    x, recon, mean, log_var, z, prior_log_var = _weighted_elbo_inputs()
    n = z.shape[0]
    sd, sd_p = np.exp(0.5 * log_var), np.exp(0.5 * prior_log_var)
    nll = -stats.norm.logpdf(x, recon, math.sqrt(0.1)).sum(1)
    log_q_zx = stats.norm.logpdf(z, mean, sd).sum(1)
    if prior == "gaussian":
        log_p = stats.norm.logpdf(z, 0.0, sd_p).sum(1)
    else:
        log_p = stats.laplace.logpdf(z, 0.0, sd_p / math.sqrt(2)).sum(1)
    # Minibatch estimates: q(z_i) = 1/M sum_j q(z_i | x_j), and per coordinate.
    dens = stats.norm.pdf(z[:, None, :], mean[None], sd[None])  # [i, j, d]
    log_qz = np.log(np.prod(dens, axis=2).mean(axis=1))
    log_prod = np.log(dens.mean(axis=1)).sum(1)
    weights = (3.0, 0.5, 2.0, 7.0)
    terms = _weighted_elbo(weights, prior)
    expected = {
        "nll": nll,
        "mutual_info": log_q_zx - log_qz,
        "total_correlation": log_qz - log_prod,
        "dimwise_kl": log_prod - log_p,
    }
    expected["loss"] = (
        3.0 * nll
        + 0.5 * expected["mutual_info"]
        + 2.0 * expected["total_correlation"]
        + 7.0 * expected["dimwise_kl"]
    )
    for name, value in expected.items():
        # float32 sums of a few terms of size <= 50 (the loss has weights up to 7).
        np.testing.assert_allclose(terms[name], value, rtol=1e-5, atol=50 * 16 * EPS32 * 7)
    assert terms["loss"].shape == (n,)


def test_weighted_elbo_with_unit_weights_is_the_one_sample_negative_elbo():
    x, recon, mean, log_var, z, prior_log_var = _weighted_elbo_inputs(seed=1)
    terms = _weighted_elbo((1.0, 1.0, 1.0, 1.0), seed=1)
    # The KL split telescopes: nll + log q(z|x) - log p(z|u), whatever q(z) is.
    sampled = (
        -stats.norm.logpdf(x, recon, math.sqrt(0.1)).sum(1)
        + stats.norm.logpdf(z, mean, np.exp(0.5 * log_var)).sum(1)
        - stats.norm.logpdf(z, 0.0, np.exp(0.5 * prior_log_var)).sum(1)
    )
    np.testing.assert_allclose(terms["loss"], sampled, rtol=1e-5, atol=1e-3)
    # And its mean over reparameterisation noise is nll + the closed-form KL (Monte Carlo).
    key = jax.random.PRNGKey(0)
    eps = jax.random.normal(key, (20_000,) + mean.shape)
    zs = mean + np.exp(0.5 * log_var) * np.asarray(eps)
    log_ratio = stats.norm.logpdf(zs, mean, np.exp(0.5 * log_var)).sum(-1) - stats.norm.logpdf(
        zs, 0.0, np.exp(0.5 * prior_log_var)
    ).sum(-1)
    closed = nica.gaussian_kl(mean, log_var, 0.0, prior_log_var)
    stderr = log_ratio.std(axis=0) / math.sqrt(zs.shape[0])
    assert np.all(np.abs(log_ratio.mean(axis=0) - np.asarray(closed)) < 5 * stderr + 1e-6)


def test_weighted_elbo_and_ivae_refuse_bad_weights():
    with pytest.raises(ValueError, match=r"weights=\(1.0, 2.0\) is invalid; valid: four"):
        _weighted_elbo((1.0, 2.0))
    with pytest.raises(ValueError, match=r"weights=\(1, -1, 0, 1\) is invalid"):
        nica.IVAE(weights=(1, -1, 0, 1))


def test_ivae_weighted_loss_trains_and_reports_its_terms(ivae_data):
    x, segment = ivae_data
    objective = nica.IVAE(num_segments=4, hidden_dims=(8,), weights=(100.0, 1.0, 0.0, 10.0))
    model, params = _hand_params(objective, 3)
    run = Run(facts=DatasetFacts("synthetic", (3,), 256, 0), batch_size=8, total_steps=1)
    batch = {"image": jnp.asarray(x[:8]), "segment": jnp.asarray(segment[:8])}
    ctx = LossContext(model=model, state=None, batch=batch, axis_name=None, run=run)
    loss, aux = jax.jit(
        lambda p: objective.loss(p, {}, (batch["image"],), jax.random.PRNGKey(5), ctx)
    )(params)
    m = aux.metrics
    expected = 100 * m["nll"] + m["mutual_info"] + 10 * m["dimwise_kl"]
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    result = fit_lib.fit(
        objective, {"image": x, "segment": segment}, steps=60, batch_size=64, learning_rate=1e-2
    )
    # Starting near 100 * 150 nats of reconstruction error, 60 steps remove most of it.
    assert np.mean(result.losses[-10:]) < 0.5 * np.mean(result.losses[:10])


def test_ivae_dataset_is_the_authors_generator():
    data, m = nica.ivae_dataset(jax.random.PRNGKey(1), 6, 400, 4, 3, with_mixing=True)
    assert m.activation == "xtanh" and m.negative_slope == pytest.approx(0.1)
    assert all(np.array_equal(w, m.weights[0]) for w in m.weights)
    back = mixing.invert_mixing(m, data["image"])
    np.testing.assert_allclose(back, data["source"], atol=1e-3 * np.abs(data["source"]).max())
    sd = np.stack([data["source"][data["segment"] == k].std(0) for k in range(6)])
    assert sd.min() > 0.5 * 0.85 and sd.max() < 3.0 * 1.15  # IVAE_SCALE_RANGE, 400 draws
    assert np.abs(data["source"].mean(0)).max() < 0.25  # centred


def test_gaussian_kl_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mq, mp = rng.normal(size=4), rng.normal(size=4)
    lq, lp = rng.normal(scale=0.5, size=4), rng.normal(scale=0.5, size=4)
    closed = float(nica.gaussian_kl(mq, lq, mp, lp))
    z = mq + np.exp(0.5 * lq) * rng.standard_normal((200_000, 4))
    log_ratio = stats.norm.logpdf(z, mq, np.exp(0.5 * lq)).sum(1) - stats.norm.logpdf(
        z, mp, np.exp(0.5 * lp)
    ).sum(1)
    stderr = log_ratio.std() / math.sqrt(z.shape[0])
    assert abs(closed - log_ratio.mean()) < 5 * stderr
    assert float(nica.gaussian_kl(mq, lq, mq, lq)) == pytest.approx(0.0, abs=1e-6)


def test_conditional_prior_depends_on_the_segment_and_the_vae_prior_does_not():
    x = np.random.default_rng(2).standard_normal((6, 3)).astype(np.float32)
    u = np.array([0, 1, 2, 0, 1, 2], np.int32)
    perm = np.array([2, 0, 1, 1, 2, 0], np.int32)  # every example changes segment
    noise = np.random.default_rng(3).standard_normal((6, 3)).astype(np.float32)

    ivae = nica.IVAE(num_segments=3, hidden_dims=(4,))
    model, params = _hand_params(ivae, 3)
    assert set(params) == {"encoder_mean", "encoder_log_var", "decoder", "prior_log_var"}
    table = np.asarray(params["prior_log_var"])
    out = jax.jit(model.apply)({"params": params}, x, u)
    np.testing.assert_allclose(out["prior_log_var"], table[u])
    np.testing.assert_array_equal(out["prior_mean"], 0.0)
    terms = jax.jit(lambda p, v: sum(ivae.elbo_terms(model, p, x, v, noise)))
    a, b = terms(params, u), terms(params, perm)
    assert np.all(np.abs(np.asarray(a) - np.asarray(b)) > 1e-3)

    vae = nica.IVAE(num_segments=3, hidden_dims=(4,), conditional_prior=False)
    model, params = _hand_params(vae, 3)
    assert set(params) == {"encoder_mean", "encoder_log_var", "decoder"}
    out = jax.jit(model.apply)({"params": params}, x, u)
    np.testing.assert_array_equal(out["prior_log_var"], 0.0)
    np.testing.assert_array_equal(out["prior_mean"], 0.0)
    terms = jax.jit(lambda p, v: sum(vae.elbo_terms(model, p, x, v, noise)))
    a, b = terms(params, u), terms(params, perm)
    np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def ivae_data():
    data = nica.tcl_dataset(
        jax.random.PRNGKey(4), 4, 64, 3, 2, density="gaussian", scale_range=(0.5, 3.0)
    )
    return nica.standardize(data["image"]), data["segment"]


def test_ivae_loss_is_the_mean_negative_elbo(ivae_data):
    x, segment = ivae_data
    objective = nica.IVAE(num_segments=4, hidden_dims=(8,))
    model, params = _hand_params(objective, 3)
    run = Run(facts=DatasetFacts("synthetic", (3,), 256, 0), batch_size=8, total_steps=1)
    batch = {"image": jnp.asarray(x[:8]), "segment": jnp.asarray(segment[:8])}
    ctx = LossContext(model=model, state=None, batch=batch, axis_name=None, run=run)
    rng = jax.random.PRNGKey(5)

    @jax.jit
    def both(params, batch):
        views = objective.make_views(rng, batch["image"], run)
        loss, aux = objective.loss(params, {}, views, rng, ctx)
        noise = jax.random.normal(rng, (8, 3))
        nll, kl = objective.elbo_terms(model, params, batch["image"], batch["segment"], noise)
        return loss, aux.metrics, jnp.mean(nll + kl)

    loss, metrics, expected = both(params, batch)
    assert float(metrics["nll"] + metrics["kl"]) == pytest.approx(float(loss), rel=1e-5)
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_ivae_trains_through_fit(ivae_data):
    x, segment = ivae_data
    objective = nica.IVAE(num_segments=4, hidden_dims=(8,))
    result = fit_lib.fit(
        objective,
        {"image": x, "segment": segment},
        steps=60,
        batch_size=64,
        learning_rate=1e-2,
        max_devices=2,
    )
    # The initial negative ELBO is dominated by the reconstruction term (weight 1 / (2 *
    # 0.01) on standardised data, about 150 nats); the one-sample estimate over 64 examples
    # fluctuates by a few nats, far below a fall of 10.
    assert np.mean(result.losses[-10:]) < np.mean(result.losses[:10]) - 10.0
    z = nica.posterior_means(objective, result.params, x, segment)
    assert z.shape == (256, 3) and np.all(np.isfinite(z))


# ---------------------------------------------------------------------------------------
# Figure
# ---------------------------------------------------------------------------------------


def test_plot_tcl_writes_a_png_and_keeps_an_existing_file(tmp_path):
    rows = [
        {"depth": d, "n_segments": n, "mcc": 0.5, "mcc_ica": 0.5 + 0.01 * n}
        for d in (1, 2)
        for n in (4, 8, 16)
    ]
    path = tmp_path / "tcl.png"
    assert nica.plot_tcl(rows, path) == str(path)
    first = path.read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="exists; pass overwrite=True"):
        nica.plot_tcl(rows, path, key="mcc")
    assert path.read_bytes() == first
    nica.plot_tcl(rows, path, key="mcc", overwrite=True)
    assert path.read_bytes() != first
    with pytest.raises(ValueError, match="key='nope' is not in the rows"):
        nica.plot_tcl(rows, tmp_path / "other.png", key="nope")


def test_ivae_study_reports_medians_over_seeds():
    r = nica.ivae_study(
        n_segments=4,
        points_per_segment=32,
        dim=2,
        depth=2,
        steps=10,
        batch_size=32,
        seeds=(0, 1),
        models=("ivae", "vae"),
        verbose=False,
    )
    assert r["setting"]["seeds"] == [0, 1] and "ivae_elbo" not in r
    for name in ("ivae", "vae"):
        per_seed = r[name]["mcc_per_seed"]
        assert len(per_seed) == 2 and all(0.0 <= v <= 1.0 for v in per_seed)
        assert r[name]["mcc"] == pytest.approx(float(np.median(per_seed)))
    assert r["ivae_above_vae"] == [
        a > b for a, b in zip(r["ivae"]["mcc_per_seed"], r["vae"]["mcc_per_seed"])
    ]
    with pytest.raises(ValueError, match=r"model='beta' is unknown; valid: ivae, vae, ivae_elbo"):
        nica.ivae_study(models=("beta",), steps=1, verbose=False)
