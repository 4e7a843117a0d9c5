"""A separate process for the fault tests: runs the tiny test config, or dies on purpose.

  python workdir_driver.py WORKDIR run [--data-dir D] [--max-steps N] [--checkpoint-every K]
  python workdir_driver.py WORKDIR kill-after-step N [...]   SIGKILL right after step N; saves
      are waited for, so every checkpoint before step N is complete
  python workdir_driver.py WORKDIR kill-in-finalize N [...]  SIGKILL while the asynchronous
      save of step N commits: its files are written, the step is not yet finalised
  python workdir_driver.py WORKDIR probe SECONDS             only check_workdir_writable

``--max-file-bytes B`` stops every file of the process from growing past B bytes
(RLIMIT_FSIZE, with SIGXFSZ ignored so a write fails with EFBIG, "File too large"): a disk
that fills up, which works as root too.

A ValueError becomes one ``error: ...`` line on stderr and exit status 2, as in the CLI.

The tests start it with the repository root on PYTHONPATH (ssljax and configs import from
there, as they do from an installed ssljax).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import signal
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def tiny_config(data_dir: str | None, checkpoint_every: int | None):
    """The tests' tiny config (importing tests/conftest.py also forces 8 CPU devices)."""
    spec = importlib.util.spec_from_file_location(
        "ssljax_tests_conftest", os.path.join(ROOT, "tests", "conftest.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.tiny_config(data_dir)
    if checkpoint_every:
        config.checkpoint_every_steps = checkpoint_every
    return config


def kill_after_step(step: int) -> None:
    from ssljax.training.checkpoint import Checkpointer
    from ssljax.training.logging import Progress

    save, update = Checkpointer.save, Progress.update

    def saved_and_waited(self, *args, **kwargs):
        save(self, *args, **kwargs)
        self.wait()

    def update_then_die(self, s, *args, **kwargs):
        update(self, s, *args, **kwargs)
        if s == step:
            die()

    Checkpointer.save = saved_and_waited
    Progress.update = update_then_die


def kill_in_finalize(step: int) -> None:
    from orbax.checkpoint._src.path import atomicity

    finalize = atomicity.AtomicRenameTemporaryPath.finalize

    async def finalize_or_die(self):
        if self.get_final().name == str(step):
            print(f"killed while finalising {self.get()}", flush=True)
            die()
        return await finalize(self)

    atomicity.AtomicRenameTemporaryPath.finalize = finalize_or_die


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir")
    parser.add_argument("mode", choices=("run", "kill-after-step", "kill-in-finalize", "probe"))
    parser.add_argument("value", nargs="?", type=float)
    parser.add_argument("--data-dir")
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--checkpoint-every", type=int)
    parser.add_argument("--max-file-bytes", type=int)
    args = parser.parse_args(argv)
    if args.max_file_bytes:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.max_file_bytes, args.max_file_bytes))
    try:
        if args.mode == "probe":
            from ssljax.io import check_workdir_writable

            start = time.perf_counter()
            try:
                check_workdir_writable(args.workdir, timeout_s=args.value)
            finally:
                print(f"probe took {time.perf_counter() - start:.2f} s", flush=True)
            return 0
        config = tiny_config(args.data_dir, args.checkpoint_every)
        if args.mode == "kill-after-step":
            kill_after_step(int(args.value))
        elif args.mode == "kill-in-finalize":
            kill_in_finalize(int(args.value))
        from ssljax.training.loop import train_and_evaluate

        result = train_and_evaluate(config, args.workdir, max_steps=args.max_steps, progress=False)
        print(f"{result['status']} at step {result['step']}", flush=True)
    except ValueError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
