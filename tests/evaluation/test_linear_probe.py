"""Linear probe: accuracy on easy/impossible data, optimality, sklearn agreement, errors."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.linear_model import LogisticRegression

from ssljax.evaluation import (
    fit_linear_probe,
    linear_probe_logits,
    standardize,
    train_linear_classifier,
)
from ssljax.evaluation.linear_probe import regularized_cross_entropy
from tests.tolerances import f32_reorder_rtol

GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
NUM_CLASSES = 10
DIM = 32
NUM_TRAIN = 2000
NUM_TEST = 500


def gaussian_clusters(seed, center_scale, num_train=NUM_TRAIN, num_test=NUM_TEST):
    """10 Gaussian clusters (unit noise) in 32-D; returns train/test features and labels."""
    rng = np.random.default_rng(seed)
    centers = center_scale * rng.standard_normal((NUM_CLASSES, DIM))

    def sample(n):
        y = rng.integers(0, NUM_CLASSES, n)
        return (centers[y] + rng.standard_normal((n, DIM))).astype(np.float32), y

    return (*sample(num_train), *sample(num_test))


def reference_objective(params, x, y, l2):
    """Plain autodiff version of the objective, independent of the custom VJP."""
    logits = x @ params["w"] + params["b"]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return ce + 0.5 * l2 * jnp.sum(params["w"] ** 2)


def grad_norm(params, x, y, l2):
    grads = jax.grad(reference_objective)(params, jnp.asarray(x), jnp.asarray(y), l2)
    return float(optax.tree.norm(grads))


def assert_selection_rule(result):
    """Chosen l2 has the best validation top-1; among ties, the largest l2."""
    val = {float(k): v for k, v in result["val_top1"].items()}
    best = max(val.values())
    assert result["l2"] == max(l2 for l2, acc in val.items() if acc == best)


@pytest.fixture(scope="module")
def separable():
    return gaussian_clusters(seed=0, center_scale=4.0)


@pytest.fixture(scope="module")
def overlapping():
    return gaussian_clusters(seed=1, center_scale=0.4)


def test_separable_clusters(separable):
    train_x, train_y, test_x, test_y = separable
    result = fit_linear_probe(
        train_x, train_y, test_x, test_y, num_classes=NUM_CLASSES, l2_grid=GRID
    )
    assert result["top1"] >= 0.99
    assert result["top5"] >= result["top1"]
    assert result["train_top1"] >= 0.99
    assert result["l2"] in GRID
    assert set(result["val_top1"]) == {str(v) for v in GRID}
    # Every l2 separates the validation split perfectly, so the tie rule applies.
    assert all(acc == 1.0 for acc in result["val_top1"].values())
    assert result["l2"] == max(GRID)
    assert (result["num_train"], result["num_test"], result["feature_dim"]) == (
        NUM_TRAIN,
        NUM_TEST,
        DIM,
    )
    # JSON round trip with plain Python types.
    assert json.loads(json.dumps(result)) == result
    assert all(type(result[key]) is float for key in ("top1", "top5", "l2", "train_top1"))
    assert all(type(result[key]) is int for key in ("num_train", "num_test", "feature_dim"))


def test_random_labels_near_chance(separable):
    train_x, _, test_x, _ = separable
    rng = np.random.default_rng(5)
    train_y = rng.integers(0, NUM_CLASSES, NUM_TRAIN)
    test_y = rng.integers(0, NUM_CLASSES, NUM_TEST)
    result = fit_linear_probe(
        train_x, train_y, test_x, test_y, num_classes=NUM_CLASSES, l2_grid=GRID, seed=3
    )
    assert result["top1"] < 0.25
    assert result["l2"] in GRID
    assert_selection_rule(result)


def test_weight_norm_decreases_with_l2(overlapping):
    train_x, train_y, _, _ = overlapping
    norms = []
    for l2 in GRID:
        params, info = train_linear_classifier(
            train_x, train_y, num_classes=NUM_CLASSES, l2=l2, steps=1000, tol=1e-6, return_info=True
        )
        assert info["grad_norm"] < 1e-4, (l2, info)
        norms.append(float(jnp.linalg.norm(params["w"])))
    assert all(a > b for a, b in zip(norms[:-1], norms[1:])), norms


def test_solution_is_stationary(overlapping):
    train_x, train_y, test_x, test_y = overlapping
    l2 = 1e-3
    params, info = train_linear_classifier(
        train_x, train_y, num_classes=NUM_CLASSES, l2=l2, steps=1000, tol=1e-6, return_info=True
    )
    assert grad_norm(params, train_x, train_y, l2) < 1e-4
    zero = jax.tree.map(jnp.zeros_like, params)
    assert grad_norm(zero, train_x, train_y, l2) > 1e-2  # the check is not vacuous
    # The reported loss is the objective at the returned parameters.
    value = reference_objective(params, jnp.asarray(train_x), jnp.asarray(train_y), l2)
    assert info["loss"] == pytest.approx(float(value), rel=1e-5)
    # Hand-written gradient of the objective matches plain autodiff.
    rng = np.random.default_rng(0)
    probe = {
        "w": jnp.asarray(rng.standard_normal((DIM, NUM_CLASSES)), jnp.float32),
        "b": jnp.asarray(rng.standard_normal(NUM_CLASSES), jnp.float32),
    }
    args = (jnp.asarray(train_x), jnp.asarray(train_y), l2)
    mine = jax.grad(regularized_cross_entropy)(probe, *args)
    ref = jax.grad(reference_objective)(probe, *args)
    for key in ("w", "b"):
        np.testing.assert_allclose(mine[key], ref[key], rtol=1e-4, atol=1e-6)
    assert linear_probe_logits(params, test_x).shape == (NUM_TEST, NUM_CLASSES)


def _tiny_problem(num_classes, n=90, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    centers = rng.standard_normal((num_classes, dim))
    x = (centers[y] + 1.5 * rng.standard_normal((n, dim))).astype(np.float32)
    return x, y


def test_matches_sklearn_binary():
    # Softmax with two classes and penalty (l2/2)(|w0|^2 + |w1|^2) has w0 = -w1 at the
    # optimum, so with v = w1 - w0 it is the logistic model with penalty (l2/4)|v|^2:
    # mean CE + (l2/4)|v|^2 = (sum CE + 1/(2C)|v|^2) / n  for  C = 2 / (n * l2).
    x, y = _tiny_problem(2)
    n, l2 = x.shape[0], 0.05
    params = train_linear_classifier(x, y, num_classes=2, l2=l2, steps=2000, tol=1e-7)
    w, b = np.asarray(params["w"]), np.asarray(params["b"])
    sk = LogisticRegression(C=2.0 / (n * l2), tol=1e-12, max_iter=10_000).fit(x, y)
    np.testing.assert_allclose(w[:, 0], -w[:, 1], atol=1e-5)
    np.testing.assert_allclose(w[:, 1] - w[:, 0], sk.coef_[0], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(b[1] - b[0], sk.intercept_[0], rtol=1e-3, atol=1e-4)
    logits = np.asarray(linear_probe_logits(params, x))
    np.testing.assert_array_equal(logits.argmax(1), sk.predict(x))
    probs = np.asarray(jax.nn.softmax(logits))
    np.testing.assert_allclose(probs, sk.predict_proba(x), atol=1e-4)


def test_matches_sklearn_multinomial():
    # sklearn multinomial: min C * sum CE + |W|^2 / 2; divided by C * n this is our
    # objective when C = 1 / (n * l2). Intercepts are unpenalised, hence defined up to
    # a common shift: compare them centred.
    x, y = _tiny_problem(3)
    n, l2 = x.shape[0], 0.02
    params = train_linear_classifier(x, y, num_classes=3, l2=l2, steps=2000, tol=1e-7)
    w, b = np.asarray(params["w"]), np.asarray(params["b"])
    sk = LogisticRegression(C=1.0 / (n * l2), tol=1e-12, max_iter=10_000).fit(x, y)
    np.testing.assert_allclose(w.T, sk.coef_, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(b - b.mean(), sk.intercept_ - sk.intercept_.mean(), atol=1e-4)
    logits = np.asarray(linear_probe_logits(params, x))
    np.testing.assert_array_equal(logits.argmax(1), sk.predict(x))


def test_adam_solver(separable):
    train_x, train_y, test_x, test_y = separable
    (train_s, test_s), _ = standardize(train_x, test_x)
    params = train_linear_classifier(
        train_s,
        train_y,
        num_classes=NUM_CLASSES,
        l2=1e-4,
        solver="adam",
        steps=300,
        batch_size=256,
        learning_rate=0.05,
    )
    logits = np.asarray(linear_probe_logits(params, test_s))
    assert (logits.argmax(1) == test_y).mean() >= 0.99
    with pytest.raises(ValueError, match="solver"):
        train_linear_classifier(train_s, train_y, num_classes=NUM_CLASSES, l2=1e-4, solver="sgd")


def test_standardize_uses_train_statistics():
    rng = np.random.default_rng(0)
    train = rng.normal(3.0, 2.0, (500, 4)).astype(np.float32)
    other = rng.normal(-1.0, 5.0, (100, 4)).astype(np.float32)
    (train_s, other_s), stats = standardize(train, other)
    # The train mean is a reduction of 500 values of size ~3, in units of the std 2.
    np.testing.assert_allclose(np.mean(train_s, 0), 0.0, atol=f32_reorder_rtol(500) * 3.0 / 2.0)
    np.testing.assert_allclose(np.std(train_s, 0), 1.0, atol=1e-4)
    expected = (other - train.mean(0)) / np.sqrt(train.var(0) + 1e-6)
    np.testing.assert_allclose(other_s, expected, rtol=1e-4, atol=1e-4)
    assert stats["mean"].shape == stats["std"].shape == (4,)


def test_single_value_grid_skips_validation(separable):
    train_x, train_y, test_x, test_y = separable
    result = fit_linear_probe(
        train_x, train_y, test_x, test_y, num_classes=NUM_CLASSES, l2_grid=(1e-3,)
    )
    assert result["val_top1"] == {}
    assert result["l2"] == 1e-3
    assert result["top1"] >= 0.99


def _bad(**overrides):
    rng = np.random.default_rng(0)
    args = dict(
        train_x=rng.standard_normal((20, 3)).astype(np.float32),
        train_y=np.arange(20) % 4,
        test_x=rng.standard_normal((8, 3)).astype(np.float32),
        test_y=np.arange(8) % 4,
        num_classes=4,
    )
    args.update(overrides)
    return args


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(train_x=np.zeros(20)), "train_x must be 2-D"),
        (dict(test_x=np.zeros((8, 3, 1))), "test_x must be 2-D"),
        (dict(train_y=np.arange(19) % 4), "train_y has 19 labels but features have 20"),
        (dict(test_y=np.array([0, 1, 2, 3, 4, 0, 1, 2])), "label 4"),
        (dict(train_y=np.r_[np.arange(19) % 4, -2]), "label -2"),
        (dict(train_y=(np.arange(20) % 4).astype(np.float32)), "integers"),
        (dict(test_x=np.zeros((8, 5))), "feature dims differ"),
        (dict(num_classes=1), "num_classes"),
        (dict(l2_grid=(1e-3, -1.0)), "l2_grid value -1.0"),
        (dict(l2_grid=()), "l2_grid is empty"),
        (dict(val_fraction=0.0), "val_fraction"),
        (dict(train_x=np.full((20, 3), np.nan)), "NaN"),
    ],
)
def test_bad_inputs(overrides, match):
    with pytest.raises(ValueError, match=match) as err:
        fit_linear_probe(**_bad(**overrides))
    assert "\n" not in str(err.value)
