"""Samples (and reconstructions) of a generative run: BiGAN (configs/bigan.py) or an
energy-based model (configs/energy.py).

  python experiments/generative_figures.py --workdir runs/bigan [--out DIR --num 64 --seed 0]
  python experiments/generative_figures.py --workdir runs/energy [--num_steps 500]

Reads the workdir's newest checkpoint and its stored config. A BiGAN run gets
``bigan_samples.png`` (``G(z)`` for ``--num`` prior draws of ``--seed``) and
``bigan_reconstructions.png`` (``--num`` test images ``x``, a row of them alternating with the
row of their ``G(E(x))``); an energy run gets ``energy_samples.png`` (``--num`` Langevin
chains of ``--num_steps`` steps from uniform noise). They go into ``--out`` (default: the
workdir); the written paths are printed. The work is
``ssljax.evaluation.generative.write_figures``.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of a BiGAN or energy pretraining run.")
_OUT = flags.DEFINE_string("out", None, "Output directory of the figures (default: workdir).")
_NUM = flags.DEFINE_integer("num", 64, "Generated samples, and test images reconstructed.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the prior draws and of the test images.")
_NUM_STEPS = flags.DEFINE_integer("num_steps", 500, "Langevin steps (energy runs).")


def main(argv) -> int:
    del argv
    if not _WORKDIR.value:
        raise ValueError("missing --workdir; e.g. --workdir runs/bigan")
    from ssljax.evaluation.generative import write_figures

    paths = write_figures(
        _WORKDIR.value,
        _OUT.value,
        num=_NUM.value,
        seed=_SEED.value,
        num_steps=_NUM_STEPS.value,
        overwrite=True,
    )
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
