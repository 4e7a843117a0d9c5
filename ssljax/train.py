"""Pretraining entry point.

  python -m ssljax.train --config configs/simclr.py:fashion_mnist --workdir runs/demo \\
      [--config.total_steps=2000 --config.batch_size=512 ...]

Rerunning the same command resumes from the latest checkpoint in the workdir.
"""

from __future__ import annotations

from absl import flags
from ml_collections import config_flags

from ssljax import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics).")
_QUIET = flags.DEFINE_bool("quiet", False, "No progress bar.")


def load_config():
    """The parsed --config; a missing or broken file becomes a one-line ValueError."""
    try:
        config = _CONFIG.value
        if config is not None:
            config.keys()  # the flag returns a lazy proxy that fails on first attribute use
    except OSError as err:  # ml_collections defers load errors until first access
        raise ValueError(f"cannot load --config: {err}") from err
    if config is None:
        raise ValueError("missing --config; e.g. --config configs/simclr.py:fashion_mnist")
    return config


def main() -> int:
    config = load_config()
    if not _WORKDIR.value:
        raise ValueError("missing --workdir; e.g. --workdir runs/demo")
    from ssljax.training.loop import train_and_evaluate

    result = train_and_evaluate(config, _WORKDIR.value, progress=not _QUIET.value)
    if result["steps_run"] == 0:
        print(
            f"{result['status']} at step {result['step']}: the run in {_WORKDIR.value} "
            "was already there, no step was run",
            flush=True,
        )
        return 0
    print(
        f"{result['status']} at step {result['step']} "
        f"({result['steps_per_second']:.2f} step/s, {result['seconds']:.0f} s); "
        f"last loss {result['last_metrics'].get('loss', float('nan')):.4f}",
        flush=True,
    )
    return 143 if result["status"] == "preempted" else 0


def cli_main() -> None:
    """Console-script entry point."""
    cli.run(main)


if __name__ == "__main__":
    cli_main()
