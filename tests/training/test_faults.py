"""Faults a run survives with nothing lost: kill -9, a damaged checkpoint, a failed save.

The kills happen in a separate process (tests/training/workdir_driver.py) at a chosen
point: right after a step between two checkpoints, or inside the commit of an asynchronous
save (its files written, the step not yet finalised). Rerunning resumes from the last
complete checkpoint and ends bit-identical to an uninterrupted run.

A failed save is a real operating-system error: the driver runs with RLIMIT_FSIZE so small
that the checkpoint's files cannot be written (EFBIG, "File too large"), as when a disk
fills up; this works as root, where a read-only directory would not stop the writes.
"""

import glob
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from ssljax.training import checkpoint as ckpt_lib
from ssljax.training.loop import restore_for_eval, train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER = os.path.join(ROOT, "tests", "training", "workdir_driver.py")


def drive(workdir, *args, data_dir):
    env = dict(os.environ, PYTHONPATH=ROOT, SSLJAX_NO_DOWNLOAD="1")
    return subprocess.run(
        [sys.executable, DRIVER, str(workdir), *map(str, args), f"--data-dir={data_dir}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def step_dirs(workdir) -> list[str]:
    return sorted(os.listdir(os.path.join(workdir, "checkpoints")))


def final_state(workdir):
    _, _, state, step = restore_for_eval(str(workdir))
    return state, step


# --- kill -9 -------------------------------------------------------------------------------


def test_kill_between_checkpoints_resumes_bit_identical(
    reference_run, same_state, tmp_path, tiny_fashion_mnist
):
    config, _, reference = reference_run
    workdir = tmp_path / "run"
    killed = drive(
        workdir, "kill-after-step", 5, "--checkpoint-every=2", data_dir=tiny_fashion_mnist
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert step_dirs(workdir) == ["2", "4"]  # step 5 was done, never saved
    config = config.copy_and_resolve_references()
    config.checkpoint_every_steps = 2
    result = train_and_evaluate(config, str(workdir), progress=False)
    assert result["status"] == "completed" and result["step"] == 6
    state, step = final_state(workdir)
    assert step == 6
    same_state(reference, state)


def test_kill_during_async_save_resumes_bit_identical(
    reference_run, same_state, tmp_path, tiny_fashion_mnist
):
    config, _, reference = reference_run
    workdir = tmp_path / "run"
    killed = drive(
        workdir, "kill-in-finalize", 4, "--checkpoint-every=2", data_dir=tiny_fashion_mnist
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert "killed while finalising" in killed.stdout
    # Step 4's files are there under Orbax's temporary name, not as a checkpoint.
    left = step_dirs(workdir)
    assert left[0] == "2" and len(left) == 2 and left[1].startswith("4.orbax-checkpoint-tmp")
    config = config.copy_and_resolve_references()
    config.checkpoint_every_steps = 2
    result = train_and_evaluate(config, str(workdir), progress=False)
    assert result["status"] == "completed" and result["step"] == 6
    assert step_dirs(workdir) == ["4", "6"]  # the leftover was cleared, not in the way
    state, step = final_state(workdir)
    assert step == 6
    same_state(reference, state)


# --- damaged checkpoints --------------------------------------------------------------------


def damage(step_dir: str, how: str) -> None:
    """Truncates the state's data files to half, or deletes its OCDBT manifests."""
    state = os.path.join(step_dir, "state")
    if how == "truncate":
        files = glob.glob(f"{state}/d/*") + glob.glob(f"{state}/ocdbt.process_*/d/*")
        for f in files:
            os.truncate(f, os.path.getsize(f) // 2)
    else:
        files = glob.glob(f"{state}/manifest.ocdbt") + glob.glob(
            f"{state}/ocdbt.process_*/manifest.ocdbt"
        )
        for f in files:
            os.remove(f)
    assert files


def tree_listing(root) -> dict[str, int]:
    return {
        os.path.relpath(os.path.join(d, f), root): os.path.getsize(os.path.join(d, f))
        for d, _, files in os.walk(root)
        for f in files
    }


def test_damaged_latest_checkpoint_is_moved_aside_and_the_run_resumes(
    reference_run, same_state, tmp_path, capsys
):
    config, reference_dir, reference = reference_run
    workdir = str(tmp_path / "run")
    shutil.copytree(reference_dir, workdir)
    damage(os.path.join(workdir, "checkpoints", "6"), "truncate")
    damaged = tree_listing(os.path.join(workdir, "checkpoints", "6"))
    capsys.readouterr()
    result = train_and_evaluate(config, workdir, progress=False)
    assert result["status"] == "completed" and result["step"] == 6
    out = capsys.readouterr().out
    aside = os.path.join(workdir, "checkpoints_damaged", "6")
    lines = [l for l in out.splitlines() if l.startswith("checkpoint step")]
    assert len(lines) == 1 and lines[0].startswith(
        f"checkpoint step 6 in {workdir}/checkpoints is damaged ("
    )
    assert lines[0].endswith(f"moved it to {aside} and resuming from step 4")
    assert f"resuming {workdir} from step 4" in out
    assert tree_listing(aside) == damaged  # moved whole, never deleted
    assert step_dirs(workdir) == ["4", "6"]
    state, step = final_state(workdir)
    assert step == 6
    same_state(reference, state)


def test_evaluation_reads_the_newest_readable_checkpoint_and_moves_nothing(
    reference_run, same_state, tmp_path, capsys
):
    _, reference_dir, _ = reference_run
    workdir = str(tmp_path / "run")
    shutil.copytree(reference_dir, workdir)
    damage(os.path.join(workdir, "checkpoints", "6"), "delete")
    before = tree_listing(workdir)
    capsys.readouterr()
    config, _, state, step = restore_for_eval(workdir)
    assert step == 4 and int(state.step) == 4
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("checkpoint step")]
    assert len(lines) == 1
    assert lines[0].startswith(f"checkpoint step 6 in {workdir}/checkpoints cannot be read (")
    assert lines[0].endswith("); using step 4")
    assert tree_listing(workdir) == before
    expected = ckpt_lib.Checkpointer(reference_dir, read_only=True)
    same_state(expected.restore_state(state, 4), state)
    expected.close()
    with pytest.raises(ValueError) as err:
        restore_for_eval(workdir, step=6)
    assert str(err.value).startswith(
        f"cannot read the checkpoint at step 6 in {workdir}/checkpoints: NOT_FOUND: "
    )
    assert str(err.value).endswith('/checkpoints/6/state/" does not exist')  # no spec dump


def small_checkpoints(workdir, steps):
    checkpointer = ckpt_lib.Checkpointer(str(workdir), max_to_keep=5)
    for s in steps:
        checkpointer.save(s, {"w": np.full((4, 8), float(s))}, {"step": s})
    checkpointer.close()


def test_restore_newest_moves_only_checkpoints_newer_than_a_readable_one(tmp_path):
    small_checkpoints(tmp_path, [1, 2, 3])
    damage(str(tmp_path / "checkpoints" / "3"), "delete")
    damage(str(tmp_path / "checkpoints" / "2"), "truncate")
    template = {"w": np.zeros((4, 8))}
    checkpointer = ckpt_lib.Checkpointer(str(tmp_path), max_to_keep=5)
    said = []
    step, value = checkpointer.restore_newest(
        lambda s: checkpointer.restore_state(template, s), move_damaged=True, log=said.append
    )
    assert step == 1 and float(np.asarray(value["w"]).sum()) == 32.0
    assert checkpointer.all_steps() == [1]
    assert [l.split(" in ")[0] for l in said] == ["checkpoint step 3", "checkpoint step 2"]
    assert sorted(os.listdir(tmp_path / "checkpoints_damaged")) == ["2", "3"]
    checkpointer.save(2, {"w": np.full((4, 8), 2.0)}, {"step": 2})
    checkpointer.close()
    # A second damaged step 2 goes beside the first one, not over it.
    damage(str(tmp_path / "checkpoints" / "2"), "truncate")
    checkpointer = ckpt_lib.Checkpointer(str(tmp_path), max_to_keep=5)
    step, _ = checkpointer.restore_newest(
        lambda s: checkpointer.restore_state(template, s), move_damaged=True, log=said.append
    )
    assert step == 1
    assert sorted(os.listdir(tmp_path / "checkpoints_damaged")) == ["2", "2.1", "3"]
    checkpointer.close()


def test_when_no_checkpoint_can_be_read_nothing_is_moved(tmp_path):
    small_checkpoints(tmp_path, [1, 2])
    for s in ("1", "2"):
        damage(str(tmp_path / "checkpoints" / s), "delete")
    before = tree_listing(tmp_path)
    checkpointer = ckpt_lib.Checkpointer(str(tmp_path))
    with pytest.raises(
        ValueError,
        match=r"^no checkpoint in .*checkpoints can be read \(step 2: "
        r".*\); nothing was moved$",
    ):
        checkpointer.restore_newest(
            lambda s: checkpointer.restore_state({"w": np.zeros((4, 8))}, s), move_damaged=True
        )
    checkpointer.close()
    assert tree_listing(tmp_path) == before
    empty = ckpt_lib.Checkpointer(str(tmp_path / "fresh"))
    assert empty.restore_newest(lambda s: s, move_damaged=True) is None
    empty.close()


# --- failed saves ---------------------------------------------------------------------------


def test_failed_save_is_one_line_and_keeps_earlier_checkpoints(
    reference_run, tmp_path, tiny_fashion_mnist
):
    config, _, _ = reference_run
    workdir = str(tmp_path / "run")
    first = train_and_evaluate(config, workdir, max_steps=2, progress=False)
    assert first["step"] == 2 and step_dirs(workdir) == ["2"]
    before = tree_listing(os.path.join(workdir, "checkpoints", "2"))
    # No file may grow past 6 kB: the logs fit, the checkpoint's arrays (~14 kB) do not.
    proc = drive(workdir, "run", "--max-file-bytes=6000", data_dir=tiny_fashion_mnist)
    assert proc.returncode == 2, proc.stderr[-3000:]
    stderr = [l for l in proc.stderr.splitlines() if not l.startswith(("I1", "W1"))]
    assert "Traceback" not in proc.stderr, "\n".join(stderr)[-3000:]
    errors = [l for l in stderr if l.startswith("error:")]
    assert len(errors) == 1, "\n".join(stderr)[-3000:]
    assert errors[0].startswith(
        f"error: cannot save the checkpoint of step 4 in {workdir}/checkpoints: "
        "File too large (errno 27): "
    )
    # The earlier checkpoint is untouched and still restores; step 4 never became one.
    assert tree_listing(os.path.join(workdir, "checkpoints", "2")) == before
    assert "4" not in step_dirs(workdir)
    _, _, state, step = restore_for_eval(workdir)
    assert step == 2 and int(state.step) == 2


class _FailingManager:
    """Stands in for Orbax's manager: ``save`` or ``wait_until_finished`` raise."""

    def __init__(self, fail_on: str):
        self.fail_on = fail_on

    def save(self, step, args, force):
        if self.fail_on == "save":
            raise OSError(28, "No space left on device")

    def wait_until_finished(self):
        if self.fail_on == "wait":
            raise ValueError(
                'OUT_OF_RANGE: Error writing local file "x": Failed to write '
                "8 bytes to file 4: No space left on device [os_error_code='28']\n"
                "second line"
            )

    def close(self):
        pass


@pytest.mark.parametrize(
    "fail_on,message",
    [
        ("save", "cannot save the checkpoint of step 7 in {d}: [Errno 28] No space left on device"),
        (
            "wait",
            "cannot save the checkpoint of step 3 in {d}: No space left on device (errno 28): "
            'OUT_OF_RANGE: Error writing local file "x": Failed to write 8 bytes to file 4: '
            "No space left on device [os_error_code='28']",
        ),
    ],
)
def test_save_errors_become_one_line_naming_step_and_directory(tmp_path, fail_on, message):
    checkpointer = ckpt_lib.Checkpointer(str(tmp_path))
    checkpointer._manager.close()
    checkpointer._manager = _FailingManager("none")
    checkpointer.save(3, {"w": np.zeros(2)}, {})  # asynchronous: not yet confirmed
    checkpointer._manager.fail_on = fail_on
    with pytest.raises(ckpt_lib.CheckpointSaveError) as err:
        checkpointer.save(7, {"w": np.zeros(2)}, {})
    assert str(err.value) == message.format(d=checkpointer.directory)
    assert isinstance(err.value, ValueError)  # the CLI prints it as one line, exit 2
    checkpointer._manager.fail_on = "none"
    checkpointer.close()


def _orphaned_task_log(filename: str) -> str:
    """What the asyncio logger prints for a failed, never-awaited task whose failing code
    lives in ``filename``; run in a child so the collector's timing is the child's own."""
    script = f"""
import asyncio, gc, logging, sys
from ssljax.training import checkpoint as ckpt_lib
ckpt_lib._quiet_background_save_errors()
logging.basicConfig(stream=sys.stdout, force=True)
code = compile("async def write():\\n    raise ValueError('OUT_OF_RANGE: disk full')", {filename!r}, "exec")
scope = {{}}
exec(code, scope)
async def main():
    task = asyncio.ensure_future(scope["write"]())
    await asyncio.sleep(0)
    del task
    gc.collect()
asyncio.run(main())
print("done")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_orphaned_orbax_write_tasks_are_not_logged_but_others_are():
    """A failed save is one line: Orbax's orphaned write tasks add no tracebacks, while
    anyone else's orphaned task is still reported."""
    orbax_file = os.path.join(os.sep, "site-packages", "orbax", "serialization.py")
    quiet = _orphaned_task_log(orbax_file)
    assert quiet.strip() == "done", quiet
    loud = _orphaned_task_log(os.path.join(os.sep, "mine", "writer.py"))
    assert "exception was never retrieved" in loud and "Traceback" in loud, loud
