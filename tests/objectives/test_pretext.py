"""Pretext classification objectives: loss against numpy, model wiring, 8 == 1 device, configs."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ssljax import objectives
from ssljax.models import ConvNet, PretextClassifier
from ssljax.models.network import encoder_variables
from ssljax.objectives import (
    DatasetFacts,
    Jigsaw,
    LossContext,
    RelativePatchLocation,
    Rotation,
    per_class_accuracy,
    pretext_classification_loss,
)
from ssljax.training.loop import build_setup, initial_state, validate_config
from tests.multidevice import run_config
from tests.tolerances import (
    assert_close,
    assert_updates_close,
    f32_reorder_rtol,
    f32_steps_rtol,
    f32_sum_tol,
)


def numpy_cross_entropy(logits, labels):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    return -np.mean(log_probs[np.arange(len(labels)), labels])


def test_loss_matches_numpy_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(12, 5)) * 3
    labels = rng.integers(0, 5, 12)
    loss, accuracy = pretext_classification_loss(
        jnp.asarray(logits, jnp.float32), jnp.asarray(labels)
    )
    assert float(loss) == pytest.approx(numpy_cross_entropy(logits, labels), rel=1e-6)
    assert float(accuracy) == pytest.approx(np.mean(logits.argmax(1) == labels))
    # Uniform logits: log K exactly; huge correct logits: 0 and accuracy 1.
    loss, _ = pretext_classification_loss(jnp.zeros((3, 1000)), jnp.array([0, 5, 999]))
    assert float(loss) == pytest.approx(np.log(1000), rel=1e-6)
    loss, accuracy = pretext_classification_loss(
        100.0 * jax.nn.one_hot(labels, 5), jnp.asarray(labels)
    )
    assert float(loss) < 1e-6 and float(accuracy) == 1.0
    per_class = per_class_accuracy(jnp.asarray(logits), jnp.asarray(labels), 6)
    for k in range(6):
        mask = labels == k
        want = np.mean(logits.argmax(1)[mask] == k) if mask.any() else 0.0
        assert float(per_class[k]) == pytest.approx(want)


def test_crop_network_shares_the_encoder_and_keeps_it_under_encoder():
    encoder = ConvNet(widths=(4, 8), strides=(1, 2))
    net = PretextClassifier(
        encoder=encoder, num_classes=7, num_inputs=3, crop_dim=5, hidden_dims=(6,)
    )
    variables = jax.jit(lambda k, x: net.init(k, x, train=False))(
        jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1))
    )
    assert set(variables["params"]) == {"encoder", "crop_layer", "classifier"}
    apply = jax.jit(lambda v, x: net.apply(v, x, train=False))
    encode = jax.jit(lambda v, x: encoder.apply(v, x, train=False))
    crops = jax.random.uniform(jax.random.PRNGKey(1), (2, 3, 6, 6, 1))
    out = apply(variables, crops)
    assert out["logits"].shape == (2, 7)
    # Every crop goes through the same encoder weights; 'features' is their mean.
    enc_vars = encoder_variables(variables)
    per_crop = encode(enc_vars, crops.reshape(6, 6, 6, 1)).reshape(2, 3, -1)
    np.testing.assert_allclose(out["features"], per_crop.mean(1), rtol=1e-5, atol=1e-6)
    # The order of the crops matters to the classifier (it concatenates slots).
    swapped = apply(variables, crops[:, ::-1])["logits"]
    assert not np.allclose(swapped, out["logits"])
    # Whole images: only features, from the plain encoder (what the linear probe reads).
    images = jax.random.uniform(jax.random.PRNGKey(2), (2, 28, 28, 1))
    whole = apply(variables, images)
    assert set(whole) == {"features"}
    # Two compiled programs may reorder conv1 (9 terms), conv2 (9 x 4) and the pool over
    # 14 x 14 positions.
    assert_close(whole["features"], encode(enc_vars, images), rtol=f32_sum_tol(9 + 36 + 196))
    with pytest.raises(ValueError, match=r"expects \[B, H, W, C\] images or \[B, 3, h, w, C\]"):
        net.apply(variables, crops[:, :2], train=False)


# ---------------------------------------------------------------------------------------------
# Through the generic step.


FASHION_MNIST = DatasetFacts(
    name="fashion_mnist", image_shape=(28, 28, 1), num_examples=60000, num_classes=10
)
CLASSES = {"rotation": Rotation, "jigsaw": Jigsaw, "relative_patch_location": RelativePatchLocation}
# Per task: the objective's keys that differ from its defaults, and the classifier head.
TINY = {
    "rotation": ({}, dict(hidden_dims=(8,), use_bn=True, crop_dim=0)),
    "jigsaw": (
        dict(tile_size=7, gap=2, jitter=1, num_permutations=10, min_hamming_distance=8),
        dict(hidden_dims=(8,), use_bn=True, crop_dim=8),
    ),
    "relative_patch_location": (
        dict(patch_size=10, gap=4, jitter=2),
        dict(hidden_dims=(8,), use_bn=True, crop_dim=8),
    ),
}


def tiny_pretext_config(make_identity_config, method):
    c = make_identity_config()
    c.optimizer.warmup_steps = 0
    objective, head = TINY[method]
    c.objective = ml_collections.ConfigDict(dict(name=method, **objective))
    c.model.classifier = ml_collections.ConfigDict(head)
    del c.model["projector"]
    return c


def run(config, devices, batch):
    state, (metrics,) = run_config(config, devices, [batch])
    return state, metrics


def test_rotation_step_on_eight_devices_equals_one_device(make_identity_config):
    config = tiny_pretext_config(make_identity_config, "rotation")
    validate_config(config)
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.integers(0, 256, (16, 28, 28, 1), dtype=np.uint8),
        "label": np.zeros(16, np.int32),
        "index": np.arange(16, dtype=np.int32),
    }
    s8, m8 = run(config, jax.devices(), batch)
    s1, m1 = run(config, jax.devices()[:1], batch)
    s0 = jax.device_get(initial_state(config, build_setup(config)))
    # Longest reduction: BatchNorm statistics over the 4 x 16 rotated images' 28 x 28 positions.
    n_terms = 4 * 16 * 28 * 28
    assert bool(m8["finite"]) and bool(m1["finite"])
    for key in ("loss", "pretext_accuracy", "accuracy_0", "accuracy_270", "collapse_std"):
        assert_close(m8[key], m1[key], rtol=f32_steps_rtol(n_terms, 0))
    # At initialisation the 4-way loss is near log 4.
    assert abs(float(m1["loss"]) - np.log(4)) < 0.5
    assert_updates_close(s8.params, s1.params, s0.params, rtol=f32_steps_rtol(n_terms, 1))
    assert_updates_close(
        s8.model_state, s1.model_state, s0.model_state, rtol=f32_steps_rtol(n_terms, 1)
    )


@pytest.mark.parametrize("method", ["jigsaw", "relative_patch_location"])
def test_crop_tasks_build_views_and_loss(make_identity_config, method):
    """Views have the task's shapes and label range; the loss is the cross entropy of them;
    the encoder's BatchNorm statistics come from the whole images, the classifier's from
    the crops."""
    config = tiny_pretext_config(make_identity_config, method)
    config.objective.image_stats_fraction = 0.5
    validate_config(config)
    setup = build_setup(config, FASHION_MNIST)
    state = initial_state(config, setup)
    model, variables = setup.eval_model, {"params": state.params, **state.model_state}
    images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (6, 28, 28, 1)), jnp.uint8)
    objective = setup.objective
    assert isinstance(objective, CLASSES[method])
    ctx = LossContext(
        model=model, state=state.extra, batch={"image": images}, axis_name=None, run=setup.run
    )

    @jax.jit
    def views_and_loss(rng):
        views = objective.make_views(rng, images, setup.run)
        loss, aux = objective.loss(state.params, state.model_state, views, rng, ctx)
        metrics, new_state, outputs = aux.metrics, aux.model_state, aux.outputs
        stats = lambda x: model.apply(
            variables,
            x,
            train=True,  # noqa: E731
            mutable=["batch_stats"],
        )[1]["batch_stats"]
        return views, loss, metrics, outputs, new_state, stats(views[0]), stats(views[2])

    views, loss, metrics, outputs, new_state, crop_stats, image_stats = views_and_loss(
        jax.random.PRNGKey(0)
    )
    inputs, labels, whole = views
    crops, classes = (9, 10) if method == "jigsaw" else (2, 8)
    side = 7 if method == "jigsaw" else 10
    assert inputs.shape == (6, crops, side, side, 1) and labels.shape == (6,)
    assert 0 <= int(labels.min()) and int(labels.max()) < classes
    np.testing.assert_array_equal(whole, np.asarray(images[:3], np.float32) / 255.0)
    assert outputs.logits.shape == (6, classes)
    np.testing.assert_array_equal(outputs.labels, labels)
    want = numpy_cross_entropy(outputs.logits, np.asarray(labels))
    assert float(loss) == pytest.approx(want, rel=1e-5)
    assert float(metrics["pretext_accuracy"]) == pytest.approx(
        np.mean(np.asarray(outputs.logits).argmax(1) == np.asarray(labels))
    )
    got = new_state["batch_stats"]
    # Statistics of the 3 whole images' 28 x 28 positions, from the loss and from a separate
    # apply in the same program: equal up to a reordered reduction.
    for a, b in zip(jax.tree.leaves(got["encoder"]), jax.tree.leaves(image_stats["encoder"])):
        assert_close(a, b, rtol=f32_reorder_rtol(3 * 28 * 28))
    assert not np.allclose(got["encoder"]["bn1"]["mean"], crop_stats["encoder"]["bn1"]["mean"])
    # Through the encoder's statistics of up to 6 x 9 tiles of 7 x 7 positions.
    for a, b in zip(jax.tree.leaves(got["classifier"]), jax.tree.leaves(crop_stats["classifier"])):
        assert_close(a, b, rtol=f32_reorder_rtol(6 * 9 * 7 * 7))


@pytest.mark.parametrize(
    "method, key, value, message",
    [
        (
            "rotation",
            "rotations",
            (0, 45),
            r"rotations=\(0, 45\) is invalid; choose at least two distinct angles from \(0, 90, 180, 270\)",
        ),
        ("rotation", "rotations", (90,), r"rotations=\(90,\) is invalid"),
        ("rotation", "pad_crop", -1, r"objective.pad_crop=-1 is invalid; valid: an integer >= 0"),
        ("rotation", "flip", "yes", r"unknown objective.flip 'yes'; choose one of \[False, True\]"),
        (
            "jigsaw",
            "tile_size",
            9,
            r"objective \(jigsaw\) on fashion_mnist: a 3x3 grid of 9px tiles with gap 2 and jitter 1 spans 33px .* > the 28x28 images",
        ),
        ("jigsaw", "tile_size", 0, r"objective.tile_size=0 is invalid; valid: an integer >= 1"),
        (
            "jigsaw",
            "num_permutations",
            400_000,
            r"objective.num_permutations=400000 is invalid; 9 tiles have 362880 permutations, choose 2..362880",
        ),
        (
            "jigsaw",
            "num_permutations",
            40,
            r"num_permutations=40 with min_hamming_distance=8 is not attainable: .* at most 20 permutations keep distance >= 8",
        ),
        (
            "jigsaw",
            "min_hamming_distance",
            10,
            r"objective.min_hamming_distance=10 is invalid; choose 1..9 for 9 tiles",
        ),
        ("jigsaw", "grid", 4, r"unknown objective.grid 4; choose one of \[2, 3\]"),
        (
            "jigsaw",
            "color_mode",
            "sepia",
            r"unknown objective.color_mode 'sepia'; choose one of \['none', 'drop', 'gray', 'project'\]",
        ),
        (
            "jigsaw",
            "color_prob",
            1.5,
            r"objective.color_prob=1.5 is invalid; valid: 0.0 <= color_prob <= 1.0",
        ),
        ("jigsaw", "jitter", -1, r"objective.jitter=-1 is invalid; valid: an integer >= 0"),
        (
            "relative_patch_location",
            "patch_size",
            12,
            r"objective \(relative_patch_location\) on fashion_mnist: patches of 12px with gap 4 and jitter 2 need 30px",
        ),
        (
            "relative_patch_location",
            "image_stats_fraction",
            2.0,
            r"objective.image_stats_fraction=2 is invalid; valid: 0.0 <= image_stats_fraction <= 1.0",
        ),
        (
            "relative_patch_location",
            "noise_fraction",
            -0.5,
            r"objective.noise_fraction=-0.5 is invalid; valid: 0.0 <= noise_fraction",
        ),
    ],
)
def test_impossible_settings_fail_with_one_line(make_identity_config, method, key, value, message):
    config = tiny_pretext_config(make_identity_config, method)
    config.objective[key] = value
    with pytest.raises(ValueError, match=message) as err:
        validate_config(config)  # hyperparameters
        build_setup(config, FASHION_MNIST)  # against the data
    assert "\n" not in str(err.value)


def test_settings_the_data_cannot_give_fail_with_one_line(make_identity_config):
    wide = DatasetFacts(name="wide", image_shape=(28, 40, 3), num_examples=10, num_classes=2)
    run = objectives.Run.from_config(make_identity_config(), wide)
    with pytest.raises(
        ValueError,
        match=r"objective.rotations=\(0, 90, 180, 270\) include "
        r"90/270 degrees, which need square images; wide "
        r"trains on 28x40; valid: a subset of \(0, 180\)",
    ):
        Rotation().check(run)
    Rotation(rotations=(0, 180)).check(run)
    two_channels = DatasetFacts(name="two", image_shape=(28, 28, 2), num_examples=10, num_classes=2)
    run = objectives.Run.from_config(make_identity_config(), two_channels)
    with pytest.raises(
        ValueError,
        match=r"objective.color_mode='drop' needs 1- or 3-channel "
        r"images, two has 2; valid: color_mode='none'",
    ):
        RelativePatchLocation().check(run)
    RelativePatchLocation(color_mode="none").check(run)
    config = tiny_pretext_config(make_identity_config, "jigsaw")
    config.model.patches = ml_collections.ConfigDict(dict(size=8, stride=4))
    with pytest.raises(
        ValueError,
        match=r"objective 'jigsaw' crops its own inputs; remove "
        r"config.model.patches",
    ):
        build_setup(config, FASHION_MNIST)


def test_registered_with_descriptions():
    for name, cls in CLASSES.items():
        assert objectives.get(name) is cls
        assert cls.name == name and cls.description and not cls.needs_index


@pytest.mark.parametrize(
    "method, key",
    [("rotation", "rotation"), ("jigsaw", "tiles"), ("relative_patch_location", "patch")],
)
def test_unknown_key_names_the_valid_keys(method, key):
    cls = CLASSES[method]
    with pytest.raises(ValueError) as err:
        cls.from_config({"name": method, key: 1})
    valid = ", ".join(cls.hyperparameter_names())
    assert str(err.value) == (
        f"unknown key objective.{key} for objective {method!r}; valid keys: {valid}"
    )
    assert "\n" not in str(err.value)


def test_defaults_are_the_papers_and_the_old_setters():
    assert Rotation() == Rotation(rotations=(0, 90, 180, 270), pad_crop=0, flip=False)
    assert Jigsaw() == Jigsaw(
        grid=3,
        tile_size=7,
        gap=2,
        jitter=1,
        num_permutations=1000,
        min_hamming_distance=1,
        permutation_seed=0,
        color_mode="gray",
        color_prob=0.3,
        noise_fraction=0.0,
        normalize=False,
        image_stats_fraction=0.25,
    )
    assert RelativePatchLocation() == RelativePatchLocation(
        patch_size=10,
        gap=4,
        jitter=2,
        color_mode="drop",
        color_prob=1.0,
        noise_fraction=0.01,
        normalize=False,
        image_stats_fraction=0.25,
    )
    # Lists (JSON) become the tuple of the field.
    assert Rotation(rotations=[0, 180]).rotations == (0, 180)


@pytest.mark.parametrize("method", list(CLASSES))
def test_old_configs_objectives_load_with_the_same_values(method):
    """Every objective stored before the typed objectives loads, with the same values, so
    stored runs resume."""
    old = json.load(open(Path(__file__).parents[1] / "data" / "configs_before_redesign.json"))
    stored = [c["objective"] for c in old.values() if c["objective"]["name"] == method]
    assert len(stored) == 2  # cifar10 and fashion_mnist
    for objective in stored:
        loaded = objectives.build(objective)
        assert isinstance(loaded, CLASSES[method])
        values = loaded.hyperparameters()
        assert set(values) == set(objective)
        for key, value in objective.items():
            assert values[key] == (tuple(value) if isinstance(value, list) else value), key
