"""Orbax checkpoints of the train state, with the run's config stored beside the weights.

Layout of a workdir (a local path or an object-store URI such as ``gs://bucket/run``)::

  DIR/config.json              the run's config (checked when a run resumes in DIR)
  DIR/checkpoints/<step>/state    the TrainState (orbax StandardSave)
  DIR/checkpoints/<step>/config   the same config (orbax JsonSave), so evaluation never
                                  re-specifies the architecture
  DIR/checkpoints_damaged/<step>/ a checkpoint that could not be read, moved aside when a
                                  run resumed from an older one (never deleted)
"""

from __future__ import annotations

import contextlib
import json
import logging as std_logging
import os
import sys
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp

from ssljax import io as wio
from ssljax.data.host_views import HOST_AUGMENT_DEFAULTS
from ssljax.training.logging import write_json_atomic

CHECKPOINT_SUBDIR = "checkpoints"
DAMAGED_SUBDIR = "checkpoints_damaged"
CONFIG_FILE = "config.json"
# Keys that only steer logging and saving; a resumed run may change them freely.
RUN_CONTROL_KEYS = (
    "log_every_steps",
    "eval_every_steps",
    "eval.monitor_bank_examples",
    "eval.monitor_query_examples",
    "checkpoint_every_steps",
    "keep_checkpoints",
)


class CheckpointSaveError(ValueError):
    """A checkpoint could not be written (disk full, no permission, store unreachable)."""


class StateLayoutError(ValueError):
    """A checkpoint holds a train state of another layout than the code builds (e.g. written
    before a method's state or parameter groups changed). Not damage: nothing is moved."""


def state_paths(tree) -> set[tuple]:
    """The key paths of a train state's leaves as Orbax stores them."""
    return set(ocp.tree.to_flat_dict(ocp.tree.serialize_tree(tree, keep_empty_nodes=True)))


def layout_difference(expected: set[tuple], stored: set[tuple], most: int = 4) -> list[str]:
    """Dotted paths present on one side only (``+path``: only stored, ``-path``: only
    expected), at most ``most`` of them."""
    only_stored = ["+" + ".".join(map(str, p)) for p in sorted(stored - expected, key=str)]
    only_expected = ["-" + ".".join(map(str, p)) for p in sorted(expected - stored, key=str)]
    return (only_stored + only_expected)[:most]


def config_to_dict(config) -> dict:
    """A JSON round trip of a ConfigDict/dict, so tuples and lists compare equal."""
    raw = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return json.loads(json.dumps(raw, sort_keys=True, default=_json_default))


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, type):
        return value.__name__
    return repr(value)


# Keys added to the configs after runs were stored: a stored config without one means this
# value, which leaves training unchanged, so such runs still resume.
LATER_DEFAULTS = {
    "optimizer.lr_multipliers": {"encoder": 1.0, "projector": 1.0, "predictor": 1.0},
    # (eval.* keys added with the streamed evaluation default to EVAL_DEFAULTS.)
    "accumulate_steps": 1,
    # Users' own data (image folders, any TFDS dataset): None is the registered dataset's own.
    **{
        f"dataset.{key}": None
        for key in (
            "image_key",
            "label_key",
            "image_size",
            "channels",
            "pretrain_split",
            "train_split",
            "test_split",
        )
    },
    # Where the crop is taken, and multi-crop (ssljax.data.host_views): crop_on='auto' keeps
    # Fashion-MNIST, CIFAR and STL-10 runs on the device as before; no local crops. Tuples
    # as the stored JSON holds them: lists.
    **{
        f"augment.{key}": list(value) if isinstance(value, tuple) else value
        for key, value in HOST_AUGMENT_DEFAULTS.items()
    },
}


def _later_default(path: str, fallback):
    """A ``LATER_DEFAULTS`` value, or for ``eval.*`` keys the evaluation's own default."""
    if path in LATER_DEFAULTS:
        return LATER_DEFAULTS[path]
    if path.startswith("eval."):
        from ssljax.evaluation.checkpoint_eval import EVAL_DEFAULTS

        return EVAL_DEFAULTS.get(path[len("eval.") :], fallback)
    return fallback


def _resolved_objective(objective: dict) -> dict:
    """The objective's hyperparameters with defaults filled in (an objective stored before
    defaults moved into the objective classes lists only some); unchanged if invalid."""
    from ssljax import objectives

    try:
        return config_to_dict(objectives.resolved(objective))
    except ValueError:
        return objective


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts (run-control keys ignored;
    a key of ``LATER_DEFAULTS`` missing on one side counts as its default; objective keys are
    compared with the objective's defaults filled in)."""
    diffs = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        if path in RUN_CONTROL_KEYS:
            continue
        missing = _later_default(path, "<missing>")
        a, b = old.get(key, missing), new.get(key, missing)
        if path == "objective" and isinstance(a, dict) and isinstance(b, dict):
            a, b = _resolved_objective(a), _resolved_objective(b)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_differences(a, b, prefix=path + ".")
        elif a != b:
            diffs.append(path)
    return diffs


def read_workdir_config(workdir: str) -> dict | None:
    """The config stored in ``workdir/config.json``, or None when there is none."""
    text = wio.read_text(wio.join(workdir, CONFIG_FILE))
    return None if text is None else json.loads(text)


def has_checkpoints(workdir: str) -> bool:
    """Whether ``workdir/checkpoints`` holds anything (finished or not)."""
    directory = wio.as_path(wio.join(workdir, CHECKPOINT_SUBDIR))
    return directory.is_dir() and any(True for _ in directory.iterdir())


def _read_workdir_state(workdir: str, timeout_s: float) -> tuple[dict | None, bool]:
    """``(stored config or None, has checkpoints)``, within ``timeout_s`` (one-line errors)."""
    try:
        return wio.call_with_timeout(
            lambda: (read_workdir_config(workdir), has_checkpoints(workdir)), timeout_s
        )
    except wio.WorkdirTimeout:
        raise ValueError(
            f"workdir {workdir} cannot be reached: no answer within {timeout_s:g} s"
        ) from None
    except Exception as err:
        raise ValueError(
            f"cannot read {wio.join(workdir, CONFIG_FILE)}: {wio.first_line(err)}"
        ) from err


def prepare_workdir(
    workdir: str, config, *, write: bool = True, timeout_s: float = wio.WORKDIR_TIMEOUT_S
) -> dict:
    """Checks ``workdir`` for ``config``, refusing a workdir that holds another run.

    With ``write`` (process 0 of a run) it first checks, within ``timeout_s``, that the
    workdir can be reached and written (``ssljax.io.check_workdir_writable``), then writes
    ``config.json`` for a new run. With ``write=False`` (the other processes) it only reads
    and checks. An existing run with a different config (other than logging/saving
    intervals) is an error that names the differing keys; nothing is changed.

    Returns the config as a plain dict (what is stored).
    """
    new = config_to_dict(config)
    wio.check_scheme(workdir)
    if write:
        wio.check_workdir_writable(workdir, timeout_s)
    old, stored_checkpoints = _read_workdir_state(workdir, timeout_s)
    if old is None and stored_checkpoints:
        raise ValueError(
            f"workdir {workdir} holds checkpoints but no {CONFIG_FILE}; "
            "use a new --workdir or remove the old run"
        )
    if old is not None:
        diffs = config_differences(old, new)
        if diffs:
            shown = ", ".join(diffs[:6]) + (" ..." if len(diffs) > 6 else "")
            raise ValueError(
                f"workdir {workdir} holds a run with a different config (differs in: {shown}); "
                "use a new --workdir, or rerun with that run's config to resume it"
            )
        return new
    if write:
        write_json_atomic(wio.join(workdir, CONFIG_FILE), new)
    return new


def _with_sharding(leaf):
    """A ShapeDtypeStruct for ``leaf``; leaves without a sharding go to the first device."""
    struct = ocp.utils.to_shape_dtype_struct(leaf)
    if getattr(struct, "sharding", None) is None:
        sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        struct = jax.ShapeDtypeStruct(struct.shape, struct.dtype, sharding=sharding)
    return struct


# Orbax announces every read-only manager with this warning; it tells the user nothing.
_READ_ONLY_NOTICE = "Given directory is read only"


class _DropMessages(std_logging.Filter):
    """Drops log records whose message starts with one of ``prefixes``."""

    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: std_logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


@contextlib.contextmanager
def _without_messages(*prefixes: str):
    """Silences the absl log records (Orbax logs through absl) starting with ``prefixes``,
    and only those, inside the block."""
    logger = std_logging.getLogger("absl")
    drop = _DropMessages(prefixes)
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


# Orbax logs a failed asynchronous save from each of its threads, with a traceback each;
# ``Checkpointer`` raises the same error as one ``CheckpointSaveError`` line instead.
_BACKGROUND_SAVE_ERRORS = ("raised an exception", "Commit operations", "Save Finalize thread")


class _DropBackgroundSaveErrors(std_logging.Filter):
    """Drops Orbax's error records about a failed background save (only those)."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        from_orbax = f"{os.sep}orbax{os.sep}" in (record.pathname or "")
        return not (
            from_orbax
            and record.levelno >= std_logging.ERROR
            and any(p in record.getMessage() for p in _BACKGROUND_SAVE_ERRORS)
        )


class _DropOrphanedSaveTasks(std_logging.Filter):
    """Drops asyncio's "exception was never retrieved" records for Orbax's write tasks.

    When one write of a save fails, Orbax stops waiting for its sibling writes; their
    failures are logged (with a traceback each) whenever the garbage collector reaches them.
    The save's error itself reaches the caller as one ``CheckpointSaveError``.
    """

    def filter(self, record: std_logging.LogRecord) -> bool:
        if "exception was never retrieved" not in record.getMessage() or not record.exc_info:
            return True
        tb = record.exc_info[2]
        while tb is not None:
            if f"{os.sep}orbax{os.sep}" in tb.tb_frame.f_code.co_filename:
                return False
            tb = tb.tb_next
        return True


def _quiet_background_save_errors() -> None:
    """Installs the filters above once per process (the background threads and the
    garbage collector may still log after the error was raised)."""
    for name, kind in (("absl", _DropBackgroundSaveErrors), ("asyncio", _DropOrphanedSaveTasks)):
        logger = std_logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())


def manager_options(*, max_to_keep: int, read_only: bool) -> ocp.CheckpointManagerOptions:
    """Orbax options for a writer, or for a reader (already consistent with ``read_only``,
    so Orbax has nothing to adjust or warn about).

    A writer removes the unfinished save directories a killed run left (Orbax's
    ``*.orbax-checkpoint-tmp*``, or on gs:// a step without ``commit_success.txt``); they
    never held a complete checkpoint.
    """
    if read_only:
        return ocp.CheckpointManagerOptions(
            read_only=True, create=False, save_interval_steps=0, max_to_keep=None
        )
    return ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True
    )


def _is_closed_loop_callback(unraisable) -> bool:
    """Whether an unraisable exception is a TensorStore read finishing after Orbax gave up
    on a failed restore and closed its event loop (harmless; nothing is waiting for it)."""
    err = unraisable.exc_value
    return isinstance(err, RuntimeError) and str(err) == "Event loop is closed"


def _ignore_closed_loop_callbacks() -> None:
    """Keeps the late callbacks of an abandoned restore from printing one traceback each
    (they arrive after the restore has returned); every other unraisable exception still
    reaches the previous hook."""
    previous = sys.unraisablehook
    if getattr(previous, "_ssljax_closed_loop_filter", False):
        return

    def hook(unraisable):
        if not _is_closed_loop_callback(unraisable):
            previous(unraisable)

    hook._ssljax_closed_loop_filter = True
    sys.unraisablehook = hook


def _sync(name: str) -> None:
    """Waits for every process of a multi-process run (no-op with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def damaged_destination(workdir: str, step: int) -> str:
    """Where the damaged checkpoint of ``step`` goes: ``WORKDIR/checkpoints_damaged/<step>``
    (``<step>.1``, ``<step>.2``, ... when that exists), outside the directory Orbax scans."""
    base = wio.join(workdir, DAMAGED_SUBDIR, str(step))
    candidate, n = base, 0
    while wio.as_path(candidate).exists():
        n += 1
        candidate = f"{base}.{n}"
    return candidate


class Checkpointer:
    """A thin wrapper over ``ocp.CheckpointManager`` for (state, config) pairs.

    ``workdir`` may be local or a URI (``gs://bucket/run``); a local one is made absolute.
    Save failures (also those of an asynchronous save, which surface at the next save or at
    ``wait``/``close``) become a one-line ``CheckpointSaveError`` naming step and directory.
    """

    def __init__(self, workdir: str, *, max_to_keep: int = 2, read_only: bool = False):
        wio.check_scheme(workdir)
        self.workdir = wio.absolute(workdir)
        self.path = wio.as_path(self.workdir) / CHECKPOINT_SUBDIR
        self.directory = os.fspath(self.path)
        self.read_only = read_only
        self._unconfirmed_step: int | None = None  # saved asynchronously, not yet confirmed
        options = manager_options(max_to_keep=max_to_keep, read_only=read_only)
        if not read_only:
            _quiet_background_save_errors()
        with _without_messages(_READ_ONLY_NOTICE):
            self._manager = ocp.CheckpointManager(
                self.path, options=options, item_names=("state", "config")
            )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def _save_error(self, step: int | None, err: Exception) -> CheckpointSaveError:
        what = "an earlier checkpoint" if step is None else f"the checkpoint of step {step}"
        return CheckpointSaveError(f"cannot save {what} in {self.directory}: {wio.first_line(err)}")

    def _confirm(self) -> None:
        """Waits for the pending asynchronous save; its failure is a CheckpointSaveError."""
        step, self._unconfirmed_step = self._unconfirmed_step, None
        try:
            self._manager.wait_until_finished()
        except Exception as err:
            raise self._save_error(step, err) from err

    def save(self, step: int, state: Any, config_dict: dict) -> None:
        """Saves asynchronously; call ``wait()`` before reading it back or exiting.

        Raises:
          CheckpointSaveError: this save, or the previous asynchronous one, failed.
        """
        self._confirm()
        try:
            self._manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config_dict)
                ),
                force=True,
            )
        except Exception as err:
            raise self._save_error(step, err) from err
        self._unconfirmed_step = step

    def stored_layout(self, step: int) -> Any:
        """The stored state's tree of array metadata (shapes, dtypes) at ``step``."""
        path = self.path / str(step) / "state"
        return ocp.StandardCheckpointHandler().metadata(path).tree

    def check_layout(self, abstract_state: Any, step: int) -> None:
        """Raises ``StateLayoutError`` (one line) when the stored state's leaves are not the
        ones ``abstract_state`` has. A layout that cannot be read is left to the restore."""
        try:
            stored = state_paths(self.stored_layout(step))
        except Exception:  # unreadable metadata: the restore reports it as damage
            return
        diff = layout_difference(state_paths(abstract_state), stored)
        if diff:
            raise StateLayoutError(
                f"the checkpoint at step {step} in {self.directory} holds a train state of "
                f"another layout (written by an earlier ssljax; differs at {', '.join(diff)}); "
                "it can be evaluated but not resumed: start a new --workdir"
            )

    def restore_state(self, abstract_state: Any, step: int | None = None) -> Any:
        """Restores the state at ``step`` (latest by default) into ``abstract_state``'s layout.

        ``abstract_state`` is a pytree of ``jax.ShapeDtypeStruct`` (with shardings) or arrays.

        Raises:
          StateLayoutError: the stored state has other leaves than ``abstract_state``.
        """
        step = self.latest_step() if step is None else step
        self.check_layout(abstract_state, step)
        abstract = jax.tree.map(_with_sharding, abstract_state)
        restored = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        )
        return restored["state"]

    def restore_stored_layout(self, step: int) -> Any:
        """The state at ``step`` in the layout it was stored in (nested dicts of arrays on
        this process's first device), whatever the code's current layout."""
        device = jax.local_devices()[0]
        abstract = jax.tree.map(
            lambda m: jax.ShapeDtypeStruct(
                tuple(m.shape), m.dtype, sharding=jax.sharding.SingleDeviceSharding(device)
            ),
            self.stored_layout(step),
        )
        restored = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        )
        return restored["state"]

    def restore_config(self, step: int | None = None) -> dict:
        """The config stored with the checkpoint at ``step`` (latest by default)."""
        step = self.latest_step() if step is None else step
        restored = self._manager.restore(
            step, args=ocp.args.Composite(config=ocp.args.JsonRestore())
        )
        return restored["config"]

    def restore_newest(
        self,
        restore: Callable[[int], Any],
        *,
        move_damaged: bool,
        log: Callable[[str], None] = print,
    ) -> tuple[int, Any] | None:
        """``(step, restore(step))`` for the newest checkpoint that ``restore`` can read.

        Steps are tried newest first; each one that fails is reported in one line naming it.
        With ``move_damaged`` (a resuming run) those newer than the one read are moved to
        ``WORKDIR/checkpoints_damaged/<step>`` (never deleted) by process 0 while the other
        processes wait, so the next save does not meet them; without it (evaluation, which
        is read-only) they are only skipped. Returns None when there is no checkpoint.

        Raises:
          ValueError: no checkpoint can be read (then nothing is moved: when every step
            fails, the cause is more likely the code or config than the files).
        """
        _ignore_closed_loop_callbacks()
        steps = sorted(self.all_steps(), reverse=True)
        failures = []
        for step in steps:
            try:
                value = restore(step)
            except StateLayoutError:  # not damage: moving it aside would lose the run
                raise
            except Exception as err:  # Orbax/TensorStore raise many types for bad files
                failures.append((step, err))
                continue
            break
        else:
            if not failures:
                return None
            newest, err = failures[0]
            raise ValueError(
                f"no checkpoint in {self.directory} can be read (step {newest}: "
                f"{wio.first_line(err)}); nothing was moved"
            )
        main = jax.process_index() == 0
        for bad, err in failures:
            reason = wio.first_line(err, limit=160)
            if not move_damaged:
                log(
                    f"checkpoint step {bad} in {self.directory} cannot be read ({reason}); "
                    f"using step {step}"
                )
            elif main:
                destination = damaged_destination(self.workdir, bad)
                wio.move_tree(self.path / str(bad), destination)
                log(
                    f"checkpoint step {bad} in {self.directory} is damaged ({reason}); "
                    f"moved it to {destination} and resuming from step {step}"
                )
        if move_damaged and failures:
            _sync("ssljax:damaged-checkpoints-moved")
            self._manager.reload()
        return step, value

    def wait(self) -> None:
        """Blocks until the pending save is written (CheckpointSaveError if it failed)."""
        self._confirm()

    def close(self) -> None:
        """Waits for the pending save and releases Orbax's threads."""
        try:
            self._confirm()
        except CheckpointSaveError:
            with contextlib.suppress(Exception):  # Orbax may repeat the error raised here
                self._manager.close()
            raise
        self._manager.close()
