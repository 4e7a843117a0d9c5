"""Command-line errors: one clear line, exit status 2, nothing saved is changed."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "simclr.py") + ":fashion_mnist"


def run(args, env_extra=None, timeout=300):
    env = dict(os.environ)
    env.update(env_extra or {})
    env["PYTHONPATH"] = ROOT
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(proc, pattern):
    import re

    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "override,pattern",
    [
        ("--config.objective.name=simclrr", r"unknown objective 'simclrr'.*simclr"),
        ("--config.dataset.name=mnist3d", r"mnist3d.*fashion_mnist"),
        ("--config.model.encoder=vgg", r"vgg.*convnet"),
        ("--config.batch_size=12", r"batch_size=12 is not divisible by the 8 devices"),
        ("--config.optimizer.name=adagrad", r"adagrad.*lars"),
        (
            "--config.optimizer.lr_multipliers.predictor=10",
            r"lr_multipliers names 'predictor', which the model does not have.*'projector'",
        ),
    ],
)
def test_train_rejects_bad_names_and_sizes(tmp_path, override, pattern):
    workdir = tmp_path / "run"
    proc = run(
        ["ssljax.train", f"--config={CONFIG}", f"--workdir={workdir}", override],
        env_extra={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"},
    )
    assert_one_line_error(proc, pattern)
    assert not workdir.exists()  # nothing is created for a config that cannot run


@pytest.mark.parametrize(
    "config,override,pattern",
    [
        (
            "moco.py:fashion_mnist",
            "--config.objective.queue_size=1000",
            r"queue_size=1000 must be a positive multiple of the global batch_size=256",
        ),
        (
            "byol.py:fashion_mnist",
            "--config.objective.ema_momentum=1.2",
            r"objective.ema_momentum=1.2 is invalid; valid: 0.0 <= ema_momentum <= 1.0",
        ),
        (
            "cpc.py:fashion_mnist",
            "--config.model.patches.size=40",
            r"patch size 40 is larger than the 28x28 images",
        ),
        (
            "energy.py:fashion_mnist",
            "--config.objective.step_size=-0.1",
            r"objective.step_size=-0.1 is invalid; valid: 0 < step_size",
        ),
        (
            "energy.py:fashion_mnist",
            "--config.objective.num_leapfrog=0",
            r"objective.num_leapfrog=0 is invalid; valid: an integer >= 1",
        ),
        (
            "energy.py:fashion_mnist",
            "--config.objective.sampler=gibbs",
            r"unknown objective.sampler 'gibbs'; choose one of \['langevin', 'mala', 'hmc'\]",
        ),
    ],
)
def test_train_rejects_method_settings(tmp_path, config, override, pattern):
    workdir = tmp_path / "run"
    proc = run(
        [
            "ssljax.train",
            f"--config={os.path.join(ROOT, 'configs', config)}",
            f"--workdir={workdir}",
            override,
        ]
    )
    assert_one_line_error(proc, pattern)
    assert not workdir.exists()


def test_energy_replay_buffer_larger_than_memory_allows(tmp_path):
    workdir = tmp_path / "run"
    proc = run(
        [
            "ssljax.train",
            f"--config={os.path.join(ROOT, 'configs', 'energy.py')}:fashion_mnist",
            f"--workdir={workdir}",
            "--config.objective.training=contrastive_divergence",
            "--config.objective.buffer_size=10000000",
        ]
    )
    assert_one_line_error(
        proc, r"objective.buffer_size=10000000 needs 31360000000 bytes .*at most 2147483648"
    )
    assert not workdir.exists()


def test_train_missing_config_file(tmp_path):
    proc = run(["ssljax.train", "--config=configs/nope.py", f"--workdir={tmp_path}"])
    assert_one_line_error(proc, r"nope\.py")


def test_dataset_unavailable_offline(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run(
        [
            "ssljax.train",
            f"--config={CONFIG}",
            f"--workdir={tmp_path / 'run'}",
            f"--config.dataset.data_dir={tmp_path / 'tfds'}",
        ],
        env_extra={"SSLJAX_FASHION_MNIST_DIR": str(empty), "SSLJAX_NO_DOWNLOAD": "1"},
    )
    assert_one_line_error(proc, r"apt-get install dataset-fashion-mnist.*download")
    assert not (tmp_path / "run").exists()


def test_linear_eval_without_checkpoint(tmp_path):
    proc = run(["ssljax.linear_eval", f"--workdir={tmp_path}"])
    assert_one_line_error(proc, r"no checkpoint in .*ssljax.train")


def test_linear_eval_unreadable_checkpoint(tmp_path):
    step_dir = tmp_path / "checkpoints" / "5"
    (step_dir / "state").mkdir(parents=True)
    (step_dir / "config").mkdir(parents=True)
    (step_dir / "state" / "garbage").write_text("not a checkpoint")
    (step_dir / "_CHECKPOINT_METADATA").write_text("{}")
    proc = run(["ssljax.linear_eval", f"--workdir={tmp_path}"])
    assert_one_line_error(proc, r"checkpoint")
    assert (step_dir / "state" / "garbage").read_text() == "not a checkpoint"
