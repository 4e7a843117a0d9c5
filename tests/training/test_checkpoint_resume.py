"""Checkpoints: exact resume (piecewise and after SIGTERM), stored config, refused workdirs."""

import json
import os
import signal

import jax
import numpy as np
import pytest

from ssljax.training import checkpoint as ckpt_lib
from ssljax.training.loop import restore_for_eval, train_and_evaluate


def final_params(workdir):
    _, _, state, step = restore_for_eval(workdir)
    return state, step


def assert_same_state(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def uninterrupted(tiny_fashion_mnist, tmp_path_factory, make_tiny_config):
    config = make_tiny_config(tiny_fashion_mnist)
    workdir = str(tmp_path_factory.mktemp("full"))
    result = train_and_evaluate(config, workdir, progress=False)
    assert result["status"] == "completed" and result["step"] == config.total_steps
    return config, workdir


def test_run_writes_metrics_config_and_checkpoints(uninterrupted):
    config, workdir = uninterrupted
    lines = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [l["step"] for l in lines] == [2, 4, 6]
    assert all(np.isfinite(l["loss"]) and "learning_rate" in l for l in lines)
    assert os.listdir(os.path.join(workdir, "tensorboard"))
    stored = json.load(open(os.path.join(workdir, "config.json")))
    assert stored == ckpt_lib.config_to_dict(config)
    checkpointer = ckpt_lib.Checkpointer(workdir, read_only=True)
    assert checkpointer.all_steps() == [4, 6]
    assert checkpointer.restore_config() == stored
    checkpointer.close()


def test_resume_in_pieces_equals_uninterrupted(uninterrupted, tmp_path):
    config, full_dir = uninterrupted
    workdir = str(tmp_path / "pieces")
    first = train_and_evaluate(config, workdir, max_steps=3, progress=False)
    assert first["status"] == "stopped" and first["step"] == 3
    # As if the first run had gone on to log step 4 and been killed before checkpointing it.
    log = os.path.join(workdir, "metrics.jsonl")
    with open(log, "a") as f:
        f.write(json.dumps({"step": 4, "loss": 99.0}) + "\n")
    second = train_and_evaluate(config, workdir, progress=False)
    assert second["status"] == "completed" and second["step"] == 6
    a, step_a = final_params(full_dir)
    b, step_b = final_params(workdir)
    assert step_a == step_b == 6
    assert_same_state(a, b)
    # One record per step (3: where the first run stopped), the resumed run's; the cut-off
    # run's step 4 is kept aside.
    lines = [json.loads(l) for l in open(log)]
    assert [l["step"] for l in lines] == [2, 3, 4, 6] and lines[2]["loss"] != 99.0
    aside = [json.loads(l) for l in open(os.path.join(workdir, "metrics.superseded.jsonl"))]
    assert aside == [{"step": 4, "loss": 99.0}]


def test_set_aside_records_after_keeps_every_record(tmp_path):
    from ssljax.training.logging import set_aside_records_after

    log = tmp_path / "metrics.jsonl"
    assert set_aside_records_after(str(log), 3) == 0 and not log.exists()
    log.write_text("".join(json.dumps({"step": s, "loss": float(s)}) + "\n" for s in (2, 4, 6)))
    assert set_aside_records_after(str(log), 6) == 0
    assert set_aside_records_after(str(log), 3) == 2
    assert [json.loads(l)["step"] for l in log.read_text().splitlines()] == [2]
    aside = (tmp_path / "metrics.superseded.jsonl").read_text().splitlines()
    assert [json.loads(l)["step"] for l in aside] == [4, 6]


def test_sigterm_saves_and_resumes_exactly(uninterrupted, tmp_path, monkeypatch):
    config, full_dir = uninterrupted
    from ssljax.data import input_pipeline

    real = input_pipeline.train_iterator

    def preempted_after_two(*args, **kwargs):
        for i, batch in enumerate(real(*args, **kwargs)):
            if i == 2:
                os.kill(os.getpid(), signal.SIGTERM)  # arrives while step 3 runs
            yield batch

    workdir = str(tmp_path / "preempted")
    monkeypatch.setattr(input_pipeline, "train_iterator", preempted_after_two)
    result = train_and_evaluate(config, workdir, progress=False)
    assert result["status"] == "preempted" and result["step"] == 3
    monkeypatch.setattr(input_pipeline, "train_iterator", real)
    assert ckpt_lib.Checkpointer(workdir, read_only=True).latest_step() == 3
    assert train_and_evaluate(config, workdir, progress=False)["status"] == "completed"
    assert_same_state(final_params(full_dir)[0], final_params(workdir)[0])


def test_workdir_with_other_config_is_refused_and_untouched(uninterrupted):
    config, workdir = uninterrupted
    before = open(os.path.join(workdir, "config.json")).read()
    steps_before = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
    other = config.copy_and_resolve_references()
    other.objective.temperature = 0.2
    with pytest.raises(ValueError, match=r"different config \(differs in: objective.temperature\)"):
        train_and_evaluate(other, workdir, progress=False)
    assert open(os.path.join(workdir, "config.json")).read() == before
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == steps_before
    # Logging/saving intervals may change when resuming.
    same = config.copy_and_resolve_references()
    same.log_every_steps = 1
    assert train_and_evaluate(same, workdir, progress=False)["status"] == "completed"


def test_a_key_added_later_with_its_neutral_default_is_no_difference():
    stored = {"optimizer": {"name": "lars"}}
    now = {
        "optimizer": {
            "name": "lars",
            "lr_multipliers": dict(ckpt_lib.LATER_DEFAULTS["optimizer.lr_multipliers"]),
        }
    }
    assert ckpt_lib.config_differences(stored, now) == []
    now["optimizer"]["lr_multipliers"]["predictor"] = 10.0
    assert ckpt_lib.config_differences(stored, now) == ["optimizer.lr_multipliers.predictor"]


def test_config_differences():
    old = {"a": 1, "b": {"c": [1, 2], "d": "x"}, "log_every_steps": 5}
    new = {"a": 1, "b": {"c": [1, 3], "e": 1}, "log_every_steps": 9}
    assert ckpt_lib.config_differences(old, new) == ["b.c", "b.d", "b.e"]


def test_missing_checkpoint_for_eval(tmp_path):
    with pytest.raises(ValueError, match=r"no checkpoint in .*pretrain first"):
        restore_for_eval(str(tmp_path))
