"""Workdirs stored before the typed objectives and one-file-per-method configs still resume
and evaluate.

``tests/data/old_workdirs/{simclr,moco}`` were written by the earlier code: the tiny SimCLR
config (and MoCo with a 32-key queue, whose queue and key encoder were a dict then and are a
typed ``MoCoState`` now), trained to step 4 of 6 on the tests' generated Fashion-MNIST, with
that code's step-6 metrics after resuming (``expected_step6.jsonl``).
"""

import json
import shutil
from pathlib import Path

import ml_collections
import pytest

from ssljax.training import checkpoint as ckpt_lib
from ssljax.training.loop import restore_for_eval, train_and_evaluate
from tests.tolerances import assert_close, f32_steps_rtol

OLD = Path(__file__).parents[1] / "data" / "old_workdirs"
# Longest reduction of a step: BatchNorm statistics and kernel gradients over both views of
# the 16-image batch at 28 x 28 (tests/tolerances.py).
N_TERMS = 2 * 16 * 28 * 28


def copy_old(name, tmp_path):
    workdir = tmp_path / name
    shutil.copytree(OLD / name, workdir, ignore=shutil.ignore_patterns("expected_*"))
    return str(workdir)


def test_old_workdir_resumes_with_its_stored_config(tiny_fashion_mnist, tmp_path):
    """MoCo: its queue and key encoder were a dict then and are a ``MoCoState`` now (the
    stored SimCLR run is resumed by the next test, through the new config file)."""
    del tiny_fashion_mnist  # the generated data the old runs were trained on
    name = "moco"
    workdir = copy_old(name, tmp_path)
    stored = json.loads((Path(workdir) / "config.json").read_text())
    result = train_and_evaluate(ml_collections.ConfigDict(stored), workdir, progress=False)
    assert result["status"] == "completed" and result["step"] == 6
    assert result["steps_run"] == 2  # resumed from step 4, not restarted
    want = json.loads((OLD / name / "expected_step6.jsonl").read_text())
    got = [json.loads(line) for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]
    (last,) = [m for m in got if m["step"] == 6]
    # Same program as the old code's: only float32 reordering (compiled anew) may differ.
    rtol = f32_steps_rtol(N_TERMS, steps=6)
    for key in ("loss", "grad_norm", "collapse_std"):
        assert_close(last[key], want[key], rtol=rtol, atol=rtol)


def test_old_workdir_resumes_with_the_new_config_file(
    tiny_fashion_mnist, tmp_path, make_tiny_config
):
    """The new ``configs/simclr.py:fashion_mnist`` (shrunk as the old SimCLR run was) is the
    same run: its objective with defaults filled in equals the stored one, nothing differs."""
    workdir = copy_old("simclr", tmp_path)
    config = make_tiny_config()
    stored = json.loads((Path(workdir) / "config.json").read_text())
    config.dataset.data_dir = stored["dataset"]["data_dir"]
    assert ckpt_lib.config_differences(stored, ckpt_lib.config_to_dict(config)) == []
    result = train_and_evaluate(config, workdir, progress=False)
    assert result["step"] == 6 and result["steps_run"] == 2
    config.objective.temperature = 0.3  # a real difference is still refused
    with pytest.raises(ValueError, match=r"differs in: objective"):
        ckpt_lib.prepare_workdir(workdir, config, write=False)


def test_old_workdir_evaluates(tiny_fashion_mnist, tmp_path):
    del tiny_fashion_mnist
    workdir = copy_old("moco", tmp_path)
    config, setup, state, step = restore_for_eval(workdir)
    assert step == 4 and config.objective.name == "moco"
    assert state.extra.queue.shape == (32, 8) and int(state.extra.queue_ptr) == 0
    from ssljax.evaluation.checkpoint_eval import evaluate_workdir

    report = evaluate_workdir(workdir, baselines=False)
    assert report["checkpoint_step"] == 4 and 0.0 <= report["top1"] <= 1.0


def test_a_checkpoint_of_another_state_layout_evaluates_but_does_not_resume(
    tiny_fashion_mnist, tmp_path, make_tiny_config
):
    """Methods whose state changed layout (VAEs kept PRNG keys in their state, FactorVAE and
    inpainting their discriminator): their stored networks still evaluate; resuming is one
    line naming the difference, and the checkpoint stays where it is (it is not damage)."""
    import jax
    import numpy as np

    from ssljax.training.loop import build_setup, initial_state

    config = make_tiny_config(tiny_fashion_mnist)
    workdir = str(tmp_path / "earlier")
    setup = build_setup(config)
    state = initial_state(config, setup)
    params = jax.tree.map(lambda p: p + 1.0, state.params)  # not the initial network
    stored = state.replace(
        step=state.step + 4, params=params, extra={"noise_key": np.arange(2, dtype=np.uint32)}
    )
    config_dict = ckpt_lib.prepare_workdir(workdir, config)
    checkpointer = ckpt_lib.Checkpointer(workdir)
    checkpointer.save(4, stored, config_dict)
    checkpointer.close()

    _, _, restored, step = restore_for_eval(workdir)
    assert step == 4 and int(restored.step) == 4 and restored.extra == {}
    for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(
        ValueError,
        match=r"another layout .*differs at \+extra\.noise_key\); "
        r"it can be evaluated but not resumed",
    ) as err:
        train_and_evaluate(config, workdir, progress=False)
    assert "\n" not in str(err.value)
    assert (Path(workdir) / "checkpoints" / "4").is_dir()
    assert not (Path(workdir) / "checkpoints_damaged").exists()
