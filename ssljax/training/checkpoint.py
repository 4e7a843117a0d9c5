"""Orbax checkpoints of the train state, with the run's config stored beside the weights.

Layout of a workdir::

  DIR/config.json              the run's config (checked when a run resumes in DIR)
  DIR/checkpoints/<step>/state    the TrainState (orbax StandardSave)
  DIR/checkpoints/<step>/config   the same config (orbax JsonSave), so evaluation never
                                  re-specifies the architecture
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from ssljax.training.logging import write_json_atomic

CHECKPOINT_SUBDIR = "checkpoints"
CONFIG_FILE = "config.json"
# Keys that only steer logging and saving; a resumed run may change them freely.
RUN_CONTROL_KEYS = ("log_every_steps", "checkpoint_every_steps", "keep_checkpoints")


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
}


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts (run-control keys ignored;
    a key of ``LATER_DEFAULTS`` missing on one side counts as its default)."""
    diffs = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        if not prefix and key in RUN_CONTROL_KEYS:
            continue
        missing = LATER_DEFAULTS.get(path, "<missing>")
        a, b = old.get(key, missing), new.get(key, missing)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_differences(a, b, prefix=path + ".")
        elif a != b:
            diffs.append(path)
    return diffs


def read_workdir_config(workdir: str) -> dict | None:
    """The config stored in ``workdir/config.json``, or None when there is none."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def prepare_workdir(workdir: str, config) -> dict:
    """Creates ``workdir`` for ``config``, refusing a workdir that holds another run.

    Writes ``config.json`` for a new run. An existing run with a different config (other than
    logging/saving intervals) is an error that names the differing keys; nothing is changed.
    """
    new = config_to_dict(config)
    old = read_workdir_config(workdir)
    has_checkpoints = os.path.isdir(os.path.join(workdir, CHECKPOINT_SUBDIR)) and bool(
        os.listdir(os.path.join(workdir, CHECKPOINT_SUBDIR))
    )
    if old is None and has_checkpoints:
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
    os.makedirs(workdir, exist_ok=True)
    write_json_atomic(os.path.join(workdir, CONFIG_FILE), new)
    return new


def _with_sharding(leaf):
    """A ShapeDtypeStruct for ``leaf``; leaves without a sharding go to the first device."""
    struct = ocp.utils.to_shape_dtype_struct(leaf)
    if getattr(struct, "sharding", None) is None:
        sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        struct = jax.ShapeDtypeStruct(struct.shape, struct.dtype, sharding=sharding)
    return struct


class Checkpointer:
    """A thin wrapper over ``ocp.CheckpointManager`` for (state, config) pairs."""

    def __init__(self, workdir: str, *, max_to_keep: int = 2, read_only: bool = False):
        directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_SUBDIR)
        self.directory = directory
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=not read_only, read_only=read_only
        )
        self._manager = ocp.CheckpointManager(
            directory, options=options, item_names=("state", "config")
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, config_dict: dict) -> None:
        """Saves asynchronously; call ``wait()`` before reading it back or exiting."""
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config_dict)
            ),
            force=True,
        )

    def restore_state(self, abstract_state: Any, step: int | None = None) -> Any:
        """Restores the state at ``step`` (latest by default) into ``abstract_state``'s layout.

        ``abstract_state`` is a pytree of ``jax.ShapeDtypeStruct`` (with shardings) or arrays.
        """
        step = self.latest_step() if step is None else step
        abstract = jax.tree.map(_with_sharding, abstract_state)
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

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
