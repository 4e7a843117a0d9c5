"""RotNet rotation prediction on CIFAR-10 with ResNet-18 (CIFAR stem), RotNet's CIFAR recipe.

Gidaris et al. 2018, CIFAR-10 (paper and the reference code's CIFAR10_RotNet_NIN4blocks
config): every image in all four rotations (a batch of 128 images -> 512 inputs), random
32x32 crops of the image zero-padded by 4 and horizontal flips before rotating, SGD with
momentum 0.9 and learning rate 0.1, weight decay 5e-4, 200 epochs.

Deviations, stated honestly: RotNet's encoder is a 4-block Network-in-Network, which ssljax
does not have; we use ResNet-18 with the CIFAR stem and a linear rotation classifier on its
pooled features. The reference code decays the learning rate in steps (x0.2 at epochs 60,
120, 160) with Nesterov momentum; ssljax's schedules are warmup + cosine, so the rate follows
a cosine from 0.1 to 0 with plain momentum. The paper probes each block with non-linear
classifiers; our probe is linear, on block3 (the third of four stages, 8x8x256) pooled to
2x2 (1,024-d), following RotNet's finding that the second of four NIN blocks is best.

Launch:
  python -m ssljax.train --config configs/rotation_cifar10.py --workdir runs/rotation_cifar10
  python -m ssljax.linear_eval --workdir runs/rotation_cifar10

Expected: not measured here (accelerator-sized: 78k steps of 512 images). Paper reference
(Gidaris et al. 2018, CIFAR-10, NIN with 4 blocks): 89.06% top-1 from a non-linear classifier
on the second block, 91.16% with a convolutional classifier on top of it (supervised NIN:
92.80%). A linear probe is expected to land below those non-linear numbers.
"""

from configs import common, methods


def get_config():
    c = common.cifar10_resnet18(common.get_config())
    c.batch_size = 128  # images; 4 x 128 rotated inputs per step
    c.total_steps = 78_125  # 200 epochs of 50,000 images at batch 128
    methods.rotation(c, pad_crop=4, flip=True)
    methods.sgd(c, 0.1, weight_decay=5e-4, warmup_steps=0)
    c.checkpoint_every_steps = 5000
    c.log_every_steps = 100
    c.eval.layer = "block3"
    c.eval.grid = 2
    return c
