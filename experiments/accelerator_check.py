"""One unattended accelerator check, each part in its own process under its own time limit.

Parts: environment, resnet50 (SimCLR vs supervised ResNet-50 steps), resnet18_cifar (SimCLR
ResNet-18 on synthetic CIFAR-shaped images) and multi_device (the 8-device equality test); they
and the device-machine set-up are described in ``ssljax.experiments.accelerator_check``. On the
device machine (ssljax not installed; the repository root goes on PYTHONPATH):

  PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 python3 experiments/accelerator_check.py \\
      --out $OUT/accelerator_check.json

Quick check on a CPU (tiny shapes, shortened ResNet, float32; about 2 minutes on 2 cores):

  python experiments/accelerator_check.py --smoke
"""

import sys

from ssljax.experiments.accelerator_check import main

if __name__ == "__main__":
    sys.exit(main())
