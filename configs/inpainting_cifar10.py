"""Context-encoder inpainting on CIFAR-10 with ResNet-18 (CIFAR stem), accelerator-sized.

Pathak et al. 2016's recipe at CIFAR size: random-region masks hiding a quarter of the image
(smooth random blobs instead of the paper's PASCAL silhouettes), hidden pixels filled with the
CIFAR-10 mean colour, L = 0.999 L_rec + 0.001 L_adv with a patch discriminator trained in the
same step (Adam, beta1 0.5, lr 2e-4), and the paper's channel-wise fully connected layer
between the encoder's last map (block4, 4x4x512) and a three-stage resize-convolution decoder
back to 32x32x3.

Ours, not the paper's: ResNet-18 instead of AlexNet, 32x32 images instead of 128x128 (the
paper's feature-learning runs used AlexNet at 227x227), AdamW at 1e-3 for the encoder/decoder,
100 epochs. The probe reads block3 pooled to 2x2 (mid-level layers tend to suit reconstruction
tasks best; Kolesnikov et al. 2019); not tuned.

Paper reference (AlexNet, ImageNet pretraining, fine-tuned): PASCAL VOC 2007 classification
56.5% mAP, detection 44.5% mAP, VOC 2012 segmentation 29.7% mIoU. No CIFAR-10 number exists.

Launch:
  python -m ssljax.train --config configs/inpainting_cifar10.py --workdir runs/inpainting_cifar10
  python -m ssljax.linear_eval --workdir runs/inpainting_cifar10

Expected: not measured here (accelerator-sized).
"""

from configs import common, methods

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)


def get_config():
    c = common.cifar10_resnet18(common.get_config())
    c.batch_size = 256
    c.total_steps = 19_600  # 100 epochs of 50,000 images at batch 256
    methods.inpainting(
        c, methods.decoder((256, 128, 64), feature_layer="block4", channel_fc=True),
        mask="random_region", region_fraction=0.25, region_scale=4.0, fill_value=CIFAR10_MEAN,
        lambda_rec=0.999, lambda_adv=0.001, disc_widths=(64, 128), disc_learning_rate=2e-4,
        learning_rate=1e-3, weight_decay=0.0, warmup_steps=500)
    c.augment = common.augment_defaults(image_size=32)
    c.checkpoint_every_steps = 2000
    c.log_every_steps = 100
    c.eval.layer = "block3"
    c.eval.grid = 2
    return c
