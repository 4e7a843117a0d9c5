"""Context-encoder inpainting on Fashion-MNIST with the demo's ConvNet (CPU-sized).

Pathak et al. 2016: hide a region of the image, encode the rest, decode the whole image and
score the hidden part with the masked L2 loss (plus a small adversarial term, lambda_rec 0.999,
lambda_adv 0.001). Here: random-region masks (a quarter of the image, smooth random blobs
instead of the paper's PASCAL silhouettes; the paper found random regions best for features),
hidden pixels filled with the dataset's mean grey (0.286), the demo's ConvNet
(configs/simclr_fashion_mnist.py) as encoder, and a decoder from its block4 map (7x7x256): a
3x3 convolution to 32 channels at 7x7, then two x2 resize-convolution stages back to 28x28
(sigmoid output). A patch discriminator is trained in the same step. AdamW at 3e-3 (ours:
after 60 steps it reached a lower masked L2 than 1e-3, 0.030 against 0.034, and a better probe).

Launch:
  python -m ssljax.train --config configs/inpainting_fashion_mnist.py --workdir runs/inpainting_fmnist
  python -m ssljax.linear_eval --workdir runs/inpainting_fmnist

Expected (2 CPU cores shared with other jobs, load about 11: about 4 s/step; the step is
44 GFLOP against SimCLR's 53, which took 0.49 s on the idle machine): after 60 steps the linear
probe on block4 pooled to 3x3 reaches 0.879 top-1 (kNN 0.766), level with the random encoder's
0.879; the 2-minute comparison run (then at lr 1e-3) got only 27 steps and 0.876 (README section
"Reconstruction pretext tasks"). On the idle machine the comparison gives 0.8860 at 2 minutes
(188 steps) and 0.8955 / kNN 0.8058 at 10 minutes (933 steps).
"""

from configs import methods, simclr_fashion_mnist


def get_config():
    c = simclr_fashion_mnist.get_config()
    methods.inpainting(
        c, methods.decoder((32, 32, 16), upsample=(1, 2, 2), feature_layer="block4"),
        mask="random_region", region_fraction=0.25, region_scale=4.0, fill_value=0.286,
        lambda_rec=0.999, lambda_adv=0.001, disc_widths=(32, 64), disc_learning_rate=2e-4,
        learning_rate=3e-3, weight_decay=0.0, warmup_steps=50)
    return c
