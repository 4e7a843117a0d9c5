"""The two-view methods' typed objectives through the generic step.

For every method: 8 devices give the same losses, parameters and objective state (EMA target,
queue, memory bank) as 1 device on the same global batch. Then the state updates are checked
against their definitions, and bad settings fail with one line.
"""

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ssljax import objectives
from ssljax.objectives import DatasetFacts
from ssljax.objectives.simclr import apply_per_view, apply_to_views
from ssljax.training.loop import build_setup, initial_state, validate_config
from tests.multidevice import run_config
from tests.tolerances import assert_close, assert_updates_close, f32_reorder_rtol, f32_steps_rtol

MEMORY = 64
# Longest reduction of a step: BatchNorm statistics of block1 over both views of the 16-image
# batch at 28 x 28 (tolerances: tests/tolerances.py).
N_TERMS = 2 * 16 * 28 * 28


def mlp(hidden, output_dim, **kwargs):
    return ml_collections.ConfigDict(
        dict(hidden_dims=tuple(hidden), output_dim=output_dim, use_bn=True, **kwargs)
    )


# Per method: the objective's keys that differ from its defaults, and the tiny heads.
TINY = {
    "moco": (dict(queue_size=32, ema_momentum=0.9), {}),
    "byol": (
        dict(ema_momentum=0.9),
        dict(
            projector=mlp((16,), 8, output_bias=False), predictor=mlp((16,), 8, output_bias=False)
        ),
    ),
    "simsiam": ({}, dict(projector=mlp((8, 8), 8, bn_on_output=True), predictor=mlp((4,), 8))),
    "instance_discrimination": (dict(memory_size=MEMORY, num_negatives=0), {}),
    "binary_contrastive": ({}, {}),
    "align_maxent": ({}, dict(projector=mlp((16,), 4))),
    "barlow_twins": ({}, dict(projector=mlp((8, 8), 8))),
    "vicreg": ({}, dict(projector=mlp((8, 8), 8))),
}


def tiny_method_config(make_identity_config, method):
    # Identity augmentations: views do not depend on the device's key, so device counts agree.
    c = make_identity_config()
    c.optimizer.warmup_steps = 0  # the first step already moves the parameters
    objective, heads = TINY[method]
    c.objective = ml_collections.ConfigDict(dict(name=method, **objective))
    for key, head in heads.items():
        c.model[key] = head
    return c


METHODS = [
    "moco",
    "byol",
    "simsiam",
    "instance_discrimination",
    "binary_contrastive",
    "align_maxent",
    "barlow_twins",
    "vicreg",
]


def global_batches(count, n=16, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        out.append(
            {
                "image": rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
                "label": rng.integers(0, 10, (n,)).astype(np.int32),
                "index": rng.permutation(MEMORY)[:n].astype(np.int32),
            }
        )
    return out


def run(config, devices, batches):
    return run_config(config, devices, batches)


def assert_trees_close(a, b, rtol=2e-4, atol=2e-5):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def runs(make_identity_config):
    """``{method: (state8, metrics8, state1, metrics1, config, initial_state, batches)}``."""
    cache = {}

    def get(method):
        if method not in cache:
            config = tiny_method_config(make_identity_config, method)
            validate_config(config)
            # AlignMaxEnt's nearest-neighbour entropy has a kink where two neighbours tie:
            # seed 0 puts one within 4e-6 relative, where float32 summation order picks
            # either side, so that method uses data without near-ties.
            batches = global_batches(1, seed=1 if method == "align_maxent" else 0)
            s8, m8 = run(config, jax.devices(), batches)
            s1, m1 = run(config, jax.devices()[:1], batches)
            init = jax.device_get(initial_state(config, build_setup(config)))
            cache[method] = (s8, m8, s1, m1, config, init, batches)
        return cache[method]

    return get


def test_per_view_batch_norm_normalises_each_view_on_its_own(make_identity_config):
    # BYOL's configs run each view through its own forward pass (the reference code's
    # convention): view 1's outputs cannot depend on view 2, and the BatchNorm running
    # averages advance once per view, in order.
    config = tiny_method_config(make_identity_config, "byol")
    assert build_setup(config).objective.view_batch_norm == "per_view"
    setup = build_setup(config)
    model = setup.objective.build_model(setup.run, None)
    state = initial_state(config, setup)
    variables = {"params": state.params, **state.model_state}
    rng = np.random.default_rng(0)
    v1 = jnp.asarray(rng.uniform(size=(8, 28, 28, 1)), jnp.float32)
    v2 = 3.0 * v1[::-1] + 1.0  # other images, other statistics
    v2b = jnp.asarray(rng.uniform(size=(8, 28, 28, 1)), jnp.float32)

    out, new_state = apply_per_view(state.params, state.model_state, (v1, v2), model=model)
    out_b, _ = apply_per_view(state.params, state.model_state, (v1, v2b), model=model)
    alone, after_v1 = model.apply(variables, v1, train=True, mutable=list(state.model_state))
    alone2, after_v2 = model.apply(
        {"params": state.params, **after_v1}, v2, train=True, mutable=list(state.model_state)
    )
    for key in ("projection", "prediction"):
        np.testing.assert_allclose(out[key][0], alone[key], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out_b[key][0], alone[key], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out[key][1], alone2[key], rtol=1e-5, atol=1e-6)
    assert_trees_close(new_state, after_v2, rtol=1e-5, atol=1e-7)
    # Joint BatchNorm (SimCLR's convention) mixes the views' statistics.
    joint, _ = apply_to_views(state.params, state.model_state, (v1, v2), model=model)
    assert np.max(np.abs(joint["prediction"][0] - alone["prediction"])) > 1e-2
    config.objective.view_batch_norm = "sideways"
    with pytest.raises(
        ValueError,
        match=r"unknown objective.view_batch_norm 'sideways'; "
        r"choose one of \['joint', 'per_view'\]",
    ):
        validate_config(config)


@pytest.mark.parametrize("method", METHODS)
def test_eight_devices_equal_one_device(runs, method):
    s8, m8, s1, m1, _, init, _ = runs(method)
    first_pass = f32_steps_rtol(N_TERMS, steps=0)
    for a, b in zip(m8, m1):
        assert bool(a["finite"]) and bool(b["finite"])
        # Collapse monitors see the global batch on every device count.
        for key in ("loss", "collapse_std", "effective_rank"):
            assert_close(a[key], b[key], rtol=first_pass, atol=first_pass)
    # Parameters and objective state (target, queue, bank) after one update, compared through
    # what the update changed: LARS moves the parameters by 1e-3 of their size.
    assert_updates_close(s8.params, s1.params, init.params, rtol=f32_steps_rtol(N_TERMS, 1))
    assert_updates_close(s8.extra, s1.extra, init.extra, rtol=f32_steps_rtol(N_TERMS, 1))
    assert int(s8.step) == 1


def test_one_byol_step_applies_the_ema_formula(make_identity_config):
    config = tiny_method_config(make_identity_config, "byol")
    config.objective.ema_schedule = "constant"
    s1, _ = run(config, jax.devices()[:1], global_batches(1))
    init = jax.device_get(initial_state(config, build_setup(config)))
    m = config.objective.ema_momentum
    want = jax.tree.map(lambda t, p: m * t + (1 - m) * p, init.extra.target_params, s1.params)
    assert_trees_close(s1.extra.target_params, want, rtol=1e-5, atol=1e-7)


def test_moco_queue_advances_by_the_global_batch_of_keys(runs):
    s8, _, _, _, config, init, _ = runs("moco")
    n = config.batch_size
    assert int(s8.extra.queue_ptr) == n % config.objective.queue_size
    queue0, queue = np.asarray(init.extra.queue), np.asarray(s8.extra.queue)
    assert not np.allclose(queue[:n], queue0[:n])
    np.testing.assert_array_equal(queue[n:], queue0[n:])
    np.testing.assert_allclose(np.linalg.norm(queue, axis=1), 1.0, rtol=1e-5)


def test_memory_bank_writes_only_the_batch_rows(runs):
    s8, _, _, _, _, init, batches = runs("instance_discrimination")
    seen = np.unique(np.concatenate([b["index"] for b in batches]))
    memory0, memory = np.asarray(init.extra.memory), np.asarray(s8.extra.memory)
    unseen = np.setdiff1d(np.arange(MEMORY), seen)
    np.testing.assert_array_equal(memory[unseen], memory0[unseen])
    assert not np.allclose(memory[seen], memory0[seen])
    np.testing.assert_allclose(np.linalg.norm(memory, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("num_negatives", [0, 8])
def test_first_visit_bank_starts_empty_and_fills_with_features(
    make_identity_config, runs, num_negatives
):
    """With an empty bank every image only meets itself: the first step's loss is exactly 0
    (full softmax or sampled negatives). A step writes its batch's rows, with the features
    themselves, and marks them written; the second batch then has negatives and a positive
    loss. Against Wu et al.'s random start (the ``runs`` fixture: same first batch, same
    initial network, so the same features), a first write there is normalize(r + f)."""
    config = tiny_method_config(make_identity_config, "instance_discrimination")
    config.objective.memory_init = "first_visit"
    config.objective.num_negatives = num_negatives
    validate_config(config)
    batches = global_batches(2)
    state, history = run(config, jax.devices()[:1], batches)
    init = jax.device_get(initial_state(config, build_setup(config)))
    assert not np.asarray(init.extra.written).any()
    assert float(history[0]["loss"]) == pytest.approx(0.0, abs=1e-6)
    assert float(history[0]["instance_accuracy"]) == 1.0
    assert float(history[0]["bank_written"]) == 0.0
    assert float(history[1]["loss"]) > 0.1
    assert float(history[1]["bank_written"]) == pytest.approx(16 / MEMORY)
    first, second = batches[0]["index"], batches[1]["index"]
    written = np.asarray(state.extra.written)
    np.testing.assert_array_equal(np.flatnonzero(written), np.union1d(first, second))
    memory, memory0 = np.asarray(state.extra.memory), np.asarray(init.extra.memory)
    np.testing.assert_array_equal(memory[~written], memory0[~written])
    np.testing.assert_allclose(np.linalg.norm(memory[written], axis=1), 1.0, rtol=1e-5)
    only_first = np.setdiff1d(first, second)
    assert only_first.size > 0
    _, _, s1_random, *_ = runs("instance_discrimination")
    f = memory[only_first].astype(np.float64)
    r = memory0[only_first].astype(np.float64)
    mixed = (r + f) / np.linalg.norm(r + f, axis=1, keepdims=True)
    # The features come from another compiled step (BatchNorm over 16 x 28 x 28 positions).
    assert_close(
        np.asarray(s1_random.extra.memory)[only_first], mixed, rtol=f32_reorder_rtol(16 * 28 * 28)
    )


def test_prefilled_bank_holds_each_images_initial_feature(
    make_identity_config, monkeypatch, capsys
):
    """``memory_init='prefill'``: row i is image i's projection by the initial network, in
    index order, computed per batch with BatchNorm on the batch's own statistics (the last,
    short batch padded by repeating its images); other inits never load the images."""
    from ssljax.objectives.methods import InstanceDiscrimination
    from ssljax.training import loop

    config = tiny_method_config(make_identity_config, "instance_discrimination")
    config.objective.memory_init = "prefill"
    config.batch_size = 24  # 64 rows: two full batches and one of 16, padded
    validate_config(config)
    setup = build_setup(config, DatasetFacts("fashion_mnist", (28, 28, 1), MEMORY, 10))
    state = jax.device_get(initial_state(config, setup))
    images = np.random.default_rng(3).integers(0, 256, (MEMORY, 28, 28, 1), dtype=np.uint8)
    monkeypatch.setattr(
        "ssljax.data.input_pipeline.load_split_arrays",
        lambda *a, **k: (images, np.zeros(MEMORY, np.int32)),
    )
    memory = np.asarray(loop.prefill(config, setup, state).extra.memory)
    assert "prefilled the objective's state from the train split in" in capsys.readouterr().out

    def projections(x):  # the eval model in train mode on one batch, rows normalised
        out, _ = setup.eval_model.apply(
            {"params": state.params, **state.model_state},
            jnp.asarray(x, jnp.float32) / 255.0,
            train=True,
            mutable=["batch_stats"],
        )
        p = np.asarray(out["projection"], np.float64)
        return p / np.linalg.norm(p, axis=1, keepdims=True)

    # Prefill and this reference are different programs: BatchNorm over 24 x 28 x 28 positions.
    rtol = f32_reorder_rtol(24 * 28 * 28)
    assert_close(memory[:24], projections(images[:24]), rtol=rtol)
    assert_close(memory[24:48], projections(images[24:48]), rtol=rtol)
    last = np.concatenate([images[48:], images[48:56]])
    assert_close(memory[48:], projections(last)[:16], rtol=rtol)
    assert not np.allclose(memory[48:], projections(images[48:]), atol=1e-3)  # stats differ
    np.testing.assert_allclose(np.linalg.norm(memory, axis=1), 1.0, rtol=1e-5)

    def never(*_):
        raise AssertionError("the images were loaded")

    for init in ("random", "first_visit"):
        objective = InstanceDiscrimination(memory_size=MEMORY, memory_init=init)
        assert (
            objective.prefill_state(
                state.extra,
                state.params,
                state.model_state,
                never,
                model=setup.eval_model,
                run=setup.run,
            )
            is state.extra
        )
    with pytest.raises(ValueError, match=r"objective.memory_size=64, split has 10"):
        setup.objective.prefill_state(
            state.extra,
            state.params,
            state.model_state,
            lambda: images[:10],
            model=setup.eval_model,
            run=setup.run,
        )
    # Both caught before anything is written (``build_setup`` runs the objective's checks
    # against the data's facts): a bank of the wrong size, a split too big.
    with pytest.raises(ValueError, match=r"objective.memory_size=64, the train split has 60000"):
        build_setup(config, dataclasses.replace(setup.run.facts, num_examples=60_000))
    config.dataset.name = "imagenet2012"
    with pytest.raises(
        ValueError,
        match=r"'prefill' needs a pretraining split held in memory "
        r"at the training size; imagenet2012 is not",
    ):
        build_setup(config)


def test_every_method_is_registered():
    for name in METHODS:
        assert objectives.get(name).name == name
    assert objectives.get("instance_discrimination").needs_index
    assert not objectives.get("moco").needs_index


@pytest.mark.parametrize(
    "method, key, value, message",
    [
        (
            "moco",
            "queue_size",
            40,
            r"queue_size=40 must be a positive multiple of the global batch_size=16",
        ),
        (
            "moco",
            "ema_momentum",
            1.5,
            r"objective.ema_momentum=1.5 is invalid; valid: 0.0 <= ema_momentum <= 1.0",
        ),
        (
            "byol",
            "ema_momentum",
            -0.1,
            r"objective.ema_momentum=-0.1 is invalid; valid: 0.0 <= ema_momentum <= 1.0",
        ),
        (
            "byol",
            "ema_schedule",
            "linear",
            r"unknown objective.ema_schedule 'linear'; choose one of \['cosine', 'constant'\]",
        ),
        (
            "instance_discrimination",
            "memory_momentum",
            2.0,
            r"memory_momentum=2 is invalid; valid: 0.0 <= memory_momentum <= 1.0",
        ),
        (
            "instance_discrimination",
            "proximal_weight",
            -1.0,
            r"objective.proximal_weight=-1 is invalid; valid: 0.0 <= proximal_weight",
        ),
        (
            "moco",
            "tempreature",
            0.1,
            r"unknown key objective.tempreature for objective 'moco'; valid keys: temperature, queue_size, ema_momentum, ema_schedule",
        ),
        (
            "instance_discrimination",
            "memory_init",
            "zeros",
            r"unknown objective.memory_init 'zeros'; choose one of \['random', 'first_visit', 'prefill'\]",
        ),
    ],
)
def test_bad_settings_fail_with_one_line(make_identity_config, method, key, value, message):
    config = tiny_method_config(make_identity_config, method)
    with config.objective.ignore_type():
        config.objective[key] = value
    with pytest.raises(ValueError, match=message) as err:
        build_setup(config)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("method", METHODS)
def test_old_configs_objectives_load_with_the_same_values(method):
    """Every objective stored by the configs before the typed objectives loads, with the
    same values, so stored runs resume and evaluate."""
    old = json.load(open(Path(__file__).parents[1] / "data" / "configs_before_redesign.json"))
    stored = [c["objective"] for c in old.values() if c["objective"]["name"] == method]
    assert stored
    for objective in stored:
        values = objectives.resolved(objective)
        retired = objectives.get(method).RETIRED_KEYS  # stored but never read
        for key, value in objective.items():
            if key in retired:
                continue
            want = tuple(value) if isinstance(value, list) else value
            assert values[key] == want, (method, key)


def test_config_dicts_become_frozen_typed_objectives():
    moco = objectives.build({"name": "moco", "temperature": 0.1})
    assert moco == objectives.MoCo(temperature=0.1)
    assert moco.queue_size == 65536 and moco.ema_schedule == "constant"
    with pytest.raises(dataclasses.FrozenInstanceError):
        moco.temperature = 0.5
    assert objectives.resolved({"name": "byol"}) == dict(
        name="byol", ema_momentum=0.996, ema_schedule="cosine", view_batch_norm="per_view"
    )
