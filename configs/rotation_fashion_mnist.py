"""RotNet rotation prediction on Fashion-MNIST with the demo's ConvNet (CPU-sized).

Every 28x28 image is shown in all four rotations (0/90/180/270 degrees counter-clockwise) in
one batch of 4 x 128 images, RotNet's scheme; no other augmentation (Gidaris et al. add a
random crop and flip on CIFAR: objective.pad_crop=2, objective.flip=True here). The encoder
is the SimCLR demo's ConvNet (widths 32-64-128-256, strides 2-2-1-1) and the rotation
classifier a linear layer on its pooled features (RotNet's NIN ends in global pooling and a
linear layer too). SGD with momentum 0.9, learning rate 0.1, weight decay 5e-4: RotNet's
CIFAR optimiser, with warmup + cosine instead of its step decay.

Linear probe: the plain encoder on whole images, block4 pooled to 3x3 (2,304-d), the demo's
probe, so the comparison table reads every method at the same layer.

Launch:
  python -m ssljax.train --config configs/rotation_fashion_mnist.py --workdir runs/rotation_fmnist
  python -m ssljax.linear_eval --workdir runs/rotation_fmnist

Expected: see the README section "Classification pretext tasks" (measured numbers there).
"""

from configs import common, methods


def get_config():
    c = common.demo_convnet(common.get_config())
    c.batch_size = 128  # images; the network sees 4 x 128 rotated copies per step
    c.total_steps = 1000
    methods.rotation(c)
    methods.sgd(c, 0.1, weight_decay=5e-4, warmup_steps=50)
    return c
