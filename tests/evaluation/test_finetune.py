"""Fine-tuning: hand-computed SGD step, frozen encoder, learning, determinism, recipe checks."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssljax import parallel
from ssljax.evaluation import finetune as ft
from ssljax.models import build_encoder
from ssljax.training.step import shard_map_driver
from tests.tolerances import f32_sum_tol


class LinearEncoder(nn.Module):
    """``features = flatten(x) @ W`` (no bias, no normalisation): gradients by hand."""

    dim: int = 2

    @nn.compact
    def __call__(self, x, *, train):
        del train
        return nn.Dense(self.dim, use_bias=False, name="proj")(x.reshape(x.shape[0], -1))


def bar_images(n, seed, size=12):
    """Two separable classes: a bright bar in the top (0) or bottom (1) half, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 60, (n, size, size, 1)).astype(np.uint8)
    for i, c in enumerate(labels):
        top = 1 if c == 0 else size - 4
        images[i, top : top + 3, 2 : size - 2] = 220
    return images, labels.astype(np.int32)


def recipe(**overrides):
    cfg = ft.default_config()
    cfg.update({**dict(epochs=1, min_steps=4, batch_size=16, eval_batch_size=32), **overrides})
    return cfg


def tiny_convnet_classifier(num_classes=2):
    encoder = build_encoder("convnet", axis_name=parallel.AXIS, widths=(4, 8), strides=(2, 2))
    return ft.Classifier(encoder=encoder, num_classes=num_classes)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, True)])
def test_one_sgd_step_equals_the_hand_computed_update(momentum, nesterov):
    rng = np.random.default_rng(0)
    n, pixels, dim, classes = 8, 3 * 3, 2, 3
    x = rng.integers(0, 256, (n, 3, 3, 1)).astype(np.uint8)
    y = rng.integers(0, classes, n).astype(np.int32)
    w = rng.normal(size=(pixels, dim)).astype(np.float32)
    v = rng.normal(size=(dim, classes)).astype(np.float32)
    b = rng.normal(size=(classes,)).astype(np.float32)
    lr, wd = 0.3, 0.01
    cfg = recipe(
        learning_rate=lr * 256 / 8,  # the peak is learning_rate * batch / 256
        batch_size=8,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=wd,
        warmup_epochs=0.0,
    )
    classifier = ft.Classifier(encoder=LinearEncoder(dim), num_classes=classes)
    variables = {"params": {"encoder": {"proj": {"kernel": w}}, "head": {"kernel": v, "bias": b}}}
    tx, schedule = ft.make_optimizer(cfg, total_steps=10, warmup_steps=0)
    assert float(schedule(0)) == pytest.approx(lr)
    step = jax.jit(ft.make_train_step(classifier, tx, num_classes=classes, axis_name=None))
    new, metrics = step(ft.initial_state(variables, tx, seed=0), {"image": x, "label": y})

    # By hand: logits = F V + b, F = X W; dL/dlogits = (softmax - onehot) / n.
    xf = x.reshape(n, -1).astype(np.float64) / 255.0
    feats = xf @ w
    p = softmax(feats @ v + b)
    g = (p - np.eye(classes)[y]) / n
    loss = -np.mean(np.log(p[np.arange(n), y]))
    grads = {"w": xf.T @ (g @ v.T), "v": feats.T @ g, "b": g.sum(0)}
    grads["w"] += wd * w  # L2 on kernels only, not on the bias
    grads["v"] += wd * v
    factor = lr * (1.0 + momentum if nesterov else 1.0)  # first step: trace = gradient
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-5)
    got = new.params
    np.testing.assert_allclose(got["encoder"]["proj"]["kernel"], w - factor * grads["w"], atol=1e-5)
    np.testing.assert_allclose(got["head"]["kernel"], v - factor * grads["v"], atol=1e-5)
    np.testing.assert_allclose(got["head"]["bias"], b - factor * grads["b"], atol=1e-5)
    assert int(new.step) == 1

    # The same step over 8 devices (1 example each) gives the same update, up to float32
    # reordering: the gradients sum over the n examples after chains through dim and classes
    # (sum|terms| bounded by |x| |g| |v| products), scaled by the step, plus one rounding of
    # the parameters themselves.
    terms = {
        "w": np.abs(xf).T @ (np.abs(g) @ np.abs(v).T),
        "v": np.abs(feats).T @ np.abs(g),
        "b": np.abs(g).sum(0),
    }
    step_size = factor * max(float(t.max()) for t in terms.values())
    param_size = max(float(np.abs(a).max()) for a in (w, v, b))
    atol = f32_sum_tol(n + pixels + dim + classes, step_size) + f32_sum_tol(2, param_size)
    mesh = parallel.make_mesh()
    mapped = shard_map_driver(ft.make_train_step(classifier, tx, num_classes=classes), mesh)
    state = parallel.replicate_on_mesh(ft.initial_state(variables, tx, seed=0), mesh)
    multi, _ = mapped(state, {"image": jnp.asarray(x), "label": jnp.asarray(y)})
    jax.tree.map(
        lambda a, c: np.testing.assert_allclose(np.asarray(a), np.asarray(c), atol=atol),
        multi.params,
        new.params,
    )


def test_encoder_learning_rate_zero_keeps_the_encoder_parameters():
    images, labels = bar_images(32, seed=0)
    classifier = tiny_convnet_classifier()
    variables = ft.init_variables(classifier, jax.random.PRNGKey(1), images.shape[1:])
    # A non-zero head, so that the encoder's gradients are not zero.
    variables["params"]["head"]["kernel"] = np.ones_like(variables["params"]["head"]["kernel"])
    trained, summary = ft.train_classifier(
        classifier,
        variables,
        images,
        labels,
        cfg=recipe(encoder_lr_multiplier=0.0, learning_rate=1.0),
        num_classes=2,
        seed=0,
    )
    assert summary["steps"] == 4
    jax.tree.map(
        np.testing.assert_array_equal,
        trained["params"]["encoder"],
        variables["params"]["encoder"],
    )
    assert not np.allclose(trained["params"]["head"]["kernel"], 1.0)
    # BatchNorm ran in train mode: its running statistics moved.
    moved = jax.tree.map(
        lambda a, b: not np.allclose(a, b),
        trained["batch_stats"]["encoder"],
        variables["batch_stats"]["encoder"],
    )
    assert all(jax.tree.leaves(moved))


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_loss_decreases_and_test_accuracy_is_high_on_a_separable_problem(optimizer):
    images, labels = bar_images(64, seed=0)
    test_images, test_labels = bar_images(32, seed=1)
    classifier = tiny_convnet_classifier()
    variables = ft.init_variables(classifier, jax.random.PRNGKey(0), images.shape[1:])
    lr = 2.0 if optimizer == "sgd" else 0.5
    cfg = recipe(min_steps=30, learning_rate=lr, optimizer=optimizer, crop_scale=(0.8, 1.0))

    def loss_of(v):
        logits = ft.predict_logits(classifier, v, images, batch_size=64)
        return float(ft.classification_loss(jnp.asarray(logits), labels, 2))

    report = ft.finetune_and_evaluate(
        classifier,
        variables,
        (images, labels),
        {"test": (test_images, test_labels)},
        cfg=cfg,
        num_classes=2,
        seed=0,
    )
    trained, _ = ft.train_classifier(
        classifier, variables, images, labels, cfg=cfg, num_classes=2, seed=0
    )
    assert loss_of(variables) == pytest.approx(np.log(2.0), rel=1e-5)  # zero head
    assert loss_of(trained) < 0.5 * np.log(2.0)
    assert report["top1"] >= 0.9 and report["steps"] == 30


def test_training_is_deterministic_by_seed():
    images, labels = bar_images(32, seed=0)
    classifier = tiny_convnet_classifier()
    variables = ft.init_variables(classifier, jax.random.PRNGKey(0), images.shape[1:])
    cfg = recipe(learning_rate=1.0)

    def run(seed):
        return ft.train_classifier(
            classifier, variables, images, labels, cfg=cfg, num_classes=2, seed=seed
        )[0]

    a, b, c = run(0), run(0), run(1)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    differ = jax.tree.map(lambda x, y: not np.array_equal(x, y), a["params"], c["params"])
    assert any(jax.tree.leaves(differ))


def test_init_variables_takes_the_checkpoint_encoder_and_a_zero_head():
    classifier = tiny_convnet_classifier(num_classes=3)
    donor = build_encoder("convnet", widths=(4, 8), strides=(2, 2))
    pretrained = donor.init(jax.random.PRNGKey(5), jnp.zeros((1, 12, 12, 1)), train=False)
    variables = ft.init_variables(classifier, jax.random.PRNGKey(0), (12, 12, 1), pretrained)
    jax.tree.map(
        np.testing.assert_array_equal, variables["params"]["encoder"], pretrained["params"]
    )
    np.testing.assert_array_equal(variables["params"]["head"]["kernel"], np.zeros((8, 3)))
    np.testing.assert_array_equal(variables["params"]["head"]["bias"], np.zeros(3))
    other = build_encoder("convnet", widths=(4, 16), strides=(2, 2))
    wrong = other.init(jax.random.PRNGKey(5), jnp.zeros((1, 12, 12, 1)), train=False)
    with pytest.raises(ValueError, match="do not fit"):
        ft.init_variables(classifier, jax.random.PRNGKey(0), (12, 12, 1), wrong)


def test_the_head_reads_the_probed_layer_and_grid():
    from ssljax.models import extract_features

    classifier = ft.Classifier(
        encoder=build_encoder("convnet", widths=(4, 8), strides=(2, 2)),
        num_classes=3,
        layer="block1",
        grid=2,
    )
    variables = ft.init_variables(classifier, jax.random.PRNGKey(0), (12, 12, 1))
    assert variables["params"]["head"]["kernel"].shape == (2 * 2 * 4, 3)
    rng = np.random.default_rng(0)
    head = {"kernel": rng.normal(size=(16, 3)), "bias": rng.normal(size=3)}
    variables["params"]["head"] = jax.tree.map(lambda a: a.astype(np.float32), head)
    images = rng.integers(0, 256, (5, 12, 12, 1)).astype(np.uint8)
    logits = ft.predict_logits(classifier, variables, images, batch_size=8)
    encoder_vars = {k: v["encoder"] for k, v in variables.items()}
    feats = extract_features(
        classifier.encoder, encoder_vars, images / 255.0, layer="block1", grid=2
    )
    np.testing.assert_allclose(logits, feats @ head["kernel"] + head["bias"], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"unknown layer 'block9'; the encoder sows \['block1'"):
        ft.init_variables(classifier.clone(layer="block9"), jax.random.PRNGKey(0), (12, 12, 1))


def test_batch_indices_are_consecutive_permutations():
    order = ft.batch_indices(10, 4, steps=7, seed=3)
    assert order.shape == (7, 4)
    flat = order.reshape(-1)
    for epoch in range(2):  # 28 indices: two whole epochs, then 8 of the third
        assert sorted(flat[10 * epoch : 10 * (epoch + 1)]) == list(range(10))
    assert len(set(flat[20:])) == 8
    np.testing.assert_array_equal(order, ft.batch_indices(10, 4, steps=7, seed=3))
    assert not np.array_equal(order, ft.batch_indices(10, 4, steps=7, seed=4))


def test_num_steps_and_schedule():
    cfg = recipe(epochs=3, min_steps=0, batch_size=16)
    assert ft.num_steps(100, cfg) == 19  # ceil(3 * 100 / 16)
    assert ft.num_steps(100, recipe(epochs=3, min_steps=50, batch_size=16)) == 50
    cfg = recipe(learning_rate=0.2, batch_size=128)
    schedule = ft.learning_rate_schedule(cfg, total_steps=100, warmup_steps=10)
    assert float(schedule(0)) == 0.0
    assert float(schedule(10)) == pytest.approx(0.1)  # 0.2 * 128 / 256
    assert float(schedule(100)) == pytest.approx(0.0, abs=1e-8)


def test_label_smoothing_matches_its_formula():
    logits = jnp.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    labels = jnp.array([0, 2])
    eps = 0.1
    logp = np.asarray(jax.nn.log_softmax(logits))
    targets = (1 - eps) * np.eye(3)[[0, 2]] + eps / 3
    expected = -np.mean(np.sum(targets * logp, axis=1))
    got = ft.classification_loss(logits, labels, 3, label_smoothing=eps)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert float(ft.classification_loss(logits, labels, 3)) == pytest.approx(
        float(jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels)))
    )


@pytest.mark.parametrize(
    "key,value,pattern",
    [
        (
            "optimizer",
            "lars",
            r"unknown finetune.optimizer 'lars'; choose one of \('adamw', 'sgd'\)",
        ),
        ("epochs", 0, r"finetune.epochs=0 must be a positive integer"),
        ("label_smoothing", 1.0, r"finetune.label_smoothing=1.0 must be in \[0, 1\)"),
        ("encoder_lr_multiplier", -1.0, r"finetune.encoder_lr_multiplier=-1.0 must be >= 0"),
    ],
)
def test_bad_recipe_values_are_one_line_errors(key, value, pattern):
    cfg = ft.default_config()
    cfg[key] = value
    with pytest.raises(ValueError, match=pattern):
        ft.check_config(cfg)


def test_augmentation_is_light_and_keeps_the_shape():
    images, _ = bar_images(4, seed=0)
    out = jax.jit(ft.make_augment(ft.default_config()))(jax.random.PRNGKey(0), images)
    assert out.shape == images.shape and out.dtype == jnp.float32
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    identity = recipe(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=False)
    same = jax.jit(ft.make_augment(identity))(jax.random.PRNGKey(0), images)
    np.testing.assert_allclose(same, images / 255.0, atol=1e-6)
