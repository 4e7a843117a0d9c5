"""Toy densities (exact energy, score, samples) and the sample distances of
``ssljax.energy.toy``, against autodiff, quadrature, NumPy and SciPy."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats
from scipy.spatial.distance import cdist, pdist

from ssljax.energy import toy

SE = 5.0  # standard errors allowed for Monte-Carlo estimates
F32 = 2.0**-23


@pytest.mark.parametrize("name", toy.TOY_DENSITIES)
def test_score_is_minus_the_gradient_of_the_energy(name):
    d = toy.toy_density(name)
    x = 2.5 * jax.random.normal(jax.random.PRNGKey(0), (256, d.dim))
    autodiff = -jax.grad(lambda z: jnp.sum(d.energy(z)))(x)
    closed = d.score(x)
    # Both are float32 evaluations of the same expression: a few ulps of its size.
    scale = np.max(np.abs(np.asarray(closed)), axis=1, keepdims=True)
    assert np.all(np.abs(autodiff - closed) <= 64 * F32 * scale + 1e-6)


@pytest.mark.parametrize("name", toy.TOY_DENSITIES)
def test_energy_is_the_normalised_negative_log_density(name):
    # A Riemann sum on a fine grid: for these smooth, fast-decaying densities its error is
    # far below float32's relative 1e-6 per term.
    d = toy.toy_density(name)
    step = 0.02
    g = np.arange(-6.0, 6.0, step) + step / 2
    grid = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    mass = np.sum(np.exp(-np.asarray(d.energy(jnp.asarray(grid)), np.float64))) * step**2
    assert abs(mass - 1.0) < 1e-4


def test_gaussian_samples_have_its_moments():
    d = toy.gaussian(mean=(1.0, -0.5), cov=((1.0, 0.6), (0.6, 0.8)))
    x = np.asarray(d.sample(jax.random.PRNGKey(1), 20000), np.float64)
    mu, cov = np.array([1.0, -0.5]), np.array([[1.0, 0.6], [0.6, 0.8]])
    n = len(x)
    np.testing.assert_array_less(np.abs(x.mean(0) - mu), SE * np.sqrt(np.diag(cov) / n))
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    np.testing.assert_array_less(np.abs(np.cov(x.T) - cov), SE * se_cov)


def test_mixture_samples_have_its_moments_and_equal_mode_weights():
    d = toy.gaussian_mixture(num_modes=8, radius=2.0, std=0.2)
    x = np.asarray(d.sample(jax.random.PRNGKey(2), 20000), np.float64)
    n = len(x)
    # E x = 0; E |x|^2 = r^2 + 2 s^2.
    second = np.sum(x**2, axis=1)
    assert np.all(np.abs(x.mean(0)) < SE * x.std(0) / math.sqrt(n))
    assert abs(second.mean() - (4.0 + 2 * 0.04)) < SE * second.std() / math.sqrt(n)
    # Each point's nearest centre: binomial counts with p = 1/8.
    nearest = np.argmin(cdist(x, toy.mixture_means(8, 2.0)), axis=1)
    counts = np.bincount(nearest, minlength=8)
    assert np.all(np.abs(counts - n / 8) < SE * math.sqrt(n * (1 / 8) * (7 / 8)))


def test_ring_radii_follow_the_radial_density():
    r, s = 2.0, 0.2
    d = toy.ring(radius=r, width=s)
    x = np.asarray(d.sample(jax.random.PRNGKey(3), 20000), np.float64)
    t = np.linalg.norm(x, axis=1)
    density = lambda u: u * math.exp(-((u - r) ** 2) / (2 * s**2))
    z = integrate.quad(density, 0, np.inf)[0]
    m1 = integrate.quad(lambda u: u * density(u), 0, np.inf)[0] / z
    m2 = integrate.quad(lambda u: u**2 * density(u), 0, np.inf)[0] / z
    n = len(t)
    assert abs(t.mean() - m1) < SE * t.std() / math.sqrt(n)
    assert abs((t**2).mean() - m2) < SE * (t**2).std() / math.sqrt(n)
    # Angles uniform: the mean direction is 0.
    assert np.all(np.abs((x / t[:, None]).mean(0)) < SE * math.sqrt(0.5 / n))
    # Normaliser: 2 pi times the radial integral.
    assert math.isclose(toy.ring_log_normalizer(r, s), math.log(2 * math.pi * z), rel_tol=1e-9)


def numpy_mmd(x, y, h, unbiased):
    k = lambda a, b: np.exp(-cdist(a, b, "sqeuclidean") / (2 * h**2))
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m, n = len(x), len(y)
    if unbiased:
        return (
            (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
            + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
            - 2 * kxy.mean()
        )
    return kxx.mean() + kyy.mean() - 2 * kxy.mean()


def test_mmd_equals_its_formula_in_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2))  # not a multiple of the row block: padding is exercised
    y = rng.normal(size=(517, 2)) + 0.3
    for unbiased in (True, False):
        ours = float(toy.mmd(x, y, bandwidth=0.7, unbiased=unbiased))
        # Kernel sums of ~1e5 terms of size <= 1 in float32 (pairwise summation): relative
        # to the largest of the three means (<= 1).
        assert abs(ours - numpy_mmd(x, y, 0.7, unbiased)) < 1e-5
    h = float(toy.median_bandwidth(x, y))
    assert math.isclose(h, np.median(pdist(np.concatenate([x, y]))), rel_tol=1e-5)


def test_unbiased_mmd_is_zero_on_average_for_one_distribution_and_positive_for_a_shift():
    d = toy.gaussian_mixture()
    key = jax.random.PRNGKey(4)
    same, shifted = [], []
    for i in range(20):
        a = d.sample(jax.random.fold_in(key, 3 * i), 300)
        b = d.sample(jax.random.fold_in(key, 3 * i + 1), 300)
        same.append(float(toy.mmd(a, b, bandwidth=0.3)))
        shifted.append(float(toy.mmd(a, b + 0.3, bandwidth=0.3)))
    same, shifted = np.array(same), np.array(shifted)
    se = same.std(ddof=1) / math.sqrt(len(same))
    assert abs(same.mean()) < SE * se
    assert shifted.mean() > SE * se + abs(same.mean()) and np.all(shifted > 0)
    # The biased statistic is a squared distance between empirical laws: never negative.
    assert float(toy.mmd(a, b, bandwidth=0.3, unbiased=False)) >= 0


def test_energy_distance_matches_scipy_in_1d_and_numpy_in_2d():
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=400), rng.standard_t(3, size=333)
    # scipy.stats.energy_distance computes sqrt(2 int (F_u - F_v)^2) from the CDFs.
    expected = stats.energy_distance(u, v) ** 2
    ours = float(toy.energy_distance(u, v))
    # Means of |u - v| (size ~1) over ~1e5 float32 terms.
    assert abs(ours - expected) < 1e-5 * max(1.0, np.abs(u).max())
    x, y = rng.normal(size=(200, 2)), rng.normal(size=(150, 2)) + [0.5, 0.0]
    direct = 2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean()
    assert abs(float(toy.energy_distance(x, y)) - direct) < 1e-5
    assert float(toy.energy_distance(x, x)) == pytest.approx(0.0, abs=1e-5)


def test_bad_input_is_one_line():
    cases = [
        (lambda: toy.toy_density("moons"), "unknown toy density 'moons'; choose one of"),
        (lambda: toy.gaussian_mixture(std=0.0), "std=0.0 is invalid; valid: std > 0"),
        (lambda: toy.ring(width=-1), "width=-1.0 is invalid; valid: width > 0"),
        (
            lambda: toy.gaussian(mean=(0.0, 0.0), cov=((1.0, 2.0), (2.0, 1.0))),
            "cov has eigenvalue -1; valid: a positive definite matrix",
        ),
        (
            lambda: toy.mmd(np.zeros((3, 2)), np.zeros((3, 3))),
            "samples of dimension 2 and 3; valid: the same",
        ),
        (
            lambda: toy.mmd(np.zeros((1, 2)), np.zeros((3, 2))),
            "unbiased MMD needs at least 2 points per sample; got 1 and 3",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value).startswith(message) and "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------
# The toy experiment's pieces (experiments/energy_toy.py) at tiny sizes.


def test_energy_toy_experiment_runs_at_tiny_sizes_and_writes_its_record(tmp_path):
    import json

    from ssljax.experiments import energy_toy as exp

    out_json, out_png = tmp_path / "energy_toy.json", tmp_path / "energy_toy.png"
    assert exp.main(["--quick", "--json", str(out_json), "--figure", str(out_png)]) == 0
    record = json.loads(out_json.read_text())
    mixture = record["densities"]["gaussian_mixture"]
    assert set(mixture) >= {"baseline", "true_samples", "mala", "hmc", "learned"}
    assert mixture["baseline"]["num_samples"] == exp.Settings.quick().num_samples // 10
    learned = mixture["learned"]["denoising_score_matching"]
    assert learned["mmd"] >= 0 and learned["score_relative_mse"] >= 0
    assert isinstance(mixture["samplers_below_baseline"], bool)
    assert "from_minimum_and_hessian" in record["gaussian"]["denoising_score_matching"]
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = exp.format_results(record)
    assert sum(line.startswith("| gaussian_mixture |") for line in table.splitlines()) == 1
    # Existing outputs stop a second run before any work.
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):
        exp.main(["--quick", "--json", str(out_json), "--figure", str(out_png)])


def test_experiment_distances_are_the_library_distances():
    from ssljax.experiments import energy_toy as exp

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(50, 2)), rng.normal(size=(80, 2)) + 0.5
    biased = numpy_mmd(x, y, 0.2, unbiased=False)
    assert math.isclose(exp.sample_mmd(x, y, 0.2), math.sqrt(biased), rel_tol=1e-4)
    learned, true = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
    expected = np.sum((learned - true) ** 2) / np.sum(true**2)
    assert math.isclose(exp.score_relative_mse(learned, true), expected, rel_tol=1e-12)
