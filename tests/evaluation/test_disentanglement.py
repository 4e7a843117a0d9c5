"""Tests for the disentanglement metrics (ssljax.evaluation.disentanglement).

Sample counts are small here (passed as arguments); the defaults are
disentanglement_lib's.
"""

import math

import numpy as np
import pytest

from ssljax.data import dsprites
from ssljax.evaluation import disentanglement as dis

TOY_SIZES = (2, 3, 4, 5, 6)  # every factor has <= 20 values, so 20 bins resolve it
LN2_LN10 = math.log(2) / math.log(10)

# Small sample counts for the sampling-based metrics (defaults are 5000-10000).
SMALL = {
    "beta_vae": dict(num_train=300, num_eval=150, batch_size=16),
    "factor_vae": dict(num_train=300, num_eval=150, batch_size=16, num_variance_estimate=1000),
    "mig": dict(num_train=1000),
    "dci": dict(num_train=600, num_test=300),
    "sap": dict(num_train=600, num_test=300),
    "modularity_explicitness": dict(num_train=1000, num_test=500),
    "irs": dict(num_train=1000),
}


class IdentityData(dsprites.FactorGridData):
    """Observations are the factor indices themselves (as float)."""

    def sample_observations_from_factors(self, factors, random_state=None):
        return np.asarray(factors, np.float64)


def run_small(data, representation_fn, metrics=tuple(SMALL), **extra):
    overrides = {name: dict(SMALL[name], **extra.get(name, {})) for name in metrics}
    return dis.evaluate_all(data, representation_fn, metrics=metrics, overrides=overrides)


@pytest.fixture(scope="module")
def identity_scores():
    return run_small(IdentityData(TOY_SIZES), lambda x: x, sap=dict(continuous_factors=True))


@pytest.fixture(scope="module")
def dsprites_data():
    return dsprites.DSprites()


# ------------------------------------------------------------------ building blocks


def test_histogram_discretize():
    values = np.column_stack([np.arange(20.0), np.full(20, 3.0), np.linspace(-1, 1, 20)])
    out = dis.histogram_discretize(values, 20)
    np.testing.assert_array_equal(out[:, 0], np.arange(1, 21))  # one value per bin
    assert len(np.unique(out[:, 1])) == 1
    np.testing.assert_array_equal(
        dis.histogram_discretize(np.array([[0.0], [0.5], [1.0]]), 2)[:, 0], [1, 2, 2]
    )
    assert out.min() >= 1 and out.max() <= 20


def plugin_mi(a, b):
    """float64 plug-in mutual information (nats) from the contingency table."""
    _, a_index = np.unique(a, return_inverse=True)
    _, b_index = np.unique(b, return_inverse=True)
    joint = np.zeros((a_index.max() + 1, b_index.max() + 1))
    np.add.at(joint, (a_index, b_index), 1.0)
    joint /= joint.sum()
    outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log(joint[nz] / outer[nz])))


def test_mutual_info_and_entropy_match_reference():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 7, (400, 3))
    factors = np.column_stack([rng.integers(0, 4, 400), codes[:, 0] % 3])
    mi = dis.discrete_mutual_info(codes, factors)
    expected = [[plugin_mi(codes[:, i], factors[:, j]) for j in range(2)] for i in range(3)]
    np.testing.assert_allclose(mi, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dis.discrete_entropy(factors), [plugin_mi(f, f) for f in factors.T])
    np.testing.assert_allclose(dis.discrete_entropy(np.arange(8)[:, None]), [math.log(8)])


def test_mig_from_mutual_info_by_hand():
    mi = np.array([[1.0, 0.2], [0.4, 0.8], [0.1, 0.1]])
    # factor 0: (1.0 - 0.4) / 2 ; factor 1: (0.8 - 0.2) / 1
    assert dis.mig_from_mutual_info(mi, np.array([2.0, 1.0])) == pytest.approx(0.45)
    with pytest.raises(ValueError, match="single value"):
        dis.mig_from_mutual_info(mi, np.array([2.0, 0.0]))


def test_dci_on_hand_made_importance_matrices():
    eye = np.eye(5)
    diagonal = dis.dci_from_importance(eye)
    assert diagonal["disentanglement"] == pytest.approx(1.0, abs=1e-8)
    assert diagonal["completeness"] == pytest.approx(1.0, abs=1e-8)
    stacked = dis.dci_from_importance(np.vstack([eye, eye]))  # 10 codes, 5 factors
    assert stacked["disentanglement"] == pytest.approx(1.0, abs=1e-8)
    assert stacked["completeness"] == pytest.approx(1 - LN2_LN10, abs=1e-8)
    assert 1 - LN2_LN10 == pytest.approx(0.699, abs=5e-4)
    side = dis.dci_from_importance(np.hstack([eye, eye]))  # 5 codes, 10 factors
    assert side["disentanglement"] == pytest.approx(1 - LN2_LN10, abs=1e-8)
    assert side["completeness"] == pytest.approx(1.0, abs=1e-8)
    uniform = dis.dci_from_importance(np.ones((4, 3)))
    assert uniform["disentanglement"] == pytest.approx(0.0, abs=1e-8)
    assert uniform["completeness"] == pytest.approx(0.0, abs=1e-8)
    # Code weights are the codes' shares of the importance: 3/5 (D = 1) and 2/5 (D = 0).
    weighted = dis.dci_from_importance(np.array([[3.0, 0.0], [1.0, 1.0]]))
    assert weighted["disentanglement"] == pytest.approx(0.6, abs=1e-8)


def test_modularity_by_hand():
    eye = np.eye(5)
    assert dis.modularity_from_mutual_info(np.hstack([eye, eye])) == pytest.approx(1 - 1 / 9)
    assert dis.modularity_from_mutual_info(eye) == pytest.approx(1.0)
    # A code with no information scores 0: mean(1, 0).
    assert dis.modularity_from_mutual_info(np.array([[1.0, 0.0], [0.0, 0.0]])) == pytest.approx(0.5)
    # Squared MI: [2, 1] over 2 factors -> 1 - 1/4.
    assert dis.modularity_from_mutual_info(np.array([[2.0, 1.0]])) == pytest.approx(0.75)


def test_sap_from_score_matrix_by_hand():
    matrix = np.array([[0.9, 0.2], [0.5, 0.6], [0.1, 0.55]])
    assert dis.sap_from_score_matrix(matrix) == pytest.approx(((0.9 - 0.5) + (0.6 - 0.55)) / 2)


def test_irs_by_hand():
    factors = np.array([[0], [0], [1], [1]])
    codes = np.array([[0.0, 0.0], [0.0, 1.0], [2.0, 0.0], [2.0, 1.0]])
    # Code 0 follows the factor (IRS 1), code 1 ignores it (IRS 0); weights = max
    # deviations 1 and 0.5.
    out = dis.irs_scores(factors, codes, diff_quantile=1.0)
    np.testing.assert_allclose(out["IRS_matrix"][:, 0], [1.0, 0.0])
    assert out["avg_score"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="constant"):
        dis.irs_scores(factors, np.column_stack([codes, np.ones(4)]))


# ------------------------------------------------------------------ representations


def test_identity_representation_scores_high(identity_scores):
    """A representation equal to the factors scores >= 0.9 everywhere (SAP in its
    continuous-factor form; see test_sap_discrete_default for the default)."""
    s = identity_scores
    scores = {
        "beta_vae": s["beta_vae"]["eval_accuracy"],
        "factor_vae": s["factor_vae"]["eval_accuracy"],
        "mig": s["mig"]["discrete_mig"],
        "dci_disentanglement": s["dci"]["disentanglement"],
        "dci_completeness": s["dci"]["completeness"],
        "dci_informativeness": s["dci"]["informativeness_test"],
        "sap_continuous": s["sap"]["SAP_score"],
        "modularity": s["modularity_explicitness"]["modularity_score"],
        "explicitness": s["modularity_explicitness"]["explicitness_score_test"],
        "irs": s["irs"]["IRS"],
    }
    low = {k: v for k, v in scores.items() if not v >= 0.9}
    assert not low, low
    assert s["factor_vae"]["num_active_dims"] == 5 and s["irs"]["num_active_dims"] == 5


def test_sap_discrete_default():
    """Default SAP (LinearSVC per code): a perfect code of a binary factor is always
    right, the others are at chance, so the score is about 1 - 1/2."""
    data = IdentityData((2, 2, 2, 2, 2))
    rs = np.random.RandomState(0)
    c_tr, f_tr = dis.generate_factor_code(data, lambda x: x, 600, rs)
    c_te, f_te = dis.generate_factor_code(data, lambda x: x, 300, rs)
    matrix = dis.sap_score_matrix(c_tr, f_tr, c_te, f_te)
    np.testing.assert_array_equal(np.diag(matrix), 1.0)
    off = matrix[~np.eye(5, dtype=bool)]
    assert off.min() > 0.35 and off.max() < 0.65
    score = dis.sap(c_tr, f_tr, c_te, f_te)["SAP_score"]
    assert score == pytest.approx(1.0 - np.sort(matrix, axis=0)[-2].mean())
    assert 0.35 < score < 0.65


def test_mig_ceiling_with_20_bins_on_dsprites_grid():
    """Codes equal to dSprites' factors: 20 bins keep only part of the 40 orientations
    and 32 positions, so MIG is about mean_j H(bins_j) / H(factor_j) ~ 0.90, not 1."""

    def ceiling(k, bins=20):
        if k <= bins:
            return 1.0
        width = (k - 1) / bins
        which = np.minimum(np.floor(np.arange(k) / width), bins - 1)
        p = np.unique(which, return_counts=True)[1] / k
        return float(-(p * np.log(p)).sum() / math.log(k))

    expected = np.mean([ceiling(k) for k in dsprites.FACTOR_SIZES])
    score = dis.compute_mig(IdentityData(dsprites.FACTOR_SIZES), lambda x: x, 0, num_train=5000)[
        "discrete_mig"
    ]
    assert expected == pytest.approx(0.902, abs=1e-3)
    assert score == pytest.approx(expected, abs=0.03) and score < 0.9


def test_constant_representation_scores_low(dsprites_data):
    """On dSprites images, a constant code scores <= 0.2 on FactorVAE, MIG, SAP, IRS."""
    metrics = ("factor_vae", "mig", "sap", "irs")
    out = run_small(dsprites_data, lambda x: np.zeros((len(x), 4)), metrics=metrics)
    assert out["factor_vae"]["eval_accuracy"] <= 0.2 and out["factor_vae"]["num_active_dims"] == 0
    assert out["mig"]["discrete_mig"] <= 0.2
    assert out["sap"]["SAP_score"] <= 0.2
    assert out["irs"]["IRS"] <= 0.2 and out["irs"]["num_active_dims"] == 0


def test_duplicated_code():
    """[z, z]: two codes share every factor, so MIG's gap vanishes and DCI completeness
    spreads each factor over 2 of 10 codes: 1 - ln 2 / ln 10."""
    data = IdentityData(TOY_SIZES)
    out = run_small(data, lambda x: np.hstack([x, x]), metrics=("mig", "dci"))
    assert out["mig"]["discrete_mig"] <= 0.1
    assert out["dci"]["completeness"] == pytest.approx(1 - LN2_LN10, abs=0.05)
    assert out["dci"]["disentanglement"] >= 0.9


def test_factor_vae_prunes_collapsed_dims():
    data = IdentityData(TOY_SIZES)

    def representation(x):
        noise = 0.01 * np.sin(np.arange(len(x)) * 12.9898)[:, None]  # std < 0.05
        return np.hstack([x, np.zeros((len(x), 1)), noise])

    out = dis.factor_vae_score(
        data,
        representation,
        0,
        num_train=200,
        num_eval=100,
        batch_size=16,
        num_variance_estimate=500,
    )
    assert out["num_active_dims"] == 5
    assert out["eval_accuracy"] == 1.0
    kept = dis.factor_vae_score(
        data,
        representation,
        0,
        num_train=50,
        num_eval=50,
        batch_size=16,
        num_variance_estimate=500,
        prune_threshold=0.0,
    )
    assert kept["num_active_dims"] == 7


def test_noise_representation_is_near_chance():
    data = IdentityData(TOY_SIZES)
    noise = lambda x: np.random.RandomState(len(x) + int(x.sum())).randn(len(x), 5)  # noqa: E731
    out = dis.beta_vae_score(data, noise, 0, num_train=300, num_eval=200, batch_size=16)
    assert out["eval_accuracy"] < 0.4  # 5 classes: chance 0.2
    train, test = dis.downstream_accuracy(
        *dis.generate_factor_code(data, noise, 300, 1),
        *dis.generate_factor_code(data, noise, 300, 2),
        predictor="gradient_boosting",
    )
    assert (test < 0.7).all() and test.mean() < 1.2 * np.mean([1 / k for k in TOY_SIZES]) + 0.1


# ------------------------------------------------------------------ sampling and the study


def test_codes_are_paired_with_their_factors(dsprites_data):
    """generate_factor_code keeps each observation's code with its factors across
    sampling batches and representation chunks (area code vs. the factor's mask area)."""
    calls = []

    def area(x):
        calls.append(len(x))
        return x.reshape(len(x), -1).sum(axis=1, keepdims=True)

    codes, factors = dis.generate_factor_code(
        dsprites_data, area, 100, 7, batch_size=16, representation_batch_size=40
    )
    window_area = dsprites_data.renderer.windows.reshape(3, 6, 40, -1).sum(-1)
    np.testing.assert_array_equal(
        codes[:, 0], window_area[factors[:, 0], factors[:, 1], factors[:, 2]]
    )
    assert sum(calls) == 100 and max(calls) <= 40
    # The factors are disentanglement_lib's draws: data.sample(16, rs) repeatedly.
    rs = np.random.RandomState(7)
    expected = np.concatenate([dsprites_data.sample_factors(n, rs) for n in [16] * 6 + [4]])
    np.testing.assert_array_equal(factors, expected)


def test_evaluate_all_uses_a_fresh_seeded_state_per_metric():
    data = IdentityData(TOY_SIZES)
    fn = lambda x: x + 0.3 * np.cos(x.sum(axis=1, keepdims=True))  # noqa: E731
    both = dis.evaluate_all(
        data,
        fn,
        metrics=("mig", "irs"),
        random_seed=3,
        overrides={"mig": dict(num_train=300), "irs": dict(num_train=300)},
    )
    assert both["mig"] == dis.compute_mig(data, fn, np.random.RandomState(3), num_train=300)
    assert both["irs"] == dis.irs(data, fn, np.random.RandomState(3), num_train=300)


def test_downstream_task_and_statistical_efficiency():
    data = IdentityData(TOY_SIZES)
    out = dis.downstream_task(
        data, lambda x: x, 0, num_train=(10, 100), num_test=200, predictor="gradient_boosting"
    )
    assert out["100:mean_test_accuracy"] >= 0.9
    assert out["100:min_test_accuracy"] == min(
        out[f"100:test_accuracy_factor_{j}"] for j in range(5)
    )
    assert out["10:mean_test_accuracy"] <= out["100:mean_test_accuracy"]
    assert "statistical_efficiency" not in out  # needs sizes 100 and 10000
    scores = {"100:mean_test_accuracy": 0.5, "10000:mean_test_accuracy": 0.8}
    assert dis.statistical_efficiency(scores) == pytest.approx(0.625)
    lr_train, lr_test = dis.downstream_accuracy(
        *dis.generate_factor_code(data, lambda x: x, 60, 0),
        *dis.generate_factor_code(data, lambda x: x, 60, 1),
        predictor="logistic_regression",
    )
    assert lr_train.shape == lr_test.shape == (5,)
    assert lr_test[0] == 1.0  # a binary factor equal to a code is linearly separable


def test_metric_defaults_are_disentanglement_lib_settings():
    assert dis.DEFAULTS["beta_vae"] == dict(batch_size=64, num_train=10000, num_eval=5000)
    assert dis.DEFAULTS["factor_vae"]["num_variance_estimate"] == 10000
    assert dis.DEFAULTS["factor_vae"]["prune_threshold"] == 0.05
    for name in ("mig", "irs", "modularity_explicitness"):
        assert dis.DEFAULTS[name]["num_bins"] == 20 and dis.DEFAULTS[name]["num_train"] == 10000
    assert dis.DEFAULTS["sap"]["continuous_factors"] is False
    assert dis.DEFAULTS["downstream_gradient_boosting"]["num_train"] == (10, 100, 1000, 10000)
    assert set(dis.METRICS) == set(dis.DEFAULTS)


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown disentanglement metric 'migg'.*beta_vae"):
        dis.evaluate_all(IdentityData(TOY_SIZES), lambda x: x, metrics=["migg"])
    with pytest.raises(ValueError, match="unknown setting 'num_trian'.*num_train"):
        dis.metric_settings("mig", {"num_trian": 10})
    with pytest.raises(ValueError, match="unknown predictor 'svm'.*gradient_boosting"):
        dis.downstream_accuracy(
            np.zeros((4, 2)),
            np.zeros((4, 1), int),
            np.zeros((4, 2)),
            np.zeros((4, 1), int),
            predictor="svm",
        )
    with pytest.raises(ValueError, match=r"codes must be \[num_points, num_codes\]"):
        dis.mig(np.zeros(10), np.zeros((10, 1), int))
    with pytest.raises(ValueError, match="integer"):
        dis.mig(np.zeros((10, 2)), np.zeros((10, 1)))
    with pytest.raises(ValueError, match="representation_fn must return"):
        dis.compute_mig(IdentityData(TOY_SIZES), lambda x: x[:, 0], 0, num_train=32)
    with pytest.raises(ValueError, match="num_train must be positive"):
        dis.beta_vae_score(IdentityData(TOY_SIZES), lambda x: x, 0, num_train=0)
