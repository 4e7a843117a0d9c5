"""Deep InfoMax through the generic step: 8 devices == 1 device, the loss against an independent
numpy computation from the network's outputs, prior-matching gradients, bad settings."""

import dataclasses
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ssljax import config_base, objectives, parallel
from ssljax.objectives import DIM, DatasetFacts, LossContext
from ssljax.objectives import dim as dim_lib
from ssljax.objectives import mutual_information as mi
from ssljax.training.loop import build_setup, initial_state, validate_config
from ssljax.training.step import make_train_step, shard_map_driver
from tests.tolerances import assert_close, assert_updates_close, f32_steps_rtol

# Longest reduction of a DIM step: BatchNorm statistics of block1 over the two views of the
# 16-image batch at 28 x 28 (tolerances: tests/tolerances.py).
N_TERMS = 2 * 16 * 28 * 28


FASHION_MNIST = DatasetFacts(
    name="fashion_mnist", image_shape=(28, 28, 1), num_examples=60000, num_classes=10
)
# Settings of config.model.dim; the other keyword arguments of tiny_dim_config are objective
# hyperparameters.
MODEL_KEYS = ("local_layer", "critic_hidden", "critic_embed", "critic_layers", "prior_hidden")


def tiny_dim_config(make_identity_config, **overrides):
    c = make_identity_config()  # ConvNet (8, 16) at strides (1, 2): block2 is 14x14x16
    settings = dict(
        estimator="jsd",
        global_weight=0.0,
        local_weight=1.0,
        prior_weight=0.0,
        local_layer="block2",
        critic_hidden=8,
        critic_embed=4,
        critic_layers=1,
        prior_hidden=(6,),
    )
    settings.update(overrides)
    c.model.dim = ml_collections.ConfigDict({k: settings.pop(k) for k in MODEL_KEYS})
    c.model.projector = config_base.mlp((8,), 4)  # Y: 8-unit layer -> 4-d
    c.objective = ml_collections.ConfigDict(dict(name="dim", **settings))
    return config_base.adamw(c, 1e-3, weight_decay=0.0, warmup_steps=0)


def global_batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
        "label": rng.integers(0, 10, (n,)).astype(np.int32),
        "index": np.arange(n, dtype=np.int32),
    }


def run(config, devices, batch, steps=2):
    setup = build_setup(config)
    mesh = parallel.make_mesh(devices)
    state = parallel.replicate_on_mesh(initial_state(config, setup), mesh)
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


def assert_trees_close(a, b, rtol, atol):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def mine_cancellation(config, batch) -> float:
    """``(|g_joint| + |g_partition|) / |g|`` of DIM's MINE loss at the first step, at least
    ``CANCELLATION``: MINE's gradient is the joint term's minus the partition term's (the
    first step's moving average is the batch's own, so it is the exact DV gradient), two
    O(1) vectors that nearly cancel while the critic is close to constant. The ratio is taken
    per parameter array (the largest), from gradients of the loss with ``mine_bound``
    reduced to each part."""
    from tests.tolerances import CANCELLATION

    real = mi.mine_bound

    def only(part):
        def bound(scores, state, **kw):
            _, new_state = real(scores, state, **kw)
            scores = scores.astype(jnp.float32)
            if part == "joint":
                return jnp.mean(mi.joint_scores(scores, kw.get("axis_name"))), new_state
            return -mi.offdiag_logmeanexp(scores, kw.get("axis_name")), new_state

        return bound

    setup = build_setup(config)
    state = initial_state(config, setup)
    key = jax.random.PRNGKey(0)
    ctx = LossContext(
        model=setup.eval_model,  # same parameters, no collectives: one device
        state=state.extra,
        batch={k: jnp.asarray(v) for k, v in batch.items()},
        axis_name=None,
        run=setup.run,
        shared_rng=key,
    )
    views = setup.objective.make_views(key, ctx.batch["image"], setup.run)

    def grads():
        def loss(params):
            return setup.objective.loss(params, state.model_state, views, key, ctx)[0]

        return jax.tree.leaves(jax.grad(loss)(state.params))

    parts = {}
    try:
        for part in ("joint", "partition"):
            mi.mine_bound = only(part)
            parts[part] = grads()
    finally:
        mi.mine_bound = real
    ratios = [
        (np.linalg.norm(a) + np.linalg.norm(b)) / max(np.linalg.norm(g), 1e-30)
        for a, b, g in zip(parts["joint"], parts["partition"], grads())
        if np.linalg.norm(g) > 0
    ]
    return max(CANCELLATION, float(max(ratios)))


def test_eight_devices_equal_one_device(make_identity_config):
    """Global and local terms across two views, MINE's moving averages in
    ``TrainState.extra``; two steps."""
    config = tiny_dim_config(
        make_identity_config, estimator="mine", global_weight=0.5, cross_view=True
    )
    validate_config(config)
    batch = global_batch()
    s8, m8 = run(config, jax.devices(), batch)
    s1, m1 = run(config, jax.devices()[:1], batch)
    s0 = jax.device_get(initial_state(config, build_setup(config)))
    for updates_before, (a, b) in enumerate(zip(m8, m1)):
        assert bool(a["finite"]) and bool(b["finite"])
        rtol = f32_steps_rtol(N_TERMS, steps=updates_before)
        for key in ("loss", "mi_global", "mi_local", "collapse_std"):
            # The bounds are differences of O(1) terms (mean score - log-mean-exp score), so
            # their rounding scales with 1, not with their value (-0.08 for mi_global).
            assert_close(a[key], b[key], rtol=rtol, atol=rtol)
    assert m8[1]["loss"] != m8[0]["loss"]  # the first step moved the parameters
    # Adam turns the gradient's relative rounding error into the update's; that error is the
    # pass's rounding times the gradient's cancellation, measured for this loss below.
    rtol = f32_steps_rtol(N_TERMS, steps=2, cancellation=mine_cancellation(config, batch))
    assert_updates_close(s8.params, s1.params, s0.params, rtol=rtol)
    assert_updates_close(s8.extra, s1.extra, s0.extra, rtol=rtol)
    # One moving average per direction for the global matrix, and per direction and
    # location of the 14x14 map.
    assert isinstance(s8.extra, dim_lib.MineAverages)
    assert s8.extra.local.log_mean.shape == (2 * 196,)
    np.testing.assert_allclose(s8.extra.global_.weight, [1 - 0.9**2] * 2, rtol=1e-6)


def test_mine_averages_keep_the_checkpoint_names_of_the_old_dict():
    """Checkpoints name leaves by their pytree path: the averages keep the names of the old
    ``{'global': ..., 'local': ...}`` dict, and a term that is off has no entry."""
    both = dim_lib.MineAverages(global_=mi.mine_init_state((2,)), local=mi.mine_init_state((3,)))
    old = {"global": mi.mine_init_state((2,)), "local": mi.mine_init_state((3,))}
    names = lambda tree: [
        jax.tree_util.keystr(p, simple=True, separator="/")  # noqa: E731
        for p, _ in jax.tree_util.tree_leaves_with_path(tree)
    ]
    assert (
        names(both)
        == names(old)
        == ["global/log_mean", "global/weight", "local/log_mean", "local/weight"]
    )
    local_only = dim_lib.MineAverages(local=mi.mine_init_state((3,)))
    assert names(local_only) == ["local/log_mean", "local/weight"]
    doubled = jax.tree.map(lambda x: x + 2.0, local_only)
    assert doubled.global_ is None and float(doubled.local.weight[0]) == 2.0


def test_mine_averages_restore_from_a_checkpoint_of_the_old_dict(tmp_path):
    import orbax.checkpoint as ocp

    old = {"local": mi.MineState(jnp.arange(3.0), jnp.full((3,), 0.19))}
    template = dim_lib.MineAverages(local=mi.mine_init_state((3,)))
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "state", {"extra": old})
    checkpointer.wait_until_finished()
    restored = checkpointer.restore(
        tmp_path / "state", jax.tree.map(ocp.utils.to_shape_dtype_struct, {"extra": template})
    )
    assert isinstance(restored["extra"], dim_lib.MineAverages)
    np.testing.assert_array_equal(restored["extra"].local.log_mean, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(restored["extra"].local.weight, old["local"].weight)


def test_only_mine_keeps_state(make_identity_config):
    """Other estimators keep no state (``TrainState.extra`` stays ``{}``, as before); MINE
    keeps one average per score matrix of the terms that are on."""
    config = tiny_dim_config(make_identity_config, estimator="infonce")
    run = objectives.Run.from_config(config, FASHION_MNIST)
    objective = objectives.build(config.objective)
    assert objective.init_state(None, None, run) is None
    state = dataclasses.replace(objective, estimator="mine").init_state(None, None, run)
    assert state.global_ is None and state.local.log_mean.shape == (14 * 14,)


@pytest.fixture(scope="module")
def dim_setup(make_identity_config):
    """A tiny DIM(G + L) network with prior matching, its initial state and a batch."""
    config = tiny_dim_config(make_identity_config, global_weight=0.3, prior_weight=0.1)
    setup = build_setup(config, FASHION_MNIST)
    state = initial_state(config, setup)
    x = jnp.asarray(np.random.default_rng(1).uniform(size=(6, 28, 28, 1)), jnp.float32)
    return config, setup, state, x


def np_js_fgan(s):
    k = s.shape[0]
    off = ~np.eye(k, dtype=bool)
    return np.mean(-np.logaddexp(0, -np.diag(s))) - np.mean(np.logaddexp(0, s[off]))


def np_infonce(s):
    k = s.shape[0]
    lse = np.log(np.exp(s - s.max(1, keepdims=True)).sum(1)) + s.max(1)
    return math.log(k) + np.mean(np.diag(s) - lse)


@pytest.mark.parametrize(
    "estimator, reference, cross_view", [("jsd", np_js_fgan, False), ("infonce", np_infonce, True)]
)
def test_loss_equals_numpy_on_the_network_outputs(dim_setup, estimator, reference, cross_view):
    """Global + local terms recomputed in float64 from the queries and keys the model outputs:
    pins the pairing (image b's Y with image b's map, of the other view with ``cross_view``)
    and the averaging over locations and directions."""
    _, setup, state, x = dim_setup
    objective = dataclasses.replace(setup.objective, estimator=estimator, cross_view=cross_view)
    views = (x, x[:, ::-1]) if cross_view else (x,)
    ctx = LossContext(
        model=setup.eval_model, state=state.extra, batch={}, axis_name=None, run=setup.run
    )
    loss, aux = objective.loss(state.params, state.model_state, views, jax.random.PRNGKey(0), ctx)
    metrics, outputs = aux.metrics, aux.outputs
    out, _ = setup.eval_model.apply(
        {"params": state.params, **state.model_state},
        jnp.concatenate(views),
        train=True,
        mutable=["batch_stats", "intermediates"],
    )
    n = x.shape[0]
    f64 = lambda a, d: np.asarray(a[d * n : (d + 1) * n], np.float64)  # noqa: E731
    pairs = [(0, 1), (1, 0)] if cross_view else [(0, 0)]
    global_term = np.mean(
        [reference(f64(out["global_query"], q) @ f64(out["global_key"], k).T) for q, k in pairs]
    )
    local_term = np.mean(
        [
            reference(f64(out["local_query"], q) @ f64(out["local_key"], k)[:, l].T)
            for q, k in pairs
            for l in range(out["local_key"].shape[1])
        ]
    )
    prior = metrics["prior_discriminator_loss"] + metrics["prior_encoder_loss"]
    want = -(0.3 * global_term + 1.0 * local_term) + 0.1 * float(prior)
    assert float(loss) == pytest.approx(want, rel=1e-4, abs=1e-5)
    np.testing.assert_allclose(outputs.embedding, out["projection"][:n], rtol=1e-6)
    assert outputs.mine is None  # only MINE keeps state
    if estimator == "infonce":
        assert float(metrics["mi_local"]) <= math.log(n) + 1e-5


def test_prior_matching_gradients_split_between_discriminator_and_encoder(dim_setup):
    _, setup, state, _ = dim_setup
    params, model = state.params, setup.eval_model
    y = jnp.asarray(np.random.default_rng(2).normal(size=(5, 4)), jnp.float32)
    rng = jax.random.PRNGKey(3)
    grads_p, grads_y = jax.grad(
        lambda p, v: dim_lib.prior_matching_loss(p, v, rng, model=model)[0], argnums=(0, 1)
    )(params, y)
    # Discriminator parameters follow only its own logistic loss ...
    d_grads = jax.grad(lambda p: dim_lib.prior_matching_loss(p, y, rng, model=model)[1])(params)
    for name in ("prior_hidden1", "prior_output"):
        assert_trees_close(grads_p[name], d_grads[name], rtol=1e-5, atol=1e-7)

    # ... and Y only the encoder's -log D(sigmoid(Y)) with D held fixed.
    def encoder_loss(v):
        logits = model.apply({"params": params}, jax.nn.sigmoid(v), method="discriminate")
        return jnp.mean(jax.nn.softplus(-logits))

    np.testing.assert_allclose(grads_y, jax.grad(encoder_loss)(y), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(estimator="mi"), r"unknown objective.estimator 'mi'; choose one of \['jsd'"),
        (
            dict(local_weight=0.0),
            r"objective.global_weight=0 and objective.local_weight=0 "
            r"leave DIM no MI term; valid: global_weight > 0 or "
            r"local_weight > 0",
        ),
        (
            dict(prior_weight=-1.0),
            r"objective.prior_weight=-1 is invalid; valid: 0.0 <= "
            r"prior_weight",
        ),
        (
            dict(mine_momentum=1.0),
            r"objective.mine_momentum=1 is invalid; valid: 0.0 <= "
            r"mine_momentum < 1.0",
        ),
        (dict(smile_clip=0.0), r"objective.smile_clip=0 is invalid; valid: 0.0 < smile_clip"),
        (
            dict(cross_view="yes"),
            r"unknown objective.cross_view 'yes'; choose one of "
            r"\[False, True\]",
        ),
        (dict(local_layer="block7"), r"model.dim.local_layer='block7' is not a feature map"),
        (dict(local_layer="pooled"), r"model.dim.local_layer='pooled' is not a feature map"),
    ],
)
def test_bad_settings_fail_with_one_line(make_identity_config, overrides, message):
    config = tiny_dim_config(make_identity_config, **overrides)
    with pytest.raises(ValueError, match=message) as err:
        validate_config(config)  # hyperparameters
        build_setup(config, FASHION_MNIST)  # against the model and the data
    assert "\n" not in str(err.value)


def test_settings_that_need_a_model_fail_with_one_line(make_identity_config):
    config = tiny_dim_config(make_identity_config)
    del config.model["projector"]
    with pytest.raises(ValueError, match=r"objective 'dim' needs config.model.projector"):
        build_setup(config, FASHION_MNIST)
    config = tiny_dim_config(make_identity_config)
    config.model.patches = ml_collections.ConfigDict(dict(size=8, stride=4))
    with pytest.raises(ValueError, match=r"objective 'dim' takes whole images"):
        build_setup(config, FASHION_MNIST)


def test_unknown_key_names_the_valid_keys():
    with pytest.raises(ValueError) as err:
        DIM.from_config({"name": "dim", "estimater": "jsd"})
    assert str(err.value) == (
        "unknown key objective.estimater for objective 'dim'; valid keys: estimator, "
        "global_weight, local_weight, prior_weight, mine_momentum, smile_clip, cross_view"
    )


def test_defaults_and_old_configs_load_with_the_same_values():
    """Every DIM objective stored before the typed objectives loads, with the same values, so
    stored runs resume; the defaults are DIM(L)'s (the prior weight gamma 0.1 of the paper)."""
    assert DIM() == DIM(
        estimator="jsd",
        global_weight=0.0,
        local_weight=1.0,
        prior_weight=0.1,
        mine_momentum=0.9,
        smile_clip=5.0,
        cross_view=False,
    )
    old = json.load(open(Path(__file__).parents[1] / "data" / "configs_before_redesign.json"))
    stored = {k: c["objective"] for k, c in old.items() if c["objective"]["name"] == "dim"}
    assert set(stored) == {"dim_cifar10", "dim_fashion_mnist"}
    for objective in stored.values():
        loaded = objectives.build(objective)
        assert isinstance(loaded, DIM)
        assert loaded.hyperparameters() == objective


def test_registered_and_in_the_comparison():
    assert objectives.get("dim") is DIM and DIM.name == "dim" and DIM.description
    from ssljax.experiments import compare_methods as compare

    assert "dim" in compare.available_methods("fashion_mnist")
    assert "dim" in compare.available_methods("cifar10")
