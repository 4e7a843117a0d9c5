"""Contrastive identifiability: generative processes, objectives, studies' pieces."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import special, stats

from ssljax.identifiability import contrastive as cl
from ssljax.identifiability import fit as fit_lib
from ssljax.identifiability import mixing
from ssljax.identifiability.metrics import block_r2
from ssljax.objectives.base import LossContext
from ssljax.objectives.entropy import align_maxent_loss
from ssljax.objectives.mutual_information import infonce_bound

# ---------------------------------------------------------------------------------------
# Sphere: uniform marginal, vMF conditional


@pytest.mark.parametrize("dim,kappa", [(3, 2.0), (10, 1.0), (10, 20.0), (5, 300.0)])
def test_vmf_samples_lie_on_the_sphere_with_the_vmf_mean_cosine(dim, kappa):
    n = 20000
    rng = np.random.default_rng(dim)
    z = cl.uniform_sphere(rng, n, dim)
    x = cl.sample_vmf(rng, z, kappa)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-12)
    w = np.sum(z * x, axis=1)
    # A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa); E[w^2] = 1 - (d - 1) A / kappa.
    a = special.ive(dim / 2, kappa) / special.ive(dim / 2 - 1, kappa)
    second = 1.0 - (dim - 1) * a / kappa
    assert cl.vmf_mean_resultant_length(dim, kappa) == pytest.approx(a, rel=1e-12)
    if dim == 3:  # closed form on S^2: coth(kappa) - 1 / kappa
        assert a == pytest.approx(1 / math.tanh(kappa) - 1 / kappa, rel=1e-10)
    var_w = second - a**2
    assert abs(w.mean() - a) < 5 * math.sqrt(var_w / n)
    var_w2 = np.var(w**2)  # the bound's scale, from the sample
    assert abs(np.mean(w**2) - second) < 5 * math.sqrt(var_w2 / n)
    # The tangent direction is uniform: its mean vanishes.
    tangent = x - w[:, None] * z
    assert np.max(np.abs(tangent.mean(axis=0))) < 5 * math.sqrt(1.0 / n)


def test_uniform_sphere_has_zero_mean_and_isotropic_covariance():
    n, dim = 20000, 10
    z = cl.uniform_sphere(np.random.default_rng(0), n, dim)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-12)
    # Var(z_i) = 1/d; Var(z_i z_j) <= Var(z_i^2) = 3 / (d (d + 2)) - 1 / d^2.
    assert np.max(np.abs(z.mean(axis=0))) < 5 * math.sqrt(1 / dim / n)
    cov = z.T @ z / n
    bound = 5 * math.sqrt(3 / (dim * (dim + 2)) / n)
    assert np.max(np.abs(cov - np.eye(dim) / dim)) < bound


# ---------------------------------------------------------------------------------------
# Box: uniform marginal, truncated conditional


@pytest.mark.parametrize("conditional", ["laplace", "normal"])
def test_box_conditional_is_the_truncated_law(conditional):
    rng = np.random.default_rng(1)
    loc, scale, n = 0.03, 0.05, 4000
    x = cl.truncated_conditional(rng, np.full(n, loc), scale, 0.0, 1.0, conditional=conditional)
    assert x.min() >= 0.0 and x.max() <= 1.0
    law = stats.laplace if conditional == "laplace" else stats.norm
    lo, hi = law.cdf(0.0, loc, scale), law.cdf(1.0, loc, scale)
    truncated_cdf = lambda v: (law.cdf(v, loc, scale) - lo) / (hi - lo)
    assert stats.kstest(x, truncated_cdf).pvalue > 1e-3
    z, z2 = cl.box_pairs(rng, 2000, 4, 0.01)
    assert z.min() >= 0 and z.max() <= 1 and z2.min() >= 0 and z2.max() <= 1
    # Ten scales from the walls (truncated mass e^-10) the conditional is the plain Laplace,
    # whose |z2 - z| has mean and standard deviation equal to the scale.
    diff = np.abs(z2 - z)[np.abs(z - 0.5) < 0.4]
    assert abs(diff.mean() - 0.01) < 5 * 0.01 / math.sqrt(diff.size)


# ---------------------------------------------------------------------------------------
# Content and style


@pytest.mark.parametrize("p_change", [0.0, 0.3, 1.0])
def test_content_is_shared_and_style_changes_with_probability_p(p_change):
    process = cl.content_style_process("independent", p_change=p_change, seed=0)
    n = 20000
    data = process.sample(np.random.default_rng(2), n)
    np.testing.assert_array_equal(data["latent"][:, :5], data["latent2"][:, :5])
    np.testing.assert_array_equal(data["latent"][:, :5], data["content"])
    changed = data["style"] != data["style2"]
    np.testing.assert_array_equal(changed, data["changed"])
    trials = changed.size
    bound = 5 * math.sqrt(max(p_change * (1 - p_change), 1e-12) / trials)
    assert abs(changed.mean() - p_change) <= bound
    # A changed dimension moves by N(0, 1) (independent variant).
    if p_change > 0:
        step = (data["style2"] - data["style"])[changed]
        assert abs(step.std() - 1.0) < 5 / math.sqrt(2 * step.size)


def _empirical_r2(c, s):
    """In-sample R^2 of the least-squares fit of s on [1, c], averaged over columns."""
    design = np.concatenate([np.ones((len(c), 1)), c], axis=1)
    resid = s - design @ np.linalg.lstsq(design, s, rcond=None)[0]
    return float(np.mean(1 - resid.var(axis=0) / s.var(axis=0)))


@pytest.mark.parametrize("variant", cl.VARIANTS)
def test_variants_have_their_stated_dependence(variant):
    process = cl.content_style_process(variant, seed=3)
    n = 20000
    data = process.sample(np.random.default_rng(4), n)
    c, s = data["content"], data["style"]
    cross = np.corrcoef(c.T, s.T)[:5, 5:]
    population = process.style_r2_from_content()
    if variant == "independent":
        assert population == 0.0
        assert np.max(np.abs(cross)) < 5 / math.sqrt(n)
    else:
        assert np.max(np.abs(cross)) > 0.2
        assert population > 0.1
    if variant == "causal":  # s = B c + a + n, c and n ~ N(0, I): R^2_j = |B_j|^2 / (|B_j|^2 + 1)
        b2 = np.sum(process.weight**2, axis=1)
        assert population == pytest.approx(np.mean(b2 / (b2 + 1)), rel=1e-10)
        assert np.all(np.abs(s.mean(axis=0) - process.offset) < 5 * np.sqrt((b2 + 1) / n))
    # The sample agrees with the population R^2 (its sampling error is O(1/sqrt(n)) = 0.007).
    assert _empirical_r2(c, s) == pytest.approx(population, abs=0.03)
    # And with the stated joint covariance: Var(sample cov_ij) = (S_ij^2 + S_ii S_jj) / n.
    cov = process.joint_covariance()
    sd = np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) / n)
    assert np.all(np.abs(np.cov(data["latent"].T) - cov) < 5 * sd)


def test_observations_invert_to_the_latents():
    m = cl.study_mixing(0, 10, 3, quantile=0.2)
    threshold = cl.condition_threshold(10, 0.2, seed=0)
    assert all(np.linalg.cond(np.asarray(w, np.float64)) <= threshold for w in m.weights)
    process = cl.content_style_process("causal", seed=0)
    data = cl.content_style_pairs(process, m, np.random.default_rng(5), 500)
    latents = data
    np.testing.assert_array_equal(
        data["latent"], np.float32(np.hstack([data["content"], data["style"]]))
    )
    scale = float(np.max(np.abs(latents["latent"])))
    # float32 round trip: a few ulps per layer times the condition number (as test_mixing_fit).
    tol = 50 * 3 * threshold * np.finfo(np.float32).eps * scale
    np.testing.assert_allclose(mixing.invert_mixing(m, data["image"]), latents["latent"], atol=tol)
    np.testing.assert_allclose(
        mixing.invert_mixing(m, data["image2"]), latents["latent2"], atol=tol
    )
    sphere = cl.zimmermann_pairs(np.random.default_rng(6), 300, m, kappa=5.0)
    np.testing.assert_allclose(mixing.invert_mixing(m, sphere["image"]), sphere["latent"], atol=tol)
    np.testing.assert_allclose(np.linalg.norm(sphere["latent2"], axis=1), 1.0, atol=1e-6)


def test_condition_threshold_is_the_quantile_of_fresh_draws():
    q, dim = 0.2, 6
    threshold = cl.condition_threshold(dim, q, pool=4000, seed=0)
    draws = np.random.default_rng(9).standard_normal((4000, dim, dim)) / math.sqrt(dim)
    below = np.mean(np.linalg.cond(draws) <= threshold)
    # Binomial error of the fresh fraction plus that of the pool's quantile.
    assert abs(below - q) < 5 * math.sqrt(2 * q * (1 - q) / 4000)


# ---------------------------------------------------------------------------------------
# Objectives


def _ctx(objective, axis_name=None):
    return LossContext(
        model=objective.encoder(), state=None, batch={}, axis_name=axis_name, run=None
    )


def _views(n=24, dim=4, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 2, dim)).astype(np.float32)
    return jnp.asarray(x[:, 0]), jnp.asarray(x[:, 1])


def _hand_infonce(scores):
    """log K + mean_i log softmax(scores_i)_i, in float64."""
    s = np.asarray(scores, np.float64)
    log_softmax = s - special.logsumexp(s, axis=1, keepdims=True)
    return math.log(s.shape[1]) + np.mean(np.diag(log_softmax))


@pytest.mark.parametrize("similarity", cl.SIMILARITIES)
def test_infonce_objective_is_the_pure_bound_on_its_embeddings(similarity):
    objective = cl.PairInfoNCE(hidden=(16,), output_dim=3, temperature=0.3, similarity=similarity)
    params = objective.init_params(0, 4)
    x1, x2 = _views()
    loss, aux = objective.loss(params, {}, (x1, x2), jax.random.PRNGKey(0), _ctx(objective))
    h1 = np.asarray(objective.encoder().apply({"params": params}, x1), np.float64)
    h2 = np.asarray(objective.encoder().apply({"params": params}, x2), np.float64)
    if similarity == "cosine":
        np.testing.assert_allclose(np.linalg.norm(h1, axis=1), 1.0, atol=1e-6)
        scores = h1 @ h2.T
    elif similarity == "neg_l1":
        scores = -np.abs(h1[:, None] - h2[None]).sum(-1)
    else:
        scores = -np.square(h1[:, None] - h2[None]).sum(-1)
    scores = scores / 0.3
    expected = math.log(24) - 0.5 * (_hand_infonce(scores) + _hand_infonce(scores.T))
    # The library's bound on the same scores, and the hand formula (float32 error).
    library = 0.5 * (infonce_bound(jnp.float32(scores)) + infonce_bound(jnp.float32(scores.T)))
    assert float(library) == pytest.approx(math.log(24) - expected, abs=1e-4)
    assert float(loss) == pytest.approx(expected, abs=1e-4)
    assert float(aux.metrics["loss"]) == float(loss)
    one_way = cl.PairInfoNCE(
        hidden=(16,), output_dim=3, temperature=0.3, similarity=similarity, symmetric=False
    )
    loss1, _ = one_way.loss(params, {}, (x1, x2), None, _ctx(one_way))
    assert float(loss1) == pytest.approx(math.log(24) - _hand_infonce(scores), abs=1e-4)


def test_align_maxent_objective_is_the_pure_loss_on_sigmoid_outputs():
    objective = cl.PairAlignMaxEnt(hidden=(16,), output_dim=3, entropy_weight=0.5)
    params = objective.init_params(1, 4)
    x1, x2 = _views(seed=1)
    loss, aux = objective.loss(params, {}, (x1, x2), None, _ctx(objective))
    apply = lambda x: jax.nn.sigmoid(objective.encoder().apply({"params": params}, x))
    expected, parts = align_maxent_loss(apply(x1), apply(x2), entropy_weight=0.5)
    assert float(loss) == pytest.approx(float(expected), abs=1e-5)
    assert float(aux.metrics["entropy"]) == pytest.approx(float(parts["entropy"]), abs=1e-5)
    np.testing.assert_allclose(objective.encode(params, np.asarray(x1)), apply(x1), atol=1e-6)


@pytest.mark.parametrize(
    "objective",
    [
        cl.PairInfoNCE(hidden=(16,), output_dim=3, temperature=0.5, similarity="neg_sq_l2"),
        cl.PairAlignMaxEnt(hidden=(16,), output_dim=3),
    ],
    ids=["infonce", "alignmaxent"],
)
def test_loss_over_devices_is_the_loss_of_the_global_batch(objective):
    devices = 4
    params = objective.init_params(2, 4)
    x1, x2 = _views(n=32, seed=2)
    single, _ = objective.loss(params, {}, (x1, x2), None, _ctx(objective))
    split = lambda x: x.reshape(devices, -1, 4)

    def per_device(a, b):
        loss, _ = objective.loss(params, {}, (a, b), None, _ctx(objective, "batch"))
        return loss

    losses = jax.pmap(per_device, axis_name="batch", devices=jax.local_devices()[:devices])(
        split(x1), split(x2)
    )
    assert float(jnp.mean(losses)) == pytest.approx(float(single), abs=1e-4)


def test_short_training_on_a_linear_mixing_recovers_the_latents_linearly():
    rng = np.random.default_rng(0)
    m = mixing.random_mixing(jax.random.PRNGKey(0), 3, 1)  # one layer: linear
    train = cl.mix_pairs(m, *cl.sphere_pairs(rng, 4096, 3, 10.0))
    test = cl.mix_pairs(m, *cl.sphere_pairs(rng, 1000, 3, 10.0))
    objective = cl.PairInfoNCE(hidden=(32, 32), output_dim=3, temperature=0.1)
    params = objective.init_params(0, 3)
    before = block_r2(objective.encode(params, test["image"]), test["latent"])
    tx = optax.adam(1e-2)
    opt_state = tx.init(params)
    ctx = _ctx(objective)

    @jax.jit
    def step(params, opt_state, x1, x2):
        loss_fn = lambda p: objective.loss(p, {}, (x1, x2), None, ctx)[0]
        grads = jax.grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    for _ in range(150):
        idx = rng.integers(0, 4096, 128)
        params, opt_state = step(params, opt_state, train["image"][idx], train["image2"][idx])
    after = block_r2(objective.encode(params, test["image"]), test["latent"])
    assert after > before + 0.2, (before, after)
    assert after > 0.6


# ---------------------------------------------------------------------------------------
# Studies' helpers and bad input


def test_affine_mcc_is_one_for_an_affine_image_and_low_for_noise():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2000, 4))
    a = rng.normal(size=(4, 4))
    assert cl.affine_mcc(z @ a + 3.0, z) == pytest.approx(1.0, abs=1e-9)
    assert cl.affine_mcc(rng.normal(size=(2000, 4)), z) < 0.15


def _assert_trained(row):
    # A few steps of fit lower the loss: the first and last 5 of 40 steps, far beyond the
    # minibatch noise of a loss that does not move.
    first, last = row["initial_loss"], row["final_loss"]
    assert last < first - 0.05 * abs(first) - 0.05, (first, last)


def test_tiny_content_style_study_trains_and_returns_its_row():
    row = cl.content_style_study(
        variant="causal",
        objective="alignmaxent",
        entropy_weight=1.0,
        steps=40,
        batch_size=64,
        hidden=(32,),
        num_train=1024,
        num_eval=60,
        mixing_quantile=0.5,
    )
    for key in ("content_r2_nonlinear", "style_r2_linear", "style_baseline_r2_nonlinear"):
        assert np.isfinite(row[key])
    assert row["style_baseline_r2_population"] > 0.1 and row["paper"] == {}
    _assert_trained(row)


def test_tiny_zimmermann_study_trains_and_returns_its_row():
    row = cl.zimmermann_study(
        dim=3,
        steps=40,
        batch_size=64,
        hidden=(32,),
        num_train=1024,
        num_eval=60,
        mixing_quantile=0.5,
    )
    assert row["paper_measure"] == "r2_linear" and row["temperature"] == pytest.approx(1 / 20)
    assert {"r2_linear", "mcc_affine", "mcc_raw"} <= set(row) and np.isfinite(row["mcc_affine"])
    _assert_trained(row)


def test_plot_content_style_writes_once_unless_overwrite(tmp_path):
    rows = [
        {
            "variant": v,
            "objective": "infonce",
            "p_change": 1.0,
            "content_r2_nonlinear": 0.95,
            "style_r2_nonlinear": r,
            "style_baseline_r2_nonlinear": r - 0.05,
        }
        for v, r in [("independent", 0.05), ("causal", 0.85)]
    ]
    path = tmp_path / "cs.png"
    assert cl.plot_content_style(rows, path) == str(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="exists; pass overwrite=True"):
        cl.plot_content_style(rows, path)
    cl.plot_content_style(rows, path, overwrite=True)
    with pytest.raises(ValueError, match="lacks"):
        cl.plot_content_style([{"variant": "x"}], tmp_path / "bad.png")


def test_bad_input_is_one_line():
    cases = [
        (lambda: cl.content_style_process("bogus"), r"variant='bogus'.*independent, statistical"),
        (lambda: cl.content_style_study(variant="bogus"), r"variant='bogus'.*causal"),
        (lambda: cl.content_style_study(objective="simclr"), r"objective='simclr'.*infonce"),
        (lambda: cl.content_style_process(p_change=1.5), r"p_change=1.5.*0 <= p_change <= 1"),
        (lambda: cl.content_style_study(p_change=-0.1), r"p_change=-0.1"),
        (lambda: cl.sample_vmf(0, np.eye(3), 0.0), r"kappa=0.0.*> 0"),
        (lambda: cl.sphere_pairs(0, 10, 3, -1.0), r"kappa=-1.0"),
        (lambda: cl.zimmermann_study(kappa=0.0), r"kappa=0.0"),
        (lambda: cl.zimmermann_study(space="torus"), r"space='torus'.*sphere, box"),
        (lambda: cl.stack_views(np.zeros((4, 3)), np.zeros((4, 2))), r"\(4, 3\) and \(4, 2\)"),
        (lambda: cl.mix_pairs(None, np.zeros((4, 3)), np.zeros((5, 3))), r"\(4, 3\) and \(5, 3\)"),
        (lambda: cl.PairInfoNCE(similarity="dot"), r"similarity 'dot'.*cosine"),
        (lambda: cl.PairInfoNCE(temperature=0.0), r"temperature=0"),
        (lambda: cl.truncated_conditional(0, [0.5], 0.1, 0, 1, conditional="t"), r"'t'.*laplace"),
    ]
    for fn, pattern in cases:
        with pytest.raises(ValueError, match=pattern) as info:
            fn()
        assert "\n" not in str(info.value)
    objective = cl.PairInfoNCE(hidden=(4,), output_dim=2)
    with pytest.raises(ValueError, match=r"per-example shape \(3,\).*\(2, D\)"):
        fit_lib.fit(objective, {"image": np.zeros((8, 3), np.float32)}, steps=1, batch_size=8)
