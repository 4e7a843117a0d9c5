"""Samples and reconstructions of a BiGAN run (configs/bigan.py).

  python experiments/bigan_figures.py --workdir runs/bigan [--out DIR --num 64 --seed 0]

Reads the workdir's newest checkpoint and its stored config and writes
``bigan_samples.png`` (``G(z)`` for ``--num`` prior draws of ``--seed``) and
``bigan_reconstructions.png`` (``--num`` test images ``x``, a row of them alternating with the
row of their ``G(E(x))``) into ``--out`` (default: the workdir); prints the written paths.
The work is ``ssljax.evaluation.generative.write_bigan_figures``.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of a BiGAN pretraining run.")
_OUT = flags.DEFINE_string("out", None, "Output directory of the figures (default: workdir).")
_NUM = flags.DEFINE_integer("num", 64, "Generated samples, and test images reconstructed.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the prior draws and of the test images.")


def main(argv) -> int:
    del argv
    if not _WORKDIR.value:
        raise ValueError("missing --workdir; e.g. --workdir runs/bigan")
    from ssljax.evaluation.generative import write_bigan_figures

    paths = write_bigan_figures(
        _WORKDIR.value, _OUT.value, num=_NUM.value, seed=_SEED.value, overwrite=True
    )
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
