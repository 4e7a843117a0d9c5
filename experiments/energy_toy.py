"""Energy-based models on 2-D toy densities: samplers of the true energy, learned energies and
a Gaussian's moments (``main`` and its helpers live in ``ssljax.experiments.energy_toy``; see
its docstring).

  python experiments/energy_toy.py
  python experiments/energy_toy.py --quick --json /tmp/energy_toy.json --figure /tmp/energy_toy.png
"""

from ssljax.experiments.energy_toy import main

if __name__ == "__main__":
    raise SystemExit(main())
