"""A small version of Locatello et al. 2019's study on dSprites (``main`` and its helpers
live in ``ssljax.experiments.disentanglement_study``; see its docstring for the flags).

  python experiments/disentanglement_study.py --steps 150 --seeds 0,1 \\
      --out_dir runs/disentanglement_study
"""

from ssljax.experiments.disentanglement_study import main

if __name__ == "__main__":
    raise SystemExit(main())
