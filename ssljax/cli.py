"""Shared command-line plumbing: flag parsing and one-line errors with exit status 2."""

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


def run(main: Callable[[], int | None], argv: list[str] | None = None) -> None:
    """Parses absl flags from ``argv`` and runs ``main``; user errors exit with status 2.

    Flag errors (unknown flag, unreadable --config file, bad override) and ``ValueError``
    raised by the library (unknown names, indivisible batch, missing data or checkpoint)
    become a single line on stderr instead of a traceback.
    """
    from absl import flags, logging

    argv = sys.argv if argv is None else argv
    try:
        flags.FLAGS(argv)
    except flags.Error as err:
        fail(str(err))
    except (OSError, ValueError, SyntaxError) as err:
        fail(f"cannot load the config: {err}")
    logging.set_verbosity(logging.WARNING)
    try:
        code = main()
    except ValueError as err:
        fail(str(err))
    raise SystemExit(code or 0)
