"""Instance discrimination (memory bank) on Fashion-MNIST with the small ConvNet (CPU-friendly).

CPU-sized: the Fashion-MNIST demo's ConvNet, batch, optimizer and augmentations
(configs/simclr_fashion_mnist.py), so methods compare on equal terms.
Measured at a 2- or 5-minute budget: linear top-1 level with or just below the
random-encoder baseline, kNN above it (README, "Comparing methods";
experiments/compare_methods.py).
One view per image; the bank holds the 60,000 training images. Ours, for runs of one or two
epochs: rows are filled as images are first seen (objective.memory_init = 'first_visit') and
the LARS rate is a tenth of the demo's; the README's section on comparing methods has the
measurements behind both, and those of objective.memory_init='prefill' (no better) and of a
2000-step run (still level on the linear probe, kNN 4 points above).

Launch:
  python -m ssljax.train --config configs/instance_discrimination_fashion_mnist.py --workdir runs/instance_discrimination_fashion_mnist
  python -m ssljax.linear_eval --workdir runs/instance_discrimination_fashion_mnist
"""

from configs import methods, simclr_fashion_mnist


def get_config():
    c = simclr_fashion_mnist.get_config()
    methods.instance_discrimination(c, memory_size=60_000, num_negatives=4096,
                                    memory_init="first_visit")
    # A tenth of the demo's LARS rate (peak 0.12 at batch 256): features drift less between
    # an image's visits, so its bank row is less stale.
    c.optimizer.base_learning_rate = 0.0075
    return c
