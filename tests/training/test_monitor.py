"""The kNN monitor during pretraining: its number is the final evaluation's kNN on the same
data, it is logged at its steps, it leaves training bit-identical, and it stays off when
asked or when the dataset has no held-out labels."""

import contextlib
import dataclasses
import io
import json
import os

import jax
import numpy as np
import pytest

from ssljax import config_base, parallel
from ssljax.data.datasets import get_dataset_spec
from ssljax.training.loop import build_setup, initial_state, restore_for_eval, train_and_evaluate
from ssljax.training.monitor import KnnMonitor, local_replica, process_rows, skip_reason

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BANK, QUERIES = 50, 30  # of the tiny splits' 96 train and 40 test images


@pytest.fixture(scope="module")
def monitored(reference_run, tmp_path_factory):
    """The tests' reference run (6 steps, logged every 2) again with the monitor every 3
    steps: ``(config, workdir, metrics.jsonl records, progress output)``."""
    config = reference_run[0].copy_and_resolve_references()
    config.eval_every_steps = 3
    config.eval.monitor_bank_examples = BANK
    config.eval.monitor_query_examples = QUERIES
    workdir = str(tmp_path_factory.mktemp("monitored"))
    progress = io.StringIO()
    with contextlib.redirect_stderr(progress):
        result = train_and_evaluate(config, workdir)
    assert result["status"] == "completed" and result["step"] == 6
    return config, workdir, read_records(workdir), progress.getvalue()


def read_records(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_monitor_is_logged_at_its_steps_only(monitored, reference_run):
    *_, records, progress = monitored
    assert [r["step"] for r in records] == [2, 3, 4, 6]  # 3: monitor; 6: both
    for r in records:
        assert ("knn_top1" in r) == (r["step"] % 3 == 0) == ("knn_seconds" in r)
    knn = [r for r in records if "knn_top1" in r]
    assert all(0.0 <= r["knn_top1"] <= 1.0 and r["knn_seconds"] > 0 for r in knn)
    lines = [line for line in progress.splitlines() if " knn " in line]
    assert [line.split()[1] for line in lines] == ["3/6", "6/6"]
    assert lines[1].endswith(f" knn {knn[1]['knn_top1']:.4f}")
    # The reference run has the default interval, longer than the run: nothing logged.
    assert not any("knn_top1" in r for r in read_records(reference_run[1]))


def test_monitor_leaves_training_bit_identical(monitored, reference_run, same_state):
    """Same metrics at every step both runs logged, same final state (parameters, optimizer
    and objective state, rng: so a resumed run also goes on as without the monitor)."""
    logged = {r["step"]: r for r in monitored[2]}
    reference = read_records(reference_run[1])
    assert [r["step"] for r in reference] == [2, 4, 6]
    for want in reference:
        got = logged[want["step"]]
        for key, value in want.items():
            if key != "steps_per_second":
                assert got[key] == value, key
    _, _, state, step = restore_for_eval(monitored[1])
    assert step == 6
    same_state(reference_run[2], state)


def independent_knn_top1(config, setup, state):
    """kNN top-1 of the step's encoder with features computed on one device, unbatched
    over processes, from the splits read whole."""
    from ssljax.data.input_pipeline import load_split_arrays
    from ssljax.evaluation.checkpoint_eval import compute_features, encoder_of, feature_fn
    from ssljax.evaluation.knn import knn_evaluate

    data_dir = config.dataset.data_dir
    train_x, train_y = load_split_arrays("fashion_mnist", "train", data_dir=data_dir)
    test_x, test_y = load_split_arrays("fashion_mnist", "test", data_dir=data_dir)
    encoder, variables = encoder_of(setup, state.params, state.model_state)
    fn = feature_fn(encoder, layer=config.eval.layer, grid=config.eval.grid)
    bank = compute_features(fn, variables, train_x[:BANK], batch_size=7)
    queries = compute_features(fn, variables, test_x[:QUERIES], batch_size=7)
    report = knn_evaluate(
        bank,
        train_y[:BANK],
        queries,
        test_y[:QUERIES],
        num_classes=10,
        k=config.eval.knn_k,
        temperature=config.eval.knn_temperature,
    )
    return report["top1"], bank


def test_logged_top1_is_knn_evaluate_on_independently_computed_features(monitored):
    config, workdir, records, _ = monitored
    _, setup, state, step = restore_for_eval(workdir)
    assert step == 6
    want, bank = independent_knn_top1(config, setup, state)
    assert records[-1]["knn_top1"] == pytest.approx(want, abs=1e-6)
    # The monitor itself, on the restored state (host arrays), on the 8 devices.
    monitor = KnnMonitor.for_run(config, setup, verbose=False)
    from ssljax.evaluation.checkpoint_eval import encoder_of

    variables = encoder_of(setup, state.params, state.model_state)[1]
    bank_x = monitor.load()[0]
    np.testing.assert_allclose(monitor.features(variables, bank_x), bank, rtol=1e-5, atol=1e-6)
    assert monitor.evaluate(state.params, state.model_state)["knn_top1"] == records[-1]["knn_top1"]


def test_monitor_is_off_at_zero_or_without_the_key_and_checks_its_settings(make_tiny_config):
    config = make_tiny_config()
    setup = build_setup(config)
    config.eval_every_steps = 0
    assert KnnMonitor.for_run(config, setup) is None
    del config["eval_every_steps"]  # a config stored before the monitor existed
    assert KnnMonitor.for_run(config, setup) is None
    config.eval_every_steps = -1
    with pytest.raises(ValueError, match=r"^eval_every_steps=-1 must be >= 0"):
        KnnMonitor.for_run(config, setup)
    config.eval_every_steps = 5
    config.eval.monitor_bank_examples = 0
    with pytest.raises(
        ValueError, match=r"^eval.monitor_bank_examples=0 must be a positive number"
    ):
        KnnMonitor.for_run(config, setup)
    config.eval.monitor_bank_examples = 10
    monitor = KnnMonitor.for_run(config, setup)
    assert [s for s in range(1, 16) if monitor.due(s)] == [5, 10, 15]


def test_monitor_skips_datasets_without_held_out_labels_in_one_line(capsys):
    config = config_base.load_config(os.path.join(ROOT, "configs", "vae.py") + ":dsprites")
    assert config.eval_every_steps > 0  # the default, not switched off by hand
    assert KnnMonitor.for_run(config, setup=None) is None
    assert capsys.readouterr().out.splitlines() == [
        "kNN monitor off: dataset dsprites has no held-out labelled split (its probes train "
        "and test on 'train')"
    ]
    assert KnnMonitor.for_run(config, setup=None, verbose=False) is None
    assert capsys.readouterr().out == ""
    unlabelled = dataclasses.replace(get_dataset_spec("cifar10"), num_classes=0)
    assert skip_reason(unlabelled) == "dataset cifar10 has no labels"
    assert skip_reason(get_dataset_spec("cifar10")) is None


def test_process_rows_split_contiguously_and_evenly():
    assert process_rows(10, 3) == [4, 3, 3]
    assert process_rows(2, 4) == [1, 1, 0, 0]
    assert process_rows(8, 1) == [8]


def test_local_replica_reuses_the_state_copies_on_each_device(make_tiny_config):
    """The replicated train state's copies become the feature mesh's variables as they are."""
    config = make_tiny_config()
    state = initial_state(config, build_setup(config))
    on_mesh = parallel.replicate_on_mesh(state.params, parallel.make_mesh())
    from ssljax.evaluation.features import local_mesh

    mesh = local_mesh()
    local = local_replica(on_mesh, mesh)
    for x, y in zip(jax.tree.leaves(on_mesh), jax.tree.leaves(local)):
        assert y.sharding.mesh.devices.tolist() == mesh.devices.tolist()
        assert y.sharding.is_fully_replicated and len(y.addressable_shards) == 8
        pointers = {s.device: s.data.unsafe_buffer_pointer() for s in x.addressable_shards}
        for s in y.addressable_shards:
            assert s.data.unsafe_buffer_pointer() == pointers[s.device]
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
