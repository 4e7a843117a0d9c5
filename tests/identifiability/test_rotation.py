"""Rotations of a VAE's latent space (ssljax.identifiability.rotation): the likelihood is
unchanged, disentanglement scores are not (Locatello et al. 2019, Theorem 1).

A tiny randomly initialised VAE on 16x16 images stands in for a trained one: the invariance
is an identity of the model class, true for any parameters; its posterior variances are
spread over e^-4 .. e^1 so that a rotated diagonal posterior differs from the rotated full
one.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.data import dsprites
from ssljax.identifiability import rotation as rot
from tests.tolerances import F32_EPS, assert_close, f32_reorder_rtol, f32_sum_tol

LATENT = 4
SIDE = 16
LOG_VAR_BIAS = (-4.0, -2.0, 0.0, 1.0)
# Longest chain of reductions from the image to log p(x|z) in the tiny network: encoder conv
# taps 16, dense 64, heads 8; rotations R (4) twice, decoder fc1 4, fc2 8, upconv taps 64;
# the sum over 256 pixels.
CHAIN = 16 + 64 + 8 + 2 * LATENT + LATENT + 8 + 64 + SIDE * SIDE


class Squares(dsprites.FactorGridData):
    """A 4x4 square on a 16x16 image at position (x, y) in 4 x 4 grid steps."""

    def __init__(self):
        super().__init__((4, 4), ("x", "y"))

    def sample_observations_from_factors(self, factors, random_state=None):
        factors = np.asarray(factors)
        images = np.zeros((len(factors), SIDE, SIDE, 1), np.float32)
        for n, (fx, fy) in enumerate(factors):
            images[n, 4 * fy : 4 * fy + 4, 4 * fx : 4 * fx + 4] = 1.0
        return images


class IdentityData(dsprites.FactorGridData):
    def sample_observations_from_factors(self, factors, random_state=None):
        return np.asarray(factors, np.float64)


@pytest.fixture(scope="module")
def vae():
    """The tiny VAE with LeCun-normal weights drawn by numpy (shapes from ``eval_shape``: no
    compiled initialiser), biases 0.1 N(0, 1), the mean head tripled and log-variance
    biases ``LOG_VAR_BIAS``."""
    from ssljax.models.vae import VAEDecoder, VAEEncoder, VAENetwork

    model = VAENetwork(
        # Lists, as in a model rebuilt from a stored config: the module cannot be hashed.
        encoder=VAEEncoder(widths=[4], kernel_sizes=[4], strides=[4], hidden=8, latent_dim=LATENT),
        decoder=VAEDecoder(hidden=8, start_shape=(4, 4, 4), widths=(), stride=4),
    )
    x = jnp.zeros((1, SIDE, SIDE, 1))
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))["params"]
    rs = np.random.RandomState(0)

    def draw(path, leaf):
        if path[-1].key == "bias":
            return 0.1 * rs.randn(*leaf.shape)
        return rs.randn(*leaf.shape) / math.sqrt(np.prod(leaf.shape[:-1]))

    params = jax.tree_util.tree_map_with_path(draw, shapes)
    params["encoder"]["mean_head"]["kernel"] *= 3.0
    params["encoder"]["log_var_head"]["bias"] = np.asarray(LOG_VAR_BIAS)
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    return rot.GaussianVAE(model=model, variables={"params": params}, batch_size=64)


@pytest.fixture(scope="module")
def images():
    return Squares().sample_observations(12, np.random.RandomState(0))


# ------------------------------------------------------------------ rotations


def test_random_rotation_is_orthogonal_and_haar():
    keys = jax.random.split(jax.random.key(1), 500)
    # One compiled program for both kinds (random-bit generation compiles slowly on CPU).
    draw = jax.jit(
        lambda keys: (
            jax.vmap(lambda k: rot.random_rotation(k, LATENT))(keys),
            jax.vmap(lambda k: rot.random_rotation(k, LATENT, proper=True))(keys),
        )
    )
    rs, proper = (np.asarray(a, np.float64) for a in draw(keys))
    gram = np.einsum("nji,njk->nik", rs, rs)
    assert np.max(np.abs(gram - np.eye(LATENT))) <= 8 * LATENT * F32_EPS
    dets = np.linalg.det(rs)
    np.testing.assert_allclose(np.abs(dets), 1.0, atol=8 * LATENT * F32_EPS)
    # Haar on O(4): each entry has mean 0 and variance 1/4, each sign of det has chance 1/2
    # (limits: >= 4 standard errors of 2000-8000 draws). Without the sign correction of the
    # QR factor the diagonal's mean is about -0.4.
    assert abs(rs.mean()) < 0.03
    assert abs(np.diagonal(rs, axis1=1, axis2=2).mean()) < 0.05
    assert rs.var() == pytest.approx(1 / LATENT, abs=0.02)
    assert 0.4 < np.mean(dets < 0) < 0.6
    # Haar on SO(4): every det is +1; the draws are those of O(4) with the first column
    # flipped where det was -1.
    np.testing.assert_allclose(np.linalg.det(proper), 1.0, atol=8 * LATENT * F32_EPS)
    np.testing.assert_allclose(proper[:, :, 1:], rs[:, :, 1:], atol=0)
    np.testing.assert_allclose(np.abs(proper[:, :, 0]), np.abs(rs[:, :, 0]), atol=0)


@pytest.mark.parametrize("dim", [0, -2, 2.5, True, "3"])
def test_random_rotation_rejects_a_bad_dim(dim):
    with pytest.raises(ValueError, match=r"dim=.* is invalid; valid: an int >= 1") as err:
        rot.random_rotation(jax.random.key(0), dim)
    assert "\n" not in str(err.value)


def test_plane_rotation_by_hand():
    r = rot.plane_rotation(3, math.pi / 4, (0, 2))
    h = math.sqrt(0.5)
    np.testing.assert_allclose(r, [[h, 0, -h], [0, 1, 0], [h, 0, h]], atol=1e-15)
    quarter = rot.plane_rotation(3, math.pi / 2, (0, 2))  # e0 -> e2, e2 -> -e0
    np.testing.assert_allclose(quarter, [[0, 0, -1], [0, 1, 0], [1, 0, 0]], atol=1e-15)
    np.testing.assert_allclose(rot.rotate_codes([[1.0, 2.0, 3.0]], quarter), [[-3, 2, 1]])
    with pytest.raises(ValueError, match=r"plane=\(1, 1\) is invalid"):
        rot.plane_rotation(3, 0.1, (1, 1))
    with pytest.raises(ValueError, match=r"plane=\(0, 3\) is invalid; valid: .* 0\.\.2"):
        rot.plane_rotation(3, 0.1, (0, 3))


# ------------------------------------------------------------------ the rotated VAE


def test_rotated_parameters_rotate_the_code_and_the_decoder_undoes_it(vae, images):
    r = np.asarray(rot.random_rotation(jax.random.key(2), LATENT), np.float64)
    rotated = vae.rotated(r)
    mean, log_var = vae.posterior(images)
    mean_r, log_var_r = rotated.posterior(images)
    # Codes: R mu, from the rotated head (dense 8 terms + the rotation's 4, in float32).
    assert_close(mean_r, np.asarray(mean, np.float64) @ r.T, rtol=f32_sum_tol(8 + LATENT, 2))
    np.testing.assert_array_equal(log_var_r, log_var)  # the diagonal head is untouched
    z = np.random.RandomState(0).randn(10, LATENT)
    assert_close(rotated.decode(z @ r.T), vae.decode(z), rtol=f32_sum_tol(2 * LATENT + 8 + 64, 4))
    # The covariance carried beside the parameters: R diag(exp(log_var)) R^T.
    _, scale = rotated.posterior_scale(images)
    cov = scale @ np.swapaxes(scale, 1, 2)
    expected = r @ np.diag(np.exp(np.asarray(log_var[0], np.float64))) @ r.T
    np.testing.assert_allclose(cov[0], expected, atol=1e-12)
    # The network's parameters are not changed in place; rotations compose.
    assert vae.rotation is None
    twice = vae.rotated(r).rotated(r.T)
    # r is a float32 QR factor: orthogonal to a few d eps_f32.
    np.testing.assert_allclose(twice.rotation, np.eye(LATENT), atol=4 * LATENT * F32_EPS)
    assert_close(twice.posterior(images)[0], mean, rtol=f32_sum_tol(8 + 2 * LATENT, 4))


def test_elbo_and_log_likelihood_unchanged_with_the_rotated_posterior(vae, images):
    r = rot.random_rotation(jax.random.key(3), LATENT)
    key = jax.random.key(4)
    elbo = rot.elbo_under_rotation(vae, r, images, key, num_samples=8)
    ll = rot.log_likelihood_under_rotation(vae, r, images, key, num_samples=8)
    # Magnitudes: the Bernoulli terms x l - softplus(l) are all <= 0 and the KL terms >= 0,
    # so reconstruction + KL is the sum of |terms|; log p(z) and log q(z|x) add about
    # d (log 2 pi + 1) each.
    # The whole pass is reordered and rounded differently (rotated layers), so the
    # random-walk estimate of f32_reorder_rtol over the chain applies (measured: 4e-6 nats
    # against a tolerance of about 2e-3).
    magnitude = elbo["reconstruction_before"] + elbo["kl_before"] + 2 * LATENT * 3.0
    tol = f32_reorder_rtol(CHAIN) * magnitude
    assert np.all(np.abs(elbo["elbo_after"] - elbo["elbo_before"]) <= tol)
    assert np.all(np.abs(elbo["kl_after"] - elbo["kl_before"]) <= tol)
    assert np.all(np.abs(elbo["reconstruction_after"] - elbo["reconstruction_before"]) <= tol)
    assert np.all(np.abs(ll["log_likelihood_after"] - ll["log_likelihood_before"]) <= tol)
    # The diagonal posterior N(R mu, diag(R Sigma R^T)) is another posterior: its KL and
    # ELBO move by far more than rounding (variances e^-4 .. e^1 mixed by R).
    moved = np.abs(elbo["elbo_diagonal_after"] - elbo["elbo_before"])
    assert np.all(moved > 100 * tol)


def test_kl_of_the_rotated_posterior_matches_the_closed_form_by_hand():
    """Full-covariance KL to N(0, I) of N(R m, R S R^T) against 1/2 (tr S + |m|^2 - d -
    log det S) of the unrotated diagonal posterior."""
    m = np.array([[0.5, -1.0, 2.0]])
    var = np.array([[0.1, 1.0, 3.0]])
    r = rot.plane_rotation(3, 0.7, (0, 2))
    scale = r[None] * np.sqrt(var)[:, None, :]
    z = np.zeros((1, 1, 3))
    kl, _ = rot._gaussian_terms(m @ r.T, scale, z, diagonal=False)
    by_hand = 0.5 * (var.sum() + (m**2).sum() - 3 - np.log(var).sum())
    assert kl[0] == pytest.approx(by_hand, rel=1e-12)


# ------------------------------------------------------------------ metrics


def test_rotation_lowers_the_metrics_of_perfectly_disentangled_codes():
    """The factors themselves score ~1; rotated by 45 degrees, each code carries both
    factors equally, so MIG's gap and FactorVAE's majority vote collapse; a 90 degree
    rotation (a signed permutation) gives the factors' scores back."""
    data = rot.FactorsAsObservations(IdentityData((8, 8)))
    rotations = [(f"{a}", rot.plane_rotation(2, math.radians(a))) for a in (0, 45, 90)]
    rows = rot.metrics_under_rotations(
        data,
        lambda x: x,
        rotations,
        metrics=("mig", "factor_vae"),
        overrides=dict(
            mig=dict(num_train=1000),
            factor_vae=dict(num_train=100, num_eval=50, batch_size=16, num_variance_estimate=500),
        ),
    )
    identity, diagonal, quarter = rows
    assert identity["mig"] >= 0.9 and identity["factor_vae"] == 1.0
    assert diagonal["mig"] <= 0.2 and diagonal["factor_vae"] <= 0.75
    assert quarter["mig"] == pytest.approx(identity["mig"], abs=1e-9)
    assert quarter["factor_vae"] == identity["factor_vae"]
    assert [r["det"] for r in rows] == [1.0, 1.0, 1.0]


def test_standardised_factors_and_the_code_cache():
    data = rot.FactorsAsObservations(dsprites.DSprites())
    factors, obs = data.sample(20000, np.random.RandomState(0))
    np.testing.assert_array_equal(
        factors, dsprites.DSprites().sample_factors(20000, np.random.RandomState(0))
    )
    np.testing.assert_allclose(obs[:, 1:].mean(0), 0.0, atol=0.05)  # shape has 3 values
    np.testing.assert_allclose(obs.std(0), 1.0, atol=0.05)
    calls = []
    cached = rot.CachedRepresentation(lambda x: calls.append(len(x)) or x[:, :2])
    for _ in range(3):
        np.testing.assert_array_equal(cached(obs[:5]), obs[:5, :2])
    cached(obs[5:9])
    assert calls == [5, 4]


def test_a_rotation_of_the_wrong_size_is_a_one_line_error(vae, images):
    for call in (
        lambda: vae.rotated(np.eye(3)),
        lambda: rot.rotate_vae_params(vae.variables["params"], np.eye(3)),
        lambda: rot.elbo_under_rotation(vae, np.eye(3), images, jax.random.key(0)),
    ):
        with pytest.raises(ValueError, match="rotation is 3x3 but the latent size is 4") as err:
            call()
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="rotation is 2x2 but the latent size is 3"):
        rot.rotate_codes(np.zeros((5, 3)), np.eye(2))
    with pytest.raises(ValueError, match="not orthogonal"):
        vae.rotated(2.0 * np.eye(LATENT))
    with pytest.raises(ValueError, match=r"must be a square"):
        vae.rotated(np.ones((4, 3)))


# ------------------------------------------------------------------ the study


def test_rotation_study_on_a_tiny_vae(vae):
    result = rot.rotation_study(
        vae,
        Squares(),
        jax.random.key(5),
        angles=(0, 45, 90),
        n_rotations=1,
        metrics=("mig",),
        overrides=dict(mig=dict(num_train=200)),
        num_images=8,
        num_samples=4,
    )
    rows = result["rows"]
    assert [(r["representation"], r["rotation"]) for r in rows] == [
        ("vae", "identity"),
        ("vae", f"45° in plane {result['plane']}"),
        ("vae", f"90° in plane {result['plane']}"),
        ("vae", "Haar #1"),
        ("factors", "identity"),
        ("factors", "45° in plane (0, 1)"),
        ("factors", "90° in plane (0, 1)"),
        ("factors", "Haar #1"),
    ]
    # The two latents of largest KL: those with log-variance bias -4 and -2 here.
    assert result["plane"] == (0, 1)
    for row in rows[:4]:
        bound = f32_reorder_rtol(CHAIN) * (abs(row["elbo"]) + 2 * LATENT * 3.0)
        assert abs(row["elbo_max_abs_change"]) <= bound
        assert abs(row["log_likelihood_max_abs_change"]) <= bound
        # The diagonal posterior is the model's at the identity; after 45 degrees or a Haar
        # rotation it is another distribution. (After 90 degrees it is the same distribution
        # sampled with permuted noise: equal in expectation only.)
        moved = abs(row["elbo_diagonal"] - row["elbo"])
        if row["rotation"] == "identity":
            assert moved <= bound
        elif not row["rotation"].startswith("90"):
            assert moved > 100 * bound
    assert rows[4]["mig"] >= 0.9 and rows[5]["mig"] <= 0.2
    assert rows[6]["mig"] == pytest.approx(rows[4]["mig"], abs=1e-9)
    table = rot.format_rotation_table(rows)
    lines = table.splitlines()
    assert len(lines) == 2 + len(rows)
    assert lines[0].startswith("| code | rotation | det | ELBO | ΔELBO |")
    assert "n/a" in lines[-1] and "n/a" not in lines[2]
