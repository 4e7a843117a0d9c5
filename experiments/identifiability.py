"""Every identifiability study beside the papers' numbers (``main`` and its helpers live in
``ssljax.experiments.identifiability``; see its docstring).

  python experiments/identifiability.py --out_dir runs/identifiability
  python experiments/identifiability.py --full --out_dir runs/identifiability_full
"""

from ssljax.experiments.identifiability import main

if __name__ == "__main__":
    raise SystemExit(main())
