"""Shared command-line plumbing: flag parsing, multi-process start-up, one-line errors.

Every entry point (``ssljax.train``, ``ssljax.linear_eval``, ``ssljax.evaluate_disentanglement``)
runs through :func:`run`, which adds the multi-process flags ``--coordinator_address``,
``--num_processes``, ``--process_id`` and ``--initialization_timeout``, starts
``jax.distributed`` when they (or a detected cluster) ask for it, and turns user errors into
one line on stderr with exit status 2.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

EXIT_USAGE = 2


def fail(message: str) -> None:
    """Prints ``error: message`` as one line on stderr and exits with status 2."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_USAGE)


def define_distributed_flags() -> None:
    """The multi-process flags, shared by every entry point (defined once)."""
    from absl import flags

    if "coordinator_address" in flags.FLAGS:
        return
    flags.DEFINE_string(
        "coordinator_address",
        None,
        "HOST:PORT of process 0, which hosts jax.distributed's coordinator. With none of the "
        "three process flags, a detected cluster (TPU pod, SLURM, Open MPI) is used, else "
        "one process.",
    )
    flags.DEFINE_integer("num_processes", None, "Number of processes of the run.")
    flags.DEFINE_integer("process_id", None, "This process's index, 0..num_processes-1.")
    flags.DEFINE_float(
        "initialization_timeout",
        300.0,
        "Seconds to wait for the coordinator and every process to join before exiting "
        "with status 2.",
    )


def start_processes() -> int:
    """Starts jax.distributed from the parsed flags; returns the number of processes."""
    from absl import flags

    from ssljax import parallel

    f = flags.FLAGS
    return parallel.initialize_distributed(
        f.coordinator_address,
        f.num_processes,
        f.process_id,
        timeout_s=f.initialization_timeout,
    )


def quiet_libraries() -> None:
    """Silences start-up chatter that no user can act on; real warnings stay."""
    import logging as std_logging

    from absl import logging

    logging.set_verbosity(logging.WARNING)
    # Orbax logs its option adjustments for read-only managers as warnings.
    std_logging.getLogger("absl").setLevel(std_logging.WARNING)


def run(main: Callable[[], int | None], argv: list[str] | None = None) -> None:
    """Parses absl flags from ``argv``, starts the processes and runs ``main``.

    Flag errors (unknown flag, unreadable --config file, bad override), bad process flags
    and ``ValueError`` raised by the library (unknown names, indivisible batch, missing
    data or checkpoint) become a single line on stderr instead of a traceback.
    """
    from absl import flags

    define_distributed_flags()
    argv = sys.argv if argv is None else argv
    try:
        flags.FLAGS(argv)
    except flags.Error as err:
        fail(str(err))
    except (OSError, ValueError, SyntaxError) as err:
        fail(f"cannot load the config: {err}")
    quiet_libraries()
    try:
        start_processes()
        code = main()
    except ValueError as err:
        fail(str(err))
    raise SystemExit(code or 0)
